//! SIRT and CGLS resident on one GPU: [`GpuWorkspace`], the `Workspace` of
//! `crate::recon::iterative` on device buffers. `A` and `A^T` are the resident
//! projection launches; the element steps are the vector kernels of
//! `xray_kernels::vector` (the same operations as the CPU loops); dot products are the
//! kernels' fixed partial sums, added in order in f64 here, so they are the same on
//! every run.

use std::sync::Arc;

use cust::function::{BlockSize, GridSize};
use cust::memory::CopyDestination;
use ndarray::Array3;
use xray_kernels::vector::DOT_PARTIALS;
use xray_kernels::{names, Method, ViewParams};

use super::buffers::DeviceArray;
use super::device::FREE_MEMORY_MARGIN;
use super::{CudaBackend, DeviceProjections, DeviceVolume};
use crate::error::{Error, Result};
use crate::geometry::{ProjectionGeometry, VolumeGeometry};
use crate::projector::Projector;
use crate::recon::iterative::{Solver, System, Workspace};

/// Threads per block of the vector kernels.
const VECTOR_THREADS: u32 = 256;

/// Most blocks of an element-wise launch (a grid-stride loop covers the rest).
const VECTOR_BLOCKS: usize = 4096;

/// The resident workspace for `system` on its projector's GPU, or `None` when the
/// projector is not on exactly one GPU or the vectors do not fit in its free memory
/// (the iterations then run on the host, through the projector).
///
/// # Errors
/// The GPU's errors while uploading `b`.
pub(crate) fn resident_workspace<'a>(
    system: &System<'a>,
    b: &Array3<f32>,
    solver: Solver,
) -> Result<Option<GpuWorkspace<'a>>> {
    let projector = system.projector;
    let (Some(gpu), [_]) = (projector.cuda_backend(), projector.devices().as_slice()) else {
        return Ok(None);
    };
    let gpu = gpu.healthy()?;
    crate::cuda::check_launchable(system.geometry)?;
    let voxels = system.volume_geometry.voxel_count()? as u128;
    let rays = system.geometry.ray_count()? as u128;
    let records = (system.geometry.views.len() * std::mem::size_of::<ViewParams>()) as u128;
    // Both solvers hold three volumes and three projection arrays (SIRT a fourth of each
    // for a moment, the ones it projects to get its weights).
    let arrays: u128 = match solver {
        Solver::Sirt => 4,
        Solver::Cgls => 3,
    };
    let bytes = arrays * (voxels * 4 + rays * 4 + records + 64) + DOT_PARTIALS as u128 * 4;
    let (free, _) = gpu.memory_info()?;
    let budget = free.saturating_sub(FREE_MEMORY_MARGIN) as u128;
    let budget = projector
        .device_memory_limit()
        .map_or(budget, |limit| budget.min(limit as u128));
    if bytes > budget {
        log::info!("SIRT/CGLS on host arrays: their {bytes} bytes do not fit on the GPU");
        return Ok(None);
    }
    let measured = match gpu.upload_projections(b, system.geometry) {
        Ok(measured) => measured,
        Err(Error::DeviceOutOfMemory { .. }) => return Ok(None),
        Err(other) => return Err(other),
    };
    let partials = match gpu.allocate_partials() {
        Ok(partials) => partials,
        Err(Error::DeviceOutOfMemory { .. }) => return Ok(None),
        Err(other) => return Err(other),
    };
    Ok(Some(GpuWorkspace {
        gpu,
        projector,
        geometry: system.geometry,
        volume_geometry: system.volume_geometry,
        method: system.method,
        measured,
        partials,
    }))
}

/// SIRT's and CGLS's vectors on one GPU (see the module docs).
pub(crate) struct GpuWorkspace<'a> {
    gpu: Arc<CudaBackend>,
    projector: &'a Projector,
    geometry: &'a ProjectionGeometry,
    volume_geometry: &'a VolumeGeometry,
    method: Method,
    /// `b`.
    measured: DeviceProjections,
    /// The dot products' partial sums, `[1, 1, DOT_PARTIALS]`.
    partials: DeviceProjections,
}

