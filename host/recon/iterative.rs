//! Iterative reconstruction with the projector pair: SIRT and CGLS, for any geometry.
//!
//! Both solve `A x = b` in the least-squares sense, `A` being [`Projector::forward`]
//! with the chosen [`Method`] and `A^T` its exact transpose, [`Projector::backward`]. Each
//! iteration costs one forward projection and one backprojection, on the projector's
//! backend.
//!
//! * SIRT (simultaneous iterative reconstruction technique): `x <- x + lambda C A^T R (b -
//!   A x)`, with `R` and `C` the inverse row and column sums of `A`. It is gradient
//!   descent on `||b - A x||_R^2` preconditioned by `C`, and converges for
//!   `0 < lambda < 2`. Non-negativity clips `x` at 0 after every update (projected
//!   gradient, which still decreases the objective).
//! * CGLS (conjugate gradients on the normal equations): the fastest to converge on
//!   consistent data, but unconstrained; clipping inside would break its conjugacy, so
//!   non-negativity clips the result once, at the end.
//!
//! Both stop after `iterations` updates, when the relative residual `||b - A x|| / ||b||`
//! falls to `tolerance`, or when the callback says so.
//!
//! On a projector with one GPU, when the volume, the projections and the work vectors
//! (three of each, four for a moment in SIRT) fit in its free memory (at most its
//! `Projector::with_device_memory` limit), the iterations run resident on the GPU: `A`,
//! `A^T` and the vector steps (`xray_kernels::vector`, the same element operations as
//! on the CPU) on device buffers, with deterministic dot products (fixed partial sums,
//! added in f64 on the host); only the progress scalars cross to the host per
//! iteration. Otherwise the loops run on host arrays, `A` and `A^T` going through the
//! projector (slabs, batches, several GPUs); also when the GPU runs out of memory
//! during the resident iterations (they then start again on host arrays, and the
//! callback sees iteration 0 again).

use std::ops::ControlFlow;

use ndarray::{Array3, ArrayBase, Data, Ix3, Zip};
use xray_kernels::vector;

use crate::alloc::zeroed_array;
use crate::distributed::{self, Communicator, Partition};
use crate::error::{Error, Result};
use crate::geometry::{ProjectionGeometry, VolumeGeometry};
use crate::projector::{Method, Projector};

/// Settings of [`sirt`] and [`cgls`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IterativeOptions {
    /// The projector model `A`.
    pub method: Method,
    /// Most updates to make.
    pub iterations: usize,
    /// Stop when `||b - A x|| / ||b||` is at most this (0: run all iterations).
    pub tolerance: f64,
    /// Keep the attenuation non-negative (see the module docs for how each method does).
    pub nonnegative: bool,
    /// SIRT's step `lambda`, in `(0, 2)`; ignored by CGLS.
    pub relaxation: f64,
}

impl Default for IterativeOptions {
    /// Siddon, 50 iterations, no tolerance, non-negative, `lambda = 1`.
    fn default() -> Self {
        IterativeOptions {
            method: Method::Siddon,
            iterations: 50,
            tolerance: 0.0,
            nonnegative: true,
            relaxation: 1.0,
        }
    }
}

/// Progress after one update, given to the callback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Updates made so far (0: the starting point, `x = 0`).
    pub iteration: usize,
    /// `||b - A x|| / ||b||` for the current `x`.
    pub residual: f64,
}

/// Why the iterations ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The relative residual reached the tolerance (or became exactly 0).
    Converged,
    /// All the iterations asked for were made.
    IterationLimit,
    /// The callback returned `ControlFlow::Break`.
    Interrupted,
}

/// A reconstructed volume and how it got there.
#[derive(Clone, Debug)]
pub struct Reconstruction {
    /// The volume, `[nz, ny, nx]`, in the unit of the projections per mm.
    pub volume: Array3<f32>,
    /// `||b - A x|| / ||b||` after each update, starting with `x = 0` (so the first is 1).
    pub residuals: Vec<f64>,
    /// Why the iterations ended.
    pub stopped: Stopped,
}

