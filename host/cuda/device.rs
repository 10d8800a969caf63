//! [`CudaBackend`]: one GPU's context, module and stream, device allocation that checks
//! free memory first, and the forward-projection launches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cust::context::{Context, CurrentContext};
use cust::device::{Device, DeviceAttribute};
use cust::error::CudaError;
use cust::event::{Event, EventFlags};
use cust::function::{BlockSize, GridSize};
use cust::memory::{CopyDestination, DeviceBuffer, DeviceCopy, DevicePointer};
use cust::module::Module;
use cust::stream::{Stream, StreamFlags};
use ndarray::{Array3, ArrayBase, Data, Ix3};
use xray_kernels::{names, DetectorParams, Method, ViewParams};

use super::buffers::{DeviceProjections, DeviceVolume};
use super::PTX;
use crate::alloc::zeroed;
use crate::error::{Error, Result};
use crate::geometry::{ProjectionGeometry, VolumeGeometry};
use crate::projector::{check_finite, check_projections};

/// Threads per block: 32 detector columns (one warp along a detector row, whose rays
/// cross neighbouring voxels) by 8 rows.
pub(super) const BLOCK: (u32, u32) = (32, 8);

/// Most views per launch: CUDA's limit on the grid's z dimension.
const MAX_VIEWS_PER_LAUNCH: usize = 65_535;

/// Device memory left free when sizing batches of views, for the driver and for other
/// users of the GPU.
pub(super) const FREE_MEMORY_MARGIN: usize = 64 << 20;

/// A PTX entry point and which of its arrays is projection-shaped.
#[derive(Clone, Copy)]
struct Kernel {
    name: &'static str,
    /// Forward kernels write projections; backprojection kernels read them.
    output_is_projections: bool,
}

impl Kernel {
    fn forward(method: Method) -> Kernel {
        Kernel {
            name: match method {
                Method::Siddon => names::FORWARD_SIDDON,
                Method::Joseph => names::FORWARD_JOSEPH,
            },
            output_is_projections: true,
        }
    }

