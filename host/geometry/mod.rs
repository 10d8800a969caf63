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

/// Limit on any single count (voxels per axis, rows, cols, views): the kernels index
/// axes and launch grids with 32-bit counters.
pub const MAX_AXIS_LEN: usize = u32::MAX as usize;