/// SIRT (see the module docs) from `x = 0`; `on_progress` is called after every update
/// (and once for the start) and may stop the iterations.
///
/// # Errors
/// [`Error::InvalidParameter`] for a relaxation outside `(0, 2)`, a negative or NaN
/// tolerance, or projections that are all zero; otherwise as [`Projector::forward`]
/// and [`Projector::backward`].
pub fn sirt<S>(
    projector: &Projector,
    projections: &ArrayBase<S, Ix3>,
    geometry: &ProjectionGeometry,
    volume_geometry: &VolumeGeometry,
    options: &IterativeOptions,
    mut on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Reconstruction>
where
    S: Data<Elem = f32>,
{
    check_relaxation(options)?;
    let (system, b, b_norm) = prepare(
        projector,
        projections,
        geometry,
        volume_geometry,
        options,
        None,
    )?;
    #[cfg(feature = "cuda")]
    if let Some(space) = crate::cuda::resident_workspace(&system, &b, Solver::Sirt)? {
        match run_sirt(&space, b_norm, options, &mut on_progress) {
            Err(error @ Error::DeviceOutOfMemory { .. }) => {
                log::warn!("SIRT on host arrays after all: {error}");
            }
            done => return done,
        }
    }
    run_sirt(
        &HostWorkspace {
            system,
            b,
            ranks: None,
        },
        b_norm,
        options,
        &mut on_progress,
    )
}

/// CGLS (see the module docs) from `x = 0`; `on_progress` as for [`sirt`].
///
/// # Errors
/// [`Error::InvalidParameter`] for a negative or NaN tolerance or projections that are
/// all zero; otherwise as [`Projector::forward`] and [`Projector::backward`].
pub fn cgls<S>(
    projector: &Projector,
    projections: &ArrayBase<S, Ix3>,
    geometry: &ProjectionGeometry,
    volume_geometry: &VolumeGeometry,
    options: &IterativeOptions,
    mut on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Reconstruction>
where
    S: Data<Elem = f32>,
{
    let (system, b, b_norm) = prepare(
        projector,
        projections,
        geometry,
        volume_geometry,
        options,
        None,
    )?;
    #[cfg(feature = "cuda")]
    if let Some(space) = crate::cuda::resident_workspace(&system, &b, Solver::Cgls)? {
        match run_cgls(&space, b_norm, options, &mut on_progress) {
            Err(error @ Error::DeviceOutOfMemory { .. }) => {
                log::warn!("CGLS on host arrays after all: {error}");
            }
            done => return done,
        }
    }
    run_cgls(
        &HostWorkspace {
            system,
            b,
            ranks: None,
        },
        b_norm,
        options,
        &mut on_progress,
    )
}

/// [`sirt`] or [`cgls`] (`solver`) over the ranks `ranks`, with this rank's projections
/// `local` of its views `local_geometry` (for [`crate::distributed::sirt`] and
/// [`crate::distributed::cgls`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn solve_on_ranks<S>(
    solver: Solver,
    ranks: Ranks<'_>,
    projector: &Projector,
    local: &ArrayBase<S, Ix3>,
    local_geometry: &ProjectionGeometry,
    volume_geometry: &VolumeGeometry,
    options: &IterativeOptions,
    mut on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Reconstruction>
where
    S: Data<Elem = f32>,
{
    if solver == Solver::Sirt {
        check_relaxation(options)?;
    }
    let (system, b, b_norm) = prepare(
        projector,
        local,
        local_geometry,
        volume_geometry,
        options,
        Some(&ranks),
    )?;
    let space = HostWorkspace {
        system,
        b,
        ranks: Some(ranks),
    };
    match solver {
        Solver::Sirt => run_sirt(&space, b_norm, options, &mut on_progress),
        Solver::Cgls => run_cgls(&space, b_norm, options, &mut on_progress),
    }
}

/// Refuses a SIRT step outside `(0, 2)`.
fn check_relaxation(options: &IterativeOptions) -> Result<()> {
    if options.relaxation > 0.0 && options.relaxation < 2.0 {
        return Ok(());
    }
    Err(Error::InvalidParameter {
        name: "relaxation",
        reason: format!(
            "SIRT converges for 0 < lambda < 2, got {}",
            options.relaxation
        ),
    })
}

/// The processes a [`HostWorkspace`] shares its problem with: its projections are this
/// rank's views of `geometry`, its volumes are whole on every rank.
pub(crate) struct Ranks<'a> {
    /// The group.
    pub comm: &'a dyn Communicator,
    /// All the views.
    pub geometry: &'a ProjectionGeometry,
    /// Which of them are this rank's.
    pub partition: Partition,
}

/// The problem both methods solve: `A x = b`.
pub(crate) struct System<'a> {
    /// Where `A` and `A^T` run.
    pub projector: &'a Projector,
    /// The views of `b`.
    pub geometry: &'a ProjectionGeometry,
    /// The grid of `x`.
    pub volume_geometry: &'a VolumeGeometry,
    /// The projector model.
    pub method: Method,
}

