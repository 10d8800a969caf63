//! [`Simd`] on AVX-512 (F, BW, DQ, VL): 16 lanes in 512-bit registers, masks in mask
//! registers (one bit per lane).

use std::arch::x86_64::*;

use super::{lane_pairs, Simd, MAX_LANES};

/// The AVX-512 instruction set (a marker: its methods need a CPU with AVX-512 F, BW, DQ
/// and VL).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512;

/// Every lane of a mask.
const ALL_LANES: __mmask16 = 0xffff;

impl Simd for Avx512 {
    const LANES: usize = 16;
    type F = __m512;
    type I = __m512i;
    type M = __mmask16;

    #[inline(always)]
    unsafe fn load_f(v: &[f32; MAX_LANES]) -> __m512 {
        _mm512_loadu_ps(v.as_ptr())
    }
    #[inline(always)]
    unsafe fn load_i(v: &[i32; MAX_LANES]) -> __m512i {
        _mm512_loadu_si512(v.as_ptr().cast())
    }
    #[inline(always)]
    unsafe fn to_array(v: __m512) -> [f32; MAX_LANES] {
        let mut out = [0.0f32; MAX_LANES];
        _mm512_storeu_ps(out.as_mut_ptr(), v);
        out
    }
    #[inline(always)]
    unsafe fn to_array_i(v: __m512i) -> [i32; MAX_LANES] {
        let mut out = [0i32; MAX_LANES];
        _mm512_storeu_si512(out.as_mut_ptr().cast(), v);
        out
    }
    #[inline(always)]
    unsafe fn splat_f(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn splat_i(x: i32) -> __m512i {
        _mm512_set1_epi32(x)
    }
    #[inline(always)]
    unsafe fn iota() -> __m512i {
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    }

    #[inline(always)]
    unsafe fn add_f(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub_f(a: __m512, b: __m512) -> __m512 {
        _mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul_f(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn div_f(a: __m512, b: __m512) -> __m512 {
        _mm512_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min_f(a: __m512, b: __m512) -> __m512 {
        // `vminps` returns its second operand on ties and NaN, as on AVX2.
        _mm512_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sqrt_f(a: __m512) -> __m512 {
        _mm512_sqrt_ps(a)
    }
    #[inline(always)]
    unsafe fn floor_f(a: __m512) -> __m512 {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(a)
    }
    #[inline(always)]
    unsafe fn to_f(a: __m512i) -> __m512 {
        _mm512_cvtepi32_ps(a)
    }
    #[inline(always)]
    unsafe fn trunc_i(a: __m512) -> __m512i {
        _mm512_cvttps_epi32(a)
    }

    #[inline(always)]
    unsafe fn add_i(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn sub_i(a: __m512i, b: __m512i) -> __m512i {
        _mm512_sub_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn mul_i(a: __m512i, b: __m512i) -> __m512i {
        _mm512_mullo_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn min_i(a: __m512i, b: __m512i) -> __m512i {
        _mm512_min_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn max_i(a: __m512i, b: __m512i) -> __m512i {
        _mm512_max_epi32(a, b)
    }

    #[inline(always)]
    unsafe fn eq_f(a: __m512, b: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b)
    }
    #[inline(always)]
    unsafe fn gt_f(a: __m512, b: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b)
    }
    #[inline(always)]
    unsafe fn lt_f(a: __m512, b: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b)
    }
    #[inline(always)]
    unsafe fn not_lt_f(a: __m512, b: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(a, b)
    }
    #[inline(always)]
    unsafe fn gt_i(a: __m512i, b: __m512i) -> __mmask16 {
        _mm512_cmpgt_epi32_mask(a, b)
    }
    #[inline(always)]
    unsafe fn negative_i(a: __m512i) -> __mmask16 {
        _mm512_movepi32_mask(a)
    }

    #[inline(always)]
    unsafe fn and_m(a: __mmask16, b: __mmask16) -> __mmask16 {
        a & b
    }
    #[inline(always)]
    unsafe fn or_m(a: __mmask16, b: __mmask16) -> __mmask16 {
        a | b
    }
    #[inline(always)]
    unsafe fn and_not_m(a: __mmask16, b: __mmask16) -> __mmask16 {
        !a & b
    }
    #[inline(always)]
    unsafe fn not_m(a: __mmask16) -> __mmask16 {
        !a
    }
    #[inline(always)]
    unsafe fn all(m: __mmask16) -> bool {
        m == ALL_LANES
    }
    #[inline(always)]
    unsafe fn bits(m: __mmask16) -> u32 {
        u32::from(m)
    }

    #[inline(always)]
    unsafe fn select_f(m: __mmask16, a: __m512, b: __m512) -> __m512 {
        _mm512_mask_blend_ps(m, b, a)
    }
    #[inline(always)]
    unsafe fn select_i(m: __mmask16, a: __m512i, b: __m512i) -> __m512i {
        _mm512_mask_blend_epi32(m, b, a)
    }
    #[inline(always)]
    unsafe fn keep_f(m: __mmask16, a: __m512) -> __m512 {
        _mm512_maskz_mov_ps(m, a)
    }
    #[inline(always)]
    unsafe fn keep_i(m: __mmask16, a: __m512i) -> __m512i {
        _mm512_maskz_mov_epi32(m, a)
    }

    /// Two lanes per 64-bit move out of each 128-bit quarter.
    #[inline(always)]
    unsafe fn for_each_lane(v: __m512i, mut f: impl FnMut(i32)) {
        let quarters = [
            _mm512_castsi512_si128(v),
            _mm512_extracti32x4_epi32::<1>(v),
            _mm512_extracti32x4_epi32::<2>(v),
            _mm512_extracti32x4_epi32::<3>(v),
        ];
        for quarter in quarters {
            for pair in [_mm_cvtsi128_si64(quarter), _mm_extract_epi64::<1>(quarter)] {
                f(pair as i32);
                f((pair >> 32) as i32);
            }
        }
    }

    #[inline(always)]
    unsafe fn gather_loads(values: &[f32], at: __m512i) -> __m512 {
        let mut out = [0.0f32; MAX_LANES];
        let mut lane = 0;
        Self::for_each_lane(at, |i| {
            out[lane] = *values.as_ptr().add(i as u32 as usize);
            lane += 1;
        });
        _mm512_loadu_ps(out.as_ptr())
    }

    /// The pairs of lanes 0, 1 | 4, 5 | 8, 9 | 12, 13 in one register and the others
    /// in another, so that one even and one odd shuffle of the two give the lanes in
    /// order.
    #[inline(always)]
    unsafe fn gather_pairs(values: &[f32], at: __m512i) -> (__m512, __m512) {
        let p = lane_pairs::<Self>(values, at);
        let a = _mm512_castsi512_ps(_mm512_set_epi64(
            p[13], p[12], p[9], p[8], p[5], p[4], p[1], p[0],
        ));
        let b = _mm512_castsi512_ps(_mm512_set_epi64(
            p[15], p[14], p[11], p[10], p[7], p[6], p[3], p[2],
        ));
        (
            _mm512_shuffle_ps::<0b10_00_10_00>(a, b),
            _mm512_shuffle_ps::<0b11_01_11_01>(a, b),
        )
    }

    #[inline(always)]
    unsafe fn gather_instruction(values: &[f32], at: __m512i) -> __m512 {
        _mm512_i32gather_ps::<4>(at, values.as_ptr())
    }
}
