//! [`CudaBackend`]: one GPU's context, module and stream, device allocation that checks
//! free memory first, the projection launches (refused, before anything is allocated,
//! when they exceed CUDA's grid limits), and recovery from a faulted context.
//!
//! # Faults
//!
//! A kernel that faults (an illegal address, a trap, ...) leaves a "sticky" error: CUDA
//! then fails every call in that context with it, until the device's primary context is
//! reset or released by all who retained it. The first driver call that returns such an
//! error (or says that the context was destroyed under it) marks its backend faulted
//! ([`Error::CudaFaulted`]); from then on the backend and the device data it made refuse
//! all work with that error and never touch their driver handles again (on drop they
//! leak them: the driver reclaims them with the context, and a fresh context may hand
//! out the same addresses and handle values).
//!
//! The next [`CudaBackend::on_device`] for that device resets the primary context and
//! opens a fresh backend in its place, once no driver call is running on the old one.
//! Every sequence of driver calls runs under a guard ([`CudaBackend::enter`]) that counts
//! it; a guard covers driver calls only (never a caller's callback, nor a host
//! allocation), and every driver object held beyond one guard is destroyed under a guard
//! of its own ([`Owned`]), so the count drops to 0 soon after a fault: every call in a
//! faulted context fails fast. `on_device` waits for that, at most
//! [`FAULTED_CALLS_WAIT`] and holding no lock that another caller needs, and otherwise
//! returns [`Error::CudaFaulted`] asking to retry.

use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};
use std::mem::{size_of, ManuallyDrop};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use cust::context::{Context, CurrentContext};
use cust::device::{Device, DeviceAttribute};
use cust::error::CudaError;
use cust::event::{Event, EventFlags};
use cust::function::{BlockSize, GridSize};
use cust::memory::{CopyDestination, DeviceBuffer, DeviceCopy, DevicePointer};
use cust::module::Module;
use cust::stream::{Stream, StreamFlags};
use cust::sys as driver;
use ndarray::{Array3, ArrayBase, Data, Ix3};
use xray_kernels::{names, DetectorParams, Method, ViewParams};

use super::buffers::{DeviceProjections, DeviceVolume};
use super::executor::Batches;
use super::PTX;
use crate::alloc::zeroed;
use crate::error::{Error, GeometryError, Result};
use crate::executor::Output;
use crate::geometry::{ProjectionGeometry, VolumeGeometry};
use crate::projector::{check_finite, check_projections};

/// Threads per block: 32 detector columns (one warp along a detector row, whose rays
/// cross neighbouring voxels) by 8 rows.
pub(super) const BLOCK: (u32, u32) = (32, 8);

/// CUDA's limits on a launch grid, in blocks along x, y and z: the same on every GPU
/// since compute capability 3.0.
const MAX_GRID_BLOCKS: [usize; 3] = [i32::MAX as usize, 65_535, 65_535];

/// Most views per launch: CUDA's limit on the grid's z dimension (more views take
/// several launches).
const MAX_VIEWS_PER_LAUNCH: usize = MAX_GRID_BLOCKS[2];

/// What the x, y and z axes of a projection kernel's launch grid cover (named in errors).
const PROJECTION_AXES: [&str; 3] = ["detector cols", "detector rows", "views per launch"];

/// How long [`CudaBackend::on_device`] waits for driver calls still running on a faulted
/// backend before it gives up (for now: the caller is asked to retry) rather than reset
/// the context under them. They end fast: every driver call in a faulted context fails
/// at once, and guards cover driver calls only.
const FAULTED_CALLS_WAIT: Duration = Duration::from_secs(2);

/// Bytes of the JIT compiler's error log kept when the driver rejects a PTX module.
const JIT_LOG_BYTES: usize = 16 << 10;

/// Device memory left free when sizing batches of views, for the driver and for other
/// users of the GPU.
pub(super) const FREE_MEMORY_MARGIN: usize = 64 << 20;

/// A PTX entry point and which of its arrays is projection-shaped.
#[derive(Clone, Copy)]
pub(super) struct Kernel {
    name: &'static str,
    /// Forward kernels write projections; backprojection kernels read them.
    output_is_projections: bool,
}

impl Kernel {
    pub(super) fn forward(method: Method) -> Kernel {
        Kernel {
            name: match method {
                Method::Siddon => names::FORWARD_SIDDON,
                Method::Joseph => names::FORWARD_JOSEPH,
            },
            output_is_projections: true,
        }
    }

    pub(super) fn backward(method: Method) -> Kernel {
        Kernel {
            name: match method {
                Method::Siddon => names::BACKWARD_SIDDON,
                Method::Joseph => names::BACKWARD_JOSEPH,
            },
            output_is_projections: false,
        }
    }
}

/// One NVIDIA GPU, ready to run the projection kernels.
///
/// Created once per device and shared ([`CudaBackend::on_device`] hands out the same
/// `Arc`); every method may be called from any thread. After a kernel fault the backend
/// refuses all work with [`Error::CudaFaulted`], and `on_device` replaces it (see the
/// module docs).
pub struct CudaBackend {
    // Dropped by hand, before the context, and only while the context is healthy (see
    // `Drop`).
    pub(super) module: ManuallyDrop<Module>,
    pub(super) stream: ManuallyDrop<Stream>,
    ordinal: u32,
    description: String,
    /// Set, after `fault`, once a driver call has returned a sticky error.
    faulted: AtomicBool,
    /// The first sticky error: what was being done, and the driver's message.
    fault: OnceLock<String>,
    /// Sequences of driver calls in progress ([`InUse`] guards), which a reset of the
    /// context waits for; `idle` is notified when the count drops to 0.
    calls: Mutex<usize>,
    idle: Condvar,
    context: Context,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("ordinal", &self.ordinal)
            .field("description", &self.description)
            .field("faulted", &self.is_faulted())
            .finish_non_exhaustive()
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        if self.faulted.load(Ordering::SeqCst) {
            // The module and stream died with the faulted context (or will, when it is
            // reset or released); destroying them by handle now could destroy objects of
            // a fresh context that reuse the handle values. The context's retain is
            // released as usual, below.
            return;
        }
        // The module and stream are destroyed in the context that made them.
        let _ = CurrentContext::set_current(&self.context);
        // SAFETY: each is dropped once, here, and never used again.
        unsafe {
            ManuallyDrop::drop(&mut self.module);
            ManuallyDrop::drop(&mut self.stream);
        }
    }
}

