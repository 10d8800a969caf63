//! Builders for the common scans: the circular orbit about z ([`CircularScan`]) and a
//! single radiograph from an arbitrary pose ([`DrrPose`]).

use serde::{Deserialize, Serialize};

use super::check::{count, cross, finite, finite3, norm, positive, scale, sub};
use super::{Beam, ProjectionGeometry, View};
use crate::error::{GeometryError, Result};

/// A circular scan about the world z axis, the convention of DESIGN.md, ASTRA's
/// `cone_vec` and `anchors/geometry.py`:
///
/// view k is at angle `a = start_angle + arc * k / views`; the source is at
/// `(-sod cos a, -sod sin a, 0)`, the detector centre at `((sdd - sod) cos a, (sdd - sod) sin a, 0)`
/// plus the detector offset, `u = pixel_u (-sin a, cos a, 0)` and `v = pixel_v (0, 0, 1)`.
/// For a parallel beam the rays run along `(cos a, sin a, 0)` and `sod` only places the
/// detector.
///
/// # Examples
/// ```
/// use xray_projector::CircularScan;
/// let scan = CircularScan::new(1000.0, 1500.0, 360, [256, 256], 1.6);
/// let geometry = scan.geometry().unwrap();
/// assert_eq!(geometry.shape(), [360, 256, 256]);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircularScan {
    /// Cone or parallel beam.
    #[serde(default = "cone")]
    pub beam: Beam,
    /// Source to rotation axis, mm.
    pub sod: f64,
    /// Source to detector, mm.
    pub sdd: f64,
    /// Number of views.
    pub views: usize,
    /// Detector `[rows, cols]`.
    pub detector: [usize; 2],
    /// Pixel `[width along u, height along v]`, mm.
    pub pixel: [f64; 2],
    /// Angle of the first view, radians (0 puts the source on -x).
    #[serde(default)]
    pub start_angle: f64,
    /// Angle covered by the views, radians; views are spaced `arc / views` apart.
    #[serde(default = "full_turn")]
    pub arc: f64,
    /// Shift of the detector centre `[along u, along v]`, mm.
    #[serde(default)]
    pub detector_offset: [f64; 2],
}

fn cone() -> Beam {
    Beam::Cone
}

fn full_turn() -> f64 {
    std::f64::consts::TAU
}

impl CircularScan {
    /// A cone-beam full turn with square pixels, starting at angle 0, detector centred.
    pub fn new(sod: f64, sdd: f64, views: usize, detector: [usize; 2], pixel: f64) -> Self {
        CircularScan {
            beam: Beam::Cone,
            sod,
            sdd,
            views,
            detector,
            pixel: [pixel, pixel],
            start_angle: 0.0,
            arc: full_turn(),
            detector_offset: [0.0, 0.0],
        }
    }

    /// The same scan starting at `angle` radians.
    pub fn starting_at(mut self, angle: f64) -> Self {
        self.start_angle = angle;
        self
    }

    /// The same scan with parallel rays (along the source-detector axis).
    pub fn parallel_beam(mut self) -> Self {
        self.beam = Beam::Parallel;
        self
    }

