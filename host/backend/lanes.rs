//! What the SIMD lane walkers ([`super::siddon_lanes`], [`super::joseph_lanes`]) share:
//! the lane count, the run-time AVX2 check, and reading eight voxels by index.

/// Rays per call of a lane walker: the `f32` lanes of a 256-bit vector.
pub(crate) const LANES: usize = 8;

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
pub(crate) mod avx2 {
    //! Lane access for code compiled with AVX2 enabled.

    use std::arch::x86_64::*;

    use super::LANES;

    /// Calls `f` with each of the eight lanes of `v`, taken out of the register without
    /// a trip through memory: two lanes per 64-bit move, split by the integer units
    /// (on Zen 3, half the vector-side work of extracting each lane on its own).
    #[inline(always)]
    pub(crate) unsafe fn for_each_lane(v: __m256i, mut f: impl FnMut(i32)) {
        let lo = _mm256_castsi256_si128(v);
        let hi = _mm256_extracti128_si256::<1>(v);
        for pair in [
            _mm_cvtsi128_si64(lo),
            _mm_extract_epi64::<1>(lo),
            _mm_cvtsi128_si64(hi),
            _mm_extract_epi64::<1>(hi),
        ] {
            f(pair as i32);
            f((pair >> 32) as i32);
        }
    }

    /// The voxels at the eight linear indices `at`, read with scalar loads: on the AMD
    /// core measured (Zen 3) these overlap cache misses better than `vgatherdps`.
    ///
    /// # Safety
    /// Every index in `at` must be a valid index into `volume`.
    #[inline(always)]
    pub(crate) unsafe fn load_lanes(volume: &[f32], at: __m256i) -> __m256 {
        let mut values = [0.0f32; LANES];
        let mut lane = 0;
        for_each_lane(at, |i| {
            values[lane] = *volume.as_ptr().add(i as u32 as usize);
            lane += 1;
        });
        _mm256_loadu_ps(values.as_ptr())
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! What the lane walkers' tests share: small grids, random segments, and the
    //! bit-for-bit comparison with a scalar kernel.

    use rand::Rng;
    use xray_kernels::ray::Ray;
    use xray_kernels::GridParams;

    /// An axis-aligned grid of `n` voxels with the given spacing.
    pub(crate) fn grid(n: [u32; 3], spacing: [f32; 3]) -> GridParams {
        GridParams {
            nx: n[0],
            ny: n[1],
            nz: n[2],
            z_first: 0,
            z_count: n[2],
            index_to_world: [
                spacing[0], 0.0, 0.0, //
                0.0, spacing[1], 0.0, //
                0.0, 0.0, spacing[2],
            ],
        }
    }

    /// The segment from `origin` to `origin + direction`.
    pub(crate) fn segment(origin: [f32; 3], direction: [f32; 3]) -> Ray {
        Ray {
            origin,
            direction,
            t_min: 0.0,
            t_max: 1.0,
        }
    }

    /// The segment between two points.
    pub(crate) fn between(from: [f32; 3], to: [f32; 3]) -> Ray {
        segment(from, [to[0] - from[0], to[1] - from[1], to[2] - from[2]])
    }

    /// A random point in and around a 13 x 9 x 17 grid, so that segments between such
    /// points miss, start or end inside, and run in every direction.
    pub(crate) fn point_around_grid(random: &mut impl Rng) -> [f32; 3] {
        [
            random.random_range(-8.0..21.0f32),
            random.random_range(-8.0..17.0f32),
            random.random_range(-8.0..25.0f32),
        ]
    }

    /// Checks `trace` (up to eight rays at once) against `scalar` (one ray) for every
    /// prefix of `rays`, bit for bit.
    pub(crate) fn assert_prefixes_match(
        rays: &[Ray],
        trace: impl Fn(&[Ray], &mut [f32]),
        scalar: impl Fn(&Ray) -> f32,
    ) {
        for count in 1..=rays.len() {
            let mut out = vec![f32::NAN; count];
            trace(&rays[..count], &mut out);
            for (ray, value) in rays[..count].iter().zip(&out) {
                let want = scalar(ray);
                assert_eq!(
                    value.to_bits(),
                    want.to_bits(),
                    "ray {ray:?}: lanes {value}, scalar {want}"
                );
            }
        }
    }
}