/// A sequence of driver calls in progress on a [`CudaBackend`], from
/// [`CudaBackend::enter`]: counted until dropped, so that the reset of a faulted context
/// waits for calls that began before the fault and may still be using its handles.
/// Nested guards are fine. Hold one across driver calls only: never across a caller's
/// callback or a host allocation, which could keep a reset waiting.
pub(super) struct InUse<'a>(&'a CudaBackend);

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        let mut calls = self.0.lock_calls();
        *calls -= 1;
        if *calls == 0 {
            self.0.idle.notify_all();
        }
    }
}

/// A driver object of a backend (a device buffer) kept beyond the guard that made it: it
/// is destroyed under a guard of its own, and only while the context is healthy (after a
/// fault it is left to the driver; see the module docs). [`CudaBackend::allocate`] hands
/// out device buffers this way; [`Owned::into_inner`] passes one on to a
/// [`DeviceVolume`] or [`DeviceProjections`], whose own `Drop` does the same.
pub(super) struct Owned<'a, T> {
    object: ManuallyDrop<T>,
    backend: &'a CudaBackend,
}

impl<T> Owned<'_, T> {
    /// The object itself, for an owner that destroys it as `Owned` would.
    pub(super) fn into_inner(self) -> T {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the object is taken exactly once.
        unsafe { ManuallyDrop::take(&mut this.object) }
    }
}

impl<T> Deref for Owned<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.object
    }
}

impl<T> DerefMut for Owned<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.object
    }
}

impl<T> Drop for Owned<'_, T> {
    fn drop(&mut self) {
        if let Some(_calls) = self.backend.enter_to_free() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.object) }
        }
    }
}

/// Outcome of opening a device, kept for the life of the process: a driver that is
/// missing stays missing, and the reason is reported once, not probed per call. A
/// backend whose context faulted is replaced by [`CudaBackend::on_device`].
type Opened = Result<Arc<CudaBackend>, String>;

/// One device's [`Opened`], `None` until it is first opened.
type Slot = Arc<Mutex<Option<Opened>>>;

/// Device `ordinal`'s slot. One lock per device, so that opening (or resetting) one device
/// never waits for another; the map's own lock is held only to find the slot.
fn device_slot(ordinal: u32) -> Slot {
    static SLOTS: OnceLock<Mutex<HashMap<u32, Slot>>> = OnceLock::new();
    let mut slots = SLOTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    Arc::clone(slots.entry(ordinal).or_default())
}

/// Driver errors after which the context is unusable: CUDA's "sticky" errors, which a
/// faulting kernel leaves behind and every later call in the context returns again; and
/// the context gone from under the backend (destroyed, or reset by other code sharing the
/// device's primary context), after which it must be opened again too.
fn is_sticky(error: CudaError) -> bool {
    matches!(
        error,
        CudaError::InvalidContext
            | CudaError::ContextIsDestroyed
            | CudaError::IllegalAddress
            | CudaError::LaunchTimeout
            | CudaError::AssertError
            | CudaError::HardwareStackError
            | CudaError::IllegalInstruction
            | CudaError::MisalignedAddress
            | CudaError::InvalidAddressSpace
            | CudaError::InvalidProgramCounter
            | CudaError::LaunchFailed
            | CudaError::EccUncorrectable
            | CudaError::NvlinkUncorrectable
    )
}

/// Loads the PTX text `ptx` as a module into the current context.
///
/// # Errors
/// Why the driver refused it: its error, then the JIT compiler's error log, which names
/// the offending PTX line (or a note that the JIT wrote none).
fn load_module(ptx: &str) -> std::result::Result<Module, String> {
    let text = CString::new(ptx).map_err(|e| {
        format!(
            "the PTX text holds a NUL byte at offset {}",
            e.nul_position()
        )
    })?;
    let error = match Module::from_ptx_cstr(&text, &[]) {
        Ok(module) => return Ok(module),
        Err(error) => error,
    };
    Err(match jit_error_log(&text) {
        Some(log) => format!("{error}; the JIT's error log: {log}"),
        None => format!("{error} (the JIT wrote no error log)"),
    })
}

