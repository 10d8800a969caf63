//! Running a computation without the GIL, stoppable with Ctrl-C.
//!
//! The work runs on a scoped worker thread while the calling thread, its GIL released,
//! waits in slices of [`POLL`]; between slices it takes the GIL back just long enough
//! for `PyErr_CheckSignals`. When Python has a pending exception (Ctrl-C raises
//! `KeyboardInterrupt`), the projector's [`Cancel`] flag is set, the worker stops at its
//! next check and its partial output is dropped, and that exception is raised. A panic
//! in the worker becomes a `RuntimeError`, never an abort.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use xray_projector::{Cancel, Result};

use crate::errors::to_python;

/// How long the caller waits between two checks for Ctrl-C.
const POLL: Duration = Duration::from_millis(50);

/// Runs `work` with the GIL released; `cancel` is the flag its projector watches.
pub fn interruptible<T, F>(py: Python<'_>, cancel: &Cancel, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> Result<T> + Send,
{
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel(1);
        // Only this thread receives; the mutex makes the receiver shareable with the
        // GIL-free closure below.
        let receiver = Mutex::new(receiver);
        scope.spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(work));
            // The receiver waits until this arrives; it cannot be gone.
            let _ = sender.send(outcome);
        });
        let mut interrupted: Option<PyErr> = None;
        let outcome = loop {
            let timeout = if interrupted.is_some() {
                Duration::from_secs(3600)
            } else {
                POLL
            };
            let received = py.detach(|| {
                receiver
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .recv_timeout(timeout)
            });
            match received {
                Ok(outcome) => break Some(outcome),
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if interrupted.is_none() {
                        if let Err(error) = py.check_signals() {
                            cancel.cancel();
                            interrupted = Some(error);
                        }
                    }
                }
            }
        };
        if let Some(error) = interrupted {
            return Err(error);
        }
        match outcome {
            Some(Ok(result)) => result.map_err(to_python),
            Some(Err(panic)) => Err(PyRuntimeError::new_err(format!(
                "internal error in xray-projector (please report it): {}",
                panic_message(&panic)
            ))),
            None => Err(PyRuntimeError::new_err(
                "internal error in xray-projector: the worker thread ended without a result",
            )),
        }
    })
}

/// The text of a panic's payload.
fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}
