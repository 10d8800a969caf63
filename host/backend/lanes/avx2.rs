//! [`Simd`] on AVX2: 8 lanes in 256-bit registers, masks as all-ones lanes.

use std::arch::x86_64::*;

use super::{lane_pairs, Simd, MAX_LANES};

/// The AVX2 instruction set (a marker: its methods need a CPU with AVX2).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2;

impl Simd for Avx2 {
    const LANES: usize = 8;
    type F = __m256;
    type I = __m256i;
    type M = __m256i;

    #[inline(always)]
    unsafe fn load_f(v: &[f32; MAX_LANES]) -> __m256 {
        _mm256_loadu_ps(v.as_ptr())
    }
    #[inline(always)]
    unsafe fn load_i(v: &[i32; MAX_LANES]) -> __m256i {
        _mm256_loadu_si256(v.as_ptr().cast())
    }
    #[inline(always)]
    unsafe fn to_array(v: __m256) -> [f32; MAX_LANES] {
        let mut out = [0.0f32; MAX_LANES];
        _mm256_storeu_ps(out.as_mut_ptr(), v);
        out
    }
    #[inline(always)]
    unsafe fn to_array_i(v: __m256i) -> [i32; MAX_LANES] {
        let mut out = [0i32; MAX_LANES];
        _mm256_storeu_si256(out.as_mut_ptr().cast(), v);
        out
    }
    #[inline(always)]
    unsafe fn splat_f(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn splat_i(x: i32) -> __m256i {
        _mm256_set1_epi32(x)
    }
    #[inline(always)]
    unsafe fn iota() -> __m256i {
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
    }

    #[inline(always)]
    unsafe fn add_f(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub_f(a: __m256, b: __m256) -> __m256 {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul_f(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn div_f(a: __m256, b: __m256) -> __m256 {
        _mm256_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min_f(a: __m256, b: __m256) -> __m256 {
        // `minps` returns its second operand on ties and NaN.
        _mm256_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sqrt_f(a: __m256) -> __m256 {
        _mm256_sqrt_ps(a)
    }
    #[inline(always)]
    unsafe fn floor_f(a: __m256) -> __m256 {
        _mm256_floor_ps(a)
    }
    #[inline(always)]
    unsafe fn to_f(a: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(a)
    }
    #[inline(always)]
    unsafe fn trunc_i(a: __m256) -> __m256i {
        _mm256_cvttps_epi32(a)
    }

    #[inline(always)]
    unsafe fn add_i(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn sub_i(a: __m256i, b: __m256i) -> __m256i {
        _mm256_sub_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn mul_i(a: __m256i, b: __m256i) -> __m256i {
        _mm256_mullo_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn min_i(a: __m256i, b: __m256i) -> __m256i {
        _mm256_min_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn max_i(a: __m256i, b: __m256i) -> __m256i {
        _mm256_max_epi32(a, b)
    }

    #[inline(always)]
    unsafe fn eq_f(a: __m256, b: __m256) -> __m256i {
        _mm256_castps_si256(_mm256_cmp_ps::<_CMP_EQ_OQ>(a, b))
    }
    #[inline(always)]
    unsafe fn gt_f(a: __m256, b: __m256) -> __m256i {
        _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(a, b))
    }
    #[inline(always)]
    unsafe fn lt_f(a: __m256, b: __m256) -> __m256i {
        _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(a, b))
    }
    #[inline(always)]
    unsafe fn not_lt_f(a: __m256, b: __m256) -> __m256i {
        _mm256_castps_si256(_mm256_cmp_ps::<_CMP_NLT_UQ>(a, b))
    }
    #[inline(always)]
    unsafe fn gt_i(a: __m256i, b: __m256i) -> __m256i {
        _mm256_cmpgt_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn negative_i(a: __m256i) -> __m256i {
        _mm256_srai_epi32::<31>(a)
    }

    #[inline(always)]
    unsafe fn and_m(a: __m256i, b: __m256i) -> __m256i {
        _mm256_and_si256(a, b)
    }
    #[inline(always)]
    unsafe fn or_m(a: __m256i, b: __m256i) -> __m256i {
        _mm256_or_si256(a, b)
    }
    #[inline(always)]
    unsafe fn and_not_m(a: __m256i, b: __m256i) -> __m256i {
        _mm256_andnot_si256(a, b)
    }
    #[inline(always)]
    unsafe fn not_m(a: __m256i) -> __m256i {
        _mm256_xor_si256(a, _mm256_set1_epi32(-1))
    }
    #[inline(always)]
    unsafe fn all(m: __m256i) -> bool {
        _mm256_movemask_ps(_mm256_castsi256_ps(m)) == 0xff
    }
    #[inline(always)]
    unsafe fn bits(m: __m256i) -> u32 {
        _mm256_movemask_ps(_mm256_castsi256_ps(m)) as u32
    }

    #[inline(always)]
    unsafe fn select_f(m: __m256i, a: __m256, b: __m256) -> __m256 {
        _mm256_blendv_ps(b, a, _mm256_castsi256_ps(m))
    }
    #[inline(always)]
    unsafe fn select_i(m: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(b),
            _mm256_castsi256_ps(a),
            _mm256_castsi256_ps(m),
        ))
    }
    #[inline(always)]
    unsafe fn keep_f(m: __m256i, a: __m256) -> __m256 {
        _mm256_and_ps(a, _mm256_castsi256_ps(m))
    }
    #[inline(always)]
    unsafe fn keep_i(m: __m256i, a: __m256i) -> __m256i {
        _mm256_and_si256(a, m)
    }

    /// Two lanes per 64-bit move, split by the integer units (on Zen 3, half the
    /// vector-side work of extracting each lane on its own).
    #[inline(always)]
    unsafe fn for_each_lane(v: __m256i, mut f: impl FnMut(i32)) {
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

    #[inline(always)]
    unsafe fn gather_loads(values: &[f32], at: __m256i) -> __m256 {
        let mut out = [0.0f32; MAX_LANES];
        let mut lane = 0;
        Self::for_each_lane(at, |i| {
            out[lane] = *values.as_ptr().add(i as u32 as usize);
            lane += 1;
        });
        _mm256_loadu_ps(out.as_ptr())
    }

    /// The pairs of lanes 0, 1 | 4, 5 in one register and 2, 3 | 6, 7 in another, so
    /// that one even and one odd shuffle of the two give the lanes in order.
    #[inline(always)]
    unsafe fn gather_pairs(values: &[f32], at: __m256i) -> (__m256, __m256) {
        let p = lane_pairs::<Self>(values, at);
        let a = _mm256_castsi256_ps(_mm256_set_epi64x(p[5], p[4], p[1], p[0]));
        let b = _mm256_castsi256_ps(_mm256_set_epi64x(p[7], p[6], p[3], p[2]));
        (
            _mm256_shuffle_ps::<0b10_00_10_00>(a, b),
            _mm256_shuffle_ps::<0b11_01_11_01>(a, b),
        )
    }

    #[inline(always)]
    unsafe fn gather_instruction(values: &[f32], at: __m256i) -> __m256 {
        _mm256_i32gather_ps::<4>(values.as_ptr(), at)
    }
}
