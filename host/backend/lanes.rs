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
    /// a trip through memory.
    #[inline(always)]
    pub(crate) unsafe fn for_each_lane(v: __m256i, mut f: impl FnMut(i32)) {
        let lo = _mm256_castsi256_si128(v);
        let hi = _mm256_extracti128_si256::<1>(v);
        f(_mm_cvtsi128_si32(lo));
        f(_mm_extract_epi32::<1>(lo));
        f(_mm_extract_epi32::<2>(lo));
        f(_mm_extract_epi32::<3>(lo));
        f(_mm_cvtsi128_si32(hi));
        f(_mm_extract_epi32::<1>(hi));
        f(_mm_extract_epi32::<2>(hi));
        f(_mm_extract_epi32::<3>(hi));
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
