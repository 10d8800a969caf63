//! Realistic radiographs: materials, X-ray tube spectra, the polychromatic
//! Beer-Lambert model with a detector's response and noise, and its gradient.
//!
//! * [`Material`]: NIST compositions, XCOM-grade mass attenuation coefficients from 1
//!   to 150 keV (tables embedded from `data/physics/`, written by
//!   `scripts/make-physics-tables.py` with xraylib).
//! * [`Spectrum`]: tungsten tube spectra by kVp and anode angle (SpekPy's), filters,
//!   a user's CSV; mean energy and half-value layer.
//! * [`segmentation`]: material density maps from a CT or a label map.
//! * [`Detector`], [`RadiographModel`]: what the detector records from one
//!   projection per material, with Poisson and electronic noise and blur; its
//!   vector-Jacobian product.
//! * [`Scatter`]: scatter from the object by scatter kernel superposition on
//!   water-equivalent thickness, with Monte Carlo kernels of water slabs
//!   (`scripts/make-scatter-kernels.py`), off unless a model is given it.
//! * [`project_maps`] and [`map_gradients`]: the model with a [`Projector`] on either
//!   side, for whole volumes.
//!
//! ```
//! use xray_projector::phantom::MaterialPhantom;
//! use xray_projector::physics::*;
//! use xray_projector::{Backend, CircularScan, Method, Projector, VolumeGeometry};
//!
//! let grid = VolumeGeometry::centered([32, 32, 32], [8.0, 8.0, 8.0]);
//! let head = MaterialPhantom::head();
//! let maps = head.voxelize(&grid, 1)?; // g/cm^3, one map per material
//! let geometry = CircularScan::new(1000.0, 1500.0, 1, [64, 64], 6.4).geometry()?;
//! let projector = Projector::new(Backend::Auto)?;
//! let p = project_maps(&projector, &maps, &grid, &geometry, Method::Siddon)?;
//! let beam = Spectrum::tube(120.0, 12.0)?.filtered(Material::Aluminium, 2.5)?;
//! let model = RadiographModel::new(
//!     &beam,
//!     head.absorbers(),
//!     Detector::flat_panel(Scintillator::csi()),
//!     Exposure::TubeCurrent { mas: 2.0 },
//! )?;
//! let views: Vec<_> = p.iter().map(|a| a.view()).collect();
//! let noisy = model.sample(&views, &geometry, 1)?; // keV per pixel, one exposure
//! assert_eq!(noisy.shape(), &[1, 64, 64]);
//! # Ok::<(), xray_projector::Error>(())
//! ```

mod detector;
mod material;
mod model;
mod scatter;
#[cfg(test)]
mod scatter_tests;
pub mod segmentation;
mod spectrum;
mod tables;
#[cfg(test)]
mod tests;

pub use detector::{Detector, Response, Scintillator, MAX_BLUR_PIXELS};
pub use material::Material;
pub use model::{Absorber, Exposure, RadiographModel};
pub use scatter::{Scatter, MAX_GRID as MAX_SCATTER_GRID};
pub use spectrum::{Line, Spectrum, KVP_RANGE, MAX_LINES};
pub use tables::{bin_centre_kev, BINS, ENERGY_RANGE_KEV};

use ndarray::{Array3, ArrayView3};

use crate::error::Result;
use crate::geometry::{ProjectionGeometry, VolumeGeometry};
use crate::{Method, Projector};

/// One projection per map on `projector`: the input of [`RadiographModel`].
///
/// # Errors
/// [`Projector::forward`]'s.
pub fn project_maps(
    projector: &Projector,
    maps: &[Array3<f32>],
    grid: &VolumeGeometry,
    geometry: &ProjectionGeometry,
    method: Method,
) -> Result<Vec<Array3<f32>>> {
    maps.iter()
        .map(|map| projector.forward(map, grid, geometry, method))
        .collect()
}

/// The gradient of `sum(upstream * model.expected(project_maps(maps)))` with respect
/// to each map: the model's vector-Jacobian product backprojected (the exact
/// transpose of `method`'s projection).
///
/// # Errors
/// [`RadiographModel::vjp`]'s and [`Projector::backward`]'s.
pub fn map_gradients(
    projector: &Projector,
    model: &RadiographModel,
    projections: &[Array3<f32>],
    geometry: &ProjectionGeometry,
    grid: &VolumeGeometry,
    method: Method,
    upstream: ArrayView3<f32>,
) -> Result<Vec<Array3<f32>>> {
    let views: Vec<ArrayView3<f32>> = projections.iter().map(|p| p.view()).collect();
    model
        .vjp(&views, geometry, upstream)?
        .iter()
        .map(|g| projector.backward(g, geometry, grid, method))
        .collect()
}
