//! Joseph's method for [`LANES`] rays at once, in the lanes of AVX2 vectors: the CPU
//! forward projector's fast path for Joseph on x86-64.
//!
//! Neighbouring rays almost always share their dominant axis, so eight of them sample
//! the same slice at each step: one vector computes their eight sample positions,
//! bilinear weights and tap indices, and 32 scalar loads read their taps (taps outside
//! the grid read as 0). A group whose rays do not share a dominant axis is sampled one
//! ray at a time by the scalar kernel.
//!
//! Every lane starts from `xray_kernels::joseph::joseph_start` and does the same `f32`
//! operations in the same order as `xray_kernels::joseph::joseph`, so the results are
//! bit for bit the scalar kernel's; the unit tests below, and those of [`super::cpu`],
//! check that.

use xray_kernels::joseph::{joseph, joseph_start, JosephStart};
use xray_kernels::ray::Ray;
use xray_kernels::GridParams;

use super::lanes::{cpu_has_avx2, LANES};

/// The lockstep sampler for one volume: it exists only when this CPU has AVX2 and the
/// volume's linear indices fit in the `i32` lanes.
#[derive(Clone, Copy)]
pub(crate) struct JosephLanes<'a> {
    volume: &'a [f32],
    grid: &'a GridParams,
}

impl<'a> JosephLanes<'a> {
    /// The sampler for `volume` on `grid`, or `None` when this CPU lacks AVX2, the volume
    /// has `2^31` voxels or more or none, or `volume` does not hold exactly the whole
    /// grid's voxels (a slab of it goes one ray at a time).
    pub(crate) fn new(volume: &'a [f32], grid: &'a GridParams) -> Option<Self> {
        let fits = grid.is_whole()
            && volume.len() == grid.voxel_count()
            && !volume.is_empty()
            && volume.len() <= i32::MAX as usize;
        (fits && cpu_has_avx2()).then_some(JosephLanes { volume, grid })
    }

    /// Writes the Joseph line integral of `rays[i]` to `out[i]`, for up to [`LANES`]
    /// rays: exactly what `xray_kernels::joseph::joseph` gives for each.
    pub(crate) fn trace(&self, rays: &[Ray], out: &mut [f32]) {
        debug_assert!(rays.len() <= LANES && rays.len() == out.len());
        let mut starts = [None; LANES];
        for (start, ray) in starts.iter_mut().zip(rays) {
            *start = joseph_start(self.grid, ray);
        }
        #[cfg(target_arch = "x86_64")]
        if share_a_frame(&starts) {
            // SAFETY: `new` checked that the CPU has AVX2, that `volume` holds exactly
            // the grid's voxels (at least one), and that their count fits in `i32`; all
            // started lanes share one frame.
            unsafe { avx2::trace(self.volume, &starts, out) };
            return;
        }
        for (ray, value) in rays.iter().zip(out) {
            *value = joseph(self.volume, self.grid, ray);
        }
    }
}

/// Per-lane start state, `None` for a lane without a ray or whose ray samples nothing.
type Starts = [Option<JosephStart>; LANES];

