//! Status codes, the calling thread's last error message, and the guards that every
//! exported function runs its body in (no Rust panic crosses into C).

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use xray_projector::Error;

/// What a call did: `XRAY_STATUS_OK` (0) on success, otherwise the kind of failure.
///
/// Every function that returns an `XrayStatus` also sets the calling thread's error
/// message (see `xray_last_error_message`): the failure's description, or the empty
/// string on success. The numeric values are part of the ABI and never change.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XrayStatus {
    /// Success.
    Ok = 0,
    /// A NULL pointer, a buffer length that is not the one the geometry implies, an
    /// unknown enum value, overlapping input and output buffers, or a parameter out of
    /// its range (for FDK: a scan arc it cannot reconstruct).
    InvalidArgument = 1,
    /// The volume grid, the per-view vectors or the circular scan are unusable (a zero
    /// size, a non-positive spacing, non-finite numbers, detector axes parallel, a
    /// source in its detector plane, ...). The message names the field.
    Geometry = 2,
    /// An array does not have the shape its geometry implies (not expected through
    /// this API, which derives shapes from the geometry; kept for completeness).
    ShapeMismatch = 3,
    /// The input volume or projections hold NaN or an infinity; the message gives the
    /// first one's index.
    NonFinite = 4,
    /// A working buffer could not be allocated on the host.
    Allocation = 5,
    /// `XRAY_BACKEND_CUDA` was asked for but CUDA cannot be used here (library built
    /// without the `cuda` feature, no driver, no device, ...): the message says why.
    CudaUnavailable = 6,
    /// A CUDA driver call failed.
    Cuda = 7,
    /// The GPU context faulted and lost what it held; the next call on the same handle
    /// runs on a freshly reset context (retry).
    CudaFaulted = 8,
    /// Not enough GPU memory (only with `XRAY_BACKEND_CUDA`; `XRAY_BACKEND_AUTO` then
    /// runs on the CPU instead).
    DeviceOutOfMemory = 9,
    /// A Rust panic inside the library (a bug): it was caught at the boundary and its
    /// message kept. The handle stays usable.
    Panic = 10,
    /// Any other error of the library; the message says what.
    Other = 11,
}

impl XrayStatus {
    /// The C name of the status, e.g. `XRAY_STATUS_OK`.
    pub(crate) fn name(self) -> &'static CStr {
        match self {
            XrayStatus::Ok => c"XRAY_STATUS_OK",
            XrayStatus::InvalidArgument => c"XRAY_STATUS_INVALID_ARGUMENT",
            XrayStatus::Geometry => c"XRAY_STATUS_GEOMETRY",
            XrayStatus::ShapeMismatch => c"XRAY_STATUS_SHAPE_MISMATCH",
            XrayStatus::NonFinite => c"XRAY_STATUS_NON_FINITE",
            XrayStatus::Allocation => c"XRAY_STATUS_ALLOCATION",
            XrayStatus::CudaUnavailable => c"XRAY_STATUS_CUDA_UNAVAILABLE",
            XrayStatus::Cuda => c"XRAY_STATUS_CUDA",
            XrayStatus::CudaFaulted => c"XRAY_STATUS_CUDA_FAULTED",
            XrayStatus::DeviceOutOfMemory => c"XRAY_STATUS_DEVICE_OUT_OF_MEMORY",
            XrayStatus::Panic => c"XRAY_STATUS_PANIC",
            XrayStatus::Other => c"XRAY_STATUS_OTHER",
        }
    }
}

/// Every status, in the order of their values. (A free constant: cbindgen would try to
/// export an associated one.)
const ALL_STATUSES: [XrayStatus; 12] = [
    XrayStatus::Ok,
    XrayStatus::InvalidArgument,
    XrayStatus::Geometry,
    XrayStatus::ShapeMismatch,
    XrayStatus::NonFinite,
    XrayStatus::Allocation,
    XrayStatus::CudaUnavailable,
    XrayStatus::Cuda,
    XrayStatus::CudaFaulted,
    XrayStatus::DeviceOutOfMemory,
    XrayStatus::Panic,
    XrayStatus::Other,
];

/// A failed call: its status and the message the thread keeps.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: XrayStatus,
    pub(crate) message: String,
}

/// What the bodies of the exported functions return.
pub(crate) type Outcome<T = ()> = Result<T, Failure>;

