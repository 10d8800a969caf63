//! FDK's voxel-driven backprojection on the GPU (`xray_fdk_backproject`): one thread per
//! voxel, the filtered projections uploaded in as many batches of views as free memory
//! requires.

use cust::function::BlockSize;
use cust::memory::CopyDestination;
use ndarray::Array3;
use xray_kernels::{names, VoxelView};

use super::device::{launch_grid, CudaBackend, BLOCK, FREE_MEMORY_MARGIN};
use crate::alloc::zeroed_array;
use crate::error::{Error, Result};
use crate::geometry::VolumeGeometry;

/// What the x, y and z axes of the FDK kernel's launch grid cover (named in errors): one
/// thread per voxel, 32 x 8 per block in a slice, one slice per block along z.
const FDK_AXES: [&str; 3] = ["volume nx", "volume ny", "volume nz (slices)"];

/// Refuses a volume grid that FDK's backprojection kernel cannot be launched over (one
/// thread per voxel: more than 8 * 65535 = 524,280 voxels along y, or 65,535 slices).
/// [`crate::recon::fdk`] checks this before it weights and filters the projections.
///
/// # Errors
/// [`crate::GeometryError::TooLarge`] naming the axis.
pub(crate) fn check_fdk_launchable(volume_geometry: &VolumeGeometry) -> Result<()> {
    let [nz, ny, nx] = volume_geometry.shape;
    launch_grid(nx, ny, nz, FDK_AXES).map(drop)
}

impl CudaBackend {
    /// Backprojects `filtered` (`[views, rows, cols]` = `shape`, weighted and filtered)
    /// onto `volume_geometry`'s grid with one [`VoxelView`] per view, and returns the
    /// volume. Each voxel sums the views in order, as the CPU does.
    ///
    /// # Errors
    /// [`Error::Geometry`], also for a grid beyond CUDA's launch grid limits (see
    /// [`check_fdk_launchable`]), refused before anything is allocated;
    /// [`Error::DeviceOutOfMemory`], [`Error::Allocation`] (host), [`Error::Cuda`],
    /// [`Error::CudaFaulted`].
    pub(crate) fn fdk_backproject(
        &self,
        filtered: &[f32],
        shape: [usize; 3],
        views: &[VoxelView],
        volume_geometry: &VolumeGeometry,
    ) -> Result<Array3<f32>> {
        volume_geometry.validate()?;
        let [n_views, rows, cols] = shape;
        debug_assert_eq!(filtered.len(), n_views * rows * cols);
        debug_assert_eq!(views.len(), n_views);
        let [nz, ny, nx] = volume_geometry.shape;
        let grid = launch_grid(nx, ny, nz, FDK_AXES)?;
        let voxel_count = volume_geometry.voxel_count()?;
        let volume = self.allocate::<f32>(voxel_count, "the reconstructed volume")?;
        let records = self.upload_bytes(
            bytemuck::cast_slice::<VoxelView, u8>(views),
            "copying the view matrices to the GPU",
        )?;
        let image = rows * cols;
        let (free, _) = self.memory_info()?;
        let batch = (free.saturating_sub(FREE_MEMORY_MARGIN) / (image * 4).max(1)).min(n_views);
        if batch == 0 {
            return Err(Error::DeviceOutOfMemory {
                what: "the filtered projections of one view",
                bytes: image as u128 * 4,
                free: free as u128,
            });
        }
        let projections = self.allocate::<f32>(batch * image, "FDK's filtered projections")?;
        {
            let _calls = self.enter()?;
            let function = self
                .module
                .get_function(names::FDK_BACKPROJECT)
                .map_err(self.cuda_error("finding the FDK kernel"))?;
            let block = BlockSize::xy(BLOCK.0, BLOCK.1);
            let stream = &self.stream;
            for (index, chunk) in filtered.chunks(batch * image).enumerate() {
                let first = index * batch;
                let count = chunk.len() / image.max(1);
                // The previous launch read this buffer: wait for it before overwriting.
                self.synchronize()?;
                projections
                    .index(..chunk.len())
                    .copy_from(chunk)
                    .map_err(self.cuda_error("copying the filtered projections to the GPU"))?;
                let batch_records = records
                    .as_device_ptr()
                    .wrapping_add(first * std::mem::size_of::<VoxelView>());
                let (count, rows, cols) = (count as u32, rows as u32, cols as u32);
                let (nx, ny, nz) = (nx as u32, ny as u32, nz as u32);
                // SAFETY: the arguments match `xray_fdk_backproject`'s signature; the
                // projections buffer holds `count * rows * cols` values, `batch_records`
                // points at `count` records inside `records`, and `volume` holds
                // `nx * ny * nz` values; the buffers are distinct.
                unsafe {
                    cust::launch!(function<<<grid, block, 0, stream>>>(
                        projections.as_device_ptr(),
                        batch_records,
                        count,
                        rows,
                        cols,
                        nx,
                        ny,
                        nz,
                        volume.as_device_ptr()
                    ))
                    .map_err(self.cuda_error("launching the FDK kernel"))?;
                }
            }
            self.synchronize()?;
        }
        let mut host = zeroed_array(volume_geometry.shape, "the reconstructed volume")?;
        let _calls = self.enter()?;
        volume
            .index(..voxel_count)
            .copy_to(host.as_slice_mut().expect("a new array is contiguous"))
            .map_err(self.cuda_error("copying the reconstruction from the GPU"))?;
        Ok(host)
    }
}
