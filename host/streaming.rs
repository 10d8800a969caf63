//! Projections of volumes larger than memory: [`project_streamed`] reads the volume
//! slab by slab from a memory-mapped file ([`SlabSource`]) and writes the projections
//! batch of views by batch of views to a `.npy` file ([`NpyStream`]), so that the
//! process holds one slab and one batch (at most the budget it is given), whatever the
//! sizes. Each slab is projected on the projector's backend (a GPU splits it again if
//! it does not fit there; it is uploaded once per batch of views) and added to the file
//! in slab order, so the result is the in-memory projection's to the bound of a
//! slabbed one (`crate::executor::slabs`). Progress is reported during the last slab.

use std::ops::Range;

use ndarray::ArrayViewMut3;

use crate::alloc::zeroed;
use crate::error::{Error, Result};
use crate::executor::plan::{plan, Footprint};
use crate::geometry::{ProjectionGeometry, VolumeGeometry};
use crate::io::{NpyStream, SlabSource};
use crate::projector::{check_finite, Method, Projector};

/// How [`project_streamed`] split the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamedRun {
    /// Slabs of the volume read.
    pub slabs: usize,
    /// Most slices in a slab.
    pub slab_slices: usize,
    /// Most views in a batch.
    pub view_batch: usize,
}

/// Forward-projects the volume of `source`, on the grid `volume_geometry` (its shape
/// must be the file's), for every view of `geometry` into `out` (of `geometry`'s
/// shape), holding at most `max_memory` bytes of voxels and projections. Each slab is
/// passed through `prepare` after it is read (a conversion of CT numbers, say), and
/// `view_done` is called once per view when its last slab is added.
///
/// # Errors
/// [`Error::ShapeMismatch`] for a grid or an output of another shape;
/// [`Error::InvalidParameter`] when not even one slice and one view fit in
/// `max_memory`; otherwise the errors of the reads, of `prepare`, of
/// [`Projector::forward`] (NaN voxels, named with their index in the whole volume) and of
/// the writes. The output file is only complete when this returns `Ok` and the caller
/// has called [`NpyStream::finish`].
#[allow(clippy::too_many_arguments)]
pub fn project_streamed(
    projector: &Projector,
    source: &SlabSource,
    volume_geometry: &VolumeGeometry,
    prepare: &dyn Fn(&mut ArrayViewMut3<'_, f32>) -> Result<()>,
    geometry: &ProjectionGeometry,
    method: Method,
    max_memory: u64,
    out: &mut NpyStream,
    view_done: &(dyn Fn() + Sync),
) -> Result<StreamedRun> {
    volume_geometry.validate()?;
    geometry.validate()?;
    volume_geometry.check_shape(&source.shape())?;
    if out.shape() != geometry.shape() {
        return Err(Error::ShapeMismatch {
            what: "the projections file",
            expected: geometry.shape().to_vec(),
            got: out.shape().to_vec(),
        });
    }
    let [nz, ny, nx] = volume_geometry.shape;
    let image = geometry.rows * geometry.cols;
    // A batch is held twice when it is added to the file (the batch and what the file
    // holds so far), with its view records.
    let footprint = Footprint {
        slices: nz,
        slice_bytes: (ny * nx * 4) as u64,
        views: geometry.views.len(),
        view_bytes: (2 * image * 4 + 2 * 48) as u64,
        fixed_bytes: 0,
    };
    let plan = plan(&footprint, max_memory).map_err(|error| match error {
        Error::DeviceOutOfMemory { bytes, .. } => Error::InvalidParameter {
            name: "max_memory",
            reason: format!(
                "one slice of the volume and one view of projections need {bytes} bytes, \
                 more than the {max_memory} allowed"
            ),
        },
        other => other,
    })?;
    let slabs = plan.slabs(nz);
    let batches = crate::executor::plan::balanced(
        geometry.views.len(),
        geometry.views.len().div_ceil(plan.view_batch),
    );
    let longest = slabs.iter().map(Range::len).max().unwrap_or(0);
    let mut voxels = zeroed(longest * ny * nx, "a slab of the volume")?;
    let widest = batches.iter().map(Range::len).max().unwrap_or(0);
    let mut projections = zeroed(widest * image, "a batch of projections")?;
    for (index, slab) in slabs.iter().enumerate() {
        let part = &mut voxels[..slab.len() * ny * nx];
        source.read_slices(slab.clone(), part)?;
        let mut view =
            ArrayViewMut3::from_shape([slab.len(), ny, nx], &mut *part).map_err(|e| {
                Error::InvalidParameter {
                    name: "slab",
                    reason: e.to_string(),
                }
            })?;
        prepare(&mut view)?;
        // Once per slab; a bad voxel is named by its index in the whole volume.
        check_finite(part, [slab.len(), ny, nx]).map_err(|error| match error {
            Error::NonFiniteVolume { index, value } => Error::NonFiniteVolume {
                index: [index[0] + slab.start, index[1], index[2]],
                value,
            },
            other => other,
        })?;
        let last = index + 1 == slabs.len();
        for batch in &batches {
            let views = geometry.view_range(batch.clone());
            let values = &mut projections[..batch.len() * image];
            projector.forward_slab(part, volume_geometry, slab.clone(), &views, method, values)?;
            if index == 0 {
                out.write_views(batch.start, values)?;
            } else {
                out.add_views(batch.start, values)?;
            }
            if last {
                batch.clone().for_each(|_| view_done());
            }
        }
    }
    Ok(StreamedRun {
        slabs: slabs.len(),
        slab_slices: plan.slab_slices,
        view_batch: plan.view_batch,
    })
}
