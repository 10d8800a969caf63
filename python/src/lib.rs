//! The native core of the Python package `xray_projector`: thin pyo3 functions over the
//! Rust library, called by the package's Python layer (which holds the classes and the
//! docs users see).
//!
//! Built twice from this crate: without features as the module `_native` (CPU only,
//! links nothing but libc), and with feature `cuda` as `_native_cuda` (the CUDA
//! backend; the Python layer imports it only after it has loaded the driver,
//! `libcuda.so.1`, so a machine without one never touches it). Everything here returns
//! Python exceptions, never panics across the boundary (modules `errors` and `run`).

mod args;
mod errors;
mod functions;
mod physics;
mod run;

use pyo3::prelude::*;

/// The module: `_native` (CPU build) or `_native_cuda` (feature `cuda`).
#[pymodule]
#[cfg_attr(feature = "cuda", pyo3(name = "_native_cuda"))]
#[cfg_attr(not(feature = "cuda"), pyo3(name = "_native"))]
fn native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("MU_WATER_70KEV", xray_projector::hounsfield::MU_WATER_70KEV)?;
    functions::register(module)?;
    physics::register(module)
}
