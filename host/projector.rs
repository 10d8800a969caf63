//! [`Projector`]: the front that validates inputs once, picks a backend and hands the
//! work to its executor (`crate::executor`).

use std::sync::Arc;

use ndarray::{Array3, ArrayBase, Data, Ix3};

use crate::alloc::{zeroed, zeroed_array};
use crate::backend::{Backend, BackendKind};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
#[cfg(feature = "cuda")]
use crate::executor::devices::Devices;
use crate::executor::{cpu::CpuExecutor, BackwardTask, Executor, FdkTask, ForwardTask, Output};
use crate::geometry::{ProjectionGeometry, VolumeGeometry};
use xray_kernels::VoxelView;

pub use xray_kernels::Method;

/// Runs projections on one backend.
///
/// # Examples
/// ```
/// use ndarray::Array3;
/// use xray_projector::{Backend, CircularScan, Method, Projector, VolumeGeometry};
///
/// let volume_geometry = VolumeGeometry::centered([32, 32, 32], [1.0, 1.0, 1.0]);
/// let volume = Array3::from_elem((32, 32, 32), 0.02f32);
/// let geometry = CircularScan::new(500.0, 800.0, 4, [48, 48], 1.0).geometry()?;
/// let projector = Projector::new(Backend::Cpu)?;
/// let p = projector.forward(&volume, &volume_geometry, &geometry, Method::Siddon)?;
/// assert_eq!(p.shape(), &[4, 48, 48]);
/// // The central ray crosses 32 mm of mu = 0.02/mm.
/// assert!((p[[0, 23, 23]] - 0.64).abs() < 1e-3);
/// # Ok::<(), xray_projector::Error>(())
/// ```
#[derive(Debug)]
pub struct Projector {
    kind: BackendKind,
    /// What the caller asked for: with `Auto`, work that does not fit on the GPU runs on
    /// the CPU instead of failing.
    requested: Backend,
    fallback_reason: Option<String>,
    /// Set from another thread to stop the current call (see [`Projector::with_cancel`]).
    cancel: Cancel,
    /// Where the work runs (see `crate::executor` for how a call reaches it).
    executor: Arc<dyn Executor>,
    /// The GPUs the executor uses, in the order of their shares.
    #[cfg(feature = "cuda")]
    gpus: Vec<Arc<crate::cuda::CudaBackend>>,
    /// Most memory of each GPU a call may plan for ([`Projector::with_device_memory`]).
    device_memory: Option<u64>,
}

impl Projector {
    /// A projector on `backend`.
    ///
    /// `Backend::Auto` uses CUDA (device 0) when it can run here and the CPU otherwise,
    /// keeping the reason (see [`Projector::fallback_reason`]). The CUDA probe runs once
    /// per process; later projectors reuse its outcome.
    ///
    /// # Errors
    /// [`Error::CudaUnavailable`] for `Backend::Cuda` when CUDA cannot be used, with the
    /// reason (not built with `cuda`, no driver, no device, PTX rejected).
    pub fn new(backend: Backend) -> Result<Projector> {
        let fallback_reason = match backend {
            Backend::Cpu => None,
            Backend::Cuda | Backend::Auto => match open_gpus(&[0]) {
                Ok(gpus) => return Ok(Projector::on_gpus(backend, gpus)),
                Err(reason) if backend == Backend::Auto => Some(reason),
                Err(reason) => return Err(Error::CudaUnavailable { reason }),
            },
        };
        Ok(Projector {
            kind: BackendKind::Cpu,
            requested: backend,
            fallback_reason,
            cancel: Cancel::new(),
            executor: Arc::new(CpuExecutor),
            #[cfg(feature = "cuda")]
            gpus: Vec::new(),
            device_memory: None,
        })
    }

