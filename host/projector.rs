//! [`Projector`]: the front that validates inputs, picks a backend and runs the forward
//! projection.

use ndarray::{Array3, ArrayBase, Data, Ix3};

use crate::alloc::zeroed;
use crate::backend::{cpu, Backend, BackendKind};
use crate::error::{Error, Result};
use crate::geometry::{ProjectionGeometry, VolumeGeometry};

pub use xray_kernels::Method;

/// Runs projections on one backend.
///
/// # Examples
/// ```
/// use ndarray::Array3;
/// use xray_projector::{Backend, CircularScan, Method, Projector, VolumeGeometry};
///
/// let volume_geometry = VolumeGeometry::centered([32, 32, 32], [1.0, 1.0, 1.0]);
/// let volume = Array3::from_elem((32, 32, 32), 0.02f32);
/// let geometry = CircularScan::new(500.0, 800.0, 4, [48, 48], 1.0).geometry()?;
/// let projector = Projector::new(Backend::Cpu)?;
/// let p = projector.forward(&volume, &volume_geometry, &geometry, Method::Siddon)?;
/// assert_eq!(p.shape(), &[4, 48, 48]);
/// // The central ray crosses 32 mm of mu = 0.02/mm.
/// assert!((p[[0, 23, 23]] - 0.64).abs() < 1e-3);
/// # Ok::<(), xray_projector::Error>(())
/// ```
#[derive(Debug)]
pub struct Projector {
    kind: BackendKind,
    fallback_reason: Option<String>,
}

impl Projector {
    /// A projector on `backend`.
    ///
    /// `Backend::Auto` uses CUDA when it can run here and the CPU otherwise, keeping the
    /// reason (see [`Projector::fallback_reason`]).
    ///
    /// # Errors
    /// [`Error::CudaUnavailable`] for `Backend::Cuda` when CUDA cannot be used, with the
    /// reason (not built with `cuda`, no driver, no device, PTX rejected, or, in this
    /// version, the GPU launch path not yet present).
    pub fn new(backend: Backend) -> Result<Projector> {
        match backend {
            Backend::Cpu => Ok(Projector {
                kind: BackendKind::Cpu,
                fallback_reason: None,
            }),
            Backend::Cuda => Err(Error::CudaUnavailable {
                reason: cuda_unavailable_reason(),
            }),
            Backend::Auto => Ok(Projector {
                kind: BackendKind::Cpu,
                fallback_reason: Some(cuda_unavailable_reason()),
            }),
        }
    }

    /// The backend this projector runs on.
    pub fn backend(&self) -> BackendKind {
        self.kind
    }

    /// Why `Backend::Auto` did not pick CUDA, if it did not.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Line integrals `p = sum mu_i L_i` of every detector pixel of every view.
    ///
    /// `volume` is `[nz, ny, nx]` of attenuation coefficients in 1/mm, laid out as
    /// `volume_geometry` says; the result is `[views, rows, cols]`, dimensionless.
    ///
    /// # Errors
    /// [`Error::Geometry`] for an invalid geometry, [`Error::ShapeMismatch`] if the array
    /// is not `volume_geometry.shape`, [`Error::NonFiniteVolume`] for NaN or infinite
    /// voxels, [`Error::Allocation`] if the output cannot be allocated.
    pub fn forward<S>(
        &self,
        volume: &ArrayBase<S, Ix3>,
        volume_geometry: &VolumeGeometry,
        geometry: &ProjectionGeometry,
        method: Method,
    ) -> Result<Array3<f32>>
    where
        S: Data<Elem = f32>,
    {
        self.forward_with_progress(volume, volume_geometry, geometry, method, &|| {})
    }

    /// As [`Projector::forward`], calling `view_done` once per finished view (from any
    /// thread), for progress bars.
    ///
    /// # Errors
    /// As [`Projector::forward`].
    pub fn forward_with_progress<S>(
        &self,
        volume: &ArrayBase<S, Ix3>,
        volume_geometry: &VolumeGeometry,
        geometry: &ProjectionGeometry,
        method: Method,
        view_done: &(dyn Fn() + Sync),
    ) -> Result<Array3<f32>>
    where
        S: Data<Elem = f32>,
    {
        volume_geometry.validate()?;
        geometry.validate()?;
        volume_geometry.check_shape(volume.shape())?;
        let contiguous = volume.as_standard_layout();
        let voxels = contiguous
            .as_slice()
            .expect("as_standard_layout gives a contiguous array");
        check_finite(voxels, volume_geometry.shape)?;
        let ray_count = geometry.ray_count()?;
        let mut out = zeroed(ray_count, "projections")?;
        let grid = volume_geometry.grid_params();
        let views = geometry.view_params(volume_geometry);
        let detector = geometry.detector_params();
        match self.kind {
            BackendKind::Cpu => cpu::forward(
                voxels, &grid, &views, &detector, method, &mut out, view_done,
            ),
            BackendKind::Cuda => {
                return Err(Error::CudaUnavailable {
                    reason: cuda_unavailable_reason(),
                })
            }
        }
        Ok(Array3::from_shape_vec(geometry.shape(), out)
            .expect("the buffer has views * rows * cols elements"))
    }
}

/// Why the CUDA backend cannot run projections in this build on this machine.
fn cuda_unavailable_reason() -> String {
    #[cfg(feature = "cuda")]
    {
        match crate::backend::cuda::probe() {
            Ok(device) => format!(
                "{device}, but this version has no GPU launch path yet (the CUDA backend issue)"
            ),
            Err(reason) => reason,
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        crate::backend::NOT_BUILT.to_string()
    }
}

/// Rejects NaN and infinities, naming the first one (`voxels` is `[nz, ny, nx]`).
fn check_finite(voxels: &[f32], shape: [usize; 3]) -> Result<()> {
    if voxels.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    let position = voxels.iter().position(|v| !v.is_finite()).unwrap_or(0);
    let [_, ny, nx] = shape;
    Err(Error::NonFiniteVolume {
        index: [position / (ny * nx), position / nx % ny, position % nx],
        value: voxels[position],
    })
}
