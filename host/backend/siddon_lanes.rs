//! Siddon's walk for [`LANES`] rays at once, in the lanes of AVX2 vectors: the CPU
//! forward projector's fast path on x86-64.
//!
//! One ray's walk is a chain of dependent steps with an unpredictable branch (which axis
//! the ray crosses next), so a scalar core spends most of its time waiting on that chain
//! and on mispredicted branches. Here eight neighbouring rays walk in lockstep: each
//! step picks every lane's next axis with compare masks instead of branches, and reads
//! the eight voxels with eight independent loads. A lane that leaves the grid stops
//! contributing; the loop ends when all have. For volumes larger than a cache, each lane
//! also prefetches the voxel it will reach a few dozen steps later.
//!
//! Every lane starts from `xray_kernels::siddon::walk_start` and does the same `f32`
//! operations in the same order as `xray_kernels::siddon::siddon` (the function the
//! GPU kernel runs), so the results are bit for bit the scalar kernel's; the unit tests
//! below, and those of [`super::cpu`], check that.

use xray_kernels::ray::Ray;
use xray_kernels::GridParams;

use super::lanes::{cpu_has_avx2, LANES};

/// The lockstep walker for one volume: it exists only when this CPU has AVX2 and the
/// volume's linear indices fit in the `i32` lanes.
#[derive(Clone, Copy)]
pub(crate) struct SiddonLanes<'a> {
    volume: &'a [f32],
    grid: &'a GridParams,
    /// Whether to prefetch ahead of each lane: only for volumes larger than
    /// [`PREFETCH_ABOVE_BYTES`], which a cache does not hold.
    prefetch: bool,
}

/// Volumes larger than this (bytes) are walked with software prefetching. Smaller ones
/// stay in the last-level cache, where the prefetches cost more than they save.
const PREFETCH_ABOVE_BYTES: usize = 32 << 20;

impl<'a> SiddonLanes<'a> {
    /// The walker for `volume` on `grid`, or `None` when this CPU lacks AVX2, the volume
    /// has `2^31` voxels or more or none, or `volume` does not hold exactly the whole
    /// grid's voxels (a slab of it goes one ray at a time).
    pub(crate) fn new(volume: &'a [f32], grid: &'a GridParams) -> Option<Self> {
        let fits = grid.is_whole()
            && volume.len() == grid.voxel_count()
            && !volume.is_empty()
            && volume.len() <= i32::MAX as usize;
        let prefetch = std::mem::size_of_val(volume) > PREFETCH_ABOVE_BYTES;
        (fits && cpu_has_avx2()).then_some(SiddonLanes {
            volume,
            grid,
            prefetch,
        })
    }

    /// The same walker with prefetching forced on or off (the tests run both paths).
    #[cfg(test)]
    fn with_prefetch(self, prefetch: bool) -> Self {
        SiddonLanes { prefetch, ..self }
    }

