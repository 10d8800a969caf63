//! The `#[repr(C)]` records shared by host and device. Only `f32`/`u32` fields; layouts
//! are pinned by compile-time size checks so that host and PTX can never disagree.

use core::mem::size_of;

/// The voxel grid as the kernels see it: voxel counts, the slab of slices the volume
/// buffer holds, and the linear part of the index-to-world map (see the crate docs for
/// the index-space frame).
///
/// The buffer holds slices `z_first..z_first + z_count` of the grid (all of them, with
/// `z_first = 0` and `z_count = nz`, for a whole volume). Rays are traced through the
/// whole grid's index space, so a slab sees exactly the rays the whole volume does: the
/// projectors add only the slab's voxels (Siddon) or taps (Joseph), and the
/// backprojectors write only into them. Slabs that cover the grid thus add up to the
/// whole volume's projection, to the rounding of the sum.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "bytemuck", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct GridParams {
    /// Voxels along x (the fastest axis of the array).
    pub nx: u32,
    /// Voxels along y.
    pub ny: u32,
    /// Voxels along z (the slowest axis of the array), of the whole grid.
    pub nz: u32,
    /// First slice (z index) the volume buffer holds.
    pub z_first: u32,
    /// Slices the volume buffer holds, from `z_first` (`z_first + z_count <= nz`).
    pub z_count: u32,
    /// Row-major 3x3 matrix `M` with `world - origin = M * index` (mm per index step).
    /// For an axis-aligned grid it is `diag(sx, sy, sz)`.
    pub index_to_world: [f32; 9],
}

impl GridParams {
    /// A whole grid of `nx * ny * nz` voxels (the buffer holds every slice).
    #[inline(always)]
    pub fn whole(nx: u32, ny: u32, nz: u32, index_to_world: [f32; 9]) -> GridParams {
        GridParams {
            nx,
            ny,
            nz,
            z_first: 0,
            z_count: nz,
            index_to_world,
        }
    }

    /// Number of voxels in the buffer, `nx * ny * z_count`, as `usize` (never overflows
    /// on 64-bit targets for `u32` dimensions).
    #[inline(always)]
    pub fn voxel_count(&self) -> usize {
        self.nx as usize * self.ny as usize * self.z_count as usize
    }

    /// One past the last slice the buffer holds.
    #[inline(always)]
    pub fn z_end(&self) -> u32 {
        self.z_first.wrapping_add(self.z_count)
    }

    /// Whether the buffer holds the whole grid.
    #[inline(always)]
    pub fn is_whole(&self) -> bool {
        self.z_first == 0 && self.z_count == self.nz
    }

    /// The buffer index of the whole grid's linear voxel index `index`, when that voxel
    /// is in the buffer's slab.
    #[inline(always)]
    pub fn slab_index(&self, index: usize) -> Option<usize> {
        let slice = self.nx as usize * self.ny as usize;
        let relative = index.wrapping_sub(self.z_first as usize * slice);
        if relative < self.voxel_count() {
            Some(relative)
        } else {
            None
        }
    }

    /// World length (mm) of the index-space vector `d`: `|M d|`.
    #[inline(always)]
    pub fn world_length(&self, d: [f32; 3]) -> f32 {
        let m = &self.index_to_world;
        let wx = m[0] * d[0] + m[1] * d[1] + m[2] * d[2];
        let wy = m[3] * d[0] + m[4] * d[1] + m[5] * d[2];
        let wz = m[6] * d[0] + m[7] * d[1] + m[8] * d[2];
        crate::math::sqrt(wx * wx + wy * wy + wz * wz)
    }
}

/// One view, in voxel-index coordinates (the host converts from world millimetres).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "bytemuck", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ViewParams {
    /// Cone beam: the source position. Parallel beam: the ray direction (any length).
    pub source: [f32; 3],
    /// Centre of the detector.
    pub detector_centre: [f32; 3],
    /// Step from one detector column to the next.
    pub u: [f32; 3],
    /// Step from one detector row to the next.
    pub v: [f32; 3],
}

/// Beam shape, shared by all views of a launch.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beam {
    /// Rays from a point source to each pixel centre; the integral covers the segment.
    Cone = 0,
    /// Rays through each pixel centre along a common direction; the integral covers the
    /// whole line.
    Parallel = 1,
}

impl Beam {
    /// Decodes the `u32` a kernel receives; anything but 1 is a cone beam.
    #[inline(always)]
    pub fn from_u32(raw: u32) -> Beam {
        if raw == Beam::Parallel as u32 {
            Beam::Parallel
        } else {
            Beam::Cone
        }
    }
}

/// The detector of a launch: its size and the beam shape.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectorParams {
    /// Detector rows (the `v` direction).
    pub rows: u32,
    /// Detector columns (the `u` direction).
    pub cols: u32,
    /// The beam shape.
    pub beam: Beam,
}

const _: () = assert!(size_of::<GridParams>() == 56);
const _: () = assert!(size_of::<ViewParams>() == 48);
const _: () = assert!(size_of::<DetectorParams>() == 12);
