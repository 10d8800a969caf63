//! FDK's voxel-driven backprojection on the GPU (`xray_fdk_backproject`): one thread per
//! voxel of a slab, the filtered projections uploaded in batches of views (the slabs and
//! batches planned by `super::executor`).

use cust::function::BlockSize;
use cust::memory::CopyDestination;
use xray_kernels::{names, VoxelView};

use super::device::{launch_grid, CudaBackend, BLOCK};
use crate::error::{Error, Result};
use crate::executor::FdkTask;
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
    /// FDK's backprojection of `task` (its slices only, which fit on this device beside
    /// `batch` views of filtered projections) into `out`. Each voxel sums the views in
    /// order, as the CPU does, with the same coordinates whatever slab it is computed in.
    ///
    /// # Errors
    /// [`Error::Geometry`] for a slab beyond CUDA's launch grid limits (see
    /// [`check_fdk_launchable`]), [`Error::DeviceOutOfMemory`], [`Error::Cuda`],
    /// [`Error::CudaFaulted`], [`Error::Cancelled`] (checked between batches).
    pub(crate) fn fdk_backproject(
        &self,
        task: &FdkTask<'_>,
        batch: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let (rows, cols, n_views) = (task.rows, task.cols, task.views.len());
        let [_, ny, nx] = task.shape;
        let nz = task.slices.len();
        debug_assert_eq!(task.filtered.len(), n_views * rows * cols);
        debug_assert_eq!(out.len(), nz * ny * nx);
        let grid = launch_grid(nx, ny, nz, FDK_AXES)?;
        let volume = self.allocate::<f32>(out.len(), "the reconstructed volume")?;
        let records = self.upload_bytes(
            bytemuck::cast_slice::<VoxelView, u8>(task.views),
            "copying the view matrices to the GPU",
        )?;
        let image = rows * cols;
        let batch = batch.clamp(1, n_views.max(1));
        let projections = self.allocate::<f32>(batch * image, "FDK's filtered projections")?;
        let first_slice =
            u32::try_from(task.slices.start).map_err(|_| Error::InvalidParameter {
                name: "slab",
                reason: format!("first slice {} beyond u32", task.slices.start),
            })?;
        for (index, chunk) in task.filtered.chunks(batch * image).enumerate() {
            task.cancel.check()?;
            let _calls = self.enter()?;
            let function = self
                .module
                .get_function(names::FDK_BACKPROJECT)
                .map_err(self.cuda_error("finding the FDK kernel"))?;
            let block = BlockSize::xy(BLOCK.0, BLOCK.1);
            let stream = &self.stream;
            let first = index * batch;
            let count = chunk.len() / image.max(1);
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
                    first_slice,
                    volume.as_device_ptr()
                ))
                .map_err(self.cuda_error("launching the FDK kernel"))?;
            }
            // The next batch overwrites the projections buffer: wait for this launch.
            self.synchronize()?;
        }
        let _calls = self.enter()?;
        volume
            .index(..out.len())
            .copy_to(out)
            .map_err(self.cuda_error("copying the reconstruction from the GPU"))
    }
}
