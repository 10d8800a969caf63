//! # The C API of xray-projector
//!
//! A C interface to the `xray-projector` crate: forward projection (X-ray line
//! integrals, DRRs, cone-beam sinograms) with the Siddon and Joseph ray tracers, its
//! exact transpose (backprojection), and FDK reconstruction, on the CPU or on CUDA.
//! Built as `libxray_projector_c.so` / `.dylib` (cdylib) and `libxray_projector_c.a`
//! (staticlib); the header `include/xray_projector.h` is generated from this crate by
//! cbindgen (see `tests/header.rs`).
//!
//! The numbers are the Rust library's: each function builds the library's geometry
//! from the C arguments and calls `Projector::forward`, `Projector::backward` or
//! `recon::fdk` on a zero-copy `ArrayView3` of the caller's input buffer; the result
//! (a new library array) is then copied into the caller's output buffer.
//!
//! ## Conventions
//!
//! Those of the library: lengths in mm, attenuation in 1/mm; volumes are
//! `nz * ny * nx` floats, x fastest; projections `views * rows * cols` floats, column
//! fastest; each view is 12 doubles as ASTRA's `cone_vec` (source or ray direction,
//! detector centre, u, v), see `XRAY_VECTORS_PER_VIEW`; the volume's place in the
//! world is an `XrayVolumeGrid`.
//!
//! ## Errors
//!
//! Every function that can fail returns an `XrayStatus` (`XRAY_STATUS_OK` = 0 on
//! success) and sets the calling thread's message, read with
//! `xray_last_error_message()`: a NUL-terminated string owned by the library, valid
//! until the thread's next status-returning call, empty after a success. Arguments are
//! checked before any work: NULL pointers, buffer lengths that are not exactly the ones
//! the geometry implies, enum values that are not one of the enum's (enums are taken as
//! `int`, since C can pass any value), and overlapping input and output buffers give
//! `XRAY_STATUS_INVALID_ARGUMENT`; no wrong length leads to an out-of-bounds access.
//! The library's own errors map to their statuses (`XRAY_STATUS_GEOMETRY`,
//! `XRAY_STATUS_NON_FINITE`, `XRAY_STATUS_CUDA_UNAVAILABLE`, ...). Every exported
//! function catches Rust panics at the boundary: a panic (a bug) becomes
//! `XRAY_STATUS_PANIC` with its message (Rust's panic hook also prints it to stderr).
//!
//! ## Thread safety
//!
//! A projector handle may be used from several threads at once: the functions only
//! read it, and the library's `Projector` is `Send + Sync` (checked at compile time).
//! Concurrent CPU calls share one thread pool; concurrent CUDA calls share device 0.
//! `xray_projector_free` must not overlap any other call on the same handle. Error
//! messages are per thread.
//!
//! ## Ownership
//!
//! The caller owns every buffer and struct it passes; the library never keeps a
//! pointer to them after a call returns, and never frees them. Output buffers need not
//! be initialised, and are left untouched on failure. The one object the library owns
//! is the projector handle, made by `xray_projector_new` and released by
//! `xray_projector_free`; the strings returned by `xray_last_error_message`,
//! `xray_projector_fallback_reason`, `xray_status_name` and `xray_version` belong to
//! the library too (never free them).
//!
//! ## Features
//!
//! `cuda` builds the CUDA backend (`XRAY_BACKEND_CUDA`, and `XRAY_BACKEND_AUTO`
//! choosing the GPU when one works). Without it, `XRAY_BACKEND_CUDA` gives
//! `XRAY_STATUS_CUDA_UNAVAILABLE` and `XRAY_BACKEND_AUTO` runs on the CPU.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

// The modules in the order their items appear in the header (cbindgen walks them in
// declaration order): the handle, the computations, the geometry, the errors.
mod handle;

mod project;

mod geometry;

mod error;

mod buffers;

use std::ffi::c_char;

pub use error::{xray_last_error_message, xray_status_name, XrayStatus};
pub use geometry::{
    xray_circular_scan_new, xray_circular_vectors, xray_volume_grid_centered, XrayBeam,
    XrayCircularScan, XrayVolumeGrid, XRAY_VECTORS_PER_VIEW,
};
pub use handle::{
    xray_projector_backend, xray_projector_fallback_reason, xray_projector_free,
    xray_projector_new, XrayBackend, XrayProjector,
};
pub use project::{xray_backward, xray_fdk, xray_forward, XrayFilter, XrayMethod};

/// The version of the library, e.g. `"0.1.0"` (a static NUL-terminated string: do not
/// free it).
#[no_mangle]
pub extern "C" fn xray_version() -> *const c_char {
    error::guard_value(std::ptr::null(), || VERSION.as_ptr().cast())
}

/// The package version with the NUL that C needs.
static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