    /// The projection geometry of this scan.
    ///
    /// # Errors
    /// A [`GeometryError`] for non-positive or non-finite distances and pixel sizes,
    /// `sdd <= sod`, zero views or detector size.
    pub fn geometry(&self) -> Result<ProjectionGeometry> {
        let beam = self.beam;
        positive(|| "sod".into(), self.sod)?;
        positive(|| "sdd".into(), self.sdd)?;
        if self.sdd <= self.sod {
            return Err(GeometryError::DetectorInsideOrbit {
                sod: self.sod,
                sdd: self.sdd,
            }
            .into());
        }
        count(|| "number of views".into(), self.views)?;
        count(|| "detector rows".into(), self.detector[0])?;
        count(|| "detector cols".into(), self.detector[1])?;
        positive(|| "pixel width".into(), self.pixel[0])?;
        positive(|| "pixel height".into(), self.pixel[1])?;
        finite(|| "start angle".into(), self.start_angle)?;
        finite(|| "arc".into(), self.arc)?;
        finite(|| "detector offset u".into(), self.detector_offset[0])?;
        finite(|| "detector offset v".into(), self.detector_offset[1])?;
        let mut views = crate::alloc::reserved(self.views, "the view records")?;
        views.extend((0..self.views).map(|k| {
            let a = self.start_angle + self.arc * k as f64 / self.views as f64;
            let (sin, cos) = a.sin_cos();
            let axis = [cos, sin, 0.0];
            let u_unit = [-sin, cos, 0.0];
            let v_unit = [0.0, 0.0, 1.0];
            let to_detector = self.sdd - self.sod;
            let detector = [
                to_detector * cos + self.detector_offset[0] * u_unit[0],
                to_detector * sin + self.detector_offset[0] * u_unit[1],
                self.detector_offset[1],
            ];
            let source = match beam {
                Beam::Cone => [-self.sod * cos, -self.sod * sin, 0.0],
                Beam::Parallel => axis,
            };
            View {
                source,
                detector,
                u: scale(u_unit, self.pixel[0]),
                v: scale(v_unit, self.pixel[1]),
            }
        }));
        let geometry = ProjectionGeometry {
            beam,
            rows: self.detector[0],
            cols: self.detector[1],
            views,
        };
        geometry.validate()?;
        Ok(geometry)
    }
}

/// One radiograph from an arbitrary pose: a source, the point the central ray aims at,
/// and which way is up on the detector. Covers C-arms, robots and registration poses.
///
/// The detector is perpendicular to the central ray at `sdd` from the source; its rows
/// run along `up` (made perpendicular to the central ray) and its columns along
/// `up x direction`, which reproduces [`CircularScan`]'s u and v for a source on the
/// circle and `up = +z`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrrPose {
    /// Source position, mm.
    pub source: [f64; 3],
    /// Point the central ray passes through (the isocentre), mm.
    pub target: [f64; 3],
    /// Source to detector, mm, along the central ray.
    pub sdd: f64,
    /// World direction that points up the detector (towards increasing rows).
    pub up: [f64; 3],
    /// Detector `[rows, cols]`.
    pub detector: [usize; 2],
    /// Pixel `[width along u, height along v]`, mm.
    pub pixel: [f64; 2],
}

impl DrrPose {
    /// The one-view cone-beam geometry of this pose.
    ///
    /// # Errors
    /// A [`GeometryError`] for non-finite vectors, a source on its target, `up` parallel
    /// to the central ray, non-positive sizes.
    pub fn geometry(&self) -> Result<ProjectionGeometry> {
        finite3("pose source", self.source)?;
        finite3("pose target", self.target)?;
        finite3("pose up", self.up)?;
        positive(|| "sdd".into(), self.sdd)?;
        positive(|| "pixel width".into(), self.pixel[0])?;
        positive(|| "pixel height".into(), self.pixel[1])?;
        let axis = sub(self.target, self.source);
        let axis_length = norm(axis);
        positive(|| "distance from source to target".into(), axis_length)?;
        let axis = scale(axis, 1.0 / axis_length);
        let u_dir = cross(self.up, axis);
        let u_length = norm(u_dir);
        // Inputs are finite (checked above); a zero `up` gives 0 <= 0.
        if u_length <= 1e-9 * norm(self.up) {
            return Err(GeometryError::DetectorAxesParallel { view: 0 }.into());
        }
        let u_unit = scale(u_dir, 1.0 / u_length);
        let v_unit = cross(axis, u_unit);
        let detector = [
            self.source[0] + self.sdd * axis[0],
            self.source[1] + self.sdd * axis[1],
            self.source[2] + self.sdd * axis[2],
        ];
        let geometry = ProjectionGeometry {
            beam: Beam::Cone,
            rows: self.detector[0],
            cols: self.detector[1],
            views: vec![View {
                source: self.source,
                detector,
                u: scale(u_unit, self.pixel[0]),
                v: scale(v_unit, self.pixel[1]),
            }],
        };
        geometry.validate()?;
        Ok(geometry)
    }
}
