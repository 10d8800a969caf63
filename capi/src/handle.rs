//! The opaque projector handle: creation, the backend it runs on, and its release.

use std::ffi::{c_char, c_int, CString};
use std::marker::PhantomData;

use xray_projector::{Backend, BackendKind, Projector};

use crate::error::{guard, guard_value, Failure, Outcome, XrayStatus};

/// Which compute backend a projector should use (`xray_projector_new`), or runs on
/// (`xray_projector_backend`). Functions take it as an `int`; any other value is
/// refused with `XRAY_STATUS_INVALID_ARGUMENT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XrayBackend {
    /// CUDA (device 0) when it works here, otherwise the CPU; the reason for falling
    /// back is kept (`xray_projector_fallback_reason`). With CUDA, work that does not
    /// fit in GPU memory runs on the CPU instead of failing.
    Auto = 0,
    /// The multithreaded CPU backend (rayon).
    Cpu = 1,
    /// The CUDA backend (device 0), or `XRAY_STATUS_CUDA_UNAVAILABLE` with the reason.
    Cuda = 2,
}

/// A projector: the backend that runs forward projections, backprojections and FDK.
///
/// Opaque: made by `xray_projector_new`, released by `xray_projector_free`. A handle
/// may be used by several threads at once (every function only reads it); only its
/// release must not overlap other calls on it.
pub struct XrayProjector {
    pub(crate) projector: Projector,
    /// `Projector::fallback_reason` as a C string, for the handle's lifetime.
    fallback_reason: Option<CString>,
}

// The thread-safety promise above, checked at compile time in every build (with and
// without `cuda`): the library's `Projector`, and so the handle, is `Send + Sync`.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>(_: PhantomData<T>) {}
    assert_send_sync(PhantomData::<XrayProjector>);
};

/// Creates a projector on `backend` (an `XrayBackend` value) and stores it in `*out`.
///
/// `XRAY_BACKEND_AUTO` uses CUDA when it can run here and the CPU otherwise. The CUDA
/// probe runs once per process; later projectors reuse its outcome. On failure `*out` is
/// set to NULL.
///
/// # Errors
/// `XRAY_STATUS_INVALID_ARGUMENT` for a NULL `out` or an unknown `backend`;
/// `XRAY_STATUS_CUDA_UNAVAILABLE` for `XRAY_BACKEND_CUDA` when CUDA cannot be used (the
/// message says why).
///
/// # Safety
/// `out` must be valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn xray_projector_new(
    backend: c_int,
    out: *mut *mut XrayProjector,
) -> XrayStatus {
    guard(|| {
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        if !out.is_aligned() {
            return Err(Failure::invalid("out is not aligned for a pointer"));
        }
        // SAFETY: `out` is non-null and aligned (checked above) and valid for a write
        // of one pointer (this function's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        let backend = match backend {
            b if b == XrayBackend::Auto as c_int => Backend::Auto,
            b if b == XrayBackend::Cpu as c_int => Backend::Cpu,
            b if b == XrayBackend::Cuda as c_int => Backend::Cuda,
            other => {
                return Err(Failure::invalid(format!(
                    "backend = {other} is not an XrayBackend \
                     (XRAY_BACKEND_AUTO = 0, XRAY_BACKEND_CPU = 1, XRAY_BACKEND_CUDA = 2)"
                )))
            }
        };
        let projector = Projector::new(backend)?;
        let fallback_reason = projector
            .fallback_reason()
            .map(|reason| CString::new(reason.replace('\0', " ")).unwrap_or_default());
        let handle = Box::new(XrayProjector {
            projector,
            fallback_reason,
        });
        // SAFETY: as for the write of NULL above.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Releases a projector made by `xray_projector_new`. NULL is allowed (nothing happens).
///
/// # Safety
/// `projector` must be NULL or a handle from `xray_projector_new` that has not been
/// released yet, and no other call may be using it (or use it afterwards).
#[no_mangle]
pub unsafe extern "C" fn xray_projector_free(projector: *mut XrayProjector) {
    guard_value((), || {
        if !projector.is_null() {
            // SAFETY: the caller guarantees a live handle from `xray_projector_new`
            // (made by `Box::into_raw`) that nothing else uses (this function's contract).
            drop(unsafe { Box::from_raw(projector) });
        }
    })
}

/// The backend the projector runs on: `XRAY_BACKEND_CPU` or `XRAY_BACKEND_CUDA` (never
/// `XRAY_BACKEND_AUTO`, which it returns only for a NULL handle).
///
/// # Safety
/// `projector` must be NULL or a live handle from `xray_projector_new`.
#[no_mangle]
pub unsafe extern "C" fn xray_projector_backend(projector: *const XrayProjector) -> XrayBackend {
    guard_value(XrayBackend::Auto, || {
        // SAFETY: the caller guarantees NULL or a live handle (this function's contract).
        match unsafe { projector.as_ref() } {
            None => XrayBackend::Auto,
            Some(handle) => match handle.projector.backend() {
                BackendKind::Cpu => XrayBackend::Cpu,
                BackendKind::Cuda => XrayBackend::Cuda,
            },
        }
    })
}

/// Why a projector made with `XRAY_BACKEND_AUTO` runs on the CPU (a NUL-terminated
/// string owned by the handle, valid until `xray_projector_free`), or NULL if it did not
/// fall back (or the handle is NULL).
///
/// # Safety
/// `projector` must be NULL or a live handle from `xray_projector_new`.
#[no_mangle]
pub unsafe extern "C" fn xray_projector_fallback_reason(
    projector: *const XrayProjector,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller guarantees NULL or a live handle (this function's contract).
        match unsafe { projector.as_ref() } {
            Some(XrayProjector {
                fallback_reason: Some(reason),
                ..
            }) => reason.as_ptr(),
            _ => std::ptr::null(),
        }
    })
}

/// The handle behind `projector`, or `XRAY_STATUS_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// `projector` must be NULL or a live handle from `xray_projector_new` that stays live
/// for `'a`.
pub(crate) unsafe fn handle<'a>(projector: *const XrayProjector) -> Outcome<&'a Projector> {
    // SAFETY: the caller guarantees NULL or a live handle for 'a (this function's
    // contract).
    match unsafe { projector.as_ref() } {
        Some(handle) => Ok(&handle.projector),
        None => Err(Failure::invalid("projector is NULL")),
    }
}
