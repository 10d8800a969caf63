//! [`CpuExecutor`]: the rayon backend (`crate::backend::cpu`) behind the [`Executor`]
//! interface.

use super::{BackwardTask, Executor, FdkTask, ForwardTask, Output};
use crate::alloc::zeroed;
use crate::backend::cpu;
use crate::error::Result;

/// All cores of this machine, through rayon's global pool.
#[derive(Debug, Default)]
pub(crate) struct CpuExecutor;

impl Executor for CpuExecutor {
    fn forward(&self, task: &ForwardTask<'_>, output: Output, out: &mut [f32]) -> Result<()> {
        let grid = task.volume_geometry.slab_params(task.slices.clone());
        let views = task.geometry.view_params(task.volume_geometry);
        let detector = task.geometry.detector_params();
        let watch = cpu::Watch {
            view_done: task.view_done,
            stop: task.cancel.flag(),
        };
        match output {
            Output::Store => {
                cpu::forward(
                    task.voxels,
                    &grid,
                    &views,
                    &detector,
                    task.method,
                    out,
                    &watch,
                );
            }
            Output::Add => {
                let mut part = zeroed(out.len(), "a slab's part of the projections")?;
                cpu::forward(
                    task.voxels,
                    &grid,
                    &views,
                    &detector,
                    task.method,
                    &mut part,
                    &watch,
                );
                out.iter_mut().zip(&part).for_each(|(o, p)| *o += p);
            }
        }
        task.cancel.check()
    }

    fn backward(&self, task: &BackwardTask<'_>, out: &mut [f32]) -> Result<()> {
        out.fill(0.0);
        cpu::backward(
            task.projections,
            &task.volume_geometry.slab_params(task.slices.clone()),
            &task.geometry.view_params(task.volume_geometry),
            &task.geometry.detector_params(),
            task.method,
            out,
            task.cancel.flag(),
        )?;
        task.cancel.check()
    }

    fn fdk_backproject(&self, task: &FdkTask<'_>, out: &mut [f32]) -> Result<()> {
        out.fill(0.0);
        cpu::fdk_backproject(task, out);
        task.cancel.check()
    }
}
