//! Siddon's walk for [`LANES`] rays at once, in the lanes of AVX2 vectors: the CPU
//! forward projector's fast path on x86-64.
//!
//! One ray's walk is a chain of dependent steps with an unpredictable branch (which axis
//! the ray crosses next), so a scalar core spends most of its time waiting on that chain
//! and on mispredicted branches. Here eight neighbouring rays walk in lockstep: each
//! step picks every lane's next axis with compare masks instead of branches, and reads
//! the eight voxels with eight independent loads. A lane that has left the grid stops contributing;
//! the loop ends when all have.
//!
//! Every lane starts from `xray_kernels::siddon::walk_start` and does the same `f32`
//! operations in the same order as `xray_kernels::siddon::siddon`, so the results are
//! bit for bit the scalar kernel's (and so the GPU's); the unit tests below check that.

use xray_kernels::ray::Ray;
use xray_kernels::GridParams;

/// Rays per call: the `f32` lanes of a 256-bit vector.
pub(crate) const LANES: usize = 8;

/// The lockstep walker for one volume: it exists only when this CPU has AVX2 and the
/// volume's linear indices fit in the `i32` lanes.
#[derive(Clone, Copy)]
pub(crate) struct SiddonLanes<'a> {
    volume: &'a [f32],
    grid: &'a GridParams,
}

impl<'a> SiddonLanes<'a> {
    /// The walker for `volume` on `grid`, or `None` when this CPU lacks AVX2, the volume
    /// has `2^31` voxels or more or none, or `volume` does not hold exactly the grid's
    /// voxels.
    pub(crate) fn new(volume: &'a [f32], grid: &'a GridParams) -> Option<Self> {
        let fits = volume.len() == grid.voxel_count()
            && !volume.is_empty()
            && volume.len() <= i32::MAX as usize;
        (fits && cpu_has_avx2()).then_some(SiddonLanes { volume, grid })
    }