    /// A projector on the CUDA devices `ordinals` together: a forward projection splits
    /// its views between them, a backprojection (and FDK) the volume's slices, each part
    /// planned on its device as one GPU's call is (slabs and batches when it does not fit).
    /// The results equal one device's whatever the timing: FDK bit for bit, the
    /// forward projection bit for bit unless a device splits the volume into slabs, the
    /// ray-driven backprojection within the slab bound (see `crate::executor::slabs`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no ordinal or one given twice;
    /// [`Error::CudaUnavailable`] when a device cannot be used (naming it), or in a build
    /// without `cuda`.
    pub fn on_devices(ordinals: &[u32]) -> Result<Projector> {
        let mut seen = std::collections::BTreeSet::new();
        if ordinals.is_empty() || !ordinals.iter().all(|o| seen.insert(*o)) {
            return Err(Error::InvalidParameter {
                name: "devices",
                reason: format!("expected distinct CUDA device ordinals, got {ordinals:?}"),
            });
        }
        match open_gpus(ordinals) {
            Ok(gpus) => Ok(Projector::on_gpus(Backend::Cuda, gpus)),
            Err(reason) => Err(Error::CudaUnavailable { reason }),
        }
    }

    /// The projector whose executor runs on `gpus` (one, or several together).
    fn on_gpus(requested: Backend, gpus: Gpus) -> Projector {
        #[cfg(feature = "cuda")]
        {
            let executor = gpu_executor(&gpus, None);
            Projector {
                kind: BackendKind::Cuda,
                requested,
                fallback_reason: None,
                cancel: Cancel::new(),
                executor,
                gpus,
                device_memory: None,
            }
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = requested;
            match gpus {}
        }
    }

    /// The same projector, watching `cancel`: once it is set (from any thread), the
    /// call in progress and every later one return [`Error::Cancelled`]. The CPU
    /// backend stops within a few detector bands (a projection), one ray band (a
    /// backprojection) or one row of voxels (FDK); the GPU backend before and after each
    /// GPU call (a GPU call itself runs to its end).
    pub fn with_cancel(mut self, cancel: Cancel) -> Projector {
        self.cancel = cancel;
        self
    }

    /// The same projector, using at most `bytes` of each GPU's memory per call (as
    /// if that were all the free memory): larger volumes then run in slabs and larger
    /// projections in batches. For sharing a GPU with other work, and for testing
    /// the slabs on any GPU. No effect on the CPU.
    pub fn with_device_memory(self, bytes: u64) -> Projector {
        #[cfg(feature = "cuda")]
        if !self.gpus.is_empty() {
            let executor = gpu_executor(&self.gpus, Some(bytes));
            return Projector {
                executor,
                device_memory: Some(bytes),
                ..self
            };
        }
        let _ = bytes;
        self
    }