    fn backward(method: Method) -> Kernel {
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
/// `Arc`); every method may be called from any thread.
pub struct CudaBackend {
    // Field order is drop order: the module and stream go before the context.
    pub(super) module: Module,
    pub(super) stream: Stream,
    ordinal: u32,
    description: String,
    context: Context,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("ordinal", &self.ordinal)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        // The module and stream are destroyed in the context that made them.
        let _ = self.activate();
    }
}

/// Outcome of opening each device, kept for the life of the process: a driver that is
/// missing stays missing, and the reason is reported once, not probed per call.
type Opened = Result<Arc<CudaBackend>, String>;

fn opened_devices() -> &'static Mutex<HashMap<u32, Opened>> {
    static OPENED: OnceLock<Mutex<HashMap<u32, Opened>>> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

/// Wraps a driver error with what was being done.
pub(super) fn cuda_error(action: &'static str) -> impl FnOnce(CudaError) -> Error {
    move |error| Error::Cuda {
        action: action.to_string(),
        reason: error.to_string(),
    }
}

impl CudaBackend {
    /// The backend on device `ordinal` (0 is the first GPU), opened on first use and
    /// shared afterwards.
    ///
    /// # Errors
    /// [`Error::CudaUnavailable`] with the reason: no driver, no such device, context
    /// creation failed, or the driver rejected the kernels' PTX. The outcome is cached,
    /// so a failure is probed (and logged, at `warn`) once per process.
    pub fn on_device(ordinal: u32) -> Result<Arc<CudaBackend>> {
        let mut opened = opened_devices()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outcome = opened.entry(ordinal).or_insert_with(|| {
            let outcome = CudaBackend::open(ordinal).map(Arc::new);
            if let Err(reason) = &outcome {
                log::warn!("CUDA device {ordinal} is unavailable: {reason}");
            }
            outcome
        });
        outcome
            .clone()
            .map_err(|reason| Error::CudaUnavailable { reason })
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
        let module = Module::from_ptx(PTX, &[])
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
            module,
            stream,
            ordinal,
            description: format!(
                "{name} (sm_{major}{minor}, {:.1} GiB), device {ordinal} of {count}",
                memory as f64 / (1u64 << 30) as f64
            ),
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

    /// Free and total device memory in bytes.
    ///
    /// # Errors
    /// [`Error::Cuda`] if the driver cannot tell.
    pub fn memory_info(&self) -> Result<(usize, usize)> {
        self.activate()?;
        cust::memory::mem_get_info().map_err(cuda_error("querying free GPU memory"))
    }

    /// Makes this backend's context current on the calling thread (CUDA contexts are
    /// per thread, and callers may come from any thread).
    pub(super) fn activate(&self) -> Result<()> {
        CurrentContext::set_current(&self.context)
            .map_err(cuda_error("making the CUDA context current"))
    }

    /// A zeroed device buffer of `len` elements, after checking that it fits in the free
    /// memory (so that an impossible request is a clear error, not a driver failure).
    pub(super) fn allocate<T: DeviceCopy + bytemuck::Zeroable>(
        &self,
        len: usize,
        what: &'static str,
    ) -> Result<DeviceBuffer<T>> {
        self.activate()?;
        let bytes = len as u128 * std::mem::size_of::<T>() as u128;
        let (free, _) =
            cust::memory::mem_get_info().map_err(cuda_error("querying free GPU memory"))?;
        if bytes > free as u128 {
            return Err(Error::DeviceOutOfMemory {
                what,
                bytes,
                free: free as u128,
            });
        }
        DeviceBuffer::zeroed(len.max(1)).map_err(|error| match error {
            CudaError::OutOfMemory => Error::DeviceOutOfMemory {
                what,
                bytes,
                free: free as u128,
            },
            other => cuda_error("allocating GPU memory")(other),
        })
    }

    /// Uploads `volume` (`[nz, ny, nx]`, laid out as `geometry` says) to the GPU, where it
    /// stays until the returned [`DeviceVolume`] is dropped.
    ///
    /// The volume is validated here, once: shape, and no NaN or infinity.
    ///
    /// # Errors
    /// [`Error::Geometry`], [`Error::ShapeMismatch`], [`Error::NonFiniteVolume`],
    /// [`Error::DeviceOutOfMemory`], [`Error::Cuda`].
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
        let mut buffer = self.allocate::<f32>(voxels.len(), "the volume")?;
        buffer
            .copy_from(voxels)
            .map_err(cuda_error("copying the volume to the GPU"))?;
        let grid = geometry.grid_params();
        let grid_buffer = DeviceBuffer::from_slice(bytemuck::bytes_of(&grid))
            .map_err(cuda_error("copying the grid record to the GPU"))?;
        Ok(DeviceVolume::new(
            buffer,
            grid_buffer,
            geometry.clone(),
            Arc::clone(self),
        ))
    }

