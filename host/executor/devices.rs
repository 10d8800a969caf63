//! [`Devices`]: several executors (GPUs) working on one call together, each on its own
//! thread.
//!
//! * Forward: the views are split into balanced consecutive ranges, one per device;
//!   each ray is computed exactly as one device would, so the result equals one
//!   device's bit for bit when no device splits the volume into slabs. A device that
//!   must (each plans its own slabs, from its own memory and share of views) gives its
//!   rays within the slab bound of `super::slabs` instead.
//! * Backprojection and FDK: the volume is split into balanced slabs along z, one per
//!   device; each device backprojects every view onto its slab with the whole grid's
//!   rays. No partial volumes are summed, so the result does not depend on timing:
//!   FDK's equals one device's bit for bit, the ray-driven backprojection's within the
//!   slab bound of `super::slabs` (a slab's Siddon walk restarts its crossings, and
//!   Joseph's first sample of a slab is placed afresh, to a rounding).
//!
//! Balanced static ranges, not work stealing: the devices of one node are alike, and
//! each range is one call that plans its own slabs and batches.

use std::sync::Arc;

use super::plan::balanced;
use super::{BackwardTask, Executor, FdkTask, ForwardTask, Output};
use crate::error::Result;

/// Several executors used as one (see the module docs).
#[derive(Debug)]
pub(crate) struct Devices {
    members: Vec<Arc<dyn Executor>>,
}

impl Devices {
    /// The executors in the order their shares of the work go to.
    pub(crate) fn new(members: Vec<Arc<dyn Executor>>) -> Devices {
        Devices { members }
    }
}

/// Runs `work(member, share)` for each member with its share on a thread of its own,
/// and returns the first error in member order.
fn run_all<'a, S: Send>(
    members: &'a [Arc<dyn Executor>],
    shares: Vec<S>,
    work: impl Fn(&'a dyn Executor, S) -> Result<()> + Sync,
) -> Result<()> {
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .iter()
            .zip(shares)
            .map(|(member, share)| scope.spawn(move || work(member.as_ref(), share)))
            .collect();
        let results: Vec<Result<()>> = handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        results.into_iter().collect()
    })
}

impl Executor for Devices {
    fn forward(&self, task: &ForwardTask<'_>, output: Output, out: &mut [f32]) -> Result<()> {
        let geometry = task.geometry;
        let image = geometry.rows * geometry.cols;
        let ranges = balanced(geometry.views.len(), self.members.len());
        let mut rest = out;
        let mut shares = Vec::with_capacity(ranges.len());
        for range in ranges {
            let (part, tail) = rest.split_at_mut(range.len() * image);
            rest = tail;
            shares.push((geometry.view_range(range), part));
        }
        run_all(&self.members, shares, |member, (views, part)| {
            let share = ForwardTask {
                geometry: &views,
                ..task.clone()
            };
            member.forward(&share, output, part)
        })
    }

    fn backward(&self, task: &BackwardTask<'_>, out: &mut [f32]) -> Result<()> {
        let [_, ny, nx] = task.volume_geometry.shape;
        let first = task.slices.start;
        let mut rest = out;
        let mut shares = Vec::new();
        for slab in balanced(task.slices.len(), self.members.len()) {
            let (part, tail) = rest.split_at_mut(slab.len() * ny * nx);
            rest = tail;
            shares.push((first + slab.start..first + slab.end, part));
        }
        run_all(&self.members, shares, |member, (slices, part)| {
            let share = BackwardTask {
                slices,
                ..task.clone()
            };
            member.backward(&share, part)
        })
    }

    fn fdk_backproject(&self, task: &FdkTask<'_>, out: &mut [f32]) -> Result<()> {
        let slice = task.slice_len();
        let first = task.slices.start;
        let mut rest = out;
        let mut shares = Vec::new();
        for slab in balanced(task.slices.len(), self.members.len()) {
            let (part, tail) = rest.split_at_mut(slab.len() * slice);
            rest = tail;
            shares.push((task.on_slices(first + slab.start..first + slab.end), part));
        }
        run_all(&self.members, shares, |member, (share, part)| {
            member.fdk_backproject(&share, part)
        })
    }
}
