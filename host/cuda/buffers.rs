//! Data that lives on the GPU: [`DeviceVolume`] (resident input) and
//! [`DeviceProjections`] (output kept on the device).
//!
//! Both keep their backend alive. If its context faults, they refuse all work with
//! [`Error::CudaFaulted`] (their data is gone) and leave their buffers alone when
//! dropped: the driver reclaims them with the context, and freeing them by address could
//! free memory of the fresh context that replaced it.

use std::mem::ManuallyDrop;
use std::sync::Arc;

use cust::memory::{CopyDestination, DeviceBuffer, DevicePointer};
use ndarray::{Array3, ArrayBase, Data, Ix3};

use super::device::CudaBackend;
use crate::alloc::zeroed;
use crate::error::{Error, Result};
use crate::geometry::VolumeGeometry;
use crate::projector::check_finite;

/// A volume resident in GPU memory, made by [`CudaBackend::upload`].
///
/// It keeps its backend (and so the CUDA context) alive, and frees its memory when
/// dropped, from any thread.
pub struct DeviceVolume {
    // Freed by hand in `Drop`, while the context still exists, and only if it has not
    // faulted.
    voxels: ManuallyDrop<DeviceBuffer<f32>>,
    grid: ManuallyDrop<DeviceBuffer<u8>>,
    geometry: VolumeGeometry,
    /// The slices of `geometry`'s grid the buffer holds (all, except inside the
    /// executor's slabs).
    slices: std::ops::Range<usize>,
    backend: Arc<CudaBackend>,
}

impl std::fmt::Debug for DeviceVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceVolume")
            .field("geometry", &self.geometry)
            .field("device", &self.backend.ordinal())
            .finish_non_exhaustive()
    }
}

impl Drop for DeviceVolume {
    fn drop(&mut self) {
        // cuMemFree needs the owning context current on this thread; after a fault the
        // buffers are left to the driver (see the module docs).
        if let Some(_calls) = self.backend.enter_to_free() {
            // SAFETY: each is dropped once, here, and never used again.
            unsafe {
                ManuallyDrop::drop(&mut self.voxels);
                ManuallyDrop::drop(&mut self.grid);
            }
        }
    }
}

impl DeviceVolume {
    pub(super) fn new(
        voxels: DeviceBuffer<f32>,
        grid: DeviceBuffer<u8>,
        geometry: VolumeGeometry,
        slices: std::ops::Range<usize>,
        backend: Arc<CudaBackend>,
    ) -> DeviceVolume {
        DeviceVolume {
            voxels: ManuallyDrop::new(voxels),
            grid: ManuallyDrop::new(grid),
            geometry,
            slices,
            backend,
        }
    }

    /// Where the volume sits in the world.
    pub fn geometry(&self) -> &VolumeGeometry {
        &self.geometry
    }

    /// The backend (GPU) holding it.
    pub fn backend(&self) -> &CudaBackend {
        &self.backend
    }

    /// Bytes of GPU memory it occupies.
    pub fn device_bytes(&self) -> usize {
        self.voxels.len() * 4 + self.grid.len()
    }

    /// Replaces the voxel values with `volume` (same geometry), without reallocating:
    /// the update step of an iterative reconstruction.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`], [`Error::NonFiniteVolume`] (the resident values are then
    /// unchanged), [`Error::Cuda`], [`Error::CudaFaulted`].
    pub fn update<S>(&mut self, volume: &ArrayBase<S, Ix3>) -> Result<()>
    where
        S: Data<Elem = f32>,
    {
        self.geometry.check_shape(volume.shape())?;
        let contiguous = volume.as_standard_layout();
        let voxels = contiguous
            .as_slice()
            .expect("as_standard_layout gives a contiguous array");
        check_finite(voxels, self.geometry.shape)?;
        let _calls = self.backend.enter()?;
        self.voxels
            .copy_from(voxels)
            .map_err(self.backend.cuda_error("copying the volume to the GPU"))
    }

    /// Copies the volume into a new host array `[nz, ny, nx]`.
    ///
    /// # Errors
    /// [`Error::Allocation`] (host memory), [`Error::Cuda`], [`Error::CudaFaulted`].
    pub fn to_host(&self) -> Result<Array3<f32>> {
        let [_, ny, nx] = self.geometry.shape;
        let shape = [self.slices.len(), ny, nx];
        let len = shape.iter().product();
        let mut host = zeroed(len, "the volume")?;
        let _calls = self.backend.enter()?;
        self.voxels
            .index(..len)
            .copy_to(&mut host[..])
            .map_err(self.backend.cuda_error("copying the volume from the GPU"))?;
        Array3::from_shape_vec(shape, host).map_err(|e| Error::InvalidParameter {
            name: "volume",
            reason: e.to_string(),
        })
    }