    /// Writes the line integral of `rays[i]` to `out[i]`, for up to [`LANES`] rays:
    /// exactly what `xray_kernels::siddon::siddon` gives for each.
    pub(crate) fn trace(&self, rays: &[Ray], out: &mut [f32]) {
        debug_assert!(rays.len() <= LANES && rays.len() == out.len());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `new` checked that the CPU has AVX2, that `volume` holds exactly the
        // grid's voxels (at least one), and that their count fits in `i32`.
        unsafe {
            if self.prefetch {
                avx2::trace::<true>(self.volume, self.grid, rays, out)
            } else {
                avx2::trace::<false>(self.volume, self.grid, rays, out)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        for (ray, value) in rays.iter().zip(out) {
            *value = xray_kernels::siddon::siddon(self.volume, self.grid, ray);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use xray_kernels::ray::Ray;
    use xray_kernels::siddon::{walk_start, Axis};
    use xray_kernels::GridParams;

    use super::super::lanes::avx2::{for_each_lane, load_lanes};
    use super::LANES;

    /// How far ahead of each lane the prefetch reaches, in voxels along the ray's
    /// longest axis: far enough to cover a memory access, near enough to stay on the ray.
    const PREFETCH_VOXELS: f32 = 24.0;

    /// Prefetch on every this many steps: a lane moves at most one voxel per step, so
    /// consecutive prefetches mostly name the same cache lines.
    const PREFETCH_EVERY: u32 = 4;

    /// The walk of up to [`LANES`] rays in lockstep; see the module docs. With `PREFETCH`,
    /// every [`PREFETCH_EVERY`] steps it also asks for the cache lines the lanes will
    /// read [`PREFETCH_VOXELS`] further on (worth it once the volume does not fit in
    /// the cache). On the README's machine this made fp256 (64 MB) 10-25% faster and
    /// a 1 MB volume 15% slower, hence the size threshold.
    ///
    /// # Safety
    /// The CPU must have AVX2, `volume` must hold exactly `grid.voxel_count()` voxels
    /// (at least one), and that count must fit in `i32`. Then every voxel read is inside
    /// `volume`: active lanes start inside the grid (`walk_start` clamps the entry voxel)
    /// and are done from the step that would take any of their three indices out of it
    /// (the per-axis count of faces left runs out), and done lanes read voxel 0.
    /// Prefetches may point anywhere; they never fault.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn trace<const PREFETCH: bool>(
        volume: &[f32],
        grid: &GridParams,
        rays: &[Ray],
        out: &mut [f32],
    ) {
        let counts = [grid.nx, grid.ny, grid.nz].map(|n| n as i32);
        let strides = [1, counts[0], counts[0] * counts[1]];

        // Per-lane start state, one array per quantity.
        // Faces each lane may still cross on each axis before it leaves the grid; -1
        // (done from the start, with a zero sum) for lanes without a ray or whose ray
        // misses.
        let mut remaining = [[-1i32; LANES]; 3];
        let mut stride_step = [[0i32; LANES]; 3];
        let mut t_next = [[0.0f32; LANES]; 3];
        let mut t_delta = [[0.0f32; LANES]; 3];
        let mut t_first = [[0.0f32; LANES]; 3];
        let mut origin = [[0.0f32; LANES]; 3];
        let mut direction = [[0.0f32; LANES]; 3];
        let mut t_now = [0.0f32; LANES];
        let mut t_end = [0.0f32; LANES];
        let mut lead = [0.0f32; LANES];
        let mut linear_start = [0i32; LANES];
        for (lane, ray) in rays.iter().enumerate().take(LANES) {
            let Some(start) = walk_start(grid, ray) else {
                continue;
            };
            let axes: [Axis; 3] = [start.x, start.y, start.z];
            for a in 0..3 {
                let axis = axes[a];
                // Crossing a face moves the index by `step`; the walk leaves the grid on
                // the crossing after the last one that keeps it in `0..count`.
                remaining[a][lane] = match axis.step {
                    1 => counts[a] - 1 - axis.index,
                    -1 => axis.index,
                    _ => i32::MAX,
                };
                stride_step[a][lane] = axis.step * strides[a];
                t_next[a][lane] = axis.t_next;
                t_delta[a][lane] = axis.t_delta;
                t_first[a][lane] = axis.t_first;
                origin[a][lane] = ray.origin[a];
                direction[a][lane] = ray.direction[a];
                linear_start[lane] += axis.index * strides[a];
            }
            let d = ray.direction.map(f32::abs);
            lead[lane] = PREFETCH_VOXELS / d[0].max(d[1]).max(d[2]);
            t_now[lane] = start.t_enter;
            t_end[lane] = start.t_exit;
        }

        let load_i = |v: &[i32; LANES]| _mm256_loadu_si256(v.as_ptr().cast());
        let load_f = |v: &[f32; LANES]| _mm256_loadu_ps(v.as_ptr());
        // A lane is done once any of its counts is negative: it left the grid, or it
        // reached its exit (every step at or past the exit sets the x count to -1). A
        // done lane stays done: counts only go down, apart from that reset to -1, and
        // none can wrap, as the loop ends within nx + ny + nz steps.
        let [mut rx, mut ry, mut rz] = remaining.each_ref().map(load_i);
        let [lx, ly, lz] = stride_step.each_ref().map(load_i);
        let [mut tx, mut ty, mut tz] = t_next.each_ref().map(load_f);
        let [dx, dy, dz] = t_delta.each_ref().map(load_f);
        let [fx, fy, fz] = t_first.each_ref().map(load_f);
        // `Axis::advance`: a crossing is `t_first + crossed * t_delta`. Faces crossed
        // per axis, and each axis's crossing after the next one, computed a step ahead so
        // that the walk's chain of dependent instructions stays one blend per step.
        let one = _mm256_set1_epi32(1);
        let next = |first, crossed, delta| {
            _mm256_add_ps(first, _mm256_mul_ps(_mm256_cvtepi32_ps(crossed), delta))
        };
        let [mut cx, mut cy, mut cz] = [_mm256_setzero_si256(); 3];
        let [mut ux, mut uy, mut uz] = [(fx, dx), (fy, dy), (fz, dz)].map(|(f, d)| next(f, one, d));
        let origin = origin.each_ref().map(load_f);
        let direction = direction.each_ref().map(load_f);
        let strides = strides.map(|s| _mm256_set1_epi32(s));
        let lead = load_f(&lead);
        let mut t = load_f(&t_now);
        let t_exit = load_f(&t_end);
        let mut linear = load_i(&linear_start);
        let mut sum = _mm256_setzero_ps();
        let minus_one = _mm256_set1_epi32(-1);

        let mut step = 0u32;
        loop {
            let any_negative = _mm256_or_si256(rx, _mm256_or_si256(ry, rz));
            if _mm256_movemask_ps(_mm256_castsi256_ps(any_negative)) == 0xff {
                break;
            }
            // All ones in the lanes that are done.
            let done = _mm256_srai_epi32::<31>(any_negative);
            step = step.wrapping_add(1);
            if PREFETCH && step % PREFETCH_EVERY == 0 {
                // The voxel each lane will be in `lead` further along its ray.
                let ahead = _mm256_add_ps(t, lead);
                let index = |a: usize| {
                    let p = _mm256_add_ps(origin[a], _mm256_mul_ps(ahead, direction[a]));
                    _mm256_mullo_epi32(_mm256_cvttps_epi32(p), strides[a])
                };
                let at = _mm256_add_epi32(index(0), _mm256_add_epi32(index(1), index(2)));
                for_each_lane(at, |i| {
                    let p = volume.as_ptr().wrapping_add(i as u32 as usize);
                    _mm_prefetch::<_MM_HINT_T0>(p.cast());
                });
            }
            // The scalar kernel's `min(x, min(y, z))`: `minps` returns its second operand
            // on ties and NaN, as `math::min` does.
            let t_cross = _mm256_min_ps(tx, _mm256_min_ps(ty, tz));
            let mu = load_lanes(volume, _mm256_andnot_si256(done, linear));
            // `t_exit` where `t_cross >= t_exit`, else `t_cross` (NaN included), as in
            // the scalar kernel.
            let length = _mm256_sub_ps(_mm256_min_ps(t_exit, t_cross), t);
            // Done lanes add +0.0, which leaves any sum unchanged bit for bit (a sum that
            // starts at +0.0 is never -0.0).
            let term = _mm256_andnot_ps(_mm256_castsi256_ps(done), _mm256_mul_ps(mu, length));
            sum = _mm256_add_ps(sum, term);
            t = t_cross;
            // The walk ends at the exit, or where `t_cross` is NaN (no axis is crossed).
            let stop = _mm256_cmp_ps::<_CMP_NLT_UQ>(t_cross, t_exit);
            // The axis crossed: x first, then y, else z, as in the scalar kernel (a NaN
            // `t_cross` crosses none there; here it moves z but stops the lane).
            let mx = _mm256_cmp_ps::<_CMP_EQ_OQ>(t_cross, tx);
            let my = _mm256_andnot_ps(mx, _mm256_cmp_ps::<_CMP_EQ_OQ>(t_cross, ty));
            let mxy = _mm256_or_ps(mx, my);
            let [mxi, myi, mxyi] = [mx, my, mxy].map(|m| _mm256_castps_si256(m));
            tx = _mm256_blendv_ps(tx, ux, mx);
            ty = _mm256_blendv_ps(ty, uy, my);
            tz = _mm256_blendv_ps(uz, tz, mxy);
            cx = _mm256_sub_epi32(cx, mxi);
            cy = _mm256_sub_epi32(cy, myi);
            cz = _mm256_add_epi32(cz, _mm256_andnot_si256(mxyi, one));
            ux = next(fx, _mm256_add_epi32(cx, one), dx);
            uy = next(fy, _mm256_add_epi32(cy, one), dy);
            uz = next(fz, _mm256_add_epi32(cz, one), dz);
            // A mask lane is -1 where it is set: adding it counts one crossing off.
            rx = _mm256_or_si256(_mm256_add_epi32(rx, mxi), _mm256_castps_si256(stop));
            ry = _mm256_add_epi32(ry, myi);
            rz = _mm256_add_epi32(rz, _mm256_andnot_si256(mxyi, minus_one));
            let moved = _mm256_blendv_ps(
                _mm256_blendv_ps(_mm256_castsi256_ps(lz), _mm256_castsi256_ps(ly), my),
                _mm256_castsi256_ps(lx),
                mx,
            );
            linear = _mm256_add_epi32(linear, _mm256_castps_si256(moved));
        }

        let mut sums = [0.0f32; LANES];
        _mm256_storeu_ps(sums.as_mut_ptr(), sum);
        for ((value, ray), lane_sum) in out.iter_mut().zip(rays).zip(sums) {
            *value = lane_sum * grid.world_length(ray.direction);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The lanes against the scalar kernel, bit for bit, on random rays and volumes.

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use xray_kernels::ray::Ray;
    use xray_kernels::siddon::siddon;
    use xray_kernels::GridParams;

    use super::super::lanes::test_support::{
        assert_prefixes_match, between, grid, point_around_grid, segment,
    };
    use super::{SiddonLanes, LANES};

    /// Checks every prefix of `rays` against the scalar kernel, with and without
    /// prefetching.
    fn assert_lanes_equal_scalar(lanes: SiddonLanes, volume: &[f32], g: &GridParams, rays: &[Ray]) {
        for prefetch in [false, true] {
            let lanes = lanes.with_prefetch(prefetch);
            assert_prefixes_match(rays, |r, out| lanes.trace(r, out), |r| siddon(volume, g, r));
        }
    }

    #[test]
    fn lanes_equal_the_scalar_kernel_bit_for_bit() {
        let g = grid([13, 9, 17], [0.7, 1.3, 2.1]);
        let mut random = ChaCha8Rng::seed_from_u64(11);
        let volume: Vec<f32> = (0..g.voxel_count())
            .map(|_| random.random_range(0.0..2.0))
            .collect();
        let Some(lanes) = SiddonLanes::new(&volume, &g) else {
            println!("SKIPPED: this CPU has no AVX2, the scalar kernel runs instead");
            return;
        };
        let mut nonzero = 0;
        for _ in 0..2_000 {
            let rays: Vec<Ray> = (0..LANES)
                .map(|_| {
                    between(
                        point_around_grid(&mut random),
                        point_around_grid(&mut random),
                    )
                })
                .collect();
            assert_lanes_equal_scalar(lanes, &volume, &g, &rays);
            nonzero += rays
                .iter()
                .filter(|r| siddon(&volume[..], &g, r) != 0.0)
                .count();
        }
        assert!(nonzero > 4_000, "most random rays must hit the grid");
    }

    #[test]
    fn lanes_equal_the_scalar_kernel_on_axis_face_and_corner_rays() {
        let g = grid([6, 5, 4], [1.0, 1.0, 1.0]);
        let volume: Vec<f32> = (0..120).map(|i| (i % 7) as f32 + 0.5).collect();
        let Some(lanes) = SiddonLanes::new(&volume, &g) else {
            println!("SKIPPED: this CPU has no AVX2, the scalar kernel runs instead");
            return;
        };
        let mut rays = Vec::new();
        for &(b, c) in &[(0.0f32, 0.0f32), (2.0, 3.0), (2.5, 1.5), (5.0, 3.999)] {
            rays.push(segment([-1.0, b, c], [8.0, 0.0, 0.0]));
            rays.push(segment([b, -1.0, c.min(3.5)], [0.0, 7.0, 0.0]));
            rays.push(segment([b, c.min(4.5), -1.0], [0.0, 0.0, 6.0]));
        }
        rays.push(segment([0.0, 0.0, 0.0], [4.0, 4.0, 4.0]));
        rays.push(segment([-1.0, -1.0, 2.0], [7.0, 7.0, 0.0]));
        rays.push(segment([6.0, 0.0, 0.0], [-5.0, 5.0, 0.0]));
        rays.push(segment([9.0, 9.0, 9.0], [1.0, 1.0, 1.0]));
        // A whole line (parallel beam), and one with non-finite numbers (a miss).
        rays.push(Ray {
            origin: [3.0, 2.5, 1.5],
            direction: [0.3, -0.2, 0.1],
            t_min: f32::NEG_INFINITY,
            t_max: f32::INFINITY,
        });
        rays.push(segment([f32::NAN, 1.0, 1.0], [1.0, 1.0, 1.0]));
        for chunk in rays.chunks(LANES) {
            assert_lanes_equal_scalar(lanes, &volume, &g, chunk);
        }
    }

    #[test]
    fn a_volume_of_the_wrong_length_gets_no_lanes() {
        let g = grid([4, 4, 4], [1.0; 3]);
        assert!(SiddonLanes::new(&[0.0; 63], &g).is_none());
    }
}
