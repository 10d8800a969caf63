//! Read access to the voxel array, abstracted so that the same traversal code reads a
//! slice on the host and a raw device pointer on the GPU.

/// A volume in `[z, y, x]` order (x fastest) that the traversals read by linear index.
///
/// The traversals only ever pass indices `< grid.voxel_count()` of the grid they were given
/// (`nx * ny * z_count`: the slab its buffer holds);
/// implementations may rely on that (the GPU one does, the slice one checks anyway).
pub trait Voxels {
    /// The attenuation coefficient of the voxel at linear index `index`.
    fn voxel(&self, index: usize) -> f32;
}

impl Voxels for [f32] {
    #[inline(always)]
    fn voxel(&self, index: usize) -> f32 {
        self[index]
    }
}
