//! The polychromatic forward model of a radiograph, from one projection per absorber
//! (material density maps, or one energy-independent attenuation map) to the
//! detector's output, with its noise and its adjoint.
//!
//! Per pixel, with `p_m` the line integral of absorber `m` and `g` the pixel's
//! photons per unit of the spectrum's fluence (mAs, pixel area, inverse square and
//! obliquity):
//!
//! ```text
//! signal = gain * blur( g * sum_E S(E) eta(E) w(E) exp(-sum_m k_m(E) p_m) ) + offset
//! ```
//!
//! `S` the spectrum's photons, `eta` the scintillator's efficiency, `w` the weight of
//! a photon (its energy, or 1 for a counting detector), `k_m` the absorber's
//! attenuation per unit of its map: `(mu/rho)_m(E) / 10` for a density map in g/cm^3
//! (mm lengths), 1 for an attenuation map in 1/mm. The cost is one projection per
//! absorber, not per energy.

use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::{Array3, ArrayView3, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};
use rayon::prelude::*;

use super::detector::{Blur, Detector};
use super::material::Material;
use super::scatter::{Scatter, ScatterKernels, ScatterLine, ViewKernels as ScatterSpectra};
use super::spectrum::Spectrum;
use crate::error::{Error, Result};
use crate::geometry::{Beam, ProjectionGeometry};

/// What one projection given to the model is the line integral of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Absorber {
    /// A density map of a material, g/cm^3 (its line integrals in g/cm^3 mm).
    Material(Material),
    /// An attenuation map in 1/mm, the same at every energy (the monochromatic
    /// model: with [`Exposure::PerPixel`], one line and [`Detector::ideal`], the
    /// model is Beer-Lambert's law bit for bit).
    Attenuation,
}

/// How many photons a pixel receives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Exposure {
    /// The tube's charge, mAs: a pixel receives the spectrum's fluence (per cm^2 per
    /// mAs at 100 cm) times mAs, its area, the inverse square of its distance from
    /// the focal spot over 100 cm, and the cosine of the ray's incidence (cone beam;
    /// parallel beams: area and mAs only).
    TubeCurrent {
        /// mAs.
        mas: f64,
    },
    /// The spectrum's photons are per pixel, the same for every pixel.
    PerPixel,
}

/// One energy of the model, precomputed.
#[derive(Clone, Debug)]
struct Line {
    /// keV.
    energy_kev: f64,
    /// The spectrum's photons (per unit of exposure).
    photons: f64,
    /// Detected photons per unit of exposure: fluence times efficiency.
    detected: f64,
    /// Signal per detected photon.
    weight: f64,
    /// Attenuation per unit of each absorber's map.
    coefficients: Vec<f64>,
}

/// The polychromatic radiograph model: a spectrum, the absorbers that are projected,
/// a detector and an exposure.
#[derive(Clone, Debug)]
pub struct RadiographModel {
    absorbers: Vec<Absorber>,
    detector: Detector,
    exposure: Exposure,
    lines: Vec<Line>,
    scatter: Option<ScatterKernels>,
}