/// The vectors and operators SIRT and CGLS run on: host arrays with any projector
/// ([`HostWorkspace`]), or buffers resident on one GPU (`crate::cuda`'s workspace), so
/// that the loops below are written once. Element-wise steps are `xray_kernels::vector`'s
/// on both.
pub(crate) trait Workspace {
    /// A volume `[nz, ny, nx]`.
    type Volume;
    /// Projections `[views, rows, cols]`.
    type Projections;
    /// A volume filled with `value`.
    fn volume(&self, value: f32) -> Result<Self::Volume>;
    /// Projections filled with `value`.
    fn projections(&self, value: f32) -> Result<Self::Projections>;
    /// A copy of `b`, the measured projections.
    fn measured(&self) -> Result<Self::Projections>;
    /// A copy of `v`.
    fn copy_volume(&self, v: &Self::Volume) -> Result<Self::Volume>;
    /// `out = A x`.
    fn forward(&self, x: &Self::Volume, out: &mut Self::Projections) -> Result<()>;
    /// `out = A^T y`.
    fn backward(&self, y: &Self::Projections, out: &mut Self::Volume) -> Result<()>;
    /// `r = b - r`.
    fn residual(&self, r: &mut Self::Projections) -> Result<()>;
    /// `r = r w`, element by element.
    fn mul(&self, w: &Self::Projections, r: &mut Self::Projections) -> Result<()>;
    /// `s = weight(s, scale)` on projections.
    fn projection_weights(&self, s: &mut Self::Projections, scale: f32) -> Result<()>;
    /// `s = weight(s, scale)` on a volume.
    fn volume_weights(&self, s: &mut Self::Volume, scale: f32) -> Result<()>;
    /// `x = sirt_step(x, c, u)`.
    fn sirt_step(
        &self,
        c: &Self::Volume,
        u: &Self::Volume,
        nonnegative: bool,
        x: &mut Self::Volume,
    ) -> Result<()>;
    /// `y = y + alpha x` on volumes.
    fn axpy_volume(&self, alpha: f32, x: &Self::Volume, y: &mut Self::Volume) -> Result<()>;
    /// `y = y + alpha x` on projections.
    fn axpy_projections(
        &self,
        alpha: f32,
        x: &Self::Projections,
        y: &mut Self::Projections,
    ) -> Result<()>;
    /// `y = x + beta y` on volumes.
    fn xpby_volume(&self, x: &Self::Volume, beta: f32, y: &mut Self::Volume) -> Result<()>;
    /// `x = max(x, 0)`.
    fn clip(&self, x: &mut Self::Volume) -> Result<()>;
    /// `<a, a>` of a volume.
    fn volume_norm2(&self, a: &Self::Volume) -> Result<f64>;
    /// `<a, a>` of projections.
    fn projections_norm2(&self, a: &Self::Projections) -> Result<f64>;
    /// Stops between iterations once the projector is cancelled.
    fn check_cancelled(&self) -> Result<()>;
    /// The volume as a host array.
    fn volume_to_host(&self, x: Self::Volume) -> Result<Array3<f32>>;
}