impl Failure {
    /// An `XRAY_STATUS_INVALID_ARGUMENT` failure.
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            status: XrayStatus::InvalidArgument,
            message: message.into(),
        }
    }

    /// An `XRAY_STATUS_OTHER` failure: something this layer did not expect.
    pub(crate) fn other(message: impl Into<String>) -> Failure {
        Failure {
            status: XrayStatus::Other,
            message: message.into(),
        }
    }

    /// An `XRAY_STATUS_PANIC` failure from a caught panic's payload.
    fn panic(payload: &(dyn Any + Send)) -> Failure {
        let text = if let Some(text) = payload.downcast_ref::<&str>() {
            (*text).to_string()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else {
            "(a panic without a text message)".to_string()
        };
        Failure {
            status: XrayStatus::Panic,
            message: format!("internal error (a Rust panic, caught): {text}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let status = match &error {
            Error::Geometry(_) => XrayStatus::Geometry,
            Error::ShapeMismatch { .. } => XrayStatus::ShapeMismatch,
            Error::NonFiniteVolume { .. } => XrayStatus::NonFinite,
            // The library reports NaN or infinite projections this way (backprojection,
            // FDK): see `check_projections` in the projector.
            Error::InvalidParameter {
                name: "projections",
                reason,
            } if reason.starts_with("non-finite") => XrayStatus::NonFinite,
            Error::InvalidParameter { .. } => XrayStatus::InvalidArgument,
            Error::Allocation { .. } => XrayStatus::Allocation,
            Error::CudaUnavailable { .. } => XrayStatus::CudaUnavailable,
            Error::Cuda { .. } => XrayStatus::Cuda,
            Error::CudaFaulted { .. } => XrayStatus::CudaFaulted,
            Error::DeviceOutOfMemory { .. } => XrayStatus::DeviceOutOfMemory,
            _ => XrayStatus::Other,
        };
        Failure {
            status,
            message: describe(&error),
        }
    }
}

/// The error's message followed by those of its sources, `": "`-separated.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

thread_local! {
    /// The message of this thread's last failed call; `None` after a successful one.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// What `xray_last_error_message` returns when there is no message.
const EMPTY: &CStr = c"";

/// Replaces this thread's message (`None`: no error). Never panics: during thread
/// teardown, or (impossibly) while the message is borrowed, it does nothing.
fn set_message(message: Option<&str>) {
    let text = message.map(|text| CString::new(text.replace('\0', " ")).unwrap_or_default());
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = text;
        }
    });
}

/// A pointer to this thread's message, valid until the next call that sets it.
pub(crate) fn last_message() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| match slot.try_borrow() {
            Ok(slot) => slot.as_deref().unwrap_or(EMPTY).as_ptr(),
            Err(_) => EMPTY.as_ptr(),
        })
        .unwrap_or(EMPTY.as_ptr())
}

/// Runs the body of a status-returning function: catches panics, sets the thread's
/// message (empty on success) and returns the status.
pub(crate) fn guard(body: impl FnOnce() -> Outcome) -> XrayStatus {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        let failure = Failure::panic(&*payload);
        // Dropping a panic payload can itself panic (its `Drop` is arbitrary code);
        // leaking these few bytes keeps that from unwinding into C.
        std::mem::forget(payload);
        Err(failure)
    });
    match outcome {
        Ok(()) => {
            set_message(None);
            XrayStatus::Ok
        }
        Err(failure) => {
            set_message(Some(&failure.message));
            failure.status
        }
    }
}

/// Runs the body of a function that returns a value rather than a status: on a panic
/// it returns `fallback` (and leaves the thread's message alone).
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        std::mem::forget(payload);
        fallback
    })
}

/// `code` as an [`XrayStatus`], if it is one.
pub(crate) fn status_from_code(code: c_int) -> Option<XrayStatus> {
    ALL_STATUSES
        .into_iter()
        .find(|&status| status as c_int == code)
}

/// The message of the calling thread's last failed call, as a NUL-terminated UTF-8
/// string; the empty string if its last status-returning call succeeded (or it made
/// none).
///
/// Every function that returns an `XrayStatus` replaces the message (with the empty
/// string on success), so the pointer is valid until the calling thread's next such
/// call; copy the text if it must outlive that. The string is owned by the library:
/// do not free it. Messages are per thread: a failure on one thread does not change the
/// message another thread sees. (In a runtime that moves tasks between OS threads, such
/// as Go's, read the message before the task can move.)
#[no_mangle]
pub extern "C" fn xray_last_error_message() -> *const c_char {
    guard_value(EMPTY.as_ptr(), last_message)
}

/// The C name of a status, e.g. `"XRAY_STATUS_INVALID_ARGUMENT"` (a static string: do not
/// free it), or `"XRAY_STATUS_UNKNOWN"` for a value that is not a status.
#[no_mangle]
pub extern "C" fn xray_status_name(status: c_int) -> *const c_char {
    guard_value(c"XRAY_STATUS_UNKNOWN".as_ptr(), || {
        status_from_code(status)
            .map_or(c"XRAY_STATUS_UNKNOWN", XrayStatus::name)
            .as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> String {
        // SAFETY: `last_message` returns a NUL-terminated string that stays valid until
        // this thread's next call that sets the message; it is copied at once.
        unsafe { CStr::from_ptr(last_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_the_panic_status_with_its_message() {
        let status = guard(|| panic!("boom {}", 42));
        assert_eq!(status, XrayStatus::Panic);
        assert!(message().contains("boom 42"), "{}", message());
        assert_eq!(guard(|| Ok(())), XrayStatus::Ok);
        assert_eq!(message(), "");
    }

    #[test]
    fn a_failure_sets_the_message_and_nul_bytes_are_replaced() {
        let status = guard(|| Err(Failure::invalid("bad\0value")));
        assert_eq!(status, XrayStatus::InvalidArgument);
        assert_eq!(message(), "bad value");
    }

    #[test]
    fn guard_value_returns_the_fallback_on_a_panic() {
        assert_eq!(guard_value(7, || panic!("no")), 7);
        assert_eq!(guard_value(7, || 3), 3);
    }

    #[test]
    fn names_and_codes_agree() {
        for (i, status) in ALL_STATUSES.into_iter().enumerate() {
            assert_eq!(status as usize, i);
            assert_eq!(status_from_code(i as c_int), Some(status));
            assert!(status.name().to_bytes().starts_with(b"XRAY_STATUS_"));
        }
        assert_eq!(status_from_code(-1), None);
    }
}
