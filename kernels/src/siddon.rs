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
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Axis {
    /// Current voxel index on this axis.
    pub index: i32,
    /// +1, -1, or 0 when the ray does not move along this axis.
    pub step: i32,
    /// Ray parameter of the next face crossing on this axis (infinite when `step == 0`):
    /// `t_first + crossed * t_delta`.
    pub t_next: f32,
    /// Parameter increment between successive face crossings.
    pub t_delta: f32,
    /// Ray parameter of the first face crossing after the entry.
    pub t_first: f32,
    /// Faces crossed on this axis so far.
    pub crossed: i32,
}

impl Axis {
    /// Moves to the next voxel on this axis: the index by `step`, and the next crossing
    /// computed from the number of faces crossed, `t_first + crossed * t_delta` (one
    /// rounding of a product and a sum, however long the ray), not by adding `t_delta`
    /// to the last one, which drifts by a rounding per face.
    #[inline(always)]
    pub fn advance(&mut self) {
        self.index += self.step;
        self.crossed += 1;
        self.t_next = self.t_first + self.crossed as f32 * self.t_delta;
    }
}

/// Where a ray's walk through the grid starts: the entry voxel, the per-axis crossing
/// state, and the parameter interval inside the grid.
///
/// [`siddon`] walks from here one voxel at a time. A host that walks several rays at
/// once (SIMD lanes) starts from the same state and must take the same steps. At each
/// step, with `t_cross` the smallest `t_next` (ties go to x, then y, then z): if
/// `t_cross >= t_exit`, add `mu * (t_exit - t)` and stop; otherwise add
/// `mu * (t_cross - t)`, move the crossed axis (stop if no `t_next` equals `t_cross`,
/// which only NaN allows, with [`Axis::advance`]), and stop once its index leaves the
/// grid. Finally scale the sum by `GridParams::world_length(ray.direction)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WalkStart {
    /// The x axis (fastest in memory).
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    /// The z axis (slowest in memory).
    pub z: Axis,
    /// Ray parameter where the ray enters the grid (and the walk begins).
    pub t_enter: f32,
    /// Ray parameter where the ray leaves the grid or its segment ends.
    pub t_exit: f32,
}

/// The start of `ray`'s walk through `grid`, or `None` when it misses the grid.
///
/// The walk covers the slab of slices the grid's buffer holds (`z_first..z_end()`, the
/// whole grid for a whole volume): the ray is clipped to that slab's box in the whole
/// grid's index space.
#[inline(always)]
pub fn walk_start(grid: &GridParams, ray: &Ray) -> Option<WalkStart> {
    let (nx, ny) = (grid.nx, grid.ny);
    let (z_first, z_end) = (grid.z_first, grid.z_end());
    let (t_enter, t_exit) = ray.clip(
        [0.0, 0.0, z_first as f32],
        [nx as f32, ny as f32, z_end as f32],
    )?;
    let o = ray.origin;
    let d = ray.direction;
    Some(WalkStart {
        x: axis(o[0], d[0], o[0] + t_enter * d[0], 0, nx),
        y: axis(o[1], d[1], o[1] + t_enter * d[1], 0, ny),
        z: axis(o[2], d[2], o[2] + t_enter * d[2], z_first, z_end),
        t_enter,
        t_exit,
    })
}

/// The walk's state along one axis whose voxels `first..end` it may visit.
#[inline(always)]
fn axis(origin: f32, direction: f32, entry: f32, first: u32, end: u32) -> Axis {
    // Clamp the entry voxel: the entry point lies on a face up to rounding. (Written
    // with max/min, not `clamp`, which would leave a panic path in the PTX.)
    let index = floor_i32(entry).min(end as i32 - 1).max(first as i32);
    let (step, t_first, t_delta) = if direction > 0.0 {
        (
            1,
            ((index + 1) as f32 - origin) / direction,
            1.0 / direction,
        )
    } else if direction < 0.0 {
        (-1, (index as f32 - origin) / direction, -1.0 / direction)
    } else {
        (0, f32::INFINITY, f32::INFINITY)
    };
    Axis {
        index,
        step,
        t_next: t_first,
        t_delta,
        t_first,
        crossed: 0,
    }
}