    /// The limit set by [`Projector::with_device_memory`], if any.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn device_memory_limit(&self) -> Option<u64> {
        self.device_memory
    }

    /// Whether this projector's [`Cancel`] flag is set.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// [`Error::Cancelled`] once this projector's [`Cancel`] flag is set.
    pub(crate) fn check_cancelled(&self) -> Result<()> {
        self.cancel.check()
    }

    /// The GPU this projector runs on (the first of several), for the device-resident
    /// API of [`crate::cuda`] (`None` on the CPU).
    #[cfg(feature = "cuda")]
    pub fn cuda_backend(&self) -> Option<&Arc<crate::cuda::CudaBackend>> {
        self.gpus.first()
    }

    /// The CUDA device ordinals this projector runs on, in the order of their shares
    /// (empty on the CPU).
    pub fn devices(&self) -> Vec<u32> {
        #[cfg(feature = "cuda")]
        return self.gpus.iter().map(|gpu| gpu.ordinal()).collect();
        #[cfg(not(feature = "cuda"))]
        Vec::new()
    }

    /// The backend this projector runs on.
    pub fn backend(&self) -> BackendKind {
        self.kind
    }

    /// Why `Backend::Auto` did not pick CUDA, if it did not.
    ///
    /// (With `Auto` on a GPU, a projection that does not fit in GPU memory runs on the
    /// CPU instead; that is logged at `warn`, per call.)
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Line integrals `p = sum mu_i L_i` of every detector pixel of every view.
    ///
    /// `volume` is `[nz, ny, nx]` of attenuation coefficients in 1/mm, laid out as
    /// `volume_geometry` says; the result is `[views, rows, cols]`, dimensionless.
    ///
    /// # Errors
    /// [`Error::Geometry`] for an invalid geometry (on CUDA also for a detector beyond
    /// its launch grid limits, refused before the volume is uploaded),
    /// [`Error::ShapeMismatch`] if the array is not `volume_geometry.shape`,
    /// [`Error::NonFiniteVolume`] for NaN or infinite voxels, [`Error::Allocation`] if the
    /// output cannot be allocated; on CUDA, the GPU's errors ([`Error::Cuda`],
    /// [`Error::CudaFaulted`], and [`Error::DeviceOutOfMemory`] unless the projector was
    /// made with `Backend::Auto`, which then runs on the CPU).
    pub fn forward<S>(
        &self,
        volume: &ArrayBase<S, Ix3>,
        volume_geometry: &VolumeGeometry,
        geometry: &ProjectionGeometry,
        method: Method,
    ) -> Result<Array3<f32>>
    where
        S: Data<Elem = f32>,
    {
        self.forward_with_progress(volume, volume_geometry, geometry, method, &|| {})
    }

    /// As [`Projector::forward`], calling `view_done` once per finished view (from any
    /// thread), for progress bars. The CPU backend projects views in passes of 16 and
    /// reports each pass's views when the pass ends.
    ///
    /// # Errors
    /// As [`Projector::forward`].
    pub fn forward_with_progress<S>(
        &self,
        volume: &ArrayBase<S, Ix3>,
        volume_geometry: &VolumeGeometry,
        geometry: &ProjectionGeometry,
        method: Method,
        view_done: &(dyn Fn() + Sync),
    ) -> Result<Array3<f32>>
    where
        S: Data<Elem = f32>,
    {
        volume_geometry.validate()?;
        geometry.validate()?;
        volume_geometry.check_shape(volume.shape())?;
        self.cancel.check()?;
        // A detector beyond a GPU's launch grid is refused before anything is uploaded.
        self.check_launchable(geometry)?;
        let contiguous = volume.as_standard_layout();
        let voxels = contiguous
            .as_slice()
            .expect("as_standard_layout gives a contiguous array");
        check_finite(voxels, volume_geometry.shape)?;
        let mut out = zeroed(geometry.ray_count()?, "projections")?;
        let task = ForwardTask {
            voxels,
            volume_geometry,
            slices: 0..volume_geometry.shape[0],
            geometry,
            method,
            view_done,
            cancel: &self.cancel,
        };
        self.run("projecting", |executor| {
            executor.forward(&task, Output::Store, &mut out)
        })?;
        Ok(Array3::from_shape_vec(geometry.shape(), out)
            .expect("the buffer has views * rows * cols elements"))
    }

    /// Backprojection, the exact transpose of [`Projector::forward`]: for each voxel,
    /// the sum over rays of the projection value times the weight that voxel has in the
    /// ray's line integral. Satisfies `<A x, y> = <x, A^T y>` to f32 rounding.
    ///
    /// `projections` is `[views, rows, cols]` as `geometry` says; the result is
    /// `[nz, ny, nx]` on `volume_geometry`, in mm (times the projections' unit).
    ///
    /// On CUDA the GPU kernel adds with atomics, so the last bits can vary between runs;
    /// the CPU result is the same on every run and thread count.
    ///
    /// # Errors
    /// [`Error::Geometry`] (on CUDA also for a detector beyond its launch grid limits,
    /// refused before anything is uploaded), [`Error::ShapeMismatch`] (projections not
    /// `geometry.shape()`), [`Error::InvalidParameter`] for NaN or infinite projection
    /// values, [`Error::Allocation`]; on CUDA, the GPU's errors as for
    /// [`Projector::forward`].
    pub fn backward<S>(
        &self,
        projections: &ArrayBase<S, Ix3>,
        geometry: &ProjectionGeometry,
        volume_geometry: &VolumeGeometry,
        method: Method,
    ) -> Result<Array3<f32>>
    where
        S: Data<Elem = f32>,
    {
        volume_geometry.validate()?;
        geometry.validate()?;
        self.cancel.check()?;
        self.check_launchable(geometry)?;
        let contiguous = projections.as_standard_layout();
        let values = contiguous
            .as_slice()
            .expect("as_standard_layout gives a contiguous array");
        check_projections(values, projections.shape(), geometry)?;
        let mut out = zeroed(volume_geometry.voxel_count()?, "the backprojected volume")?;
        let task = BackwardTask {
            projections: values,
            geometry,
            volume_geometry,
            slices: 0..volume_geometry.shape[0],
            method,
            cancel: &self.cancel,
        };
        self.run("backprojecting", |executor| {
            executor.backward(&task, &mut out)
        })?;
        Ok(Array3::from_shape_vec(volume_geometry.shape, out)
            .expect("the buffer has nz * ny * nx elements"))
    }

    /// Refuses, on the GPU, a volume grid that FDK's backprojection kernel cannot be
    /// launched over (see `cuda::check_fdk_launchable`): for [`crate::recon::fdk`] to call
    /// before it weights and filters the projections. Nothing to check on the CPU.
    pub(crate) fn check_fdk_grid(&self, volume_geometry: &VolumeGeometry) -> Result<()> {
        #[cfg(feature = "cuda")]
        if !self.gpus.is_empty() {
            crate::cuda::check_fdk_launchable(volume_geometry)?;
        }
        #[cfg(not(feature = "cuda"))]
        let _ = volume_geometry;
        Ok(())
    }

    /// FDK's voxel-driven backprojection of `filtered` (`[views, rows, cols]`, already
    /// weighted and filtered) with one [`VoxelView`] per view into the slices `slices`
    /// of the volume (`[slices, ny, nx]`), on this projector's backend.
    pub(crate) fn backproject_filtered(
        &self,
        filtered: &Array3<f32>,
        views: &[VoxelView],
        volume_geometry: &VolumeGeometry,
        slices: std::ops::Range<usize>,
    ) -> Result<Array3<f32>> {
        let (_, rows, cols) = filtered.dim();
        let values = filtered
            .as_slice()
            .expect("FDK's filtered projections are contiguous");
        self.cancel.check()?;
        let [_, ny, nx] = volume_geometry.shape;
        let mut out = zeroed_array([slices.len(), ny, nx], "the reconstructed volume")?;
        let task = FdkTask {
            filtered: values,
            rows,
            cols,
            views,
            shape: volume_geometry.shape,
            slices,
            cancel: &self.cancel,
        };
        let target = out.as_slice_mut().expect("a new array is contiguous");
        self.run("FDK backprojection", |executor| {
            executor.fdk_backproject(&task, target)
        })?;
        Ok(out)
    }

    /// Projects the slices `slices` of a volume on `volume_geometry` (`voxels`, their
    /// `[slices, ny, nx]` values, already checked finite; the grid and `geometry`
    /// validated) into `out`: the part of each line integral inside that slab, for
    /// [`crate::streaming`].
    ///
    /// # Errors
    /// As [`Projector::forward`].
    pub(crate) fn forward_slab(
        &self,
        voxels: &[f32],
        volume_geometry: &VolumeGeometry,
        slices: std::ops::Range<usize>,
        geometry: &ProjectionGeometry,
        method: Method,
        out: &mut [f32],
    ) -> Result<()> {
        self.cancel.check()?;
        self.check_launchable(geometry)?;
        let task = ForwardTask {
            voxels,
            volume_geometry,
            slices,
            geometry,
            method,
            view_done: &|| {},
            cancel: &self.cancel,
        };
        self.run("projecting", |executor| {
            executor.forward(&task, Output::Store, out)
        })
    }

    /// Refuses, on a GPU, a detector beyond its launch grid (before anything is
    /// uploaded). Nothing to check on the CPU.
    fn check_launchable(&self, geometry: &ProjectionGeometry) -> Result<()> {
        #[cfg(feature = "cuda")]
        if !self.gpus.is_empty() {
            crate::cuda::check_launchable(geometry)?;
        }
        #[cfg(not(feature = "cuda"))]
        let _ = geometry;
        Ok(())
    }

    /// Runs `work` on this projector's executor; with `Backend::Auto`, work the GPU has
    /// no memory for runs on the CPU instead (logged at `warn`, naming `what`).
    fn run(&self, what: &str, mut work: impl FnMut(&dyn Executor) -> Result<()>) -> Result<()> {
        match work(self.executor.as_ref()) {
            Err(error @ Error::DeviceOutOfMemory { .. })
                if self.requested == Backend::Auto && self.kind == BackendKind::Cuda =>
            {
                log::warn!("{what} on the CPU: {error}");
                work(&CpuExecutor)
            }
            other => other,
        }?;
        self.cancel.check()
    }
}