/// Loads `ptx` once more, with a buffer for the JIT compiler's error log, and returns
/// the log (`None` if it is empty).
///
/// cust 0.3.2 has no JIT option for the log, so this calls `cuModuleLoadDataEx` itself
/// with `CU_JIT_ERROR_LOG_BUFFER` and `CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES`. It runs only
/// after a load failed (the JIT is deterministic, so it fails the same way); a module it
/// loads after all is unloaded.
fn jit_error_log(ptx: &CStr) -> Option<String> {
    let mut log = vec![0u8; JIT_LOG_BYTES];
    let mut options = [
        driver::CUjit_option::CU_JIT_ERROR_LOG_BUFFER,
        driver::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
    ];
    // As in cust's own options: a value that fits in a pointer (the size) is passed as
    // the pointer itself, others (the buffer) by address. The driver writes the number
    // of bytes it filled back into the size's slot.
    let mut values: [*mut c_void; 2] = [
        log.as_mut_ptr().cast(),
        std::ptr::without_provenance_mut(JIT_LOG_BYTES),
    ];
    let mut module: driver::CUmodule = std::ptr::null_mut();
    // SAFETY: `ptx` is NUL-terminated; `options` and `values` hold two entries each, as
    // passed; the log buffer holds the JIT_LOG_BYTES bytes announced and outlives the call.
    let result = unsafe {
        driver::cuModuleLoadDataEx(
            &mut module,
            ptx.as_ptr().cast(),
            options.len() as std::os::raw::c_uint,
            options.as_mut_ptr(),
            values.as_mut_ptr(),
        )
    };
    if result == driver::cudaError_enum::CUDA_SUCCESS && !module.is_null() {
        // SAFETY: `module` was loaded just above and is used nowhere else.
        let _ = unsafe { driver::cuModuleUnload(module) };
    }
    let filled = values[1].addr().min(JIT_LOG_BYTES);
    let end = log[..filled].iter().position(|&b| b == 0).unwrap_or(filled);
    let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The launch grid of [`BLOCK`]-shaped blocks that covers `threads_x` by `threads_y`
/// threads and is `blocks_z` blocks deep; `axes` says what x, y and z cover.
///
/// # Errors
/// [`GeometryError::TooLarge`] naming the axis when it needs more blocks than CUDA allows
/// ([`MAX_GRID_BLOCKS`]; e.g. more than 8 * 65535 = 524,280 detector rows). Callers check
/// this before they allocate anything.
pub(super) fn launch_grid(
    threads_x: usize,
    threads_y: usize,
    blocks_z: usize,
    axes: [&str; 3],
) -> Result<GridSize> {
    let axis = |index: usize, threads: usize, per_block: usize| -> Result<u32> {
        let blocks = threads.div_ceil(per_block);
        let most = MAX_GRID_BLOCKS[index];
        if blocks <= most {
            return Ok(blocks as u32);
        }
        Err(GeometryError::TooLarge {
            field: format!(
                "{} on the CUDA backend ({per_block} per block, at most {most} blocks along \
                 the launch grid's {} axis)",
                axes[index],
                ["x", "y", "z"][index]
            ),
            value: threads as u128,
            limit: (most * per_block) as u128,
        }
        .into())
    };
    Ok(GridSize::xyz(
        axis(0, threads_x, BLOCK.0 as usize)?,
        axis(1, threads_y, BLOCK.1 as usize)?,
        axis(2, blocks_z, 1)?,
    ))
}

/// Refuses a detector that the projection kernels cannot be launched over (see
/// [`launch_grid`]; views beyond the z limit take several launches). Every caller checks
/// this before it allocates or uploads anything, [`crate::Projector`] included.
///
/// # Errors
/// [`GeometryError::TooLarge`] naming the axis.
pub(crate) fn check_launchable(geometry: &ProjectionGeometry) -> Result<()> {
    launch_grid(
        geometry.cols,
        geometry.rows,
        geometry.views.len().min(MAX_VIEWS_PER_LAUNCH),
        PROJECTION_AXES,
    )
    .map(|_| ())
}

/// Resets the primary context of device `ordinal` and opens a fresh backend on it, in
/// place of one whose context faulted (`fault` says how).
fn reopen(ordinal: u32, fault: &str) -> std::result::Result<CudaBackend, String> {
    let device = Device::get_device(ordinal)
        .map_err(|e| format!("CUDA device {ordinal} faulted ({fault}) and is gone: {e}"))?;
    // SAFETY: cust asks that nothing else use the primary context during the reset. In
    // this crate only the faulted backend and its device data did: they refuse all work
    // and never touch their handles again (they leak them when dropped), and every call
    // on them that began before the fault has ended (`on_device` waited). Code outside
    // this crate that shares the device's primary context loses its state too; the
    // fault had already made that state unusable.
    unsafe { Context::reset(&device) }.map_err(|e| {
        format!("CUDA device {ordinal} faulted ({fault}) and its context cannot be reset: {e}")
    })?;
    CudaBackend::open(ordinal).map_err(|e| {
        format!("CUDA device {ordinal} faulted ({fault}) and cannot be opened again: {e}")
    })
}

impl CudaBackend {
    /// The backend on device `ordinal` (0 is the first GPU), opened on first use and
    /// shared afterwards.
    ///
    /// If the shared backend's context has faulted ([`Error::CudaFaulted`]), this waits
    /// until no driver call is running on it (at most 2 s, holding no lock: other devices
    /// and other callers go on meanwhile), resets the device's primary context (which
    /// destroys everything in it, also for code outside this crate that shares it) and
    /// opens a fresh backend in its place. So after a fault, the call that met it fails,
    /// as do later calls on the old backend and on its [`DeviceVolume`]s and
    /// [`DeviceProjections`] (their data is lost); work through the next `on_device`,
    /// [`CudaBackend::healthy`] or [`crate::Projector`] call succeeds on the fresh context
    /// (a `Projector` calls `healthy` at each GPU call, so a long-lived one recovers by
    /// itself).
    ///
    /// # Errors
    /// [`Error::CudaUnavailable`] with the reason: no driver, no such device, context
    /// creation failed, the driver rejected the kernels' PTX (with the JIT's error log),
    /// or a faulted context could not be reset and opened again. The outcome is cached,
    /// so a failure is probed (and logged, at `warn`) once per process.
    /// [`Error::CudaFaulted`] if driver calls on the faulted backend are still running
    /// after the wait: the context is left as it is, and a later call (a retry) resets it.
    pub fn on_device(ordinal: u32) -> Result<Arc<CudaBackend>> {
        let slot = device_slot(ordinal);
        let lock = || slot.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let mut state = lock();
            let old = match &*state {
                Some(Ok(backend)) if !backend.is_faulted() => return Ok(Arc::clone(backend)),
                Some(Ok(faulted)) => Arc::clone(faulted),
                Some(Err(reason)) => {
                    return Err(Error::CudaUnavailable {
                        reason: reason.clone(),
                    })
                }
                None => {
                    let outcome = CudaBackend::open(ordinal).map(Arc::new);
                    if let Err(reason) = &outcome {
                        log::warn!("CUDA device {ordinal} is unavailable: {reason}");
                    }
                    *state = Some(outcome.clone());
                    return outcome.map_err(|reason| Error::CudaUnavailable { reason });
                }
            };
            // Wait with no lock held: the calls in flight fail fast, and nobody waits on us.
            drop(state);
            let running = old.wait_until_idle(FAULTED_CALLS_WAIT);
            state = lock();
            if !matches!(&*state, Some(Ok(current)) if Arc::ptr_eq(current, &old)) {
                continue; // replaced by another caller meanwhile: look again
            }
            if running > 0 {
                return Err(Error::CudaFaulted {
                    ordinal,
                    reason: format!(
                        "{}; {running} driver call(s) on the faulted context were still \
                         running after {} s, so it was not reset yet: retry shortly",
                        old.fault_reason(),
                        FAULTED_CALLS_WAIT.as_secs()
                    ),
                });
            }
            // Idle for good: a faulted backend lets no new call begin.
            let outcome = reopen(ordinal, &old.fault_reason()).map(Arc::new);
            match &outcome {
                Ok(_) => log::warn!(
                    "CUDA device {ordinal}: the faulted context ({}) was reset and the \
                     backend opened again",
                    old.fault_reason()
                ),
                Err(reason) => log::warn!("CUDA device {ordinal} is unavailable: {reason}"),
            }
            *state = Some(outcome.clone());
            return outcome.map_err(|reason| Error::CudaUnavailable { reason });
        }
    }

    fn open(ordinal: u32) -> std::result::Result<CudaBackend, String> {
        cust::init(cust::CudaFlags::empty()).map_err(|e| format!("CUDA driver: {e}"))?;
        let count = Device::num_devices().map_err(|e| format!("CUDA device count: {e}"))?;
        if count == 0 {
            return Err("no CUDA-capable device is detected".into());
        }
        if ordinal >= count {
            return Err(format!(
                "there is no CUDA device {ordinal} (this machine has {count})"
            ));
        }
        let device =
            Device::get_device(ordinal).map_err(|e| format!("CUDA device {ordinal}: {e}"))?;
        let name = device
            .name()
            .map_err(|e| format!("CUDA device {ordinal}: {e}"))?;
        let attribute = |a| {
            device
                .get_attribute(a)
                .map_err(|e| format!("CUDA device {ordinal} ({name}): {e}"))
        };
        let major = attribute(DeviceAttribute::ComputeCapabilityMajor)?;
        let minor = attribute(DeviceAttribute::ComputeCapabilityMinor)?;
        let memory = device
            .total_memory()
            .map_err(|e| format!("CUDA device {ordinal} ({name}): {e}"))?;
        let context = Context::new(device).map_err(|e| format!("CUDA context on {name}: {e}"))?;
        let module = load_module(PTX)
            .map_err(|e| format!("the driver rejected the kernels' PTX on {name}: {e}"))?;
        for entry in names::ALL {
            module
                .get_function(entry)
                .map_err(|e| format!("kernel {entry} is missing from the PTX: {e}"))?;
        }
        // A blocking stream (not NON_BLOCKING): the synchronous copies and memsets of
        // `cust` run on the legacy default stream, and a blocking stream waits for them
        // before its kernels start.
        let stream = Stream::new(StreamFlags::DEFAULT, None)
            .map_err(|e| format!("CUDA stream on {name}: {e}"))?;
        Ok(CudaBackend {
            module: ManuallyDrop::new(module),
            stream: ManuallyDrop::new(stream),
            ordinal,
            description: format!(
                "{name} (sm_{major}{minor}, {:.1} GiB), device {ordinal} of {count}",
                memory as f64 / (1u64 << 30) as f64
            ),
            faulted: AtomicBool::new(false),
            fault: OnceLock::new(),
            calls: Mutex::new(0),
            idle: Condvar::new(),
            context,
        })
    }

    /// The device's name, compute capability, memory and ordinal.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> u32 {
        self.ordinal
    }

    /// Whether this backend's context has faulted: it then refuses all work with
    /// [`Error::CudaFaulted`], and [`CudaBackend::on_device`] (or
    /// [`CudaBackend::healthy`]) opens a fresh backend.
    pub fn is_faulted(&self) -> bool {
        self.faulted.load(Ordering::SeqCst)
    }

    /// This backend, or, if its context has faulted, the fresh one that
    /// [`CudaBackend::on_device`] opens in its place: for holders of a long-lived backend
    /// that want their next call to work again after a fault. [`crate::Projector`] calls
    /// it at each GPU call, so a long-lived `Projector` recovers by itself. (Device data
    /// made by the faulted backend stays lost.)
    ///
    /// # Errors
    /// As [`CudaBackend::on_device`]; in particular [`Error::CudaFaulted`], asking to
    /// retry, while driver calls on the faulted backend are still running.
    pub fn healthy(self: &Arc<Self>) -> Result<Arc<CudaBackend>> {
        if self.is_faulted() {
            CudaBackend::on_device(self.ordinal)
        } else {
            Ok(Arc::clone(self))
        }
    }

    /// Free and total device memory in bytes.
    ///
    /// # Errors
    /// [`Error::Cuda`] if the driver cannot tell; [`Error::CudaFaulted`].
    pub fn memory_info(&self) -> Result<(usize, usize)> {
        let _calls = self.enter()?;
        cust::memory::mem_get_info().map_err(self.cuda_error("querying free GPU memory"))
    }

    /// Loads `ptx` into this backend's context exactly as [`CudaBackend::on_device`] loads
    /// the kernels, then unloads it: a test hook for the PTX error path.
    ///
    /// # Errors
    /// [`Error::CudaUnavailable`] with the reason `on_device` would give: the driver's
    /// error and the JIT's error log. [`Error::CudaFaulted`], [`Error::Cuda`].
    #[doc(hidden)]
    pub fn check_ptx(&self, ptx: &str) -> Result<()> {
        let _calls = self.enter()?;
        load_module(ptx)
            .map(drop)
            .map_err(|reason| Error::CudaUnavailable {
                reason: format!(
                    "the driver rejected the PTX on {}: {reason}",
                    self.description
                ),
            })
    }

    /// Begins a sequence of driver calls: refuses a faulted backend, makes its context
    /// current on the calling thread (CUDA contexts are per thread, and callers may come
    /// from any thread), and counts the calls until the guard is dropped. Hold the guard
    /// across driver calls only (see [`InUse`]).
    ///
    /// # Errors
    /// [`Error::CudaFaulted`], [`Error::Cuda`].
    pub(super) fn enter(&self) -> Result<InUse<'_>> {
        let calls = self.begin().ok_or_else(|| self.faulted_error())?;
        CurrentContext::set_current(&self.context)
            .map_err(self.cuda_error("making the CUDA context current"))?;
        Ok(calls)
    }

    /// For the `Drop` of driver objects: a guard with the context current when they may
    /// be destroyed, or `None` after a fault, when they must be left alone (the driver
    /// reclaims them with the context, and a fresh context may reuse their addresses and
    /// handles).
    pub(super) fn enter_to_free(&self) -> Option<InUse<'_>> {
        let calls = self.begin()?;
        // As before faults were handled: if this fails, the frees fail harmlessly.
        let _ = CurrentContext::set_current(&self.context);
        Some(calls)
    }

    /// Counts a sequence of driver calls, unless the backend has faulted (`None`).
    ///
    /// The check and the count happen under the same lock as `wait_until_idle`'s, and the
    /// fault flag is set before anyone waits: so once a waiter has seen no call running,
    /// none begins on this backend again.
    fn begin(&self) -> Option<InUse<'_>> {
        let mut calls = self.lock_calls();
        if self.is_faulted() {
            return None;
        }
        *calls += 1;
        Some(InUse(self))
    }

    fn lock_calls(&self) -> MutexGuard<'_, usize> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until no driver call is running on this backend, at most `limit`; returns
    /// how many still are (0: idle).
    fn wait_until_idle(&self, limit: Duration) -> usize {
        let calls = self.lock_calls();
        let (calls, _) = self
            .idle
            .wait_timeout_while(calls, limit, |running| *running > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *calls
    }

    fn fault_reason(&self) -> String {
        self.fault
            .get()
            .cloned()
            .unwrap_or_else(|| "a sticky CUDA error".to_string())
    }

    /// [`Error::CudaFaulted`] for this backend.
    pub(super) fn faulted_error(&self) -> Error {
        Error::CudaFaulted {
            ordinal: self.ordinal,
            reason: self.fault_reason(),
        }
    }

    /// The library's error for the driver's `error` while doing `action`. A sticky error
    /// marks this backend faulted first (the first one is kept as the reason), so that it
    /// refuses all later work and [`CudaBackend::on_device`] replaces it.
    fn driver_error(&self, action: &str, error: CudaError) -> Error {
        if is_sticky(error) {
            if self.fault.set(format!("while {action}: {error}")).is_ok() {
                log::error!(
                    "CUDA device {}: the context faulted while {action}: {error}; its device \
                     data is lost, and the next CudaBackend::on_device opens a fresh context",
                    self.ordinal
                );
            }
            self.faulted.store(true, Ordering::SeqCst);
            return self.faulted_error();
        }
        Error::Cuda {
            action: action.to_string(),
            reason: error.to_string(),
        }
    }

    /// Wraps a driver error with what was being done (see `driver_error`), for `map_err`.
    pub(super) fn cuda_error(&self, action: &'static str) -> impl FnOnce(CudaError) -> Error + '_ {
        move |error| self.driver_error(action, error)
    }

    /// A zeroed device buffer of `len` elements, after checking that it fits in the free
    /// memory (so that an impossible request is a clear error, not a driver failure).
    pub(super) fn allocate<T: DeviceCopy + bytemuck::Zeroable>(
        &self,
        len: usize,
        what: &'static str,
    ) -> Result<Owned<'_, DeviceBuffer<T>>> {
        let _calls = self.enter()?;
        let bytes = len as u128 * std::mem::size_of::<T>() as u128;
        let (free, _) =
            cust::memory::mem_get_info().map_err(self.cuda_error("querying free GPU memory"))?;
        if bytes > free as u128 {
            return Err(Error::DeviceOutOfMemory {
                what,
                bytes,
                free: free as u128,
            });
        }
        let buffer = DeviceBuffer::zeroed(len.max(1)).map_err(|error| match error {
            CudaError::OutOfMemory => Error::DeviceOutOfMemory {
                what,
                bytes,
                free: free as u128,
            },
            other => self.driver_error("allocating GPU memory", other),
        })?;
        Ok(self.own(buffer))
    }

    /// A new device buffer holding `bytes` (a record or an array of records); `action`
    /// names the copy in errors.
    pub(super) fn upload_bytes(
        &self,
        bytes: &[u8],
        action: &'static str,
    ) -> Result<Owned<'_, DeviceBuffer<u8>>> {
        let _calls = self.enter()?;
        let buffer = DeviceBuffer::from_slice(bytes).map_err(self.cuda_error(action))?;
        Ok(self.own(buffer))
    }

    fn own<T>(&self, object: T) -> Owned<'_, T> {
        Owned {
            object: ManuallyDrop::new(object),
            backend: self,
        }
    }

    /// Uploads `volume` (`[nz, ny, nx]`, laid out as `geometry` says) to the GPU, where it
    /// stays until the returned [`DeviceVolume`] is dropped.
    ///
    /// The volume is validated here, once: shape, and no NaN or infinity.
    ///
    /// # Errors
    /// [`Error::Geometry`], [`Error::ShapeMismatch`], [`Error::NonFiniteVolume`],
    /// [`Error::DeviceOutOfMemory`], [`Error::Cuda`], [`Error::CudaFaulted`].
    pub fn upload<S>(
        self: &Arc<Self>,
        volume: &ArrayBase<S, Ix3>,
        geometry: &VolumeGeometry,
    ) -> Result<DeviceVolume>
    where
        S: Data<Elem = f32>,
    {
        geometry.validate()?;
        geometry.check_shape(volume.shape())?;
        let contiguous = volume.as_standard_layout();
        let voxels = contiguous
            .as_slice()
            .expect("as_standard_layout gives a contiguous array");
        check_finite(voxels, geometry.shape)?;
        self.upload_voxels(voxels, geometry, 0..geometry.shape[0])
    }

    /// Uploads `voxels`, the slices `slices` of a volume on `geometry` (`[slices, ny,
    /// nx]`, already checked: the length is right and every value finite).
    pub(super) fn upload_voxels(
        self: &Arc<Self>,
        voxels: &[f32],
        geometry: &VolumeGeometry,
        slices: std::ops::Range<usize>,
    ) -> Result<DeviceVolume> {
        let grid = geometry.slab_params(slices.clone());
        debug_assert_eq!(voxels.len(), grid.voxel_count());
        let _calls = self.enter()?;
        let mut buffer = self.allocate::<f32>(voxels.len(), "the volume")?;
        buffer
            .copy_from(voxels)
            .map_err(self.cuda_error("copying the volume to the GPU"))?;
        let grid_buffer = self.upload_bytes(
            bytemuck::bytes_of(&grid),
            "copying the grid record to the GPU",
        )?;
        Ok(DeviceVolume::new(
            buffer.into_inner(),
            grid_buffer.into_inner(),
            geometry.clone(),
            slices,
            Arc::clone(self),
        ))
    }

    /// A zeroed device buffer for the projections of `geometry` (`[views, rows, cols]`),
    /// to be filled by [`CudaBackend::forward_into`].
    ///
    /// # Errors
    /// [`Error::Geometry`] (also for a detector beyond CUDA's launch grid limits, at most
    /// 524,280 rows: checked before anything is allocated), [`Error::DeviceOutOfMemory`],
    /// [`Error::Cuda`], [`Error::CudaFaulted`].
    pub fn allocate_projections(
        self: &Arc<Self>,
        geometry: &ProjectionGeometry,
    ) -> Result<DeviceProjections> {
        geometry.validate()?;
        check_launchable(geometry)?;
        let _calls = self.enter()?;
        let data = self.allocate::<f32>(geometry.ray_count()?, "the projections")?;
        let views = self.allocate::<u8>(
            geometry.views.len() * std::mem::size_of::<ViewParams>(),
            "the view records",
        )?;
        Ok(DeviceProjections::new(
            data.into_inner(),
            views.into_inner(),
            geometry.shape(),
            Arc::clone(self),
        ))
    }

    /// Forward-projects the resident `volume` into new device projections, all views in
    /// one launch.
    ///
    /// # Errors
    /// As [`CudaBackend::allocate_projections`] and [`CudaBackend::forward_into`].
    pub fn forward(
        self: &Arc<Self>,
        volume: &DeviceVolume,
        geometry: &ProjectionGeometry,
        method: Method,
    ) -> Result<DeviceProjections> {
        let mut out = self.allocate_projections(geometry)?;
        self.forward_into(volume, geometry, method, &mut out)?;
        Ok(out)
    }

    /// Forward-projects the resident `volume` into `out` (allocated for a geometry of the
    /// same shape), all views in one launch, and waits for it. Returns the kernel's time
    /// on the GPU, measured with CUDA events.
    ///
    /// Nothing is allocated: this is the call for loops (registration, iterative
    /// reconstruction). Only the view records (48 bytes per view) are copied.
    ///
    /// # Errors
    /// [`Error::Geometry`] (also for a detector beyond CUDA's launch grid limits);
    /// [`Error::ShapeMismatch`] if `out` has another shape; [`Error::InvalidParameter`] if
    /// the buffers belong to another device; [`Error::Cuda`] if the copy, the launch or the
    /// kernel fails; [`Error::CudaFaulted`] if the context faulted (now or before, also
    /// the context the buffers were made in).
    pub fn forward_into(
        &self,
        volume: &DeviceVolume,
        geometry: &ProjectionGeometry,
        method: Method,
        out: &mut DeviceProjections,
    ) -> Result<Duration> {
        geometry.validate()?;
        check_launchable(geometry)?;
        self.check_owner(volume.backend(), "the volume")?;
        self.check_owner(out.backend(), "the projections")?;
        check_projection_shape(out, geometry)?;
        let views = geometry.view_params(volume.geometry());
        let record_bytes = bytemuck::cast_slice::<ViewParams, u8>(&views);
        let _calls = self.enter()?;
        let (views_buffer, data) = out.buffers_mut();
        views_buffer
            .index(..record_bytes.len())
            .copy_from(record_bytes)
            .map_err(self.cuda_error("copying the view records to the GPU"))?;
        self.timed(|| {
            // SAFETY: `views_buffer` holds `views.len()` records and `data` holds
            // `views * rows * cols` values (checked shape above); both are this device's.
            unsafe {
                self.launch(
                    Kernel::forward(method),
                    volume.voxels_ptr(),
                    volume.grid_ptr(),
                    views_buffer.as_device_ptr(),
                    views.len(),
                    &geometry.detector_params(),
                    data.as_device_ptr(),
                )
            }
        })
    }

    /// A zeroed volume on `geometry` in GPU memory: the output of
    /// [`CudaBackend::backward_into`].
    ///
    /// # Errors
    /// [`Error::Geometry`] (checked before anything is allocated), [`Error::DeviceOutOfMemory`],
    /// [`Error::Cuda`], [`Error::CudaFaulted`].
    pub fn allocate_volume(self: &Arc<Self>, geometry: &VolumeGeometry) -> Result<DeviceVolume> {
        geometry.validate()?;
        self.allocate_slab(geometry, 0..geometry.shape[0])
    }

    /// A zeroed buffer for the slices `slices` (within the grid, checked by the caller)
    /// of a volume on `geometry`.
    pub(super) fn allocate_slab(
        self: &Arc<Self>,
        geometry: &VolumeGeometry,
        slices: std::ops::Range<usize>,
    ) -> Result<DeviceVolume> {
        let grid = geometry.slab_params(slices.clone());
        let _calls = self.enter()?;
        let voxels = self.allocate::<f32>(grid.voxel_count(), "the volume")?;
        let grid_buffer = self.upload_bytes(
            bytemuck::bytes_of(&grid),
            "copying the grid record to the GPU",
        )?;
        Ok(DeviceVolume::new(
            voxels.into_inner(),
            grid_buffer.into_inner(),
            geometry.clone(),
            slices,
            Arc::clone(self),
        ))
    }

    /// Uploads projections `[views, rows, cols]` of `geometry` (for backprojection),
    /// after checking their shape and that every value is finite.
    ///
    /// # Errors
    /// [`Error::Geometry`] (also for a detector beyond CUDA's launch grid limits, checked
    /// before anything is allocated), [`Error::ShapeMismatch`], [`Error::InvalidParameter`]
    /// for NaN or infinite values, [`Error::DeviceOutOfMemory`], [`Error::Cuda`],
    /// [`Error::CudaFaulted`].
    pub fn upload_projections<S>(
        self: &Arc<Self>,
        projections: &ArrayBase<S, Ix3>,
        geometry: &ProjectionGeometry,
    ) -> Result<DeviceProjections>
    where
        S: Data<Elem = f32>,
    {
        geometry.validate()?;
        check_launchable(geometry)?;
        let contiguous = projections.as_standard_layout();
        let values = contiguous
            .as_slice()
            .expect("as_standard_layout gives a contiguous array");
        check_projections(values, projections.shape(), geometry)?;
        let _calls = self.enter()?;
        let mut out = self.allocate_projections(geometry)?;
        out.buffers_mut()
            .1
            .index(..values.len())
            .copy_from(values)
            .map_err(self.cuda_error("copying the projections to the GPU"))?;
        Ok(out)
    }

    /// Backprojects `projections` (of `geometry`) into `out`, overwriting it: the exact
    /// transpose of [`CudaBackend::forward_into`] on `out`'s grid. All views in one
    /// launch; ray-driven with atomic adds, so the last bits may vary between runs.
    /// Returns the kernel's time on the GPU (CUDA events).
    ///
    /// # Errors
    /// [`Error::Geometry`] (also for a detector beyond CUDA's launch grid limits);
    /// [`Error::ShapeMismatch`] if `projections` is not `geometry.shape()`;
    /// [`Error::InvalidParameter`] if a buffer belongs to another device; [`Error::Cuda`];
    /// [`Error::CudaFaulted`].
    pub fn backward_into(
        &self,
        projections: &DeviceProjections,
        geometry: &ProjectionGeometry,
        method: Method,
        out: &mut DeviceVolume,
    ) -> Result<Duration> {
        geometry.validate()?;
        check_launchable(geometry)?;
        self.check_owner(projections.backend(), "the projections")?;
        self.check_owner(out.backend(), "the volume")?;
        check_projection_shape(projections, geometry)?;
        let views = geometry.view_params(out.geometry());
        let _calls = self.enter()?;
        let views_buffer = self.upload_bytes(
            bytemuck::cast_slice::<ViewParams, u8>(&views),
            "copying the view records to the GPU",
        )?;
        out.zero()?;
        self.timed(|| {
            // SAFETY: `views_buffer` holds `views.len()` records, `projections` holds
            // `views * rows * cols` values (shape checked above) and `out` its grid's voxels;
            // all on this device, and the volume is a different buffer from the projections.
            unsafe {
                self.launch(
                    Kernel::backward(method),
                    projections.data_ptr(),
                    out.grid_ptr(),
                    views_buffer.as_device_ptr(),
                    views.len(),
                    &geometry.detector_params(),
                    out.voxels_ptr(),
                )
            }
        })
    }

    /// Forward-projects the resident `volume` into a host array `[views, rows, cols]`.
    ///
    /// All views go in one launch when their projections fit in free device memory;
    /// otherwise in batches of as many views as fit, calling `view_done` once per view
    /// as each batch arrives (outside any driver call, so a slow callback holds up no
    /// other user of the device).
    ///
    /// # Errors
    /// [`Error::Geometry`] (also for a detector beyond CUDA's launch grid limits, checked
    /// before anything is allocated), [`Error::Allocation`] (host),
    /// [`Error::DeviceOutOfMemory`] if not even one view fits, [`Error::Cuda`],
    /// [`Error::CudaFaulted`].
    pub fn forward_to_host(
        &self,
        volume: &DeviceVolume,
        geometry: &ProjectionGeometry,
        method: Method,
        view_done: &(dyn Fn() + Sync),
    ) -> Result<Array3<f32>> {
        geometry.validate()?;
        check_launchable(geometry)?;
        self.check_owner(volume.backend(), "the volume")?;
        let mut host = zeroed(geometry.ray_count()?, "projections")?;
        let bytes_per_view = (geometry.rows * geometry.cols * 4 + size_of::<ViewParams>()) as u64;
        let (free, _) = self.memory_info()?;
        let fit = free.saturating_sub(FREE_MEMORY_MARGIN) as u64 / bytes_per_view;
        let batch = fit.min(geometry.views.len() as u64) as usize;
        if batch == 0 {
            return Err(Error::DeviceOutOfMemory {
                what: "the projections of one view",
                bytes: bytes_per_view as u128,
                free: free as u128,
            });
        }
        self.forward_batches(
            volume,
            geometry,
            method,
            &Batches {
                views: batch,
                output: Output::Store,
                view_done,
                cancel: None,
            },
            &mut host,
        )?;
        Ok(Array3::from_shape_vec(geometry.shape(), host)
            .expect("the buffer has views * rows * cols elements"))
    }

    /// Forward-projects the resident `volume` into the host slice `out` (`[views, rows,
    /// cols]` of `geometry`, checked by the caller), `batches.views` views per launch,
    /// storing or adding as `batches.output` says; `view_done` is called per view as
    /// each batch arrives (outside any driver call, so a slow callback holds up no other
    /// user of the device), and the cancel flag is checked between batches.
    pub(super) fn forward_batches(
        &self,
        volume: &DeviceVolume,
        geometry: &ProjectionGeometry,
        method: Method,
        batches: &Batches<'_>,
        out: &mut [f32],
    ) -> Result<()> {
        let views = geometry.view_params(volume.geometry());
        let detector = geometry.detector_params();
        let pixels_per_view = geometry.rows * geometry.cols;
        let batch = batches.views.clamp(1, views.len().max(1));
        debug_assert_eq!(out.len(), views.len() * pixels_per_view);
        let data = self.allocate::<f32>(batch * pixels_per_view, "the projections")?;
        let views_buffer =
            self.allocate::<u8>(batch * size_of::<ViewParams>(), "the view records")?;
        // Adding goes through a host buffer of at most `ADD_CHUNK` values, whatever the
        // batch, so that a slab's part costs no second copy of the projections.
        const ADD_CHUNK: usize = 4 << 20;
        let mut staging = match batches.output {
            Output::Store => Vec::new(),
            Output::Add => zeroed(
                (batch * pixels_per_view).min(ADD_CHUNK),
                "a chunk of projections",
            )?,
        };
        for (views_batch, host_batch) in views
            .chunks(batch)
            .zip(out.chunks_mut(batch * pixels_per_view))
        {
            if let Some(cancel) = batches.cancel {
                cancel.check()?;
            }
            {
                let _calls = self.enter()?;
                let record_bytes = bytemuck::cast_slice::<ViewParams, u8>(views_batch);
                views_buffer
                    .index(..record_bytes.len())
                    .copy_from(record_bytes)
                    .map_err(self.cuda_error("copying the view records to the GPU"))?;
                // SAFETY: `views_buffer` holds at least `views_batch.len()` records and
                // `data` at least `views_batch.len() * rows * cols` values.
                unsafe {
                    self.launch(
                        Kernel::forward(method),
                        volume.voxels_ptr(),
                        volume.grid_ptr(),
                        views_buffer.as_device_ptr(),
                        views_batch.len(),
                        &detector,
                        data.as_device_ptr(),
                    )?;
                }
                self.synchronize()?;
                match batches.output {
                    Output::Store => data
                        .index(..host_batch.len())
                        .copy_to(&mut *host_batch)
                        .map_err(self.cuda_error("copying the projections from the GPU"))?,
                    Output::Add => {
                        for (index, chunk) in host_batch.chunks_mut(staging.len()).enumerate() {
                            let first = index * staging.len();
                            let part = &mut staging[..chunk.len()];
                            data.index(first..first + chunk.len())
                                .copy_to(&mut *part)
                                .map_err(self.cuda_error("copying the projections from the GPU"))?;
                            chunk.iter_mut().zip(&*part).for_each(|(o, p)| *o += p);
                        }
                    }
                }
            }
            views_batch.iter().for_each(|_| (batches.view_done)());
        }
        Ok(())
    }

    /// Launches `kernel` for `n_views` views (several launches only beyond CUDA's grid
    /// limit of 65535 views), without waiting. Every kernel takes the same arguments:
    /// an input array, the grid record, the view records, four scalars, an output array.
    /// The projection-shaped one of the two advances by one view's pixels per view.
    ///
    /// A detector beyond the grid's x or y limit (see [`launch_grid`]) is refused before
    /// anything is launched; the public callers refuse it before they allocate.
    ///
    /// The caller holds a guard ([`CudaBackend::enter`]) from before the launch until
    /// the stream is synchronised.
    ///
    /// # Safety
    /// `views` must point to `n_views` [`ViewParams`]; `input` and `output` to arrays on
    /// this device of the sizes `kernel` expects (see `xray_kernels::entry`), not
    /// overlapping; nothing else may write them until the stream is synchronised.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn launch(
        &self,
        kernel: Kernel,
        input: DevicePointer<f32>,
        grid_record: DevicePointer<u8>,
        views: DevicePointer<u8>,
        n_views: usize,
        detector: &DetectorParams,
        output: DevicePointer<f32>,
    ) -> Result<()> {
        let (rows, cols) = (detector.rows, detector.cols);
        let plane = launch_grid(
            cols as usize,
            rows as usize,
            n_views.min(MAX_VIEWS_PER_LAUNCH),
            PROJECTION_AXES,
        )?;
        let function = self
            .module
            .get_function(kernel.name)
            .map_err(self.cuda_error("finding the projection kernel"))?;
        let block = BlockSize::xy(BLOCK.0, BLOCK.1);
        let pixels_per_view = rows as usize * cols as usize;
        let record = std::mem::size_of::<ViewParams>();
        let stream = &self.stream;
        let mut first = 0;
        while first < n_views {
            let count = (n_views - first).min(MAX_VIEWS_PER_LAUNCH);
            let grid = GridSize::xyz(plane.x, plane.y, count as u32);
            let views_here = views.wrapping_add(first * record);
            let (input_here, output_here) = if kernel.output_is_projections {
                (input, output.wrapping_add(first * pixels_per_view))
            } else {
                (input.wrapping_add(first * pixels_per_view), output)
            };
            let (n, beam) = (count as u32, detector.beam as u32);
            // SAFETY: the argument list matches the kernels' signatures in
            // `xray_kernels::entry`, and the pointers satisfy their contract (see above).
            cust::launch!(function<<<grid, block, 0, stream>>>(
                input_here,
                grid_record,
                views_here,
                n,
                rows,
                cols,
                beam,
                output_here
            ))
            .map_err(self.cuda_error("launching the projection kernel"))?;
            first += count;
        }
        Ok(())
    }

    /// Runs `launch` (which enqueues kernels on the stream) between two CUDA events,
    /// waits for it, and returns the GPU time between the events.
    fn timed(&self, launch: impl FnOnce() -> Result<()>) -> Result<Duration> {
        // The events are destroyed before this guard ends.
        let _calls = self.enter()?;
        let start = self.event()?;
        let stop = self.event()?;
        start
            .record(&self.stream)
            .map_err(self.cuda_error("recording a CUDA event"))?;
        launch()?;
        stop.record(&self.stream)
            .map_err(self.cuda_error("recording a CUDA event"))?;
        self.synchronize()?;
        stop.elapsed(&start)
            .map_err(self.cuda_error("reading the kernel time"))
    }

    pub(super) fn synchronize(&self) -> Result<()> {
        let _calls = self.enter()?;
        self.stream
            .synchronize()
            .map_err(self.cuda_error("running the projection kernel"))
    }

    fn event(&self) -> Result<Event> {
        Event::new(EventFlags::DEFAULT).map_err(self.cuda_error("creating a CUDA event"))
    }

    /// Refuses a buffer made by another backend: one on another device, or one made in a
    /// context that has faulted since (its data is gone).
    fn check_owner(&self, owner: &CudaBackend, what: &'static str) -> Result<()> {
        if std::ptr::eq(owner, self) {
            Ok(())
        } else if owner.is_faulted() {
            Err(owner.faulted_error())
        } else {
            Err(Error::InvalidParameter {
                name: what,
                reason: format!(
                    "it lives on CUDA device {}, not on device {}",
                    owner.ordinal, self.ordinal
                ),
            })
        }
    }
}

/// [`Error::ShapeMismatch`] unless the device projections have `geometry`'s shape.
fn check_projection_shape(
    projections: &DeviceProjections,
    geometry: &ProjectionGeometry,
) -> Result<()> {
    if projections.shape() == geometry.shape() {
        return Ok(());
    }
    Err(Error::ShapeMismatch {
        what: "the device projections",
        expected: geometry.shape().to_vec(),
        got: projections.shape().to_vec(),
    })
}