/// The line integral `sum_i mu_i * L_i` (mm times 1/mm) of `ray` through the volume.
///
/// `volume` holds `grid.voxel_count()` voxels in `[z, y, x]` order; rays that miss the
/// grid give exactly 0.
#[inline(always)]
pub fn siddon<V: Voxels + ?Sized>(volume: &V, grid: &GridParams, ray: &Ray) -> f32 {
    let mut sum = 0.0f32;
    siddon_walk(grid, ray, |index, length| {
        sum += volume.voxel(index) * length
    });
    sum * grid.world_length(ray.direction)
}

/// The transpose of [`siddon`] for one ray: calls `add(index, value * L_i)` for every
/// voxel the ray crosses, `L_i` its path length in mm. Summed over rays, this is the
/// exact adjoint (backprojection) of the forward projection.
#[inline(always)]
pub fn siddon_adjoint<A: FnMut(usize, f32)>(grid: &GridParams, ray: &Ray, value: f32, mut add: A) {
    let weight = value * grid.world_length(ray.direction);
    siddon_walk(grid, ray, |index, length| add(index, weight * length));
}

/// Walks `ray` through the grid's slab voxel by voxel, calling `visit(index, length)`
/// with the voxel's index in the slab's buffer and the length in units of the ray
/// parameter `t` (multiply by `|M d|` for mm).
#[inline(always)]
fn siddon_walk<F: FnMut(usize, f32)>(grid: &GridParams, ray: &Ray, mut visit: F) {
    let (nx, ny) = (grid.nx, grid.ny);
    let (z_first, z_count) = (grid.z_first, grid.z_count);
    let Some(WalkStart {
        mut x,
        mut y,
        mut z,
        t_enter,
        t_exit,
    }) = walk_start(grid, ray)
    else {
        return;
    };

    let stride_y = nx as isize;
    let stride_z = nx as isize * ny as isize;
    let mut linear = x.index as isize
        + y.index as isize * stride_y
        + (z.index - z_first as i32) as isize * stride_z;
    let step_x = x.step as isize;
    let step_y = y.step as isize * stride_y;
    let step_z = z.step as isize * stride_z;

    let mut t = t_enter;
    // Each pass moves one index monotonically, so the loop ends after at most
    // nx + ny + z_count passes; indices are checked before every read.
    loop {
        let t_cross = min(x.t_next, min(y.t_next, z.t_next));
        if t_cross >= t_exit {
            visit(linear as usize, t_exit - t);
            break;
        }
        visit(linear as usize, t_cross - t);
        t = t_cross;
        if t_cross == x.t_next {
            x.advance();
            linear += step_x;
            if x.index as u32 >= nx {
                break;
            }
        } else if t_cross == y.t_next {
            y.advance();
            linear += step_y;
            if y.index as u32 >= ny {
                break;
            }
        } else if t_cross == z.t_next {
            z.advance();
            linear += step_z;
            if (z.index as u32).wrapping_sub(z_first) >= z_count {
                break;
            }
        } else {
            // Only reachable with NaN parameters.
            break;
        }
    }
}
#[cfg(test)]
mod tests {
    //! The f32 walk against an independent f64 one on random volumes, where the
    //! analytic uniform-box chords of the integration tests cannot see wrong voxels.

    use super::siddon;
    use crate::params::GridParams;
    use crate::ray::Ray;

    /// Amanatides-Woo ("A fast voxel traversal algorithm", 1987) in f64, summing
    /// `mu * length` voxel by voxel.
    fn amanatides_woo(volume: &[f32], grid: &GridParams, ray: &Ray) -> f64 {
        let n = [grid.nx as i64, grid.ny as i64, grid.nz as i64];
        let Some((t_enter, t_exit)) = ray.clip([0.0; 3], [n[0] as f32, n[1] as f32, n[2] as f32])
        else {
            return 0.0;
        };
        let (t_enter, t_exit) = (t_enter as f64, t_exit as f64);
        let o = ray.origin.map(f64::from);
        let d = ray.direction.map(f64::from);
        let mut index = [0i64; 3];
        let mut step = [0i64; 3];
        let mut t_next = [f64::INFINITY; 3];
        let mut t_delta = [f64::INFINITY; 3];
        for a in 0..3 {
            let entry = o[a] + t_enter * d[a];
            index[a] = (entry.floor() as i64).clamp(0, n[a] - 1);
            if d[a] > 0.0 {
                step[a] = 1;
                t_next[a] = ((index[a] + 1) as f64 - o[a]) / d[a];
                t_delta[a] = 1.0 / d[a];
            } else if d[a] < 0.0 {
                step[a] = -1;
                t_next[a] = (index[a] as f64 - o[a]) / d[a];
                t_delta[a] = -1.0 / d[a];
            }
        }
        let mut t = t_enter;
        let mut sum = 0.0;
        loop {
            let linear = ((index[2] * n[1] + index[1]) * n[0] + index[0]) as usize;
            let mu = volume[linear] as f64;
            let a = (0..3)
                .min_by(|&i, &j| t_next[i].total_cmp(&t_next[j]))
                .unwrap_or(0);
            if t_next[a] >= t_exit {
                sum += mu * (t_exit - t);
                break;
            }
            sum += mu * (t_next[a] - t);
            t = t_next[a];
            index[a] += step[a];
            t_next[a] += t_delta[a];
            if index[a] < 0 || index[a] >= n[a] {
                break;
            }
        }
        sum * grid.world_length(ray.direction) as f64
    }

