//! The projector's operations over the ranks of a [`Communicator`]: [`project`],
//! [`backward`], [`fdk`], [`sirt`] and [`cgls`] (see the module docs of
//! [`crate::distributed`] for how each splits and combines its work).

use std::ops::ControlFlow;

use ndarray::{Array3, ArrayBase, ArrayView3, Data, Ix3};
use rayon::prelude::*;

use super::{agree, Communicator, FixedPointSum, Partition};
use crate::alloc::zeroed_array;
use crate::error::{Error, Result};
use crate::geometry::{CircularScan, ProjectionGeometry, VolumeGeometry};
use crate::projector::{check_projections, Method, Projector};
use crate::recon::iterative::{self, IterativeOptions, Progress, Ranks, Reconstruction, Solver};
use crate::recon::Filter;

/// Projects `volume` (every rank holds all of it) with the views of `geometry` dealt by
/// [`Partition`]: each rank computes its views, the root receives the whole stack
/// `[views, rows, cols]` (in view order; the other ranks get `None`). Each ray is
/// computed alone, so the stack is bit for bit [`Projector::forward`]'s.
///
/// # Errors
/// As [`Projector::forward`], on every rank when on any; [`Error::Communication`].
pub fn project<S>(
    comm: &dyn Communicator,
    projector: &Projector,
    volume: &ArrayBase<S, Ix3>,
    volume_geometry: &VolumeGeometry,
    geometry: &ProjectionGeometry,
    method: Method,
) -> Result<Option<Array3<f32>>>
where
    S: Data<Elem = f32>,
{
    volume_geometry.validate()?;
    geometry.validate()?;
    let partition = Partition::of(geometry.views.len(), comm);
    let local = geometry.view_range(partition.local_views());
    let part = agree(
        comm,
        if local.views.is_empty() {
            zeroed_array(local.shape(), "no projections")
        } else {
            projector.forward(volume, volume_geometry, &local, method)
        },
    )?;
    let values = part.as_slice().expect("a new array is contiguous");
    gathered(comm.gather_f32(values)?, geometry.shape())
}

/// Backprojects the projections of `geometry`'s views, of which this rank holds its
/// own, `local` (the views [`Partition::local_views`], `[those views, rows, cols]`),
/// into the whole volume, on every rank: the exact transpose of [`project`].
///
/// Each rank backprojects its units one at a time and adds each into a
/// [`FixedPointSum`] whose bound is `2 |y|max rays d` (`rays` over all views, `d` the
/// voxel's diagonal, more than any one ray gives one voxel in either method); the sums
/// are added over the ranks and rounded to f32. The result is the same bits for any
/// number of ranks, and differs from [`Projector::backward`]'s by the order of the f32
/// additions (the same bound as between its own partial volumes). Memory per rank: the
/// volume 4 times over (the accumulator, one unit's volume, the result).
///
/// # Errors
/// As [`Projector::backward`], on every rank when on any; [`Error::Communication`].
pub fn backward<S>(
    comm: &dyn Communicator,
    projector: &Projector,
    local: &ArrayBase<S, Ix3>,
    geometry: &ProjectionGeometry,
    volume_geometry: &VolumeGeometry,
    method: Method,
) -> Result<Array3<f32>>
where
    S: Data<Elem = f32>,
{
    volume_geometry.validate()?;
    geometry.validate()?;
    let partition = Partition::of(geometry.views.len(), comm);
    let contiguous = local.as_standard_layout();
    let values = contiguous
        .as_slice()
        .expect("as_standard_layout gives a contiguous array");
    let local_geometry = geometry.view_range(partition.local_views());
    agree(
        comm,
        check_projections(values, local.shape(), &local_geometry),
    )?;
    backward_checked(
        comm,
        projector,
        &partition,
        values,
        geometry,
        volume_geometry,
        method,
    )
}

/// [`backward`] of `values`, this rank's projections, already checked.
pub(crate) fn backward_checked(
    comm: &dyn Communicator,
    projector: &Projector,
    partition: &Partition,
    values: &[f32],
    geometry: &ProjectionGeometry,
    volume_geometry: &VolumeGeometry,
    method: Method,
) -> Result<Array3<f32>> {
    let [views, rows, cols] = geometry.shape();
    let largest = values.par_iter().map(|v| v.abs()).reduce(|| 0.0, f32::max);
    let largest = comm.max_f64(largest as f64)?;
    let [sx, sy, sz] = volume_geometry.spacing;
    let diagonal = (sx * sx + sy * sy + sz * sz).sqrt();
    let bound = 2.0 * largest * (views as f64 * rows as f64 * cols as f64) * diagonal;
    let mut sum = agree(
        comm,
        FixedPointSum::new(volume_geometry.voxel_count()?, bound),
    )?;
    let image = rows * cols;
    let first = partition.local_views().start;
    let mut add_units = || -> Result<()> {
        for unit in partition.local_units() {
            let unit_views = partition.unit_views(unit);
            let projections = ArrayView3::from_shape(
                [unit_views.len(), rows, cols],
                &values[(unit_views.start - first) * image..(unit_views.end - first) * image],
            )
            .expect("a unit's views lie within the rank's");
            let part = projector.backward(
                &projections,
                &geometry.view_range(unit_views),
                volume_geometry,
                method,
            )?;
            sum.add(part.as_slice().expect("a new array is contiguous"))?;
        }
        Ok(())
    };
    let outcome = add_units();
    agree(comm, outcome)?;
    sum.reduce(comm)?;
    let mut out = zeroed_array(volume_geometry.shape, "the backprojected volume")?;
    sum.write_f32(out.as_slice_mut().expect("a new array is contiguous"))?;
    Ok(out)
}