/// Whether all started lanes have the same dominant axis (and so the same frame).
#[cfg(target_arch = "x86_64")]
fn share_a_frame(starts: &Starts) -> bool {
    let mut strides = starts.iter().flatten().map(|s| s.frame.stride);
    let first = strides.next();
    strides.all(|stride| Some(stride) == first)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::lanes::avx2::load_lanes;
    use super::{Starts, LANES};

    /// The sampling of up to [`LANES`] rays in lockstep; see the module docs.
    ///
    /// # Safety
    /// The CPU must have AVX2, `starts` must come from `joseph_start` on the grid of
    /// `volume`, `volume` must hold exactly that grid's voxels (at least one), that
    /// count must fit in `i32`, and every `Some` in `starts` must have the same frame
    /// axes. Then every tap read is inside `volume`: a tap is read only when its slice,
    /// `b` and `c` indices are inside the grid, and other taps read voxel 0 and are
    /// masked to 0.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn trace(volume: &[f32], starts: &Starts, out: &mut [f32]) {
        let Some(frame) = starts.iter().flatten().next().map(|s| s.frame) else {
            // No ray has a sample: each gives exactly 0, as in the scalar kernel.
            out.fill(0.0);
            return;
        };
        let mut k_first = [i32::MAX; LANES];
        let mut k_last = [i32::MIN; LANES];
        let mut b_first = [0.0f32; LANES];
        let mut c_first = [0.0f32; LANES];
        let mut slope_b = [0.0f32; LANES];
        let mut slope_c = [0.0f32; LANES];
        for (lane, start) in starts.iter().enumerate() {
            if let Some(s) = start {
                k_first[lane] = s.k_first;
                k_last[lane] = s.k_last;
                b_first[lane] = s.b_first;
                c_first[lane] = s.c_first;
                slope_b[lane] = s.slope_b;
                slope_c[lane] = s.slope_c;
            }
        }
        let first = k_first.iter().copied().min().unwrap_or(0);
        let last = k_last.iter().copied().max().unwrap_or(-1);
        let load_i = |v: &[i32; LANES]| _mm256_loadu_si256(v.as_ptr().cast());
        let load_f = |v: &[f32; LANES]| _mm256_loadu_ps(v.as_ptr());
        let (k_first, k_last) = (load_i(&k_first), load_i(&k_last));
        let (b_first, c_first) = (load_f(&b_first), load_f(&c_first));
        let (slope_b, slope_c) = (load_f(&slope_b), load_f(&slope_c));
        let [count_b, count_c] =
            [frame.count[1], frame.count[2]].map(|n| _mm256_set1_epi32(n as i32));
        let [stride_b, stride_c] =
            [frame.stride[1], frame.stride[2]].map(|s| _mm256_set1_epi32(s as i32));
        let half = _mm256_set1_ps(0.5);
        let one = _mm256_set1_epi32(1);
        let below = _mm256_set1_epi32(-1);
        let mut sum = _mm256_setzero_ps();

        for k in first..=last {
            let kv = _mm256_set1_epi32(k);
            // Lanes whose ray samples slice k: k_first <= k <= k_last.
            let active = _mm256_andnot_si256(
                _mm256_or_si256(
                    _mm256_cmpgt_epi32(k_first, kv),
                    _mm256_cmpgt_epi32(kv, k_last),
                ),
                _mm256_set1_epi32(-1),
            );
            let steps = _mm256_cvtepi32_ps(_mm256_sub_epi32(kv, k_first));
            let b = _mm256_add_ps(b_first, _mm256_mul_ps(steps, slope_b));
            let c = _mm256_add_ps(c_first, _mm256_mul_ps(steps, slope_c));
            // The taps around (b, c), voxel centres at i + 0.5 (the kernel's `Taps::at`).
            let fb = _mm256_sub_ps(b, half);
            let fc = _mm256_sub_ps(c, half);
            let flb = _mm256_floor_ps(fb);
            let flc = _mm256_floor_ps(fc);
            let (ib, ic) = (_mm256_cvttps_epi32(flb), _mm256_cvttps_epi32(flc));
            let (wb, wc) = (_mm256_sub_ps(fb, flb), _mm256_sub_ps(fc, flc));
            let within = |i: __m256i, n: __m256i| {
                _mm256_and_si256(_mm256_cmpgt_epi32(i, below), _mm256_cmpgt_epi32(n, i))
            };
            let (ib1, ic1) = (_mm256_add_epi32(ib, one), _mm256_add_epi32(ic, one));
            let (b0, b1) = (within(ib, count_b), within(ib1, count_b));
            let (c0, c1) = (within(ic, count_c), within(ic1, count_c));
            let base = _mm256_add_epi32(
                _mm256_set1_epi32((k as usize * frame.stride[0]) as i32),
                _mm256_add_epi32(
                    _mm256_mullo_epi32(ib, stride_b),
                    _mm256_mullo_epi32(ic, stride_c),
                ),
            );
            let tap = |offset: __m256i, valid: __m256i| {
                let valid = _mm256_and_si256(valid, active);
                let index = _mm256_and_si256(_mm256_add_epi32(base, offset), valid);
                _mm256_and_ps(load_lanes(volume, index), _mm256_castsi256_ps(valid))
            };
            let zero = _mm256_setzero_si256();
            let v00 = tap(zero, _mm256_and_si256(b0, c0));
            let v10 = tap(stride_b, _mm256_and_si256(b1, c0));
            let v01 = tap(stride_c, _mm256_and_si256(b0, c1));
            let v11 = tap(
                _mm256_add_epi32(stride_b, stride_c),
                _mm256_and_si256(b1, c1),
            );
            // The kernel's `bilinear`, operation for operation.
            let low = _mm256_add_ps(v00, _mm256_mul_ps(wb, _mm256_sub_ps(v10, v00)));
            let high = _mm256_add_ps(v01, _mm256_mul_ps(wb, _mm256_sub_ps(v11, v01)));
            let value = _mm256_add_ps(low, _mm256_mul_ps(wc, _mm256_sub_ps(high, low)));
            // Lanes not on this slice add +0.0, which leaves the sum unchanged bit for
            // bit (a sum that starts at +0.0 is never -0.0).
            sum = _mm256_add_ps(sum, _mm256_and_ps(value, _mm256_castsi256_ps(active)));
        }

        let mut sums = [0.0f32; LANES];
        _mm256_storeu_ps(sums.as_mut_ptr(), sum);
        for ((value, start), lane_sum) in out.iter_mut().zip(starts).zip(sums) {
            // A ray without samples gives exactly 0, as in the scalar kernel.
            *value = start.map_or(0.0, |s| lane_sum * s.length_per_slice);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The lanes against the scalar kernel, bit for bit, on random rays and volumes.

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use xray_kernels::joseph::joseph;
    use xray_kernels::ray::Ray;
    use xray_kernels::GridParams;

    use super::super::lanes::test_support::{
        assert_prefixes_match, between, grid, point_around_grid, segment,
    };
    use super::{JosephLanes, LANES};

    /// Checks every prefix of `rays` against the scalar kernel.
    fn assert_lanes_equal_scalar(
        lanes: &JosephLanes,
        volume: &[f32],
        g: &GridParams,
        rays: &[Ray],
    ) {
        assert_prefixes_match(rays, |r, out| lanes.trace(r, out), |r| joseph(volume, g, r));
    }

    #[test]
    fn lanes_equal_the_scalar_kernel_bit_for_bit() {
        let g = grid([13, 9, 17], [0.7, 1.3, 2.1]);
        let mut random = ChaCha8Rng::seed_from_u64(5);
        let volume: Vec<f32> = (0..g.voxel_count())
            .map(|_| random.random_range(-1.0..2.0))
            .collect();
        let Some(lanes) = JosephLanes::new(&volume, &g) else {
            println!("SKIPPED: this CPU has no AVX2, the scalar kernel runs instead");
            return;
        };
        let mut nonzero = 0;
        for round in 0..2_000 {
            // Even rounds: eight rays from one source to nearby points, which share a
            // dominant axis (the lane path). Odd rounds: unrelated random segments,
            // which mostly do not (the one-ray-at-a-time path).
            let (source, target) = (
                point_around_grid(&mut random),
                point_around_grid(&mut random),
            );
            let rays: Vec<Ray> = (0..LANES)
                .map(|lane| {
                    if round % 2 == 0 {
                        let shift = lane as f32 * 0.37;
                        between(source, [target[0] + shift, target[1] - shift, target[2]])
                    } else {
                        between(
                            point_around_grid(&mut random),
                            point_around_grid(&mut random),
                        )
                    }
                })
                .collect();
            assert_lanes_equal_scalar(&lanes, &volume, &g, &rays);
            nonzero += rays
                .iter()
                .filter(|r| joseph(&volume[..], &g, r) != 0.0)
                .count();
        }
        assert!(nonzero > 4_000, "most random rays must hit the grid");
    }

    #[test]
    fn lanes_equal_the_scalar_kernel_on_axis_and_edge_rays() {
        let g = grid([6, 5, 4], [1.0, 1.0, 1.0]);
        let volume: Vec<f32> = (0..120).map(|i| (i % 7) as f32 + 0.5).collect();
        let Some(lanes) = JosephLanes::new(&volume, &g) else {
            println!("SKIPPED: this CPU has no AVX2, the scalar kernel runs instead");
            return;
        };
        // Rays along x through voxel centres, faces and the half-voxel margin outside.
        let along_x: Vec<Ray> = [(0.5f32, 0.5f32), (2.0, 3.0), (-0.4, 1.5), (4.9, 3.999)]
            .iter()
            .flat_map(|&(b, c)| {
                [
                    segment([-1.0, b, c], [8.0, 0.0, 0.0]),
                    segment([7.0, b, c], [-8.0, 0.1, 0.0]),
                ]
            })
            .collect();
        let others = [
            segment([0.0, 0.0, 0.0], [4.0, 4.0, 4.0]),
            segment([9.0, 9.0, 9.0], [1.0, 1.0, 1.0]),
            segment([3.0, 2.5, 1.5], [0.0, 0.0, 0.0]),
            Ray {
                origin: [3.0, 2.5, 1.5],
                direction: [0.3, -0.2, 0.1],
                t_min: f32::NEG_INFINITY,
                t_max: f32::INFINITY,
            },
            segment([f32::NAN, 1.0, 1.0], [1.0, 1.0, 1.0]),
            segment([2.5, -1.0, 1.5], [0.0, 7.0, 0.0]),
        ];
        for chunk in along_x.chunks(LANES).chain(others.chunks(LANES)) {
            assert_lanes_equal_scalar(&lanes, &volume, &g, chunk);
        }
    }
}
