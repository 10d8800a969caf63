//! The library's error type. Every fallible public function returns [`Result`].

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in `xray-projector`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The volume or projection geometry is unusable; the variant says exactly why.
    #[error(transparent)]
    Geometry(#[from] GeometryError),

    /// An array does not have the shape its geometry implies.
    #[error("{what} has shape {got:?}, but the geometry implies {expected:?}")]
    ShapeMismatch {
        /// Which array.
        what: &'static str,
        /// The shape the geometry implies.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },

    /// The volume holds NaN or an infinity, which would silently poison every ray.
    #[error("the volume holds a non-finite value ({value}) at [z, y, x] = {index:?}")]
    NonFiniteVolume {
        /// Position `[z, y, x]` of the first offending voxel.
        index: [usize; 3],
        /// The value found there.
        value: f32,
    },

    /// A parameter outside its valid range (photon count, phantom size, ...).
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// A buffer could not be allocated (the request was too large for this machine).
    #[error("cannot allocate {bytes} bytes for {what}")]
    Allocation {
        /// What the buffer was for.
        what: &'static str,
        /// Its size in bytes.
        bytes: u128,
    },

    /// The CUDA backend was requested but cannot be used here.
    #[error("the CUDA backend is unavailable: {reason}")]
    CudaUnavailable {
        /// Why (not built with `cuda`, no driver, no device, module rejected, ...).
        reason: String,
    },

    /// A CUDA driver call failed (the CUDA backend was usable, but this operation was not).
    #[error("CUDA error while {action}: {reason}")]
    Cuda {
        /// What the library was doing ("uploading the volume", "running the kernel", ...).
        action: String,
        /// The driver's message.
        reason: String,
    },

    /// A GPU context faulted: a kernel made an illegal memory access, trapped, or hit
    /// another of CUDA's "sticky" errors, after which CUDA refuses all work in that
    /// context (or the context was destroyed or reset under the backend). Everything the
    /// backend held on the GPU is lost, and the backend, its resident volumes and its
    /// device projections return this error from then on.
    ///
    /// The next `CudaBackend::on_device` or `CudaBackend::healthy` for the device resets
    /// the context and opens a fresh backend, on which work succeeds again. A `Projector`
    /// calls `healthy` at each GPU call, so a long-lived `Projector` recovers by itself:
    /// its next call runs on the fresh context. If driver calls on the faulted context
    /// are still running after a short wait, that reset is put off and this error (its
    /// reason saying so) is returned instead: retry.
    #[error(
        "the CUDA context on device {ordinal} has faulted ({reason}): the data it held on \
         the GPU is lost; the next call through a Projector, CudaBackend::on_device or \
         CudaBackend::healthy resets the device and starts afresh"
    )]
    CudaFaulted {
        /// The device's ordinal.
        ordinal: u32,
        /// The first sticky error: what the library was doing, and the driver's message.
        reason: String,
    },

    /// The GPU has too little free memory for a buffer.
    #[error("not enough GPU memory for {what}: {bytes} bytes needed, {free} bytes free")]
    DeviceOutOfMemory {
        /// What the buffer was for.
        what: &'static str,
        /// Its size in bytes.
        bytes: u128,
        /// Free device memory when it was requested.
        free: u128,
    },

    /// Reading or writing a file failed (the cause is the error's `source()`).
    #[error("{action} {path}")]
    Io {
        /// "cannot read", "cannot write", ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The processes of a [`crate::distributed::Communicator`] could not compute
    /// together: a message failed, another rank failed, or the ranks disagree.
    #[error("distributed computation: {reason}")]
    Communication {
        /// What went wrong.
        reason: String,
    },

    /// The computation was stopped through its [`crate::Cancel`] flag; its partial
    /// output was dropped.
    #[error("the computation was cancelled")]
    Cancelled,

    /// A file exists but its content is not what was expected.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a volume or projection geometry was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GeometryError {
    /// A count (voxels, rows, columns, views) is zero.
    #[error("{field} must be at least 1")]
    Empty {
        /// The field, e.g. `volume shape[0] (nz)`.
        field: String,
    },
    /// A count exceeds what the kernels can index
    /// ([`MAX_AXIS_LEN`](crate::geometry::MAX_AXIS_LEN) per axis), what memory can hold,
    /// or, on the CUDA backend, what CUDA's launch grid can cover (the field says which).
    #[error("{field} = {value} exceeds the limit of {limit}")]
    TooLarge {
        /// The field.
        field: String,
        /// Its value.
        value: u128,
        /// The largest allowed value.
        limit: u128,
    },
    /// A length that must be positive is zero or negative.
    #[error("{field} must be positive, got {value}")]
    NotPositive {
        /// The field.
        field: String,
        /// Its value.
        value: f64,
    },
    /// A number is NaN or infinite.
    #[error("{field} is not finite ({value})")]
    NotFinite {
        /// The field.
        field: String,
        /// Its value.
        value: f64,
    },
    /// The volume's direction matrix is not a rotation or reflection.
    #[error("the volume direction matrix is not orthonormal (largest error {error:.2e})")]
    DirectionNotOrthonormal {
        /// Largest deviation of `R^T R` from the identity.
        error: f64,
    },
    /// A detector's u and v vectors are (nearly) parallel, or one is zero.
    #[error("view {view}: detector vectors u and v are parallel or zero")]
    DetectorAxesParallel {
        /// Index of the view.
        view: usize,
    },
    /// A cone-beam source lies in its detector's plane.
    #[error("view {view}: the source lies in the detector plane")]
    SourceOnDetectorPlane {
        /// Index of the view.
        view: usize,
    },
    /// A parallel-beam direction is zero or lies in the detector plane.
    #[error("view {view}: the ray direction is zero or parallel to the detector plane")]
    RayAlongDetector {
        /// Index of the view.
        view: usize,
    },
    /// The source-to-detector distance is not larger than the source-to-object distance.
    #[error(
        "the source-detector distance ({sdd} mm) must exceed the source-object distance ({sod} mm)"
    )]
    DetectorInsideOrbit {
        /// Source to rotation axis.
        sod: f64,
        /// Source to detector.
        sdd: f64,
    },
}
