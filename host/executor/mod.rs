//! How a call reaches a backend: one [`Executor`] interface that every backend
//! implements, so that [`crate::Projector`] validates its inputs once and hands the
//! work on without knowing where it runs.
//!
//! ```text
//! Projector::forward / backward / (FDK's) backproject_filtered
//!   validates geometry, shapes, NaN          (crate::projector)
//!   -> Arc<dyn Executor>
//!        CpuExecutor                          (executor::cpu: rayon, AVX-512 / AVX2 lanes)
//!        CudaExecutor, one GPU                (cuda::executor: plans slabs and
//!            \-> slabs::*  when the volume      batches from free memory)
//!                does not fit
//!        Devices, several executors           (executor::devices: views split for
//!                                              forward, slabs for backprojection)
//!   on DeviceOutOfMemory with Backend::Auto -> the CpuExecutor
//! ```
//!
//! Executors trust their tasks: the projector has checked them. Each call overwrites
//! its output (a forward task may add to it instead, see [`Output`]).

// Slabs, plans and several devices are for GPUs: a CPU build uses them in tests only.
pub(crate) mod cpu;
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) mod devices;
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) mod plan;
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) mod slabs;

use std::fmt::Debug;
use std::ops::Range;

use xray_kernels::{Method, VoxelView};

use crate::cancel::Cancel;
use crate::error::Result;
use crate::geometry::{ProjectionGeometry, VolumeGeometry};

/// Whether a forward projection overwrites its output or adds to it (the slabs of a
/// split volume add their parts of each line integral).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// `out = A x`.
    Store,
    /// `out += A x`.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Add,
}

/// A forward projection of the slices `slices` of a volume on `volume_geometry` (all of
/// them, or one slab), for every view of `geometry`.
#[derive(Clone)]
pub(crate) struct ForwardTask<'a> {
    /// The voxels of those slices, `[slices, ny, nx]`, contiguous and finite.
    pub voxels: &'a [f32],
    /// The whole grid: the rays are traced through it.
    pub volume_geometry: &'a VolumeGeometry,
    /// The slices `voxels` holds.
    pub slices: Range<usize>,
    /// The views.
    pub geometry: &'a ProjectionGeometry,
    /// The ray tracer.
    pub method: Method,
    /// Called once per finished view.
    pub view_done: &'a (dyn Fn() + Sync),
    /// Stops the work once set.
    pub cancel: &'a Cancel,
}

/// A backprojection (the exact transpose of [`ForwardTask`]'s projection) onto the
/// slices `slices` of a grid.
#[derive(Clone)]
pub(crate) struct BackwardTask<'a> {
    /// The projections `[views, rows, cols]` of `geometry`, finite.
    pub projections: &'a [f32],
    /// The views.
    pub geometry: &'a ProjectionGeometry,
    /// The whole grid: the rays are traced through it.
    pub volume_geometry: &'a VolumeGeometry,
    /// The slices to compute (the output holds these only).
    pub slices: Range<usize>,
    /// The ray tracer whose transpose to apply.
    pub method: Method,
    /// Stops the work once set.
    pub cancel: &'a Cancel,
}

/// FDK's voxel-driven backprojection of weighted, filtered projections onto the
/// slices `slices` of a grid of `shape`.
#[derive(Clone)]
pub(crate) struct FdkTask<'a> {
    /// The filtered projections, `[views.len(), rows, cols]`.
    pub filtered: &'a [f32],
    /// Detector rows.
    pub rows: usize,
    /// Detector columns.
    pub cols: usize,
    /// One projection matrix per view, for the whole grid.
    pub views: &'a [VoxelView],
    /// The whole grid's `[nz, ny, nx]`.
    pub shape: [usize; 3],
    /// The slices to compute (the output holds these only).
    pub slices: Range<usize>,
    /// Stops the work once set.
    pub cancel: &'a Cancel,
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
impl FdkTask<'_> {
    /// Voxels of one slice.
    pub(crate) fn slice_len(&self) -> usize {
        self.shape[1] * self.shape[2]
    }

    /// The same task on `slices` (within this one's).
    pub(crate) fn on_slices(&self, slices: Range<usize>) -> Self {
        FdkTask {
            slices,
            ..self.clone()
        }
    }
}

/// A backend: where projections and backprojections run. See the module docs.
pub(crate) trait Executor: Send + Sync + Debug {
    /// Forward-projects `task` into `out` (`[views, rows, cols]`), as `output` says: the
    /// line integrals through the task's slices.
    fn forward(&self, task: &ForwardTask<'_>, output: Output, out: &mut [f32]) -> Result<()>;

    /// Backprojects `task` into `out` (`[slices, ny, nx]` of its grid), overwriting it.
    fn backward(&self, task: &BackwardTask<'_>, out: &mut [f32]) -> Result<()>;

    /// FDK's backprojection of `task` into `out` (its slices), overwriting it.
    fn fdk_backproject(&self, task: &FdkTask<'_>, out: &mut [f32]) -> Result<()>;
}

#[cfg(test)]
mod tests;