    /// A zeroed device buffer for the projections of `geometry` (`[views, rows, cols]`),
    /// to be filled by [`CudaBackend::forward_into`].
    ///
    /// # Errors
    /// [`Error::Geometry`], [`Error::DeviceOutOfMemory`], [`Error::Cuda`].
    pub fn allocate_projections(
        self: &Arc<Self>,
        geometry: &ProjectionGeometry,
    ) -> Result<DeviceProjections> {
        geometry.validate()?;
        let data = self.allocate::<f32>(geometry.ray_count()?, "the projections")?;
        let views = self.allocate::<u8>(
            geometry.views.len() * std::mem::size_of::<ViewParams>(),
            "the view records",
        )?;
        Ok(DeviceProjections::new(
            data,
            views,
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
    /// [`Error::Geometry`]; [`Error::ShapeMismatch`] if `out` has another shape;
    /// [`Error::InvalidParameter`] if the buffers belong to another device;
    /// [`Error::Cuda`] if the copy, the launch or the kernel fails.
    pub fn forward_into(
        &self,
        volume: &DeviceVolume,
        geometry: &ProjectionGeometry,
        method: Method,
        out: &mut DeviceProjections,
    ) -> Result<Duration> {
        geometry.validate()?;
        self.check_owner(volume.backend(), "the volume")?;
        self.check_owner(out.backend(), "the projections")?;
        check_projection_shape(out, geometry)?;
        self.activate()?;
        let views = geometry.view_params(volume.geometry());
        let (views_buffer, data) = out.buffers_mut();
        let record_bytes = bytemuck::cast_slice::<ViewParams, u8>(&views);
        views_buffer
            .index(..record_bytes.len())
            .copy_from(record_bytes)
            .map_err(cuda_error("copying the view records to the GPU"))?;
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
    /// [`Error::Geometry`], [`Error::DeviceOutOfMemory`], [`Error::Cuda`].
    pub fn allocate_volume(self: &Arc<Self>, geometry: &VolumeGeometry) -> Result<DeviceVolume> {
        geometry.validate()?;
        let voxels = self.allocate::<f32>(geometry.voxel_count()?, "the volume")?;
        let grid = geometry.grid_params();
        let grid_buffer = DeviceBuffer::from_slice(bytemuck::bytes_of(&grid))
            .map_err(cuda_error("copying the grid record to the GPU"))?;
        Ok(DeviceVolume::new(
            voxels,
            grid_buffer,
            geometry.clone(),
            Arc::clone(self),
        ))
    }

    /// Uploads projections `[views, rows, cols]` of `geometry` (for backprojection),
    /// after checking their shape and that every value is finite.
    ///
    /// # Errors
    /// [`Error::Geometry`], [`Error::ShapeMismatch`], [`Error::InvalidParameter`] for NaN
    /// or infinite values, [`Error::DeviceOutOfMemory`], [`Error::Cuda`].
    pub fn upload_projections<S>(
        self: &Arc<Self>,
        projections: &ArrayBase<S, Ix3>,
        geometry: &ProjectionGeometry,
    ) -> Result<DeviceProjections>
    where
        S: Data<Elem = f32>,
    {
        let contiguous = projections.as_standard_layout();
        let values = contiguous
            .as_slice()
            .expect("as_standard_layout gives a contiguous array");
        check_projections(values, projections.shape(), geometry)?;
        let mut out = self.allocate_projections(geometry)?;
        out.buffers_mut()
            .1
            .index(..values.len())
            .copy_from(values)
            .map_err(cuda_error("copying the projections to the GPU"))?;
        Ok(out)
    }

    /// Backprojects `projections` (of `geometry`) into `out`, overwriting it: the exact
    /// transpose of [`CudaBackend::forward_into`] on `out`'s grid. All views in one
    /// launch; ray-driven with atomic adds, so the last bits may vary between runs.
    /// Returns the kernel's time on the GPU (CUDA events).
    ///
    /// # Errors
    /// [`Error::Geometry`]; [`Error::ShapeMismatch`] if `projections` is not
    /// `geometry.shape()`; [`Error::InvalidParameter`] if a buffer belongs to another
    /// device; [`Error::Cuda`].
    pub fn backward_into(
        &self,
        projections: &DeviceProjections,
        geometry: &ProjectionGeometry,
        method: Method,
        out: &mut DeviceVolume,
    ) -> Result<Duration> {
        geometry.validate()?;
        self.check_owner(projections.backend(), "the projections")?;
        self.check_owner(out.backend(), "the volume")?;
        check_projection_shape(projections, geometry)?;
        self.activate()?;
        let views = geometry.view_params(out.geometry());
        let views_buffer = DeviceBuffer::from_slice(bytemuck::cast_slice::<ViewParams, u8>(&views))
            .map_err(cuda_error("copying the view records to the GPU"))?;
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
    /// as each batch arrives.
    ///
    /// # Errors
    /// [`Error::Geometry`], [`Error::Allocation`] (host), [`Error::DeviceOutOfMemory`]
    /// if not even one view fits, [`Error::Cuda`].
    pub fn forward_to_host(
        &self,
        volume: &DeviceVolume,
        geometry: &ProjectionGeometry,
        method: Method,
        view_done: &(dyn Fn() + Sync),
    ) -> Result<Array3<f32>> {
        geometry.validate()?;
        self.check_owner(volume.backend(), "the volume")?;
        let mut host = zeroed(geometry.ray_count()?, "projections")?;
        let pixels_per_view = geometry.rows * geometry.cols;
        let bytes_per_view = pixels_per_view * 4 + std::mem::size_of::<ViewParams>();
        let (free, _) = self.memory_info()?;
        let fit = free.saturating_sub(FREE_MEMORY_MARGIN) / bytes_per_view;
        let batch = fit.min(geometry.views.len());
        if batch == 0 {
            return Err(Error::DeviceOutOfMemory {
                what: "the projections of one view",
                bytes: bytes_per_view as u128,
                free: free as u128,
            });
        }
        let data = self.allocate::<f32>(batch * pixels_per_view, "the projections")?;
        let views_buffer = self.allocate::<u8>(
            batch * std::mem::size_of::<ViewParams>(),
            "the view records",
        )?;
        let views = geometry.view_params(volume.geometry());
        let detector = geometry.detector_params();
        for (views_batch, host_batch) in views
            .chunks(batch)
            .zip(host.chunks_mut(batch * pixels_per_view))
        {
            let record_bytes = bytemuck::cast_slice::<ViewParams, u8>(views_batch);
            views_buffer
                .index(..record_bytes.len())
                .copy_from(record_bytes)
                .map_err(cuda_error("copying the view records to the GPU"))?;
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
            data.index(..host_batch.len())
                .copy_to(host_batch)
                .map_err(cuda_error("copying the projections from the GPU"))?;
            views_batch.iter().for_each(|_| view_done());
        }
        Ok(Array3::from_shape_vec(geometry.shape(), host)
            .expect("the buffer has views * rows * cols elements"))
    }

    /// Launches `kernel` for `n_views` views (several launches only beyond CUDA's grid
    /// limit of 65535 views), without waiting. Every kernel takes the same arguments:
    /// an input array, the grid record, the view records, four scalars, an output array.
    /// The projection-shaped one of the two advances by one view's pixels per view.
    ///
    /// # Safety
    /// `views` must point to `n_views` [`ViewParams`]; `input` and `output` to arrays on
    /// this device of the sizes `kernel` expects (see `xray_kernels::entry`), not
    /// overlapping; nothing else may write them until the stream is synchronised.
    #[allow(clippy::too_many_arguments)]
    unsafe fn launch(
        &self,
        kernel: Kernel,
        input: DevicePointer<f32>,
        grid_record: DevicePointer<u8>,
        views: DevicePointer<u8>,
        n_views: usize,
        detector: &DetectorParams,
        output: DevicePointer<f32>,
    ) -> Result<()> {
        let function = self
            .module
            .get_function(kernel.name)
            .map_err(cuda_error("finding the projection kernel"))?;
        let (rows, cols) = (detector.rows, detector.cols);
        let block = BlockSize::xy(BLOCK.0, BLOCK.1);
        let pixels_per_view = rows as usize * cols as usize;
        let record = std::mem::size_of::<ViewParams>();
        let stream = &self.stream;
        let mut first = 0;
        while first < n_views {
            let count = (n_views - first).min(MAX_VIEWS_PER_LAUNCH);
            let grid = GridSize::xyz(cols.div_ceil(BLOCK.0), rows.div_ceil(BLOCK.1), count as u32);
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
            .map_err(cuda_error("launching the projection kernel"))?;
            first += count;
        }
        Ok(())
    }

    /// Runs `launch` (which enqueues kernels on the stream) between two CUDA events,
    /// waits for it, and returns the GPU time between the events.
    fn timed(&self, launch: impl FnOnce() -> Result<()>) -> Result<Duration> {
        let start = self.event()?;
        let stop = self.event()?;
        start
            .record(&self.stream)
            .map_err(cuda_error("recording a CUDA event"))?;
        launch()?;
        stop.record(&self.stream)
            .map_err(cuda_error("recording a CUDA event"))?;
        self.synchronize()?;
        stop.elapsed(&start)
            .map_err(cuda_error("reading the kernel time"))
    }

    pub(super) fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(cuda_error("running the projection kernel"))
    }

    fn event(&self) -> Result<Event> {
        Event::new(EventFlags::DEFAULT).map_err(cuda_error("creating a CUDA event"))
    }

    fn check_owner(&self, owner: &CudaBackend, what: &'static str) -> Result<()> {
        if std::ptr::eq(owner, self) {
            Ok(())
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