    /// Copies the volume into `out` (its voxel count long).
    pub(super) fn copy_to_slice(&self, out: &mut [f32]) -> Result<()> {
        let _calls = self.backend.enter()?;
        self.voxels
            .index(..out.len())
            .copy_to(out)
            .map_err(self.backend.cuda_error("copying the volume from the GPU"))
    }

    /// Sets every voxel to 0 (before a backprojection adds into it).
    pub(super) fn zero(&mut self) -> Result<()> {
        let _calls = self.backend.enter()?;
        self.voxels
            .set_zero()
            .map_err(self.backend.cuda_error("zeroing the volume on the GPU"))
    }

    pub(super) fn voxels_ptr(&self) -> DevicePointer<f32> {
        self.voxels.as_device_ptr()
    }

    pub(super) fn grid_ptr(&self) -> DevicePointer<u8> {
        self.grid.as_device_ptr()
    }
}

/// Projections `[views, rows, cols]` in GPU memory, made by
/// [`CudaBackend::allocate_projections`] or [`CudaBackend::forward`].
pub struct DeviceProjections {
    // Freed by hand in `Drop`, while the context still exists, and only if it has not
    // faulted.
    data: ManuallyDrop<DeviceBuffer<f32>>,
    views: ManuallyDrop<DeviceBuffer<u8>>,
    shape: [usize; 3],
    backend: Arc<CudaBackend>,
}

impl std::fmt::Debug for DeviceProjections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceProjections")
            .field("shape", &self.shape)
            .field("device", &self.backend.ordinal())
            .finish_non_exhaustive()
    }
}

impl Drop for DeviceProjections {
    fn drop(&mut self) {
        // As for `DeviceVolume`.
        if let Some(_calls) = self.backend.enter_to_free() {
            // SAFETY: each is dropped once, here, and never used again.
            unsafe {
                ManuallyDrop::drop(&mut self.data);
                ManuallyDrop::drop(&mut self.views);
            }
        }
    }
}

impl DeviceProjections {
    pub(super) fn new(
        data: DeviceBuffer<f32>,
        views: DeviceBuffer<u8>,
        shape: [usize; 3],
        backend: Arc<CudaBackend>,
    ) -> DeviceProjections {
        DeviceProjections {
            data: ManuallyDrop::new(data),
            views: ManuallyDrop::new(views),
            shape,
            backend,
        }
    }

    /// `[views, rows, cols]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The backend (GPU) holding them.
    pub fn backend(&self) -> &CudaBackend {
        &self.backend
    }

    /// Copies the projections into a new host array `[views, rows, cols]`.
    ///
    /// # Errors
    /// [`Error::Allocation`] (host memory), [`Error::Cuda`], [`Error::CudaFaulted`].
    pub fn to_host(&self) -> Result<Array3<f32>> {
        let len = self.shape.iter().product();
        let mut host = zeroed(len, "projections")?;
        let _calls = self.backend.enter()?;
        let failed = self
            .backend
            .cuda_error("copying the projections from the GPU");
        self.data
            .index(..len)
            .copy_to(&mut host[..])
            .map_err(failed)?;
        Array3::from_shape_vec(self.shape, host).map_err(|e| Error::InvalidParameter {
            name: "projections",
            reason: e.to_string(),
        })
    }

    /// The values' device buffer.
    pub(super) fn device_buffer(&self) -> &DeviceBuffer<f32> {
        &self.data
    }

    pub(super) fn data_ptr(&self) -> DevicePointer<f32> {
        self.data.as_device_ptr()
    }

    pub(super) fn buffers_mut(&mut self) -> (&mut DeviceBuffer<u8>, &mut DeviceBuffer<f32>) {
        (&mut *self.views, &mut *self.data)
    }
}

/// A device array of `f32` the vector kernels work on: a volume (or slab) or
/// projections.
pub(super) trait DeviceArray {
    /// Its first element.
    fn device_ptr(&self) -> DevicePointer<f32>;
    /// Its element count.
    fn element_count(&self) -> usize;
    /// The backend holding it.
    fn owner(&self) -> &CudaBackend;
}

impl DeviceArray for DeviceVolume {
    fn device_ptr(&self) -> DevicePointer<f32> {
        self.voxels.as_device_ptr()
    }

    fn element_count(&self) -> usize {
        let [_, ny, nx] = self.geometry.shape;
        self.slices.len() * ny * nx
    }

    fn owner(&self) -> &CudaBackend {
        &self.backend
    }
}

impl DeviceArray for DeviceProjections {
    fn device_ptr(&self) -> DevicePointer<f32> {
        self.data.as_device_ptr()
    }

    fn element_count(&self) -> usize {
        self.shape().iter().product()
    }

    fn owner(&self) -> &CudaBackend {
        &self.backend
    }
}