impl CudaBackend {
    /// A buffer for [`DOT_PARTIALS`] partial sums.
    fn allocate_partials(self: &Arc<Self>) -> Result<DeviceProjections> {
        let data = self.allocate::<f32>(DOT_PARTIALS, "the partial sums of dot products")?;
        let records = self.allocate::<u8>(1, "an empty view record")?;
        Ok(DeviceProjections::new(
            data.into_inner(),
            records.into_inner(),
            [1, 1, DOT_PARTIALS],
            Arc::clone(self),
        ))
    }
}

/// The launch grid of an element-wise kernel over `n` elements.
fn element_grid(n: usize) -> GridSize {
    let blocks = n.div_ceil(VECTOR_THREADS as usize).clamp(1, VECTOR_BLOCKS);
    GridSize::x(blocks as u32)
}

/// Launches the vector kernel `$name` over `$n` elements with `$args` and waits for it.
macro_rules! vector_launch {
    ($gpu:expr, $name:expr, $grid:expr, ($($arg:expr),* $(,)?)) => {{
        let gpu: &CudaBackend = $gpu;
        let _calls = gpu.enter()?;
        let function = gpu
            .module
            .get_function($name)
            .map_err(gpu.cuda_error("finding a vector kernel"))?;
        let stream = &gpu.stream;
        let block = BlockSize::x(VECTOR_THREADS);
        // SAFETY: the arguments match the kernel's signature in `xray_kernels::entry`;
        // every array holds the `n` elements passed (checked by `same_length`), written
        // arrays are distinct from read ones, and all live on this device.
        unsafe {
            cust::launch!(function<<<$grid, block, 0, stream>>>($($arg),*))
                .map_err(gpu.cuda_error("launching a vector kernel"))?;
        }
        gpu.synchronize()
    }};
}

impl GpuWorkspace<'_> {
    /// The element count shared by `arrays`, after checking that they are this GPU's.
    fn same_length(&self, arrays: &[&dyn DeviceArray]) -> Result<u64> {
        let n = arrays[0].element_count();
        for array in arrays {
            if !std::ptr::eq(array.owner(), self.gpu.as_ref()) || array.element_count() != n {
                return Err(Error::InvalidParameter {
                    name: "work vectors",
                    reason: "of another GPU or length".into(),
                });
            }
        }
        Ok(n as u64)
    }

    fn fill(&self, value: f32, x: &dyn DeviceArray) -> Result<()> {
        let n = self.same_length(&[x])?;
        vector_launch!(
            &self.gpu,
            names::VEC_FILL,
            element_grid(n as usize),
            (n, value, x.device_ptr())
        )
    }

    fn axpy(&self, alpha: f32, x: &dyn DeviceArray, y: &dyn DeviceArray) -> Result<()> {
        let n = self.same_length(&[x, y])?;
        vector_launch!(
            &self.gpu,
            names::VEC_AXPY,
            element_grid(n as usize),
            (n, alpha, x.device_ptr(), y.device_ptr())
        )
    }

    fn weights(&self, s: &dyn DeviceArray, scale: f32) -> Result<()> {
        let n = self.same_length(&[s])?;
        vector_launch!(
            &self.gpu,
            names::VEC_WEIGHTS,
            element_grid(n as usize),
            (n, scale, s.device_ptr())
        )
    }

    /// `<a, a>`: the kernel's partial sums, added in order in f64.
    fn norm2(&self, a: &dyn DeviceArray) -> Result<f64> {
        let n = self.same_length(&[a])?;
        let grid = GridSize::x((DOT_PARTIALS / VECTOR_THREADS as usize) as u32);
        vector_launch!(
            &self.gpu,
            names::VEC_DOT_PARTIALS,
            grid,
            (
                n,
                a.device_ptr(),
                a.device_ptr(),
                self.partials.device_ptr()
            )
        )?;
        let mut partials = vec![0.0f32; DOT_PARTIALS];
        {
            let _calls = self.gpu.enter()?;
            self.partials
                .device_buffer()
                .copy_to(&mut partials[..])
                .map_err(self.gpu.cuda_error("copying partial sums from the GPU"))?;
        }
        Ok(partials.iter().map(|&p| p as f64).sum())
    }
}