impl RadiographModel {
    /// The model of `spectrum` through `absorbers` onto `detector`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no absorbers, a bad detector or exposure.
    pub fn new(
        spectrum: &Spectrum,
        absorbers: Vec<Absorber>,
        detector: Detector,
        exposure: Exposure,
    ) -> Result<RadiographModel> {
        if absorbers.is_empty() {
            return Err(Error::InvalidParameter {
                name: "absorbers",
                reason: "the model needs at least one projected map".into(),
            });
        }
        detector.validate()?;
        if let Exposure::TubeCurrent { mas } = exposure {
            if !(mas.is_finite() && mas > 0.0) {
                return Err(Error::InvalidParameter {
                    name: "mAs",
                    reason: format!("must be finite and positive, got {mas}"),
                });
            }
        }
        let lines = spectrum
            .lines()
            .iter()
            .map(|line| {
                let (efficiency, weight) = detector.response_at(line.energy_kev)?;
                let coefficients = absorbers
                    .iter()
                    .map(|absorber| match absorber {
                        Absorber::Material(m) => {
                            Ok(m.mass_attenuation(line.energy_kev, true)? / 10.0)
                        }
                        Absorber::Attenuation => Ok(1.0),
                    })
                    .collect::<Result<Vec<f64>>>()?;
                Ok(Line {
                    energy_kev: line.energy_kev,
                    photons: line.photons,
                    detected: line.photons * efficiency,
                    weight,
                    coefficients,
                })
            })
            .collect::<Result<Vec<Line>>>()?;
        Ok(RadiographModel {
            absorbers,
            detector,
            exposure,
            lines,
            scatter: None,
        })
    }

    /// The same model with scatter from the object added to every radiograph it
    /// makes (scatter kernel superposition; see [`Scatter`]). The flat field has
    /// none (nothing is in the beam), and [`RadiographModel::vjp`] refuses it.
    ///
    /// # Errors
    /// The detector's errors at the scattered photons' energies.
    pub fn with_scatter(mut self, scatter: Scatter) -> Result<RadiographModel> {
        let lines: Vec<ScatterLine> = self
            .lines
            .iter()
            .map(|l| ScatterLine {
                energy_kev: l.energy_kev,
                photons: l.photons,
            })
            .collect();
        self.scatter = Some(ScatterKernels::new(scatter, &lines, &self.detector)?);
        Ok(self)
    }

    /// The same model without scatter: the primary image.
    pub fn without_scatter(mut self) -> RadiographModel {
        self.scatter = None;
        self
    }

    /// The scatter settings, if the model adds scatter.
    pub fn scatter(&self) -> Option<Scatter> {
        self.scatter.as_ref().map(ScatterKernels::settings)
    }

    /// The noise-free scatter alone, in the units of the signal before the detector's
    /// gain, blur and offset (what [`RadiographModel::expected`] adds to the primary).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the model has no scatter; otherwise as
    /// [`RadiographModel::expected`].
    pub fn scatter_estimate(
        &self,
        projections: &[ArrayView3<f32>],
        geometry: &ProjectionGeometry,
    ) -> Result<Array3<f32>> {
        self.check(projections, geometry)?;
        let primary = self.pixels(geometry, |_, at, g| g * self.quantum_mean(projections, at))?;
        let mut out = crate::alloc::zeroed_array(geometry.shape(), "the scatter estimate")?;
        self.add_scatter(&mut out, Some(&primary), geometry, None)?;
        Ok(out)
    }

    /// The absorbers, in the order their projections are given.
    pub fn absorbers(&self) -> &[Absorber] {
        &self.absorbers
    }

    /// The detector.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// The noise-free detector output for `projections` (one per absorber, each
    /// `[views, rows, cols]` of `geometry`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for the wrong number of projections or a
    /// non-finite value, [`Error::ShapeMismatch`], the geometry's errors,
    /// [`Error::Allocation`].
    pub fn expected(
        &self,
        projections: &[ArrayView3<f32>],
        geometry: &ProjectionGeometry,
    ) -> Result<Array3<f32>> {
        self.check(projections, geometry)?;
        let mut signal =
            self.pixels(geometry, |_, at, g| g * self.quantum_mean(projections, at))?;
        if self.scatter.is_some() {
            self.add_scatter(&mut signal, None, geometry, None)?;
        }
        self.finish(&mut signal, None);
        Ok(signal)
    }

