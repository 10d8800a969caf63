//! `cuda-emu`: a software CUDA driver, built as `libcuda.so.1`, that runs the
//! project's real host code and real PTX without a GPU.
//!
//! This is a **test device, not a product backend**: it exists so that the CUDA path
//! (cust's calls, argument marshalling, launch shapes, batching, memory sizing, error
//! paths, and the kernels' PTX itself) executes in CI on machines without a GPU, the
//! way Mesa's llvmpipe stands in for a GPU under OpenGL. It shows correctness and cost
//! in instructions and memory sectors; only a real GPU shows speed.
//!
//! * [`abi`]: the exported `cu*` functions (the only `unsafe` code).
//! * [`driver`]: devices, primary contexts, modules, streams, events, memory calls and
//!   launches, with the driver API's semantics.
//! * [`ptx`]: parsing, decoding and interpreting the PTX that rustc's NVPTX backend
//!   emits; anything outside that subset is refused at load with its line.
//! * [`memory`]: device memory with compute-sanitizer-like checks (bounds, use after
//!   free, initcheck, store races, `ld.global.nc` hazards).
//! * [`launch`]: running a grid over the CPU cores.
//! * [`profile`]: the cost report.
//! * [`config`]: settings from the environment (devices, memory, threads, checks).
//! * [`result`]: the `CUresult` codes.

#![warn(missing_docs)]

pub mod abi;
pub mod config;
pub mod driver;
pub mod launch;
pub mod memory;
pub mod profile;
pub mod ptx;
pub mod result;
