//! Per-ray X-ray line integrals shared by the CPU and GPU backends of `xray-projector`.
//!
//! Everything that runs once per detector pixel lives here, written once:
//!
//! * [`params`]: the `#[repr(C)]` records the host fills and the kernels read (the voxel
//!   grid, one record per view).
//! * [`ray`]: the ray of one detector pixel and its clipping against the grid.
//! * [`siddon`]: exact path lengths through piecewise-constant voxels (Amanatides-Woo).
//! * [`joseph`]: Joseph's method, one sample per slice of the dominant axis, bilinear.
//! * [`pixel`]: one pixel's line integral, the function both backends call.
//! * [`fdk`]: the voxel-driven, distance-weighted backprojection of filtered
//!   backprojection (FDK), one voxel at a time.
//! * [`vector`]: the element-wise steps of SIRT and CGLS and the compensated partial
//!   sums of the GPU's deterministic dot products.
//! * `entry` (only when compiled for `nvptx64-nvidia-cuda`): the `extern "ptx-kernel"`
//!   entry points: one thread per detector pixel (projectors) or per voxel (FDK), all
//!   views in one launch.
//!
//! # The frame the kernels see
//!
//! Kernels never see angles, scanners or millimetres. The host maps every view into
//! *voxel-index space*, where voxel `(ix, iy, iz)` is the unit cube
//! `[ix, ix+1) x [iy, iy+1) x [iz, iz+1)`, so the grid is the box `[0, nx] x [0, ny] x [0, nz]`.
//! A world point is `origin + M * index` with `M` = [`GridParams::index_to_world`];
//! path lengths are measured in index space and scaled back to millimetres with `M`,
//! so anisotropic voxels and general affines cost nothing per step.
//!
//! ```text
//!                 u (columns) ->
//!   source S           +-----------+ detector, centre D
//!      *  ---ray--->   |  . (r,c)  |   pixel centre:
//!       \   [ volume ] |           |   D + (c - (cols-1)/2) u + (r - (rows-1)/2) v
//!        \             +-----------+
//!                       v (rows) down the page
//! ```
//!
//! The volume is stored `[z, y, x]` with x fastest: voxel `(ix, iy, iz)` is element
//! `(iz * ny + iy) * nx + ix`, computed in `usize` (64-bit on host and GPU).
#![cfg_attr(target_arch = "nvptx64", no_std)]
#![cfg_attr(
    target_arch = "nvptx64",
    feature(abi_ptx, stdarch_nvptx, core_intrinsics, asm_experimental_arch)
)]
#![cfg_attr(target_arch = "nvptx64", allow(internal_features))]
#![warn(missing_docs)]

pub mod fdk;
pub mod joseph;
pub mod math;
pub mod names;
pub mod params;
pub mod pixel;
pub mod ray;
pub mod siddon;
pub mod vector;
pub mod voxels;

#[cfg(target_arch = "nvptx64")]
mod entry;

pub use fdk::{fdk_sample, fdk_voxel, VoxelView};
pub use params::{Beam, DetectorParams, GridParams, ViewParams};
pub use pixel::{backproject_pixel, line_integral, Method};
pub use voxels::Voxels;