/// [`Workspace`] on host arrays: `A` and `A^T` through the projector (any backend, with
/// its slabs and batches), the element steps with rayon. With `ranks`, the projections
/// are this rank's views only: `A^T` and the projections' norms combine the ranks'
/// parts (`crate::distributed`), the volumes' steps are the same on every rank.
struct HostWorkspace<'a> {
    system: System<'a>,
    b: Array3<f32>,
    ranks: Option<Ranks<'a>>,
}

impl Workspace for HostWorkspace<'_> {
    type Volume = Array3<f32>;
    type Projections = Array3<f32>;

    fn volume(&self, value: f32) -> Result<Array3<f32>> {
        filled(self.system.volume_geometry.shape, value, "a volume")
    }

    fn projections(&self, value: f32) -> Result<Array3<f32>> {
        filled(self.system.geometry.shape(), value, "projections")
    }

    fn measured(&self) -> Result<Array3<f32>> {
        self.copy_volume(&self.b)
    }

    fn copy_volume(&self, v: &Array3<f32>) -> Result<Array3<f32>> {
        let mut copy = zeroed_array(v.dim().into(), "a copy of the work vectors")?;
        copy.assign(v);
        Ok(copy)
    }

    fn forward(&self, x: &Array3<f32>, out: &mut Array3<f32>) -> Result<()> {
        let s = &self.system;
        if s.geometry.views.is_empty() {
            // A rank without views (more ranks than units).
            return Ok(());
        }
        *out = s
            .projector
            .forward(x, s.volume_geometry, s.geometry, s.method)?;
        Ok(())
    }

    fn backward(&self, y: &Array3<f32>, out: &mut Array3<f32>) -> Result<()> {
        let s = &self.system;
        if let Some(ranks) = &self.ranks {
            *out = distributed::backward_checked(
                ranks.comm,
                s.projector,
                &ranks.partition,
                y.as_slice().expect("work vectors are contiguous"),
                ranks.geometry,
                s.volume_geometry,
                s.method,
            )?;
            return Ok(());
        }
        *out = s
            .projector
            .backward(y, s.geometry, s.volume_geometry, s.method)?;
        Ok(())
    }

    fn residual(&self, r: &mut Array3<f32>) -> Result<()> {
        Zip::from(r)
            .and(&self.b)
            .par_for_each(|r, &b| *r = vector::residual(b, *r));
        Ok(())
    }

    fn mul(&self, w: &Array3<f32>, r: &mut Array3<f32>) -> Result<()> {
        Zip::from(r).and(w).par_for_each(|r, &w| *r *= w);
        Ok(())
    }

    fn projection_weights(&self, s: &mut Array3<f32>, scale: f32) -> Result<()> {
        s.par_mapv_inplace(|v| vector::weight(v, scale));
        Ok(())
    }

    fn volume_weights(&self, s: &mut Array3<f32>, scale: f32) -> Result<()> {
        self.projection_weights(s, scale)
    }

    fn sirt_step(
        &self,
        c: &Array3<f32>,
        u: &Array3<f32>,
        nonnegative: bool,
        x: &mut Array3<f32>,
    ) -> Result<()> {
        Zip::from(x)
            .and(u)
            .and(c)
            .par_for_each(|x, &u, &c| *x = vector::sirt_step(*x, c, u, nonnegative));
        Ok(())
    }

    fn axpy_volume(&self, alpha: f32, x: &Array3<f32>, y: &mut Array3<f32>) -> Result<()> {
        Zip::from(y)
            .and(x)
            .par_for_each(|y, &x| *y = vector::axpy(alpha, x, *y));
        Ok(())
    }

    fn axpy_projections(&self, alpha: f32, x: &Array3<f32>, y: &mut Array3<f32>) -> Result<()> {
        self.axpy_volume(alpha, x, y)
    }

    fn xpby_volume(&self, x: &Array3<f32>, beta: f32, y: &mut Array3<f32>) -> Result<()> {
        Zip::from(y)
            .and(x)
            .par_for_each(|y, &x| *y = vector::xpby(x, beta, *y));
        Ok(())
    }

    fn clip(&self, x: &mut Array3<f32>) -> Result<()> {
        x.par_mapv_inplace(|v| v.max(0.0));
        Ok(())
    }

    fn volume_norm2(&self, a: &Array3<f32>) -> Result<f64> {
        Ok(norm(a).powi(2))
    }

    fn projections_norm2(&self, a: &Array3<f32>) -> Result<f64> {
        match &self.ranks {
            Some(ranks) => projections_norm2_on_ranks(ranks, a),
            None => Ok(norm(a).powi(2)),
        }
    }

    fn check_cancelled(&self) -> Result<()> {
        self.system.projector.check_cancelled()
    }

    fn volume_to_host(&self, x: Array3<f32>) -> Result<Array3<f32>> {
        Ok(x)
    }
}

