//! The pre-filter weights of FDK for a circular scan: the cosine of each ray's angle to
//! the principal ray, and the redundancy weights that make every line count once
//! (1/2 for a full turn, Parker's for a short scan).
//!
//! Short scans follow Parker ("Optimal short scan convolution reconstruction for fan
//! beam CT", Med. Phys. 9, 1982), generalised to any arc between 180 degrees plus the
//! fan angle and a full turn (Wesarg et al., Med. Phys. 29, 2002): with `delta` half
//! the arc's excess over 180 degrees, view position `beta` in `[0, 180 + 2 delta]` and
//! the ray's fan angle `gamma`,
//!
//! ```text
//! w = sin^2(pi/4 * beta / (delta - gamma))                  0 <= beta < 2 (delta - gamma)
//!     1                                       2 (delta - gamma) <= beta <= pi - 2 gamma
//!     sin^2(pi/4 * (pi + 2 delta - beta) / (delta + gamma))     pi - 2 gamma < beta <= pi + 2 delta
//! ```
//!
//! so that a ray and its conjugate, `(beta + pi + 2 gamma, -gamma)`, sum to 1.
//!
//! A full turn with the detector shifted sideways (`detector_offset[0]`, to widen the
//! field of view) measures the rays of the wider side once and the others twice. Those
//! of the overlap, `|u| <= A` (the nearer edge), weigh 1/2; towards the wider side the
//! weight rises smoothly to 1 over a band `T` (twice the offset, at most `A`), and
//! falls to 0 at the mirror position, so conjugates (`u` and `-u`) still sum to 1
//! (after Wang, "X-ray micro-CT with a displaced detector array", Med. Phys. 29, 2002).
//! Short scans need the mirror of every column on the detector: their offset may be at
//! most half a pixel.

use std::f64::consts::{PI, TAU};

use crate::error::{Error, Result};
use crate::geometry::{Beam, CircularScan};

/// How much of a turn a scan covers, and so how each ray is weighted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Redundancy {
    /// A full turn: every line is measured twice.
    full_turn: bool,
    /// Half the arc's excess over 180 degrees, radians.
    delta: f64,
    /// Angle of the first view.
    start: f64,
    /// +1 for a counter-clockwise scan (positive arc), -1 for a clockwise one.
    sense: f64,
    /// Angle between views, radians (positive).
    step: f64,
    /// Source to detector, mm (cone beams).
    sdd: f64,
    /// The beam shape.
    beam: Beam,
    /// Full turn: half-width of the part of the detector symmetric about the principal
    /// point, mm.
    overlap: f64,
    /// Full turn: width of the band over which the weight goes from 1/2 to 1, mm.
    transition: f64,
    /// Full turn: +1 when the wider side of the detector is at positive `u`.
    wider_side: f64,
}

/// Relative tolerance on "the arc is a full turn".
const FULL_TURN_TOLERANCE: f64 = 1e-6;

impl Redundancy {
    /// The weights of `scan`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the arc covers more than one turn, or less than
    /// 180 degrees plus the fan angle, which FDK cannot reconstruct; when the rotation
    /// axis does not project onto the detector; or when a short scan's detector is
    /// offset by more than half a pixel.
    pub(crate) fn of(scan: &CircularScan) -> Result<Redundancy> {
        let arc = scan.arc.abs();
        let full_turn = (arc - TAU).abs() <= FULL_TURN_TOLERANCE * TAU;
        if arc > TAU && !full_turn {
            return Err(Error::InvalidParameter {
                name: "scan arc",
                reason: format!(
                    "FDK takes at most one turn; this scan covers {:.3} degrees",
                    arc.to_degrees()
                ),
            });
        }
        let cols = scan.detector[1] as f64;
        let offset = scan.detector_offset[0];
        let (near_edge, far_edge) = (
            column_position(scan, -0.5),
            column_position(scan, cols - 0.5),
        );
        if !(near_edge < 0.0 && far_edge > 0.0) {
            return Err(Error::InvalidParameter {
                name: "detector offset",
                reason: format!(
                    "FDK needs the rotation axis to project onto the detector; with an \
                     offset of {offset} mm the detector spans {near_edge} to {far_edge} mm"
                ),
            });
        }
        let overlap = near_edge.abs().min(far_edge);
        if !full_turn && offset.abs() > scan.pixel[0] / 2.0 {
            return Err(Error::InvalidParameter {
                name: "detector offset",
                reason: format!(
                    "a short scan needs the detector centred on the rotation axis (an \
                     offset of at most half a pixel, {} mm); this one is offset by {offset} \
                     mm. Offset detectors need a full turn",
                    scan.pixel[0] / 2.0
                ),
            });
        }
        let redundancy = Redundancy {
            full_turn,
            overlap,
            transition: (2.0 * offset.abs()).min(overlap),
            wider_side: offset.signum(),
            delta: ((arc - PI) / 2.0).max(0.0),
            start: scan.start_angle,
            sense: if scan.arc < 0.0 { -1.0 } else { 1.0 },
            step: arc / scan.views as f64,
            sdd: scan.sdd,
            beam: scan.beam,
        };
        let fan = redundancy.half_fan_angle(scan);
        // A little slack for arcs given as exactly 180 degrees plus the fan angle.
        if !full_turn && arc < PI + 2.0 * fan - 1e-9 {
            return Err(Error::InvalidParameter {
                name: "scan arc",
                reason: format!(
                    "FDK needs views over at least 180 degrees plus the fan angle ({:.3} \
                     degrees here); this scan covers {:.3} degrees. Use SIRT or CGLS for \
                     limited-angle data",
                    (PI + 2.0 * fan).to_degrees(),
                    arc.to_degrees()
                ),
            });
        }
        Ok(redundancy)
    }

