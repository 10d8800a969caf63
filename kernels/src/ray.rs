//! The ray of one detector pixel, and its clipping against an axis-aligned box.

use crate::math::{max, min};
use crate::params::{Beam, DetectorParams, ViewParams};

/// A ray `origin + t * direction` for `t` in `[t_min, t_max]`, in voxel-index space.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ray {
    /// Point at `t = 0`.
    pub origin: [f32; 3],
    /// Step per unit of `t` (not normalised).
    pub direction: [f32; 3],
    /// Start of the integrated segment.
    pub t_min: f32,
    /// End of the integrated segment.
    pub t_max: f32,
}

impl Ray {
    /// The ray through the centre of pixel (`row`, `col`) of `view`.
    ///
    /// Cone beam: from the source (`t = 0`) to the pixel centre (`t = 1`).
    /// Parallel beam: the whole line through the pixel centre along the view's direction.
    #[inline(always)]
    pub fn through_pixel(view: &ViewParams, detector: &DetectorParams, row: u32, col: u32) -> Ray {
        let cu = col as f32 - 0.5 * (detector.cols as f32 - 1.0);
        let cv = row as f32 - 0.5 * (detector.rows as f32 - 1.0);
        let mut pixel = [0.0f32; 3];
        for (a, p) in pixel.iter_mut().enumerate() {
            *p = view.detector_centre[a] + cu * view.u[a] + cv * view.v[a];
        }
        match detector.beam {
            Beam::Cone => {
                let s = view.source;
                Ray {
                    origin: s,
                    direction: [pixel[0] - s[0], pixel[1] - s[1], pixel[2] - s[2]],
                    t_min: 0.0,
                    t_max: 1.0,
                }
            }
            Beam::Parallel => Ray {
                origin: pixel,
                direction: view.source,
                t_min: f32::NEG_INFINITY,
                t_max: f32::INFINITY,
            },
        }
    }

    /// The parameter interval in which the ray lies inside the box `lo <= x < hi` (per
    /// axis), intersected with `[t_min, t_max]`; `None` when the ray misses.
    ///
    /// A ray parallel to an axis is inside when `lo <= origin < hi` on that axis, so a
    /// ray running exactly along a grid face belongs to the voxels above it: the lower
    /// faces of the box are inside, the upper faces outside. Non-finite input misses.
    #[inline(always)]
    pub fn clip(&self, lo: [f32; 3], hi: [f32; 3]) -> Option<(f32, f32)> {
        let mut t_enter = self.t_min;
        let mut t_exit = self.t_max;
        for a in 0..3 {
            let o = self.origin[a];
            let d = self.direction[a];
            // `max`/`min` below skip a NaN bound, so non-finite input is refused here.
            if !(o.is_finite() && d.is_finite()) {
                return None;
            }
            if d == 0.0 {
                if !(o >= lo[a] && o < hi[a]) {
                    return None;
                }
            } else {
                let inv = 1.0 / d;
                let t_lo = (lo[a] - o) * inv;
                let t_hi = (hi[a] - o) * inv;
                let (near, far) = if t_lo < t_hi {
                    (t_lo, t_hi)
                } else {
                    (t_hi, t_lo)
                };
                t_enter = max(near, t_enter);
                t_exit = min(far, t_exit);
            }
        }
        // Written so that NaN anywhere gives a miss.
        if t_enter < t_exit && t_enter.is_finite() && t_exit.is_finite() {
            Some((t_enter, t_exit))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Ray;

    fn ray(origin: [f32; 3], direction: [f32; 3]) -> Ray {
        Ray {
            origin,
            direction,
            t_min: 0.0,
            t_max: 1.0,
        }
    }

    #[test]
    fn a_ray_through_the_box_is_clipped_to_its_faces() {
        let r = ray([-1.0, 0.5, 0.5], [4.0, 0.0, 0.0]);
        assert_eq!(r.clip([0.0; 3], [2.0, 1.0, 1.0]), Some((0.25, 0.75)));
    }

    #[test]
    fn non_finite_coordinates_on_any_axis_miss() {
        let good = ray([-1.0, 0.5, 0.5], [4.0, 0.1, 0.1]);
        assert!(good.clip([0.0; 3], [2.0, 1.0, 1.0]).is_some());
        for axis in 0..3 {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let (mut in_origin, mut in_direction) = (good, good);
                in_origin.origin[axis] = bad;
                in_direction.direction[axis] = bad;
                for r in [in_origin, in_direction] {
                    assert_eq!(r.clip([0.0; 3], [2.0, 1.0, 1.0]), None, "{r:?}");
                }
            }
        }
    }
}
