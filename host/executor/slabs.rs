//! A volume split into slabs along z, run slab by slab on one executor: how a device
//! works on a volume larger than its memory (the slab size comes from
//! [`super::plan::plan`]).
//!
//! Every slab traces the whole grid's rays (the kernels' `GridParams` says which slices
//! a buffer holds), so:
//!
//! * Forward: Siddon's per-voxel lengths are the whole volume's to a rounding of the ray
//!   parameter (a slab's walk starts its crossings afresh at its entry), and Joseph's
//!   samples the whole volume's with the other slabs' taps zeroed (to a rounding of the
//!   first sample's position), which splits a sample between two slabs by linearity.
//!   Each ray's line integral is the sum of its parts, added to the output in slab
//!   order (so the result does not depend on timing); the bound and its test are in
//!   `host/executor/tests.rs` (1e-5 of the largest value).
//! * Backprojection and FDK: each slab is its own part of the output, computed alone
//!   (FDK bit for bit, the backprojection within 4e-5 of the largest value).

use std::ops::Range;

use super::{BackwardTask, Executor, FdkTask, ForwardTask, Output};
use crate::error::Result;

/// Forward-projects `task` slab by slab (`slabs`: consecutive ranges covering
/// `task.slices`) on `inner`: the first slab as `output` says, the others added.
/// `view_done` is called during the last slab only.
pub(crate) fn forward<E: Executor + ?Sized>(
    inner: &E,
    task: &ForwardTask<'_>,
    output: Output,
    slabs: &[Range<usize>],
    out: &mut [f32],
) -> Result<()> {
    let slice = slice_len(task.volume_geometry.shape);
    let first = task.slices.start;
    for (index, slab) in slabs.iter().enumerate() {
        let last = index + 1 == slabs.len();
        let part = ForwardTask {
            voxels: &task.voxels[(slab.start - first) * slice..(slab.end - first) * slice],
            slices: slab.clone(),
            view_done: if last { task.view_done } else { &|| {} },
            ..task.clone()
        };
        let mode = if index == 0 { output } else { Output::Add };
        inner.forward(&part, mode, out)?;
    }
    Ok(())
}

/// Backprojects `task` onto each slab of `slabs` (covering `task.slices`) in turn on
/// `inner`, each into its part of `out`.
pub(crate) fn backward<E: Executor + ?Sized>(
    inner: &E,
    task: &BackwardTask<'_>,
    slabs: &[Range<usize>],
    out: &mut [f32],
) -> Result<()> {
    let slice = slice_len(task.volume_geometry.shape);
    let first = task.slices.start;
    for slab in slabs {
        let part = BackwardTask {
            slices: slab.clone(),
            ..task.clone()
        };
        inner.backward(
            &part,
            &mut out[(slab.start - first) * slice..(slab.end - first) * slice],
        )?;
    }
    Ok(())
}

/// FDK's backprojection of `task` slab by slab on `inner`; `slabs` cover
/// `task.slices`, and `out` holds those slices.
pub(crate) fn fdk_backproject<E: Executor + ?Sized>(
    inner: &E,
    task: &FdkTask<'_>,
    slabs: &[Range<usize>],
    out: &mut [f32],
) -> Result<()> {
    let slice = task.slice_len();
    let first = task.slices.start;
    for slab in slabs {
        let part = &mut out[(slab.start - first) * slice..(slab.end - first) * slice];
        inner.fdk_backproject(&task.on_slices(slab.clone()), part)?;
    }
    Ok(())
}

/// Voxels per slice of a grid of `shape` (`[nz, ny, nx]`).
fn slice_len(shape: [usize; 3]) -> usize {
    shape[1] * shape[2]
}