/// SIRT's iterations on `space` (see [`sirt`]), from `x = 0`.
fn run_sirt<W: Workspace>(
    space: &W,
    b_norm: f64,
    options: &IterativeOptions,
    on_progress: &mut impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Reconstruction> {
    // R and C: inverse row and column sums, 0 where a ray or voxel has no weight.
    let mut row_weights = space.projections(0.0)?;
    space.forward(&space.volume(1.0)?, &mut row_weights)?;
    space.projection_weights(&mut row_weights, 1.0)?;
    let mut column_weights = space.volume(0.0)?;
    space.backward(&space.projections(1.0)?, &mut column_weights)?;
    space.volume_weights(&mut column_weights, options.relaxation as f32)?;
    let mut x = space.volume(0.0)?;
    let mut r = space.projections(0.0)?;
    let mut update = space.volume(0.0)?;
    let mut residuals = Vec::new();
    let stopped = loop {
        space.check_cancelled()?;
        space.forward(&x, &mut r)?;
        space.residual(&mut r)?;
        let residual = space.projections_norm2(&r)?.sqrt() / b_norm;
        residuals.push(residual);
        if let Some(stopped) = check_stop(residual, residuals.len() - 1, options, on_progress) {
            break stopped;
        }
        space.mul(&row_weights, &mut r)?;
        space.backward(&r, &mut update)?;
        space.sirt_step(&column_weights, &update, options.nonnegative, &mut x)?;
    };
    Ok(Reconstruction {
        volume: space.volume_to_host(x)?,
        residuals,
        stopped,
    })
}

/// CGLS's iterations on `space` (see [`cgls`]), from `x = 0`.
fn run_cgls<W: Workspace>(
    space: &W,
    b_norm: f64,
    options: &IterativeOptions,
    on_progress: &mut impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Reconstruction> {
    let mut x = space.volume(0.0)?;
    let mut r = space.measured()?;
    let mut s = space.volume(0.0)?;
    space.backward(&r, &mut s)?;
    let mut p = space.copy_volume(&s)?;
    let mut q = space.projections(0.0)?;
    let mut gamma = space.volume_norm2(&s)?;
    let mut residuals = vec![1.0];
    let mut stopped = check_stop(1.0, 0, options, on_progress);
    while stopped.is_none() {
        space.check_cancelled()?;
        space.forward(&p, &mut q)?;
        let q_norm2 = space.projections_norm2(&q)?;
        if gamma == 0.0 || q_norm2 == 0.0 {
            // The gradient vanished: x is a least-squares solution.
            stopped = Some(Stopped::Converged);
            break;
        }
        let alpha = (gamma / q_norm2) as f32;
        space.axpy_volume(alpha, &p, &mut x)?;
        space.axpy_projections(-alpha, &q, &mut r)?;
        let residual = space.projections_norm2(&r)?.sqrt() / b_norm;
        residuals.push(residual);
        stopped = check_stop(residual, residuals.len() - 1, options, on_progress);
        if stopped.is_some() {
            break;
        }
        space.backward(&r, &mut s)?;
        let gamma_next = space.volume_norm2(&s)?;
        let beta = (gamma_next / gamma) as f32;
        gamma = gamma_next;
        space.xpby_volume(&s, beta, &mut p)?;
    }
    if options.nonnegative {
        space.clip(&mut x)?;
    }
    Ok(Reconstruction {
        volume: space.volume_to_host(x)?,
        residuals,
        stopped: stopped.unwrap_or(Stopped::IterationLimit),
    })
}

/// Which method a workspace is for (how many vectors of each kind it keeps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Solver {
    /// SIRT: `x`, `C`, the update; `R`, `r` (and `b`).
    Sirt,
    /// CGLS: `x`, `s`, `p`; `r`, `q` (and `b`).
    Cgls,
}

/// Checks the options and projections (`geometry`'s; with `ranks`, this rank's part of
/// theirs); returns the system, `b` and `||b||`.
fn prepare<'a, S>(
    projector: &'a Projector,
    projections: &ArrayBase<S, Ix3>,
    geometry: &'a ProjectionGeometry,
    volume_geometry: &'a VolumeGeometry,
    options: &IterativeOptions,
    ranks: Option<&Ranks<'_>>,
) -> Result<(System<'a>, Array3<f32>, f64)>
where
    S: Data<Elem = f32>,
{
    if options.tolerance.is_nan() || options.tolerance < 0.0 {
        return Err(Error::InvalidParameter {
            name: "tolerance",
            reason: format!("must be 0 or more, got {}", options.tolerance),
        });
    }
    volume_geometry.validate()?;
    ranks.map_or(geometry, |r| r.geometry).validate()?;
    let contiguous = projections.as_standard_layout();
    let checked = crate::projector::check_projections(
        contiguous
            .as_slice()
            .expect("as_standard_layout gives a contiguous array"),
        projections.shape(),
        geometry,
    );
    match ranks {
        Some(ranks) => distributed::agree(ranks.comm, checked)?,
        None => checked?,
    }
    let mut b = zeroed_array(geometry.shape(), "a copy of the projections")?;
    b.assign(&contiguous);
    let b_norm = match ranks {
        Some(ranks) => projections_norm2_on_ranks(ranks, &b)?.sqrt(),
        None => norm(&b),
    };
    if b_norm == 0.0 {
        return Err(Error::InvalidParameter {
            name: "projections",
            reason: "all zero: the reconstruction would be 0".into(),
        });
    }
    let system = System {
        projector,
        geometry,
        volume_geometry,
        method: options.method,
    };
    Ok((system, b, b_norm))
}

/// Reports progress and decides whether to stop after `iteration` updates.
fn check_stop(
    residual: f64,
    iteration: usize,
    options: &IterativeOptions,
    on_progress: &mut impl FnMut(&Progress) -> ControlFlow<()>,
) -> Option<Stopped> {
    let flow = on_progress(&Progress {
        iteration,
        residual,
    });
    if residual <= options.tolerance {
        Some(Stopped::Converged)
    } else if flow.is_break() {
        Some(Stopped::Interrupted)
    } else if iteration >= options.iterations {
        Some(Stopped::IterationLimit)
    } else {
        None
    }
}

/// An array filled with `value`.
fn filled(shape: [usize; 3], value: f32, what: &'static str) -> Result<Array3<f32>> {
    let mut array = zeroed_array(shape, what)?;
    if value != 0.0 {
        array.fill(value);
    }
    Ok(array)
}

/// `<a, a>` of this rank's projections `a`, combined over `ranks`.
fn projections_norm2_on_ranks(ranks: &Ranks<'_>, a: &Array3<f32>) -> Result<f64> {
    let (_, rows, cols) = a.dim();
    distributed::projections_norm2(
        ranks.comm,
        &ranks.partition,
        a.as_slice().expect("work vectors are contiguous"),
        rows * cols,
    )
}

/// Euclidean norm, accumulated in f64.
fn norm(a: &Array3<f32>) -> f64 {
    a.iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        .sqrt()
}