    /// Writes the line integral of `rays[i]` to `out[i]`, for up to [`LANES`] rays:
    /// exactly what `xray_kernels::siddon::siddon` gives for each.
    pub(crate) fn trace(&self, rays: &[Ray], out: &mut [f32]) {
        debug_assert!(rays.len() <= LANES && rays.len() == out.len());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `new` checked that the CPU has AVX2, that `volume` holds exactly the
        // grid's voxels (at least one), and that their count fits in `i32`.
        unsafe {
            avx2::trace(self.volume, self.grid, rays, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        for (ray, value) in rays.iter().zip(out) {
            *value = xray_kernels::siddon::siddon(self.volume, self.grid, ray);
        }
    }
}

/// Whether the running CPU executes AVX2 (detected once, then cached by `std`).
pub(crate) fn cpu_has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use xray_kernels::ray::Ray;
    use xray_kernels::siddon::walk_start;
    use xray_kernels::GridParams;

    use super::LANES;

    /// The walk of up to [`LANES`] rays in lockstep; see the module docs.
    ///
    /// # Safety
    /// The CPU must have AVX2, `volume` must hold exactly `grid.voxel_count()` voxels
    /// (at least one), and that count must fit in `i32`. Then every voxel read is inside
    /// `volume`: active lanes start inside the grid (`walk_start` clamps the entry voxel)
    /// and are masked off as soon as any of their three indices leaves it, and inactive
    /// lanes read voxel 0.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn trace(volume: &[f32], grid: &GridParams, rays: &[Ray], out: &mut [f32]) {
        let stride_y = grid.nx as i32;
        let stride_z = grid.nx as i32 * grid.ny as i32;

        // Per-lane start state; lanes without a ray, or whose ray misses, stay inactive
        // with a zero sum.
        let mut active = [0i32; LANES];
        let mut index = [[0i32; LANES]; 3];
        let mut step = [[0i32; LANES]; 3];
        let mut stride_step = [[0i32; LANES]; 3];
        let mut t_next = [[0.0f32; LANES]; 3];
        let mut t_delta = [[0.0f32; LANES]; 3];
        let mut t_now = [0.0f32; LANES];
        let mut t_end = [0.0f32; LANES];
        let mut linear_start = [0i32; LANES];
        for (lane, ray) in rays.iter().enumerate().take(LANES) {
            let Some(start) = walk_start(grid, ray) else {
                continue;
            };
            active[lane] = -1;
            for (a, (axis, stride)) in [(start.x, 1), (start.y, stride_y), (start.z, stride_z)]
                .into_iter()
                .enumerate()
            {
                index[a][lane] = axis.index;
                step[a][lane] = axis.step;
                stride_step[a][lane] = axis.step * stride;
                t_next[a][lane] = axis.t_next;
                t_delta[a][lane] = axis.t_delta;
            }
            t_now[lane] = start.t_enter;
            t_end[lane] = start.t_exit;
            linear_start[lane] =
                start.x.index + start.y.index * stride_y + start.z.index * stride_z;
        }

        let load_i = |v: &[i32; LANES]| _mm256_loadu_si256(v.as_ptr().cast());
        let load_f = |v: &[f32; LANES]| _mm256_loadu_ps(v.as_ptr());
        let mut active = _mm256_castsi256_ps(load_i(&active));
        let [mut ix, mut iy, mut iz] = index.each_ref().map(load_i);
        let [sx, sy, sz] = step.each_ref().map(load_i);
        let [lx, ly, lz] = stride_step.each_ref().map(load_i);
        let [mut tx, mut ty, mut tz] = t_next.each_ref().map(load_f);
        let [dx, dy, dz] = t_delta.each_ref().map(load_f);
        let mut t = load_f(&t_now);
        let t_exit = load_f(&t_end);
        let mut linear = load_i(&linear_start);
        let below = _mm256_set1_epi32(-1);
        let [nx, ny, nz] = [grid.nx, grid.ny, grid.nz].map(|n| _mm256_set1_epi32(n as i32));
        let mut sum = _mm256_setzero_ps();

        while _mm256_movemask_ps(active) != 0 {
            // The scalar kernel's `min(x, min(y, z))`: `minps` returns its second operand
            // on ties and NaN, as `math::min` does.
            let t_cross = _mm256_min_ps(tx, _mm256_min_ps(ty, tz));
            let ended = _mm256_cmp_ps::<_CMP_GE_OQ>(t_cross, t_exit);
            let mu = voxels(
                volume,
                _mm256_and_si256(linear, _mm256_castps_si256(active)),
            );
            let length = _mm256_sub_ps(_mm256_blendv_ps(t_cross, t_exit, ended), t);
            sum = _mm256_blendv_ps(sum, _mm256_add_ps(sum, _mm256_mul_ps(mu, length)), active);
            t = t_cross;
            // The axis crossed: x first, then y, then z, as in the scalar kernel.
            let mx = _mm256_cmp_ps::<_CMP_EQ_OQ>(t_cross, tx);
            let my = _mm256_andnot_ps(mx, _mm256_cmp_ps::<_CMP_EQ_OQ>(t_cross, ty));
            let mz = _mm256_andnot_ps(
                _mm256_or_ps(mx, my),
                _mm256_cmp_ps::<_CMP_EQ_OQ>(t_cross, tz),
            );
            tx = _mm256_blendv_ps(tx, _mm256_add_ps(tx, dx), mx);
            ty = _mm256_blendv_ps(ty, _mm256_add_ps(ty, dy), my);
            tz = _mm256_blendv_ps(tz, _mm256_add_ps(tz, dz), mz);
            let [mxi, myi, mzi] = [mx, my, mz].map(|m| _mm256_castps_si256(m));
            ix = _mm256_add_epi32(ix, _mm256_and_si256(sx, mxi));
            iy = _mm256_add_epi32(iy, _mm256_and_si256(sy, myi));
            iz = _mm256_add_epi32(iz, _mm256_and_si256(sz, mzi));
            let moved = _mm256_or_si256(
                _mm256_and_si256(lx, mxi),
                _mm256_or_si256(_mm256_and_si256(ly, myi), _mm256_and_si256(lz, mzi)),
            );
            linear = _mm256_add_epi32(linear, moved);
            let within = |i: __m256i, n: __m256i| {
                _mm256_and_si256(_mm256_cmpgt_epi32(i, below), _mm256_cmpgt_epi32(n, i))
            };
            let inside = _mm256_and_si256(
                _mm256_and_si256(within(ix, nx), within(iy, ny)),
                within(iz, nz),
            );
            // A lane goes on if it did not reach its exit, crossed a face (no crossing is
            // only possible with NaN parameters), and is still inside the grid.
            let crossed = _mm256_or_ps(mx, _mm256_or_ps(my, mz));
            let go_on =
                _mm256_andnot_ps(ended, _mm256_and_ps(crossed, _mm256_castsi256_ps(inside)));
            active = _mm256_and_ps(active, go_on);
        }

        let mut sums = [0.0f32; LANES];
        _mm256_storeu_ps(sums.as_mut_ptr(), sum);
        for ((value, ray), lane_sum) in out.iter_mut().zip(rays).zip(sums) {
            *value = lane_sum * grid.world_length(ray.direction);
        }
    }