    /// The largest fan angle of any column, radians (0 for parallel beams).
    fn half_fan_angle(&self, scan: &CircularScan) -> f64 {
        let cols = scan.detector[1];
        let edge = |c: f64| self.fan_angle(column_position(scan, c)).abs();
        edge(-0.5).max(edge(cols as f64 - 0.5))
    }

    /// Fan angle of a ray that meets the detector `u` mm from the principal point.
    fn fan_angle(&self, u: f64) -> f64 {
        match self.beam {
            Beam::Cone => (u / self.sdd).atan(),
            Beam::Parallel => 0.0,
        }
    }

    /// The weight of the ray of a source at world angle `angle` through the detector
    /// `u` mm from the principal point.
    pub(crate) fn weight(&self, angle: f64, u: f64) -> f64 {
        if self.full_turn {
            return self.full_turn_weight(u);
        }
        parker(
            self.arc_position(angle),
            self.sense * self.fan_angle(u),
            self.delta,
        )
    }

    /// The weight of a full turn's ray at `u` mm from the principal point (module docs).
    fn full_turn_weight(&self, u: f64) -> f64 {
        let distance = u.abs();
        let start = self.overlap - self.transition;
        if distance <= start || self.transition == 0.0 {
            return 0.5;
        }
        let ramp = (PI / 2.0 * ((distance - start) / self.transition).min(1.0))
            .sin()
            .powi(2);
        let towards_wider = if u * self.wider_side > 0.0 { 1.0 } else { -1.0 };
        0.5 * (1.0 + towards_wider * ramp)
    }

    /// Position of world angle `angle` along the arc, in `[0, 2 pi)`: each view stands
    /// for the step around it, so the first view is at `step / 2` and the arc ends at
    /// `|arc|`.
    fn arc_position(&self, angle: f64) -> f64 {
        ((angle - self.start) * self.sense + self.step / 2.0).rem_euclid(TAU)
    }
}

/// Parker's weight (module docs) of the ray at arc position `beta` and fan angle
/// `gamma`, for an arc of `pi + 2 delta`.
fn parker(beta: f64, gamma: f64, delta: f64) -> f64 {
    if !(0.0..PI + 2.0 * delta).contains(&beta) {
        return 0.0;
    }
    if beta < 2.0 * (delta - gamma) {
        (PI / 4.0 * beta / (delta - gamma)).sin().powi(2)
    } else if beta <= PI - 2.0 * gamma {
        1.0
    } else {
        (PI / 4.0 * (PI + 2.0 * delta - beta) / (delta + gamma))
            .sin()
            .powi(2)
    }
}

/// Position of (continuous) column `c` along `u` from the principal point, mm.
pub(crate) fn column_position(scan: &CircularScan, c: f64) -> f64 {
    (c - (scan.detector[1] as f64 - 1.0) / 2.0) * scan.pixel[0] + scan.detector_offset[0]
}

/// Position of row `r` along `v` from the principal point, mm.
pub(crate) fn row_position(scan: &CircularScan, r: f64) -> f64 {
    (r - (scan.detector[0] as f64 - 1.0) / 2.0) * scan.pixel[1] + scan.detector_offset[1]
}