/// `<y, y>` of projections split by [`Partition`] (`local`, this rank's): one f64 per
/// unit (its values' squares added in order), the units' added in unit order, so the
/// same on every rank and for any number of ranks.
///
/// # Errors
/// [`Error::Communication`].
pub(crate) fn projections_norm2(
    comm: &dyn Communicator,
    partition: &Partition,
    local: &[f32],
    image: usize,
) -> Result<f64> {
    let mut per_unit = vec![0.0f64; partition.units()];
    let first = partition.local_views().start;
    let units = partition.local_units();
    per_unit[units.clone()]
        .par_iter_mut()
        .zip(units.into_par_iter())
        .for_each(|(norm2, unit)| {
            let views = partition.unit_views(unit);
            *norm2 = local[(views.start - first) * image..(views.end - first) * image]
                .iter()
                .map(|&v| v as f64 * v as f64)
                .sum();
        });
    comm.sum_f64(&mut per_unit)?;
    Ok(per_unit.iter().sum())
}

/// FDK ([`crate::recon::fdk`]) over the ranks: every rank holds all the projections,
/// filters them, and reconstructs its slab of slices ([`Partition::local_slices`]);
/// the root receives the whole volume (the other ranks get `None`), bit for bit the
/// single process's.
///
/// # Errors
/// As [`crate::recon::fdk`], on every rank when on any; [`Error::Communication`].
pub fn fdk<S>(
    comm: &dyn Communicator,
    projector: &Projector,
    projections: &ArrayBase<S, Ix3>,
    scan: &CircularScan,
    volume_geometry: &VolumeGeometry,
    window: Filter,
) -> Result<Option<Array3<f32>>>
where
    S: Data<Elem = f32>,
{
    volume_geometry.validate()?;
    let [nz, ny, nx] = volume_geometry.shape;
    let slices = Partition::of(scan.views, comm).local_slices(nz);
    let part = agree(
        comm,
        if slices.is_empty() {
            zeroed_array([0, ny, nx], "no slices")
        } else {
            crate::recon::fdk::fdk_slices(
                projector,
                projections,
                scan,
                volume_geometry,
                window,
                slices,
            )
        },
    )?;
    let values = part.as_slice().expect("a new array is contiguous");
    gathered(comm.gather_f32(values)?, volume_geometry.shape)
}

/// SIRT ([`crate::recon::sirt`]) over the ranks, with this rank's projections `local`
/// (its [`Partition::local_views`] of `geometry`'s). Every rank gets the same
/// reconstruction, and `on_progress` is called on every rank with the same values.
///
/// # Errors
/// As [`crate::recon::sirt`], on every rank when on any; [`Error::Communication`].
pub fn sirt<S>(
    comm: &dyn Communicator,
    projector: &Projector,
    local: &ArrayBase<S, Ix3>,
    geometry: &ProjectionGeometry,
    volume_geometry: &VolumeGeometry,
    options: &IterativeOptions,
    on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Reconstruction>
where
    S: Data<Elem = f32>,
{
    let problem = (comm, projector, local, geometry, volume_geometry);
    solve(Solver::Sirt, problem, options, on_progress)
}

/// CGLS ([`crate::recon::cgls`]) over the ranks; arguments and results as [`sirt`].
///
/// # Errors
/// As [`crate::recon::cgls`], on every rank when on any; [`Error::Communication`].
pub fn cgls<S>(
    comm: &dyn Communicator,
    projector: &Projector,
    local: &ArrayBase<S, Ix3>,
    geometry: &ProjectionGeometry,
    volume_geometry: &VolumeGeometry,
    options: &IterativeOptions,
    on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Reconstruction>
where
    S: Data<Elem = f32>,
{
    let problem = (comm, projector, local, geometry, volume_geometry);
    solve(Solver::Cgls, problem, options, on_progress)
}

/// What [`sirt`] and [`cgls`] are given: the group, the projector, this rank's
/// projections, all the views and the grid.
type Problem<'a, S> = (
    &'a dyn Communicator,
    &'a Projector,
    &'a ArrayBase<S, Ix3>,
    &'a ProjectionGeometry,
    &'a VolumeGeometry,
);

/// [`sirt`] or [`cgls`] on `problem`.
fn solve<S>(
    solver: Solver,
    (comm, projector, local, geometry, volume_geometry): Problem<'_, S>,
    options: &IterativeOptions,
    on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Reconstruction>
where
    S: Data<Elem = f32>,
{
    let partition = Partition::of(geometry.views.len(), comm);
    let local_geometry = geometry.view_range(partition.local_views());
    let ranks = Ranks {
        comm,
        geometry,
        partition,
    };
    iterative::solve_on_ranks(
        solver,
        ranks,
        projector,
        local,
        &local_geometry,
        volume_geometry,
        options,
        on_progress,
    )
}

/// The root's gathered values as an array of `shape`; `None` elsewhere.
fn gathered(values: Option<Vec<f32>>, shape: [usize; 3]) -> Result<Option<Array3<f32>>> {
    values
        .map(|values| {
            let len = values.len();
            Array3::from_shape_vec(shape, values).map_err(|_| Error::Communication {
                reason: format!(
                    "the ranks sent {len} values for an array of shape {shape:?}: \
                     were they given different geometries?"
                ),
            })
        })
        .transpose()
}
