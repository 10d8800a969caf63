//! Geometry: where the voxels are ([`VolumeGeometry`]) and where the rays go
//! ([`ProjectionGeometry`]), with builders for the common scans ([`CircularScan`],
//! [`DrrPose`]), a TOML file form ([`GeometryFile`]), and the reduction of both to the
//! kernels' index-space records.
//!
//! Conventions (one set, everywhere): lengths in mm, world axes x, y, z; volumes are
//! `[z, y, x]` arrays, projections `[views, rows, cols]`; pixel (r, c) of a view is
//! centred at `detector + (c - (cols-1)/2) u + (r - (rows-1)/2) v`.

pub(crate) mod check;
mod circular;
mod file;
mod projection;
mod volume;

pub use circular::{CircularScan, DrrPose};
pub use file::GeometryFile;
pub use projection::{Beam, ProjectionGeometry, View};
pub use volume::VolumeGeometry;

/// Limit on any single count (voxels per axis, detector rows and columns, views):
/// 2^30 = 1,073,741,824, the same on the CPU and GPU, which run the same kernels.
///
/// The kernels keep per-axis voxel and pixel indices in `i32`. Siddon's and Joseph's
/// last index `n as i32 - 1` needs `n <= 2^31 - 1`, and so do FDK's detector taps
/// `floor(x) + 1` (with `x < n` checked in f32 first). Joseph's bilinear taps take
/// `floor(x) + 1` of an f32 coordinate `x` that reaches `n + 0.5`, which f32 rounds to
/// 2^31 (where the floor saturates at `i32::MAX` and the `+ 1` overflows) from
/// `n = 2^31 - 64` on, sooner still with the rounding of coordinates along the ray.
/// 2^30 keeps every such index below 2^30 + 2, a margin of 2^30. Linear voxel and pixel
/// indices are computed in `usize` (64-bit on the host and the GPU), so products of
/// counts are limited only by memory. (The CUDA backend's launch grid limits detector
/// rows and FDK's volume further; see the `cuda` module.)
pub const MAX_AXIS_LEN: usize = 1 << 30;