/// The executor on `gpus`: one GPU's, or several together; each using at most
/// `limit` bytes of its memory when given.
#[cfg(feature = "cuda")]
fn gpu_executor(gpus: &[Arc<crate::cuda::CudaBackend>], limit: Option<u64>) -> Arc<dyn Executor> {
    let mut members: Vec<Arc<dyn Executor>> = gpus
        .iter()
        .map(|gpu| {
            Arc::new(crate::cuda::CudaExecutor::new(Arc::clone(gpu), limit)) as Arc<dyn Executor>
        })
        .collect();
    if members.len() == 1 {
        members.remove(0)
    } else {
        Arc::new(Devices::new(members))
    }
}

/// What [`open_gpus`] gives: the GPUs, or (in a build without `cuda`) nothing that can
/// exist.
#[cfg(feature = "cuda")]
type Gpus = Vec<Arc<crate::cuda::CudaBackend>>;
#[cfg(not(feature = "cuda"))]
type Gpus = std::convert::Infallible;

/// The CUDA devices `ordinals`, or why one of them cannot be used.
fn open_gpus(ordinals: &[u32]) -> std::result::Result<Gpus, String> {
    #[cfg(feature = "cuda")]
    {
        ordinals
            .iter()
            .map(|&ordinal| {
                crate::cuda::CudaBackend::on_device(ordinal).map_err(|error| match error {
                    Error::CudaUnavailable { reason } if ordinals.len() > 1 => {
                        format!("CUDA device {ordinal}: {reason}")
                    }
                    Error::CudaUnavailable { reason } => reason,
                    other => other.to_string(),
                })
            })
            .collect()
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = ordinals;
        Err(crate::backend::NOT_BUILT.to_string())
    }
}

