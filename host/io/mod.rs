//! Files in and out: NumPy `.npy` arrays and PNG images. Writes go to a temporary file
//! in the destination's directory and are renamed into place only when complete, and
//! never replace an existing file unless asked to, so a failure loses nothing.

mod npy;
mod png;

pub use npy::{read_volume_npy, write_npy};
pub use png::{write_png, BitDepth, Window};

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Whether a write may replace an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overwrite {
    /// Fail with an error if the destination exists (the default).
    #[default]
    Refuse,
    /// Replace the destination atomically.
    Replace,
}

/// Writes `path` atomically: `fill` writes the content to a temporary file beside it,
/// which is then renamed over `path` (or not, per `overwrite`).
pub(crate) fn write_atomically(
    path: &Path,
    overwrite: Overwrite,
    fill: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let io = |action, source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    if overwrite == Overwrite::Refuse && path.exists() {
        return Err(io(
            "refusing to overwrite",
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the file exists (use --force to replace it)",
            ),
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io("cannot write", e))?;
    fill(temp.as_file_mut())?;
    temp.as_file_mut()
        .flush()
        .map_err(|e| io("cannot write", e))?;
    match overwrite {
        Overwrite::Replace => temp.persist(path).map(drop),
        Overwrite::Refuse => temp.persist_noclobber(path).map(drop),
    }
    .map_err(|e| io("cannot write", e.error))
}
