//! The few float functions the kernels need that `core` lacks on stable Rust.
//!
//! On the host they are `std`'s; on `nvptx64` they are the compiler intrinsics that
//! lower to single PTX instructions (`sqrt.rn.f32`, `cvt.rmi.f32.f32`); `min`/`max` are plain compare-and-select.

/// Square root, correctly rounded.
#[inline(always)]
pub fn sqrt(x: f32) -> f32 {
    #[cfg(target_arch = "nvptx64")]
    {
        core::intrinsics::sqrtf32(x)
    }
    #[cfg(not(target_arch = "nvptx64"))]
    {
        x.sqrt()
    }
}

/// Largest integer not greater than `x`, as `i32` (saturating; NaN gives 0).
///
/// On the host this avoids `f32::floor`, which is a libm call on baseline x86-64
/// (no SSE4.1) and dominated Joseph's per-slice cost.
#[inline(always)]
pub fn floor_i32(x: f32) -> i32 {
    #[cfg(target_arch = "nvptx64")]
    {
        core::intrinsics::floorf32(x) as i32
    }
    #[cfg(not(target_arch = "nvptx64"))]
    {
        let truncated = x as i32;
        if (truncated as f32) > x {
            // Saturates at i32::MIN, as the GPU's conversion does.
            truncated.saturating_sub(1)
        } else {
            truncated
        }
    }
}

/// The smaller of `a` and `b` (`b` if either is NaN): one `minss` on x86, unlike
/// `f32::min`, whose NaN handling lengthens the traversal's dependency chain.
#[inline(always)]
pub fn min(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// The larger of `a` and `b` (`b` if either is NaN).
#[inline(always)]
pub fn max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// Smallest integer value not less than `x`.
#[inline(always)]
pub fn ceil(x: f32) -> f32 {
    #[cfg(target_arch = "nvptx64")]
    {
        core::intrinsics::ceilf32(x)
    }
    #[cfg(not(target_arch = "nvptx64"))]
    {
        x.ceil()
    }
}

#[cfg(test)]
mod tests {
    use super::floor_i32;

    #[test]
    fn floor_i32_floors_and_saturates_like_the_gpus_conversion() {
        assert_eq!(floor_i32(2.5), 2);
        assert_eq!(floor_i32(-2.5), -3);
        assert_eq!(floor_i32(-0.0), 0);
        assert_eq!(floor_i32(f32::NAN), 0);
        // cvt.rmi.s32.f32 saturates at both ends.
        assert_eq!(floor_i32(3e9), i32::MAX);
        assert_eq!(floor_i32(-3e9), i32::MIN);
        assert_eq!(floor_i32(f32::NEG_INFINITY), i32::MIN);
    }
}
