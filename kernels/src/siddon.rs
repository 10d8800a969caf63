//! Siddon's exact line integral through piecewise-constant voxels, in the incremental
//! form of Amanatides and Woo ("A fast voxel traversal algorithm", Eurographics 1987).
//!
//! The ray is clipped to the grid, the entry voxel found, and then each step moves to
//! whichever neighbour (x, y or z) the ray reaches first, adding `mu * (segment length)`.
//! For a uniform box the segments telescope, so the result is `mu * chord` to f32
//! rounding.

use crate::math::{floor_i32, min};
use crate::params::GridParams;
use crate::ray::Ray;
use crate::voxels::Voxels;

/// Per-axis state of the traversal.
#[derive(Clone, Copy)]
struct Axis {
    /// Current voxel index on this axis.
    index: i32,
    /// +1, -1, or 0 when the ray does not move along this axis.
    step: i32,
    /// Ray parameter of the next face crossing on this axis (infinite when `step == 0`).
    t_next: f32,
    /// Parameter increment between successive face crossings.
    t_delta: f32,
}

#[inline(always)]
fn axis(origin: f32, direction: f32, entry: f32, count: u32) -> Axis {
    // Clamp the entry voxel: the entry point lies on a face up to rounding. (Written
    // with max/min, not `clamp`, which would leave a panic path in the PTX.)
    let index = floor_i32(entry).min(count as i32 - 1).max(0);
    if direction > 0.0 {
        Axis {
            index,
            step: 1,
            t_next: ((index + 1) as f32 - origin) / direction,
            t_delta: 1.0 / direction,
        }
    } else if direction < 0.0 {
        Axis {
            index,
            step: -1,
            t_next: (index as f32 - origin) / direction,
            t_delta: -1.0 / direction,
        }
    } else {
        Axis {
            index,
            step: 0,
            t_next: f32::INFINITY,
            t_delta: f32::INFINITY,
        }
    }
}

/// The line integral `sum_i mu_i * L_i` (mm times 1/mm) of `ray` through the volume.
///
/// `volume` holds `grid.voxel_count()` voxels in `[z, y, x]` order; rays that miss the
/// grid give exactly 0.
#[inline(always)]
pub fn siddon<V: Voxels + ?Sized>(volume: &V, grid: &GridParams, ray: &Ray) -> f32 {
    let (nx, ny, nz) = (grid.nx, grid.ny, grid.nz);
    let Some((t_enter, t_exit)) = ray.clip([0.0; 3], [nx as f32, ny as f32, nz as f32]) else {
        return 0.0;
    };
    let o = ray.origin;
    let d = ray.direction;
    let mut x = axis(o[0], d[0], o[0] + t_enter * d[0], nx);
    let mut y = axis(o[1], d[1], o[1] + t_enter * d[1], ny);
    let mut z = axis(o[2], d[2], o[2] + t_enter * d[2], nz);

    let stride_y = nx as isize;
    let stride_z = nx as isize * ny as isize;
    let mut linear = x.index as isize + y.index as isize * stride_y + z.index as isize * stride_z;
    let step_x = x.step as isize;
    let step_y = y.step as isize * stride_y;
    let step_z = z.step as isize * stride_z;

    let mut t = t_enter;
    let mut sum = 0.0f32;
    // Each pass moves one index monotonically, so the loop ends after at most
    // nx + ny + nz passes; indices are checked before every read.
    loop {
        let mu = volume.voxel(linear as usize);
        let t_cross = min(x.t_next, min(y.t_next, z.t_next));
        if t_cross >= t_exit {
            sum += mu * (t_exit - t);
            break;
        }
        sum += mu * (t_cross - t);
        t = t_cross;
        if t_cross == x.t_next {
            x.index += x.step;
            x.t_next += x.t_delta;
            linear += step_x;
            if x.index as u32 >= nx {
                break;
            }
        } else if t_cross == y.t_next {
            y.index += y.step;
            y.t_next += y.t_delta;
            linear += step_y;
            if y.index as u32 >= ny {
                break;
            }
        } else if t_cross == z.t_next {
            z.index += z.step;
            z.t_next += z.t_delta;
            linear += step_z;
            if z.index as u32 >= nz {
                break;
            }
        } else {
            // Only reachable with NaN parameters.
            break;
        }
    }
    sum * grid.world_length(d)
}
