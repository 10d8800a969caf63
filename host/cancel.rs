//! [`Cancel`]: a flag another thread sets to stop a long computation (Ctrl-C in the
//! Python bindings, a stop button in an application).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A cancellation flag shared between the caller and a [`crate::Projector`] (see
/// [`crate::Projector::with_cancel`]). Cloning shares the flag.
///
/// The CPU backend checks it between small pieces of work (a few detector bands of a
/// projection, one ray band of a backprojection, one row of voxels of FDK), the GPU
/// backend before and after each GPU call (a running GPU call, all its batches of views
/// included, is not interrupted); once it is set, the call returns [`Error::Cancelled`] and
/// its partial output is dropped. Iterative reconstruction stops at the next projection.
///
/// # Examples
/// ```
/// use xray_projector::{Backend, Cancel, CircularScan, Method, Projector, VolumeGeometry};
///
/// let cancel = Cancel::new();
/// let projector = Projector::new(Backend::Cpu)?.with_cancel(cancel.clone());
/// cancel.cancel(); // from any thread
/// let grid = VolumeGeometry::centered([8, 8, 8], [1.0; 3]);
/// let geometry = CircularScan::new(100.0, 200.0, 2, [8, 8], 1.0).geometry()?;
/// let volume = ndarray::Array3::<f32>::zeros((8, 8, 8));
/// let result = projector.forward(&volume, &grid, &geometry, Method::Siddon);
/// assert!(matches!(result, Err(xray_projector::Error::Cancelled)));
/// # Ok::<(), xray_projector::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Sets the flag: computations watching it stop at their next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Error::Cancelled)` once the flag is set.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The flag itself, for the backends' inner loops.
    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.0
    }
}
