//! The CUDA backend (feature `cuda`): device memory with `cust`, the kernels' PTX, and
//! the launches.
//!
//! * [`CudaBackend`]: one GPU's context, the loaded PTX module and a stream; shared per
//!   device within the process ([`CudaBackend::on_device`]).
//! * [`DeviceVolume`]: a volume uploaded once and kept resident, validated at upload, for
//!   callers that project the same volume many times (registration, iterative
//!   reconstruction).
//! * [`DeviceProjections`]: projections that stay on the GPU until asked for.
//!
//! [`crate::Projector`] with [`crate::Backend::Cuda`] or [`crate::Backend::Auto`] uses
//! this module for one-shot projections from host arrays; use it directly to keep data
//! on the GPU:
//!
//! ```no_run
//! use xray_projector::cuda::CudaBackend;
//! use xray_projector::{CircularScan, Method, Phantom, VolumeGeometry};
//!
//! let grid = VolumeGeometry::centered([256, 256, 256], [1.0, 1.0, 1.0]);
//! let volume = Phantom::shepp_logan(128.0).voxelize(&grid, 1)?;
//! let gpu = CudaBackend::on_device(0)?;
//! let resident = gpu.upload(&volume, &grid)?; // once
//! let geometry = CircularScan::new(1000.0, 1500.0, 360, [256, 256], 1.6).geometry()?;
//! let mut projections = gpu.allocate_projections(&geometry)?;
//! for _ in 0..10 {
//!     let kernel_time = gpu.forward_into(&resident, &geometry, Method::Siddon, &mut projections)?;
//!     println!("{kernel_time:?}");
//! }
//! let sinogram = projections.to_host()?; // [views, rows, cols]
//! # Ok::<(), xray_projector::Error>(())
//! ```
//!
//! Every driver failure becomes [`crate::Error::Cuda`], [`crate::Error::CudaFaulted`]
//! (the context faulted, see below) or [`crate::Error::DeviceOutOfMemory`], never a
//! panic. The kernels' launch contract (buffer sizes, no aliasing) is upheld here, in
//! `device`, and so are CUDA's limits on a launch grid: a detector of more than 524,280
//! rows (8 per block, 65,535 blocks), or an FDK grid of more than 524,280 voxels along y
//! or 65,535 slices, is refused with [`crate::GeometryError::TooLarge`] before anything
//! is allocated: by this module's calls before any device memory, and by
//! [`crate::Projector`] and [`crate::recon::fdk`] before they upload the volume or
//! weight and filter the projections.
//!
//! A kernel fault (an illegal address, say) is "sticky" in CUDA: the context refuses all
//! later work. The call that meets it returns [`crate::Error::CudaFaulted`], as do later
//! calls on that backend and on its [`DeviceVolume`]s and [`DeviceProjections`] (their
//! data is lost); the next [`CudaBackend::on_device`] or [`CudaBackend::healthy`] resets
//! the device's primary context and opens a fresh backend, on which work succeeds again.
//! A [`crate::Projector`] calls `healthy` at each GPU call, so a long-lived one recovers
//! by itself: only the call that met the fault fails.

mod buffers;
mod device;
mod executor;
mod fdk;
mod solver;

pub use buffers::{DeviceProjections, DeviceVolume};
pub(crate) use device::check_launchable;
pub use device::CudaBackend;
pub(crate) use executor::CudaExecutor;
pub(crate) use fdk::check_fdk_launchable;
pub(crate) use solver::resident_workspace;

/// The kernels' PTX, built by `build.rs` from `kernels/` (or the committed copy).
pub(crate) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/xray_kernels.ptx"));
