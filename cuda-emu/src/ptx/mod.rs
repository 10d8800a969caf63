//! PTX: parsing ([`parse`]), decoding into a compact form ([`decode`], [`ops`]) and
//! interpretation ([`exec`]).
//!
//! A module is accepted only if every construct in it is implemented; otherwise
//! loading fails with a [`LoadError`] naming the construct and its line, the way the
//! real JIT names the line of a PTX error. Nothing is skipped or guessed.

pub mod decode;
pub mod exec;
pub mod ops;
pub mod parse;

use std::fmt;
use std::sync::Arc;

pub use decode::Kernel;

/// Why a PTX module was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The 1-based line of the PTX text.
    pub line: u32,
    /// What was wrong or not implemented.
    pub message: String,
}

/// The newest PTX ISA version this driver accepts: that of CUDA 11.4, whose driver API
/// it implements (`cuDriverGetVersion` says 11040).
pub const NEWEST_PTX: (u32, u32) = (7, 4);

impl LoadError {
    /// Whether the module was refused for its `.version` alone (the driver's
    /// `CUDA_ERROR_UNSUPPORTED_PTX_VERSION`).
    pub fn is_unsupported_version(&self) -> bool {
        self.message.starts_with(UNSUPPORTED_VERSION)
    }
}

/// How a refusal for the PTX version starts.
pub(crate) const UNSUPPORTED_VERSION: &str = "PTX ISA version";

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ptx line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for LoadError {}

/// A loaded module: its kernels, decoded.
#[derive(Debug)]
pub struct Module {
    /// The kernels, in the order of the text.
    pub kernels: Vec<Arc<Kernel>>,
}

impl Module {
    /// The kernel called `name`.
    pub fn kernel(&self, name: &str) -> Option<&Arc<Kernel>> {
        self.kernels.iter().find(|k| k.name == name)
    }
}

/// Parses and decodes a whole PTX module.
///
/// # Errors
/// The first construct that is malformed or not implemented, with its line.
pub fn load(text: &str) -> Result<Module, LoadError> {
    let parsed = parse::parse_module(text)?;
    let kernels = parsed
        .kernels
        .iter()
        .map(|k| decode::decode_kernel(k).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Module { kernels })
}