/// The cosine of the angle between the ray to detector point `(u, v)` (mm from the
/// principal point) and the principal ray: `sdd / sqrt(sdd^2 + u^2 + v^2)` for a cone
/// beam, 1 for a parallel one.
pub(crate) fn cosine_weight(scan: &CircularScan, u: f64, v: f64) -> f64 {
    match scan.beam {
        Beam::Cone => scan.sdd / (scan.sdd * scan.sdd + u * u + v * v).sqrt(),
        Beam::Parallel => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn scan(arc_degrees: f64, start: f64) -> CircularScan {
        CircularScan {
            arc: arc_degrees.to_radians(),
            start_angle: start,
            ..CircularScan::new(500.0, 800.0, 200, [16, 101], 2.0)
        }
    }

    /// The other source angle and the fan angle (as a detector position) on the line of
    /// the ray from the source at `angle` through detector position `u`, found by
    /// intersecting that line with the source circle: no use of the conjugate formula.
    fn conjugate(scan: &CircularScan, angle: f64, u: f64) -> (f64, f64) {
        if scan.beam == Beam::Parallel {
            return (angle + PI, -u);
        }
        let source = [-scan.sod * angle.cos(), -scan.sod * angle.sin()];
        let direction_angle = angle + (u / scan.sdd).atan();
        let d = [direction_angle.cos(), direction_angle.sin()];
        let t = -2.0 * (source[0] * d[0] + source[1] * d[1]);
        let other = [source[0] + t * d[0], source[1] + t * d[1]];
        let other_angle = (-other[1]).atan2(-other[0]);
        // The conjugate ray runs the other way along the same line.
        let gamma = (direction_angle + PI - other_angle + PI).rem_euclid(TAU) - PI;
        (other_angle, scan.sdd * gamma.tan())
    }

    fn check_conjugates_sum_to_one(scan: &CircularScan) {
        let redundancy = Redundancy::of(scan).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let cols = scan.detector[1] as f64;
        let (u_min, u_max) = (
            column_position(scan, -0.5),
            column_position(scan, cols - 0.5),
        );
        let mut checked = 0;
        for _ in 0..20_000 {
            let angle = scan.start_angle + scan.arc * rng.random::<f64>();
            let u = rng.random_range(u_min..u_max);
            let (other_angle, other_u) = conjugate(scan, angle, u);
            let w = redundancy.weight(angle, u);
            let w_other = redundancy.weight(other_angle, other_u);
            // Both rays inside the scanned arc: together they must count once.
            let inside = |a: f64| redundancy.arc_position(a) < scan.arc.abs();
            let measured = inside(other_angle) && (u_min..u_max).contains(&other_u);
            if measured {
                assert!(
                    (w + w_other - 1.0).abs() < 1e-9,
                    "angle {angle} u {u}: {w} + {w_other}"
                );
                checked += 1;
            } else {
                // A ray whose conjugate was not measured must count fully.
                assert!((w - 1.0).abs() < 1e-9, "angle {angle} u {u}: {w}");
            }
        }
        assert!(checked > 1000, "only {checked} conjugate pairs checked");
    }

    #[test]
    fn short_scan_conjugate_rays_sum_to_one() {
        // Fan half-angle: atan(101 mm / 800 mm) = 7.2 degrees.
        check_conjugates_sum_to_one(&scan(180.0 + 15.0, 0.3));
        check_conjugates_sum_to_one(&scan(250.0, -1.0));
        // Clockwise.
        check_conjugates_sum_to_one(&scan(-200.0, 2.0));
    }

    #[test]
    fn full_turn_weighs_every_ray_one_half() {
        let redundancy = Redundancy::of(&scan(360.0, 0.0)).unwrap();
        assert_eq!(redundancy.weight(1.0, 30.0), 0.5);
        assert_eq!(redundancy.weight(4.0, -100.0), 0.5);
        check_conjugates_sum_to_one(&scan(360.0, 0.0));
    }

    #[test]
    fn offset_detector_conjugate_rays_sum_to_one() {
        for offset in [40.0, -25.0, 0.5] {
            let mut offset_scan = scan(360.0, 0.7);
            offset_scan.detector_offset = [offset, 3.0];
            check_conjugates_sum_to_one(&offset_scan);
            let mut parallel = offset_scan.parallel_beam();
            parallel.arc = -TAU;
            check_conjugates_sum_to_one(&parallel);
        }
    }

    #[test]
    fn short_scan_with_an_offset_detector_is_refused() {
        let mut offset_scan = scan(200.0, 0.0);
        offset_scan.detector_offset = [5.0, 0.0];
        let error = Redundancy::of(&offset_scan).unwrap_err().to_string();
        assert!(error.contains("need a full turn"), "{error}");
    }

    #[test]
    fn too_short_or_too_long_an_arc_is_refused() {
        let short = Redundancy::of(&scan(190.0, 0.0)).unwrap_err().to_string();
        assert!(
            short.contains("at least 180 degrees plus the fan angle"),
            "{short}"
        );
        assert!(Redundancy::of(&scan(400.0, 0.0)).is_err());
    }

    #[test]
    fn parallel_beams_need_only_half_a_turn() {
        let parallel = scan(180.0, 0.0).parallel_beam();
        let redundancy = Redundancy::of(&parallel).unwrap();
        for k in 0..parallel.views {
            let angle = parallel.arc * k as f64 / parallel.views as f64;
            assert_eq!(redundancy.weight(angle, 10.0), 1.0);
        }
    }

    #[test]
    fn cosine_weight_is_the_cosine_of_the_ray_angle() {
        let s = scan(360.0, 0.0);
        let (u, v) = (300.0, -400.0);
        let ray = [s.sdd, u, v];
        let length = (ray[0] * ray[0] + ray[1] * ray[1] + ray[2] * ray[2]).sqrt();
        assert!((cosine_weight(&s, u, v) - s.sdd / length).abs() < 1e-15);
        assert_eq!(cosine_weight(&s.parallel_beam(), u, v), 1.0);
    }
}