    /// A small deterministic generator (SplitMix64), so the kernels crate needs no
    /// dependency for its tests.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }

        fn range(&mut self, low: f64, high: f64) -> f32 {
            (low + (high - low) * self.next()) as f32
        }
    }

    fn grid(nx: u32, ny: u32, nz: u32, spacing: [f32; 3]) -> GridParams {
        GridParams {
            nx,
            ny,
            nz,
            z_first: 0,
            z_count: nz,
            index_to_world: [
                spacing[0], 0.0, 0.0, //
                0.0, spacing[1], 0.0, //
                0.0, 0.0, spacing[2],
            ],
        }
    }

    #[test]
    fn f32_walk_equals_f64_reference_on_random_rays_and_volumes() {
        let mut random = Random(7);
        let g = grid(13, 9, 17, [0.7, 1.3, 2.1]);
        let count = (g.nx * g.ny * g.nz) as usize;
        let volume: Vec<f32> = (0..count).map(|_| random.range(0.0, 2.0)).collect();
        let mut worst = 0.0f64;
        for _ in 0..20_000 {
            // Segments between random points around and inside the grid: some miss,
            // some start or end inside, every direction class occurs.
            let from = [
                random.range(-8.0, 21.0),
                random.range(-8.0, 17.0),
                random.range(-8.0, 25.0),
            ];
            let to = [
                random.range(-8.0, 21.0),
                random.range(-8.0, 17.0),
                random.range(-8.0, 25.0),
            ];
            let ray = Ray {
                origin: from,
                direction: [to[0] - from[0], to[1] - from[1], to[2] - from[2]],
                t_min: 0.0,
                t_max: 1.0,
            };
            let reference = amanatides_woo(&volume, &g, &ray);
            let ours = siddon(volume.as_slice(), &g, &ray) as f64;
            let error = (ours - reference).abs() / (1.0 + reference.abs());
            worst = worst.max(error);
            assert!(
                error < 2e-5,
                "ray {ray:?}: f32 walk {ours}, f64 reference {reference}"
            );
        }
        assert!(worst > 0.0, "the comparison must be of two computations");
    }

    #[test]
    fn rays_along_faces_and_axes_match_the_f64_reference() {
        let g = grid(6, 5, 4, [1.0, 1.0, 1.0]);
        let volume: Vec<f32> = (0..120).map(|i| (i % 7) as f32 + 0.5).collect();
        let mut rays = Vec::new();
        for &(b, c) in &[(0.0f32, 0.0f32), (2.0, 3.0), (2.5, 1.5), (5.0, 3.999)] {
            rays.push(([-1.0, b, c], [8.0, 0.0, 0.0]));
            rays.push(([b, -1.0, c.min(3.5)], [0.0, 7.0, 0.0]));
            rays.push(([b, c.min(4.5), -1.0], [0.0, 0.0, 6.0]));
        }
        // Diagonals through voxel corners and edges.
        rays.push(([0.0, 0.0, 0.0], [4.0, 4.0, 4.0]));
        rays.push(([-1.0, -1.0, 2.0], [7.0, 7.0, 0.0]));
        rays.push(([6.0, 0.0, 0.0], [-5.0, 5.0, 0.0]));
        for (origin, direction) in rays {
            let ray = Ray {
                origin,
                direction,
                t_min: 0.0,
                t_max: 1.0,
            };
            let reference = amanatides_woo(&volume, &g, &ray);
            let ours = siddon(volume.as_slice(), &g, &ray) as f64;
            assert!(
                (ours - reference).abs() <= 1e-5 * (1.0 + reference.abs()),
                "ray {ray:?}: f32 walk {ours}, f64 reference {reference}"
            );
        }
    }
}
