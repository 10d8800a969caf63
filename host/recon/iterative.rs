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

use std::ops::ControlFlow;

use ndarray::{Array3, ArrayBase, Data, Ix3, Zip};

use crate::alloc::zeroed_array;
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

/// The problem both methods solve: `A x = b`.
struct System<'a> {
    projector: &'a Projector,
    geometry: &'a ProjectionGeometry,
    volume_geometry: &'a VolumeGeometry,
    method: Method,
}

impl System<'_> {
    fn forward(&self, x: &Array3<f32>) -> Result<Array3<f32>> {
        self.projector
            .forward(x, self.volume_geometry, self.geometry, self.method)
    }

    fn backward(&self, y: &Array3<f32>) -> Result<Array3<f32>> {
        self.projector
            .backward(y, self.geometry, self.volume_geometry, self.method)
    }
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
    if !(options.relaxation > 0.0 && options.relaxation < 2.0) {
        return Err(Error::InvalidParameter {
            name: "relaxation",
            reason: format!(
                "SIRT converges for 0 < lambda < 2, got {}",
                options.relaxation
            ),
        });
    }
    let (system, b, b_norm) = prepare(projector, projections, geometry, volume_geometry, options)?;
    // R and C: inverse row and column sums, 0 where a ray or voxel has no weight.
    let inverse = |sums: Array3<f32>| sums.mapv(|s| if s > 1e-6 { 1.0 / s } else { 0.0 });
    let row_weights = inverse(system.forward(&ones(volume_geometry.shape, "a volume of ones")?)?);
    let column_weights = inverse(system.backward(&ones(geometry.shape(), "projections of ones")?)?)
        * options.relaxation as f32;
    let mut x = zeroed_array(volume_geometry.shape, "the reconstruction")?;
    let mut residuals = Vec::new();
    let stopped = loop {
        let mut r = system.forward(&x)?;
        Zip::from(&mut r).and(&b).par_for_each(|r, &b| *r = b - *r);
        let residual = norm(&r) / b_norm;
        residuals.push(residual);
        if let Some(stopped) = check_stop(residual, residuals.len() - 1, options, &mut on_progress)
        {
            break stopped;
        }
        r *= &row_weights;
        let update = system.backward(&r)?;
        let nonnegative = options.nonnegative;
        Zip::from(&mut x)
            .and(&update)
            .and(&column_weights)
            .par_for_each(|x, &u, &c| {
                *x += c * u;
                if nonnegative && *x < 0.0 {
                    *x = 0.0;
                }
            });
    };
    Ok(Reconstruction {
        volume: x,
        residuals,
        stopped,
    })
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
    let (system, b, b_norm) = prepare(projector, projections, geometry, volume_geometry, options)?;
    let mut x = zeroed_array(volume_geometry.shape, "the reconstruction")?;
    let mut r = b;
    let mut s = system.backward(&r)?;
    let mut p = s.clone();
    let mut gamma = norm(&s).powi(2);
    let mut residuals = vec![1.0];
    let mut stopped = check_stop(1.0, 0, options, &mut on_progress);
    while stopped.is_none() {
        let q = system.forward(&p)?;
        let q_norm2 = norm(&q).powi(2);
        if gamma == 0.0 || q_norm2 == 0.0 {
            // The gradient vanished: x is a least-squares solution.
            stopped = Some(Stopped::Converged);
            break;
        }
        let alpha = (gamma / q_norm2) as f32;
        Zip::from(&mut x)
            .and(&p)
            .par_for_each(|x, &p| *x += alpha * p);
        Zip::from(&mut r)
            .and(&q)
            .par_for_each(|r, &q| *r -= alpha * q);
        let residual = norm(&r) / b_norm;
        residuals.push(residual);
        stopped = check_stop(residual, residuals.len() - 1, options, &mut on_progress);
        if stopped.is_some() {
            break;
        }
        s = system.backward(&r)?;
        let gamma_next = norm(&s).powi(2);
        let beta = (gamma_next / gamma) as f32;
        gamma = gamma_next;
        Zip::from(&mut p)
            .and(&s)
            .par_for_each(|p, &s| *p = s + beta * *p);
    }
    if options.nonnegative {
        x.mapv_inplace(|v| v.max(0.0));
    }
    Ok(Reconstruction {
        volume: x,
        residuals,
        stopped: stopped.unwrap_or(Stopped::IterationLimit),
    })
}

/// Checks the options and projections; returns the system, `b` and `||b||`.
fn prepare<'a, S>(
    projector: &'a Projector,
    projections: &ArrayBase<S, Ix3>,
    geometry: &'a ProjectionGeometry,
    volume_geometry: &'a VolumeGeometry,
    options: &IterativeOptions,
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
    geometry.validate()?;
    let contiguous = projections.as_standard_layout();
    crate::projector::check_projections(
        contiguous
            .as_slice()
            .expect("as_standard_layout gives a contiguous array"),
        projections.shape(),
        geometry,
    )?;
    let mut b = zeroed_array(geometry.shape(), "a copy of the projections")?;
    b.assign(&contiguous);
    let b_norm = norm(&b);
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

/// An array of ones.
fn ones(shape: [usize; 3], what: &'static str) -> Result<Array3<f32>> {
    let mut array = zeroed_array(shape, what)?;
    array.fill(1.0);
    Ok(array)
}

/// Euclidean norm, accumulated in f64.
fn norm(a: &Array3<f32>) -> f64 {
    a.iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        .sqrt()
}
