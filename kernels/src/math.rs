//! The few float functions the kernels need that `core` lacks on stable Rust.
//!
//! On the host they are `std`'s; on `nvptx64` they are the compiler intrinsics that
//! lower to single PTX instructions (`sqrt.rn.f32`, `cvt.rmi.f32.f32`).

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

/// Largest integer value not greater than `x`.
#[inline(always)]
pub fn floor(x: f32) -> f32 {
    #[cfg(target_arch = "nvptx64")]
    {
        core::intrinsics::floorf32(x)
    }
    #[cfg(not(target_arch = "nvptx64"))]
    {
        x.floor()
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
