//! The compute backends behind [`crate::Projector`]: the rayon CPU path here, and (feature
//! `cuda`) the NVIDIA GPU path in `crate::cuda`. Both call the per-ray functions of
//! `xray-kernels`.

pub(crate) mod cpu;
// The SIMD walkers are x86-64 only: elsewhere their types exist but never run.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]
pub(crate) mod fdk_lanes;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]
pub(crate) mod joseph_lanes;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]
pub(crate) mod lanes;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]
pub(crate) mod siddon_lanes;
pub(crate) mod span;

use serde::Serialize;

/// Which backend a [`crate::Projector`] should use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// CUDA when it works here, otherwise the CPU (the reason is kept, see
    /// [`crate::Projector::fallback_reason`]).
    #[default]
    Auto,
    /// The rayon CPU backend.
    Cpu,
    /// The CUDA backend, or an error saying why it cannot be used.
    Cuda,
}

/// The backend a [`crate::Projector`] actually runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The rayon CPU backend.
    Cpu,
    /// The CUDA backend.
    Cuda,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
        })
    }
}

/// What `xray info` reports about one backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackendStatus {
    /// The backend.
    pub kind: BackendKind,
    /// Whether it can run projections here.
    pub usable: bool,
    /// What it runs on (threads, GPU name) or why it cannot be used.
    pub detail: String,
}

/// The status of every backend on this machine (probes the CUDA driver when built with
/// `cuda`; cheap otherwise).
pub fn backend_statuses() -> Vec<BackendStatus> {
    vec![
        BackendStatus {
            kind: BackendKind::Cpu,
            usable: true,
            detail: {
                let path = lanes::LanePath::in_use();
                let best = lanes::LanePath::best_supported();
                let capped = if path < best {
                    format!(
                        " (capped by {}; the CPU has {best})",
                        lanes::CPU_LANES_VARIABLE
                    )
                } else {
                    String::new()
                };
                format!(
                    "rayon, {} threads; {} lanes{capped}: {}",
                    rayon::current_num_threads(),
                    path,
                    match path {
                        lanes::LanePath::Scalar => "one ray or voxel per step".to_string(),
                        _ => format!(
                            "{} rays or voxels per step{}; gathers by {}",
                            path.lanes(),
                            match joseph_lanes::adjoint_path(path) {
                                adjoint if adjoint != path => {
                                    format!(" (Joseph's backprojection {})", adjoint.lanes())
                                }
                                _ => String::new(),
                            },
                            lanes::Gather::in_use()
                        ),
                    }
                )
            },
        },
        cuda_status(),
    ]
}

#[cfg(feature = "cuda")]
fn cuda_status() -> BackendStatus {
    match crate::cuda::CudaBackend::on_device(0) {
        Ok(backend) => BackendStatus {
            kind: BackendKind::Cuda,
            usable: true,
            detail: backend.description().to_string(),
        },
        Err(error) => BackendStatus {
            kind: BackendKind::Cuda,
            usable: false,
            detail: match error {
                crate::Error::CudaUnavailable { reason } => reason,
                other => other.to_string(),
            },
        },
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_status() -> BackendStatus {
    BackendStatus {
        kind: BackendKind::Cuda,
        usable: false,
        detail: NOT_BUILT.to_string(),
    }
}

/// Why CUDA is unavailable in a build without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
pub(crate) const NOT_BUILT: &str =
    "this build of xray-projector was made without the `cuda` feature";