    /// The output of a detector that is exposed once: Poisson-distributed photons per
    /// energy (so an energy-integrating detector's compound Poisson statistics are
    /// exact), then blur, gain and offset, then Gaussian electronic noise. Row `r`
    /// of view `k` draws its photons from ChaCha8 stream `k * rows + r` of `seed`, its
    /// electronic noise from stream `n + k * rows + r` and its scattered photons (a
    /// Poisson count per pixel, each carrying the scatter's mean signal per photon)
    /// from stream `2 n + k * rows + r`, `n` being the number of rows of all views; so
    /// the result depends on `seed` only, not on the number of threads.
    ///
    /// # Errors
    /// As [`RadiographModel::expected`]; [`Error::InvalidParameter`] when a pixel
    /// expects more photons of one energy than Poisson sampling takes (about 1.8e19:
    /// an absurd dose, or negative maps).
    pub fn sample(
        &self,
        projections: &[ArrayView3<f32>],
        geometry: &ProjectionGeometry,
        seed: u64,
    ) -> Result<Array3<f32>> {
        self.check(projections, geometry)?;
        let rows = geometry.rows as u64;
        let lines_total = geometry.views.len() as u64 * rows;
        let unsampled = AtomicBool::new(false);
        let mut signal = self.pixels_by_row(geometry, |line_index, row_pixels| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(line_index as u64);
            row_pixels
                .into_iter()
                .map(|(at, g)| {
                    let values = pixel_values(projections, at);
                    let mut sum = 0.0;
                    for line in &self.lines {
                        let mean = g * line.detected * (-exponent(&values, line)).exp();
                        if mean > 0.0 {
                            // Poisson::new refuses a mean that is not finite or beyond
                            // its largest (1.8e19): reported below, never a silent 0.
                            match Poisson::new(mean) {
                                Ok(d) => sum += line.weight * d.sample(&mut rng),
                                Err(_) => unsampled.store(true, Ordering::Relaxed),
                            }
                        }
                    }
                    sum as f32
                })
                .collect()
        })?;
        if unsampled.load(Ordering::Relaxed) {
            return Err(Error::InvalidParameter {
                name: "exposure",
                reason: "a pixel expects more photons of one energy than Poisson sampling \
                         takes (1.8e19): lower the dose, or check the maps for negative \
                         densities"
                    .into(),
            });
        }
        if self.scatter.is_some() {
            let primary =
                self.pixels(geometry, |_, at, g| g * self.quantum_mean(projections, at))?;
            self.add_scatter(
                &mut signal,
                Some(&primary),
                geometry,
                Some((seed, 2 * lines_total)),
            )?;
        }
        self.finish(&mut signal, Some((seed, lines_total)));
        Ok(signal)
    }

    /// The noise-free output with nothing in the beam: the flat field that
    /// normalises radiographs (`-ln((signal - offset) / (flat - offset))` is the
    /// effective line integral).
    ///
    /// # Errors
    /// The geometry's errors, [`Error::Allocation`].
    pub fn flat_field(&self, geometry: &ProjectionGeometry) -> Result<Array3<f32>> {
        geometry.validate()?;
        let total: f64 = self.lines.iter().map(|l| l.detected * l.weight).sum();
        let mut signal = self.pixels(geometry, |_, _, g| g * total)?;
        self.finish(&mut signal, None);
        Ok(signal)
    }

    /// The gradient of `sum(upstream * expected(projections))` with respect to each
    /// projection (vector-Jacobian product): backproject each to get the gradient with
    /// respect to the maps.
    ///
    /// # Errors
    /// As [`RadiographModel::expected`], and [`Error::ShapeMismatch`] for
    /// `upstream`.
    pub fn vjp(
        &self,
        projections: &[ArrayView3<f32>],
        geometry: &ProjectionGeometry,
        upstream: ArrayView3<f32>,
    ) -> Result<Vec<Array3<f32>>> {
        self.check(projections, geometry)?;
        check_shape("upstream gradient", upstream.shape(), geometry)?;
        if self.scatter.is_some() {
            return Err(Error::InvalidParameter {
                name: "scatter",
                reason: "the gradient is of the primary model only: fit with \
                         `without_scatter()`, or subtract a scatter estimate from the data"
                    .into(),
            });
        }
        // Through the gain and the blur (offset: constant).
        let mut ybar = upstream.mapv(|y| (f64::from(y) * self.detector.gain) as f32);
        if let Some(blur) = Blur::new(self.detector.blur_pixels) {
            for image in ybar.axis_iter_mut(Axis(0)) {
                blur.apply_adjoint(image);
            }
        }
        // One pass: every absorber's derivative from the same exponentials.
        let count = self.absorbers.len();
        let (rows, cols) = (geometry.rows, geometry.cols);
        let per_row: Vec<Vec<f32>> = (0..geometry.views.len() * rows)
            .into_par_iter()
            .map(|line_index| {
                let (view, row) = (line_index / rows, line_index % rows);
                let mut out = vec![0.0f32; count * cols];
                let mut sums = vec![0.0f64; count];
                for col in 0..cols {
                    let at = [view, row, col];
                    let weight = f64::from(ybar[at]);
                    if weight == 0.0 {
                        continue;
                    }
                    let values = pixel_values(projections, at);
                    sums.fill(0.0);
                    for line in &self.lines {
                        let t = line.detected * line.weight * (-exponent(&values, line)).exp();
                        for (sum, k) in sums.iter_mut().zip(&line.coefficients) {
                            *sum += t * k;
                        }
                    }
                    let scale = -weight * self.exposure_of(geometry, view, row, col);
                    for (m, sum) in sums.iter().enumerate() {
                        out[m * cols + col] = (scale * sum) as f32;
                    }
                }
                out
            })
            .collect();
        let mut gradients = Vec::with_capacity(count);
        for m in 0..count {
            let mut data = crate::alloc::reserved(geometry.ray_count()?, "a gradient")?;
            for row in &per_row {
                data.extend_from_slice(&row[m * cols..(m + 1) * cols]);
            }
            gradients.push(Array3::from_shape_vec(geometry.shape(), data).map_err(|e| {
                Error::InvalidParameter {
                    name: "gradient",
                    reason: e.to_string(),
                }
            })?);
        }
        Ok(gradients)
    }

    /// Adds the scatter to every view of `signal`, view by view: the noise-free
    /// estimate, or with `noise = (seed, first_stream)` a Poisson draw of the scattered
    /// photons, row `i` (over all views) from ChaCha8 stream `first_stream + i`. The
    /// estimate is made from the noise-free primary (before gain, blur and offset):
    /// `primary`, or `signal` itself when it holds it. The model must have scatter.
    fn add_scatter(
        &self,
        signal: &mut Array3<f32>,
        primary: Option<&Array3<f32>>,
        geometry: &ProjectionGeometry,
        noise: Option<(u64, u64)>,
    ) -> Result<()> {
        let Some(kernels) = &self.scatter else {
            return Err(Error::InvalidParameter {
                name: "scatter",
                reason: "this model adds no scatter (see `with_scatter`)".into(),
            });
        };
        let flat: f64 = self.lines.iter().map(|l| l.detected * l.weight).sum();
        let (rows, cols) = (geometry.rows, geometry.cols);
        // One set of kernel spectra per pixel shape (one for a circular scan).
        let mut spectra: Vec<ScatterSpectra> = Vec::new();
        let mut which = Vec::with_capacity(geometry.views.len());
        for v in &geometry.views {
            match spectra.iter().position(|k| k.fits(rows, cols, v.u, v.v)) {
                Some(k) => which.push(k),
                None => {
                    spectra.push(kernels.spectra(rows, cols, v.u, v.v, noise.is_some())?);
                    which.push(spectra.len() - 1);
                }
            }
        }
        let unsampled = AtomicBool::new(false);
        signal
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .try_for_each(|(view, mut out)| -> Result<()> {
                let exposure = ndarray::Array2::from_shape_fn((rows, cols), |(r, c)| {
                    self.exposure_of(geometry, view, r, c)
                });
                let transmission = ndarray::Array2::from_shape_fn((rows, cols), |(r, c)| {
                    let expected = exposure[[r, c]] * flat;
                    let p = match primary {
                        Some(p) => p[[view, r, c]],
                        None => out[[r, c]],
                    };
                    if expected > 0.0 {
                        f64::from(p) / expected
                    } else {
                        1.0
                    }
                });
                let image = kernels.estimate(
                    &spectra[which[view]],
                    exposure.view(),
                    transmission.view(),
                )?;
                let Some((seed, first_stream)) = noise else {
                    out.zip_mut_with(&image.signal, |o, s| *o = (f64::from(*o) + s) as f32);
                    return Ok(());
                };
                let photons = image.photons.as_ref();
                for (row, mut pixels) in out.axis_iter_mut(Axis(0)).enumerate() {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(first_stream + (view * rows + row) as u64);
                    for (col, value) in pixels.iter_mut().enumerate() {
                        let mean = photons.map_or(0.0, |p| p[[row, col]]);
                        if mean > 0.0 {
                            match Poisson::new(mean) {
                                Ok(d) => {
                                    let count: f64 = d.sample(&mut rng);
                                    let per_photon = image.signal[[row, col]] / mean;
                                    *value = (f64::from(*value) + count * per_photon) as f32;
                                }
                                Err(_) => unsampled.store(true, Ordering::Relaxed),
                            }
                        }
                    }
                }
                Ok(())
            })?;
        if unsampled.load(Ordering::Relaxed) {
            return Err(Error::InvalidParameter {
                name: "exposure",
                reason: "a pixel expects more scattered photons than Poisson sampling \
                         takes (1.8e19): lower the dose"
                    .into(),
            });
        }
        Ok(())
    }

    /// The mean signal of pixel `at` per unit of exposure.
    fn quantum_mean(&self, projections: &[ArrayView3<f32>], at: [usize; 3]) -> f64 {
        let values = pixel_values(projections, at);
        let mut sum = 0.0;
        for line in &self.lines {
            sum += line.detected * line.weight * (-exponent(&values, line)).exp();
        }
        sum
    }

    /// Blur, gain and offset, and electronic noise when sampling.
    fn finish(&self, signal: &mut Array3<f32>, noise: Option<(u64, u64)>) {
        let d = &self.detector;
        if let Some(blur) = Blur::new(d.blur_pixels) {
            signal
                .axis_iter_mut(Axis(0))
                .into_par_iter()
                .for_each(|image| blur.apply(image));
        }
        let normal = match noise {
            Some(_) if d.electronic_noise > 0.0 => Normal::new(0.0, d.electronic_noise).ok(),
            _ => None,
        };
        let rows = signal.len_of(Axis(1));
        signal
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(|(view, mut image)| {
                for (row, mut pixels) in image.axis_iter_mut(Axis(0)).enumerate() {
                    let mut rng = noise.map(|(seed, lines_total)| {
                        let mut rng = ChaCha8Rng::seed_from_u64(seed);
                        rng.set_stream(lines_total + (view * rows + row) as u64);
                        rng
                    });
                    for value in pixels.iter_mut() {
                        let mut out = d.gain * f64::from(*value) + d.offset;
                        if let (Some(normal), Some(rng)) = (&normal, rng.as_mut()) {
                            out += normal.sample(rng);
                        }
                        *value = out as f32;
                    }
                }
            });
    }

    /// Checks the projections against the absorbers and the geometry.
    fn check(&self, projections: &[ArrayView3<f32>], geometry: &ProjectionGeometry) -> Result<()> {
        geometry.validate()?;
        if projections.len() != self.absorbers.len() {
            return Err(Error::InvalidParameter {
                name: "projections",
                reason: format!(
                    "{} given for {} absorbers ({:?})",
                    projections.len(),
                    self.absorbers.len(),
                    self.absorbers
                ),
            });
        }
        for p in projections {
            check_shape("projection of an absorber", p.shape(), geometry)?;
            if let Some(bad) = p.iter().find(|v| !v.is_finite()) {
                return Err(Error::InvalidParameter {
                    name: "projections",
                    reason: format!("must be finite, found {bad}"),
                });
            }
        }
        Ok(())
    }

    /// An array of `geometry`'s shape whose pixel `at` (photons per unit `g`) is
    /// `f(index, at, g)`, in parallel.
    fn pixels(
        &self,
        geometry: &ProjectionGeometry,
        f: impl Fn(usize, [usize; 3], f64) -> f64 + Sync,
    ) -> Result<Array3<f32>> {
        self.pixels_by_row(geometry, |line_index, row| {
            row.into_iter()
                .map(|(at, g)| f(line_index, at, g) as f32)
                .collect()
        })
    }

    /// An array of `geometry`'s shape made a detector row at a time: `f` gets the row's
    /// index (`view * rows + row`) and each pixel's position and exposure.
    fn pixels_by_row(
        &self,
        geometry: &ProjectionGeometry,
        f: impl Fn(usize, Vec<([usize; 3], f64)>) -> Vec<f32> + Sync,
    ) -> Result<Array3<f32>> {
        let mut data = crate::alloc::zeroed(geometry.ray_count()?, "the radiographs")?;
        let (rows, cols) = (geometry.rows, geometry.cols);
        data.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(line_index, out)| {
                let (view, row) = (line_index / rows, line_index % rows);
                let pixels = (0..cols)
                    .map(|col| ([view, row, col], self.exposure_of(geometry, view, row, col)))
                    .collect();
                out.copy_from_slice(&f(line_index, pixels));
            });
        Array3::from_shape_vec(geometry.shape(), data).map_err(|e| Error::InvalidParameter {
            name: "radiographs",
            reason: e.to_string(),
        })
    }

    /// Photons per unit of the spectrum at one pixel.
    fn exposure_of(
        &self,
        geometry: &ProjectionGeometry,
        view: usize,
        row: usize,
        col: usize,
    ) -> f64 {
        let Exposure::TubeCurrent { mas } = self.exposure else {
            return 1.0;
        };
        let v = &geometry.views[view];
        let normal = cross(v.u, v.v);
        let area_mm2 = norm(normal);
        let area_cm2 = area_mm2 / 100.0;
        match geometry.beam {
            Beam::Parallel => mas * area_cm2,
            Beam::Cone => {
                let cu = col as f64 - 0.5 * (geometry.cols as f64 - 1.0);
                let cv = row as f64 - 0.5 * (geometry.rows as f64 - 1.0);
                let ray: [f64; 3] = std::array::from_fn(|a| {
                    v.detector[a] + cu * v.u[a] + cv * v.v[a] - v.source[a]
                });
                let r = norm(ray);
                let cosine = (dot(ray, normal) / (r * area_mm2)).abs();
                mas * area_cm2 * cosine * (1000.0 / r).powi(2)
            }
        }
    }
}

/// Each absorber's line integral at pixel `at`.
fn pixel_values(projections: &[ArrayView3<f32>], at: [usize; 3]) -> Vec<f64> {
    projections.iter().map(|p| f64::from(p[at])).collect()
}

/// `sum_m k_m p_m` for one energy, from the pixel's line integrals.
fn exponent(values: &[f64], line: &Line) -> f64 {
    let mut sum = 0.0;
    for (p, k) in values.iter().zip(&line.coefficients) {
        sum += k * p;
    }
    sum
}

fn check_shape(what: &'static str, shape: &[usize], geometry: &ProjectionGeometry) -> Result<()> {
    if shape == geometry.shape() {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            what,
            got: shape.to_vec(),
            expected: geometry.shape().to_vec(),
        })
    }
}

pub(super) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(super) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(super) fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}
