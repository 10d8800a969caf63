//! # xray-projector
//!
//! The X-ray imaging forward model: for every detector pixel, the line integral of the
//! attenuation coefficient mu along the ray from the source to the pixel,
//! `p = sum_i mu_i L_i`, and the detected intensity `I = I0 exp(-p)`. One view is a
//! digitally reconstructed radiograph (DRR); many views a cone-beam CT sinogram.
//!
//! Two ray tracers, the same code on CPU and GPU (crate `xray-kernels`):
//! [`Method::Siddon`] (exact path lengths through voxels) and [`Method::Joseph`] (one
//! bilinear sample per slice, ASTRA's GPU model), each with its exact transpose
//! ([`Projector::backward`]), and reconstruction from projections ([`recon`]: FDK,
//! SIRT, CGLS).
//!
//! ## Conventions
//!
//! * Lengths in mm, mu in 1/mm, line integrals dimensionless.
//! * Volumes are `Array3<f32>` indexed `[z, y, x]` (x fastest); their place in the
//!   world is a [`VolumeGeometry`] (`origin` = the grid's minimum corner).
//! * Projections are `Array3<f32>` indexed `[view, row, col]`.
//! * Each view is four vectors, as ASTRA's `cone_vec`: source `S` (or the ray direction
//!   for a parallel beam), detector centre `D`, `u` (one column step) and `v` (one row
//!   step). Pixel (r, c) is centred at `D + (c - (cols-1)/2) u + (r - (rows-1)/2) v`.
//!
//! ```text
//!            z (rows, v)
//!            ^                       detector
//!            |        volume          +--+
//!   S *------|------[#######]---------|--|---> central ray
//!  source    |                        |  |   u: columns (in the xy plane)
//!            +--------------> x       +--+
//!   circular scan: view k at angle a = start + 2 pi k / views,
//!   S = (-sod cos a, -sod sin a, 0), D = ((sdd - sod) cos a, (sdd - sod) sin a, 0)
//! ```
//!
//! ## Example
//!
//! ```
//! use xray_projector::{Backend, CircularScan, Method, Phantom, Projector, VolumeGeometry};
//!
//! let grid = VolumeGeometry::centered([64, 64, 64], [2.0, 2.0, 2.0]);
//! let volume = Phantom::shepp_logan(64.0).voxelize(&grid, 1)?;
//! let geometry = CircularScan::new(1000.0, 1500.0, 1, [96, 96], 2.0).geometry()?;
//! let projector = Projector::new(Backend::Auto)?;
//! let drr = projector.forward(&volume, &grid, &geometry, Method::Siddon)?;
//! assert_eq!(drr.shape(), &[1, 96, 96]);
//! # Ok::<(), xray_projector::Error>(())
//! ```
#![warn(missing_docs)]

mod alloc;
pub mod backend;
mod cancel;
pub mod cases;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod distributed;
mod error;
mod executor;
pub mod geometry;
pub mod hounsfield;
pub mod intensity;
pub mod io;
pub mod phantom;
pub mod physics;
mod projector;
pub mod recon;
#[cfg(unix)]
pub mod streaming;

pub use backend::lanes::{Gather, LanePath, CPU_GATHER_VARIABLE, CPU_LANES_VARIABLE};
pub use backend::siddon_lanes::CPU_PREFETCH_VARIABLE;
pub use backend::{backend_statuses, Backend, BackendKind, BackendStatus};
pub use cancel::Cancel;
pub use error::{Error, GeometryError, Result};
pub use geometry::{
    Beam, CircularScan, DrrPose, GeometryFile, ProjectionGeometry, View, VolumeGeometry,
};
pub use phantom::Phantom;
pub use projector::{Method, Projector};

/// The text of the kernels' PTX module as this build embeds it, for inspection (tests,
/// `ptxas`): with feature `cuda`, exactly the module the CUDA backend loads (built by
/// `build.rs` from `kernels/`, or the committed copy when nightly is missing); without
/// it, the committed copy `kernels/xray_kernels.ptx`. Compiled in, so it reads no file
/// at run time.
pub fn kernels_ptx() -> &'static str {
    #[cfg(feature = "cuda")]
    {
        cuda::PTX
    }
    #[cfg(not(feature = "cuda"))]
    {
        include_str!("../kernels/xray_kernels.ptx")
    }
}
