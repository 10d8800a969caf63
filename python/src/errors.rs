//! The library's errors as Python exceptions: the crate's message, with its causes,
//! under the exception type a Python user expects.

use pyo3::exceptions::{
    PyKeyboardInterrupt, PyMemoryError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::PyErr;
use xray_projector::Error;

/// `ValueError` for bad input (geometry, shapes, NaN, parameters, malformed files),
/// `MemoryError` for a buffer too large, `OSError` for a file that cannot be read,
/// `KeyboardInterrupt` for a cancelled call, `RuntimeError` for the GPU's errors.
pub fn to_python(error: Error) -> PyErr {
    let message = message_with_causes(&error);
    match error {
        Error::Geometry(_)
        | Error::ShapeMismatch { .. }
        | Error::NonFiniteVolume { .. }
        | Error::InvalidParameter { .. }
        | Error::Format { .. } => PyValueError::new_err(message),
        Error::Allocation { .. } | Error::DeviceOutOfMemory { .. } => {
            PyMemoryError::new_err(message)
        }
        Error::Io { .. } => PyOSError::new_err(message),
        Error::Cancelled => PyKeyboardInterrupt::new_err(message),
        _ => PyRuntimeError::new_err(message),
    }
}

/// The error's message followed by its sources' (`a: b: c`).
fn message_with_causes(error: &Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A `ValueError` with `message`.
pub fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}