impl Workspace for GpuWorkspace<'_> {
    type Volume = DeviceVolume;
    type Projections = DeviceProjections;

    fn volume(&self, value: f32) -> Result<DeviceVolume> {
        let volume = self.gpu.allocate_volume(self.volume_geometry)?;
        if value != 0.0 {
            self.fill(value, &volume)?;
        }
        Ok(volume)
    }

    fn projections(&self, value: f32) -> Result<DeviceProjections> {
        let projections = self.gpu.allocate_projections(self.geometry)?;
        if value != 0.0 {
            self.fill(value, &projections)?;
        }
        Ok(projections)
    }

    fn measured(&self) -> Result<DeviceProjections> {
        // 0 + 1 b is b, exactly.
        let copy = self.projections(0.0)?;
        self.axpy(1.0, &self.measured, &copy)?;
        Ok(copy)
    }

    fn copy_volume(&self, v: &DeviceVolume) -> Result<DeviceVolume> {
        let copy = self.volume(0.0)?;
        self.axpy(1.0, v, &copy)?;
        Ok(copy)
    }

    fn forward(&self, x: &DeviceVolume, out: &mut DeviceProjections) -> Result<()> {
        self.gpu
            .forward_into(x, self.geometry, self.method, out)
            .map(drop)
    }

    fn backward(&self, y: &DeviceProjections, out: &mut DeviceVolume) -> Result<()> {
        self.gpu
            .backward_into(y, self.geometry, self.method, out)
            .map(drop)
    }

    fn residual(&self, r: &mut DeviceProjections) -> Result<()> {
        let n = self.same_length(&[&self.measured, &*r])?;
        vector_launch!(
            &self.gpu,
            names::VEC_RESIDUAL,
            element_grid(n as usize),
            (n, self.measured.device_ptr(), r.device_ptr())
        )
    }

    fn mul(&self, w: &DeviceProjections, r: &mut DeviceProjections) -> Result<()> {
        let n = self.same_length(&[w, &*r])?;
        vector_launch!(
            &self.gpu,
            names::VEC_MUL,
            element_grid(n as usize),
            (n, w.device_ptr(), r.device_ptr())
        )
    }

    fn projection_weights(&self, s: &mut DeviceProjections, scale: f32) -> Result<()> {
        self.weights(&*s, scale)
    }

    fn volume_weights(&self, s: &mut DeviceVolume, scale: f32) -> Result<()> {
        self.weights(&*s, scale)
    }

    fn sirt_step(
        &self,
        c: &DeviceVolume,
        u: &DeviceVolume,
        nonnegative: bool,
        x: &mut DeviceVolume,
    ) -> Result<()> {
        let n = self.same_length(&[c, u, &*x])?;
        vector_launch!(
            &self.gpu,
            names::VEC_SIRT_STEP,
            element_grid(n as usize),
            (
                n,
                c.device_ptr(),
                u.device_ptr(),
                u32::from(nonnegative),
                x.device_ptr()
            )
        )
    }

    fn axpy_volume(&self, alpha: f32, x: &DeviceVolume, y: &mut DeviceVolume) -> Result<()> {
        self.axpy(alpha, x, &*y)
    }

    fn axpy_projections(
        &self,
        alpha: f32,
        x: &DeviceProjections,
        y: &mut DeviceProjections,
    ) -> Result<()> {
        self.axpy(alpha, x, &*y)
    }

    fn xpby_volume(&self, x: &DeviceVolume, beta: f32, y: &mut DeviceVolume) -> Result<()> {
        let n = self.same_length(&[x, &*y])?;
        vector_launch!(
            &self.gpu,
            names::VEC_XPBY,
            element_grid(n as usize),
            (n, x.device_ptr(), beta, y.device_ptr())
        )
    }

    fn clip(&self, x: &mut DeviceVolume) -> Result<()> {
        let n = self.same_length(&[&*x])?;
        vector_launch!(
            &self.gpu,
            names::VEC_CLIP,
            element_grid(n as usize),
            (n, x.device_ptr())
        )
    }

    fn volume_norm2(&self, a: &DeviceVolume) -> Result<f64> {
        self.norm2(a)
    }

    fn projections_norm2(&self, a: &DeviceProjections) -> Result<f64> {
        self.norm2(a)
    }

    fn check_cancelled(&self) -> Result<()> {
        self.projector.check_cancelled()
    }

    fn volume_to_host(&self, x: DeviceVolume) -> Result<Array3<f32>> {
        x.to_host()
    }
}