/// Rejects NaN and infinities, naming the first one (`voxels` is `[nz, ny, nx]`).
pub(crate) fn check_finite(voxels: &[f32], shape: [usize; 3]) -> Result<()> {
    if voxels.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    let position = voxels.iter().position(|v| !v.is_finite()).unwrap_or(0);
    let [_, ny, nx] = shape;
    Err(Error::NonFiniteVolume {
        index: [position / (ny * nx), position / nx % ny, position % nx],
        value: voxels[position],
    })
}

/// Rejects projections whose shape is not `geometry`'s or that hold NaN or infinities
/// (naming the first one).
pub(crate) fn check_projections(
    values: &[f32],
    shape: &[usize],
    geometry: &ProjectionGeometry,
) -> Result<()> {
    if shape != geometry.shape() {
        return Err(Error::ShapeMismatch {
            what: "the projections",
            expected: geometry.shape().to_vec(),
            got: shape.to_vec(),
        });
    }
    if let Some(position) = values.iter().position(|v| !v.is_finite()) {
        let [_, rows, cols] = geometry.shape();
        return Err(Error::InvalidParameter {
            name: "projections",
            reason: format!(
                "non-finite value {} at [view, row, col] = [{}, {}, {}]",
                values[position],
                position / (rows * cols),
                position / cols % rows,
                position % cols
            ),
        });
    }
    Ok(())
}