    /// The voxels at the eight linear indices `at`, read with scalar loads: on the AMD
    /// cores measured (Zen 3) these overlap cache misses better than `vgatherdps`.
    ///
    /// # Safety
    /// Every index in `at` must be a valid index into `volume`.
    #[inline(always)]
    unsafe fn voxels(volume: &[f32], at: __m256i) -> __m256 {
        let p = volume.as_ptr();
        let lo = _mm256_castsi256_si128(at);
        let hi = _mm256_extracti128_si256::<1>(at);
        let read = |i: i32| *p.add(i as usize);
        _mm256_set_ps(
            read(_mm_extract_epi32::<3>(hi)),
            read(_mm_extract_epi32::<2>(hi)),
            read(_mm_extract_epi32::<1>(hi)),
            read(_mm_cvtsi128_si32(hi)),
            read(_mm_extract_epi32::<3>(lo)),
            read(_mm_extract_epi32::<2>(lo)),
            read(_mm_extract_epi32::<1>(lo)),
            read(_mm_cvtsi128_si32(lo)),
        )
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

    use super::{SiddonLanes, LANES};

    fn grid(n: [u32; 3], spacing: [f32; 3]) -> GridParams {
        GridParams {
            nx: n[0],
            ny: n[1],
            nz: n[2],
            reserved: 0,
            index_to_world: [
                spacing[0], 0.0, 0.0, //
                0.0, spacing[1], 0.0, //
                0.0, 0.0, spacing[2],
            ],
        }
    }

    /// Checks every prefix length of `rays` (1 to 8 lanes) against the scalar kernel.
    fn assert_lanes_equal_scalar(
        lanes: &SiddonLanes,
        volume: &[f32],
        g: &GridParams,
        rays: &[Ray],
    ) {
        for count in 1..=rays.len() {
            let mut out = vec![f32::NAN; count];
            lanes.trace(&rays[..count], &mut out);
            for (ray, value) in rays[..count].iter().zip(&out) {
                let scalar = siddon(volume, g, ray);
                assert_eq!(
                    value.to_bits(),
                    scalar.to_bits(),
                    "ray {ray:?}: lanes {value}, scalar {scalar}"
                );
            }
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
            // Segments between random points around and inside the grid: some miss,
            // some start or end inside, every direction class occurs.
            let mut point = || {
                [
                    random.random_range(-8.0..21.0f32),
                    random.random_range(-8.0..17.0f32),
                    random.random_range(-8.0..25.0f32),
                ]
            };
            let rays: Vec<Ray> = (0..LANES)
                .map(|_| {
                    let (from, to) = (point(), point());
                    Ray {
                        origin: from,
                        direction: [to[0] - from[0], to[1] - from[1], to[2] - from[2]],
                        t_min: 0.0,
                        t_max: 1.0,
                    }
                })
                .collect();
            assert_lanes_equal_scalar(&lanes, &volume, &g, &rays);
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
        let segment = |origin: [f32; 3], direction: [f32; 3]| Ray {
            origin,
            direction,
            t_min: 0.0,
            t_max: 1.0,
        };
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
            assert_lanes_equal_scalar(&lanes, &volume, &g, chunk);
        }
    }

    #[test]
    fn a_volume_of_the_wrong_length_gets_no_lanes() {
        let g = grid([4, 4, 4], [1.0; 3]);
        assert!(SiddonLanes::new(&[0.0; 63], &g).is_none());
    }
}
