//! [`CudaExecutor`]: one GPU behind the [`Executor`] interface. Each call plans, from
//! the free device memory, how to split its work ([`plan`]): the whole volume with all
//! views when they fit, else batches of views, else slabs of the volume along z
//! ([`slabs`]), each slab a call of its own.

use std::mem::size_of;
use std::sync::Arc;

use cust::memory::CopyDestination;
use xray_kernels::{GridParams, ViewParams};

use super::device::{CudaBackend, Kernel, FREE_MEMORY_MARGIN};
use super::DeviceVolume;
use crate::cancel::Cancel;
use crate::error::Result;
use crate::executor::plan::{plan, Footprint, Plan};
use crate::executor::{slabs, BackwardTask, Executor, FdkTask, ForwardTask, Output};
use crate::geometry::ProjectionGeometry;

/// How a batched launch loop runs: views per launch, what it does with the output,
/// whom it tells.
pub(super) struct Batches<'a> {
    /// Most views per launch.
    pub views: usize,
    /// Store into the output or add to it.
    pub output: Output,
    /// Called once per view as its batch arrives.
    pub view_done: &'a (dyn Fn() + Sync),
    /// Checked between batches.
    pub cancel: Option<&'a Cancel>,
}

/// One GPU (see the module docs).
#[derive(Debug)]
pub(crate) struct CudaExecutor {
    gpu: Arc<CudaBackend>,
    /// Most device memory a call may plan for (`Projector::with_device_memory`).
    limit: Option<u64>,
}

impl CudaExecutor {
    /// The executor on `gpu`, planning for at most `limit` bytes when given.
    pub(crate) fn new(gpu: Arc<CudaBackend>, limit: Option<u64>) -> CudaExecutor {
        CudaExecutor { gpu, limit }
    }

    /// What a call may plan for: the free device memory less [`FREE_MEMORY_MARGIN`],
    /// at most the limit.
    fn budget(&self, gpu: &CudaBackend) -> Result<u64> {
        let (free, _) = gpu.memory_info()?;
        let budget = free.saturating_sub(FREE_MEMORY_MARGIN) as u64;
        Ok(self.limit.map_or(budget, |limit| budget.min(limit)))
    }

    /// The GPU, reopened if its context faulted since the last call.
    fn gpu(&self) -> Result<Arc<CudaBackend>> {
        self.gpu.healthy()
    }
}

/// The split of a projection or backprojection of `geometry` with `slices` slices of a
/// grid of `shape` that fits in `budget` bytes.
fn plan_rays(
    budget: u64,
    shape: [usize; 3],
    slices: usize,
    geometry: &ProjectionGeometry,
) -> Result<Plan> {
    let [_, ny, nx] = shape;
    let footprint = Footprint {
        slices,
        slice_bytes: (nx * ny * size_of::<f32>()) as u64,
        views: geometry.views.len(),
        view_bytes: (geometry.rows * geometry.cols * size_of::<f32>() + size_of::<ViewParams>())
            as u64,
        fixed_bytes: size_of::<GridParams>() as u64,
    };
    plan(&footprint, budget)
}

/// `plan`'s slabs of the slices `slices`.
fn slabs_of(plan: &Plan, slices: &std::ops::Range<usize>) -> Vec<std::ops::Range<usize>> {
    plan.slabs(slices.len())
        .into_iter()
        .map(|slab| slices.start + slab.start..slices.start + slab.end)
        .collect()
}

impl Executor for CudaExecutor {
    fn forward(&self, task: &ForwardTask<'_>, output: Output, out: &mut [f32]) -> Result<()> {
        let gpu = self.gpu()?;
        let slices = task.slices.clone();
        let plan = plan_rays(
            self.budget(&gpu)?,
            task.volume_geometry.shape,
            slices.len(),
            task.geometry,
        )?;
        if plan.slab_slices < slices.len() {
            return slabs::forward(self, task, output, &slabs_of(&plan, &slices), out);
        }
        let volume = gpu.upload_voxels(task.voxels, task.volume_geometry, slices)?;
        let batches = Batches {
            views: plan.view_batch,
            output,
            view_done: task.view_done,
            cancel: Some(task.cancel),
        };
        gpu.forward_batches(&volume, task.geometry, task.method, &batches, out)?;
        task.cancel.check()
    }

    fn backward(&self, task: &BackwardTask<'_>, out: &mut [f32]) -> Result<()> {
        let gpu = self.gpu()?;
        let slices = task.slices.clone();
        let plan = plan_rays(
            self.budget(&gpu)?,
            task.volume_geometry.shape,
            slices.len(),
            task.geometry,
        )?;
        if plan.slab_slices < slices.len() {
            return slabs::backward(self, task, &slabs_of(&plan, &slices), out);
        }
        let mut volume = gpu.allocate_slab(task.volume_geometry, slices)?;
        gpu.backward_batches(task, plan.view_batch, &mut volume)?;
        task.cancel.check()?;
        volume.copy_to_slice(out)
    }

    fn fdk_backproject(&self, task: &FdkTask<'_>, out: &mut [f32]) -> Result<()> {
        let gpu = self.gpu()?;
        let footprint = Footprint {
            slices: task.slices.len(),
            slice_bytes: (task.slice_len() * size_of::<f32>()) as u64,
            views: task.views.len(),
            view_bytes: (task.rows * task.cols * size_of::<f32>()) as u64,
            fixed_bytes: std::mem::size_of_val(task.views) as u64,
        };
        let plan = plan(&footprint, self.budget(&gpu)?)?;
        if plan.slab_slices < task.slices.len() {
            return slabs::fdk_backproject(self, task, &slabs_of(&plan, &task.slices), out);
        }
        gpu.fdk_backproject(task, plan.view_batch, out)?;
        task.cancel.check()
    }
}

impl CudaBackend {
    /// Backprojects `task`'s projections into `volume` (zeroed, on `task`'s grid),
    /// adding `batch` views per launch.
    fn backward_batches(
        &self,
        task: &BackwardTask<'_>,
        batch: usize,
        volume: &mut DeviceVolume,
    ) -> Result<()> {
        let geometry = task.geometry;
        let views = geometry.view_params(volume.geometry());
        let detector = geometry.detector_params();
        let pixels_per_view = geometry.rows * geometry.cols;
        let batch = batch.clamp(1, views.len().max(1));
        let data = self.allocate::<f32>(batch * pixels_per_view, "the projections")?;
        let views_buffer =
            self.allocate::<u8>(batch * size_of::<ViewParams>(), "the view records")?;
        for (views_batch, values) in views
            .chunks(batch)
            .zip(task.projections.chunks(batch * pixels_per_view))
        {
            task.cancel.check()?;
            let _calls = self.enter()?;
            let record_bytes = bytemuck::cast_slice::<ViewParams, u8>(views_batch);
            views_buffer
                .index(..record_bytes.len())
                .copy_from(record_bytes)
                .map_err(self.cuda_error("copying the view records to the GPU"))?;
            data.index(..values.len())
                .copy_from(values)
                .map_err(self.cuda_error("copying the projections to the GPU"))?;
            // SAFETY: `views_buffer` holds `views_batch.len()` records, `data` as many
            // views' values, `volume` its grid's voxels; all on this device and distinct.
            unsafe {
                self.launch(
                    Kernel::backward(task.method),
                    data.as_device_ptr(),
                    volume.grid_ptr(),
                    views_buffer.as_device_ptr(),
                    views_batch.len(),
                    &detector,
                    volume.voxels_ptr(),
                )?;
            }
            // The next batch overwrites `data`: wait for this launch first.
            self.synchronize()?;
        }
        Ok(())
    }
}
