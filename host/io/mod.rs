//! Files in and out. Volumes in: NIfTI, DICOM series, MetaImage, NumPy, raw
//! ([`read_volume`]); volumes out: NIfTI, MetaImage, NumPy; projections out: PNG,
//! float TIFF, NumPy.
//!
//! Readers hold at most [`ReadOptions::max_bytes`] per file, check every header field
//! against its bounds and the bytes present before allocating, and name the file and
//! the field in their errors. Writes go to a temporary file in the destination's
//! directory and are renamed into place only when complete, and never replace an
//! existing file unless asked to, so a failure loses nothing.

mod bounded;
mod dicom;
mod dicom_guard;
mod metaimage;
mod nifti;
mod npy;
#[cfg(unix)]
mod npy_stream;
mod png;
mod samples;
mod slab_source;
mod tiff;
mod volume;

pub(crate) use bounded::read_file;
pub use bounded::DEFAULT_MAX_BYTES;
pub use dicom::parse_dicom_slice;
pub use metaimage::{parse_metaimage, write_metaimage};
pub use nifti::{parse_nifti, write_nifti};
pub use npy::{parse_npy, read_volume_npy, write_npy};
#[cfg(unix)]
pub use npy_stream::NpyStream;
pub use png::{write_png, BitDepth, Window};
pub use samples::{ByteOrder, SampleType};
pub use slab_source::SlabSource;
pub use tiff::write_tiff;
pub use volume::{
    detect_format, read_raw, read_volume, LoadedVolume, RawLayout, ReadOptions, VolumeFormat,
};

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
    check_writable(path, overwrite)?;
    let mut temp =
        tempfile::NamedTempFile::new_in(parent_dir(path)).map_err(|e| io("cannot write", e))?;
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

/// Writes `text` to `path` atomically (a CSV table, a report), per `overwrite`.
///
/// # Errors
/// [`Error::Io`] if `path` exists and `overwrite` refuses, or the write fails.
pub fn write_text(path: &Path, text: &str, overwrite: Overwrite) -> Result<()> {
    write_atomically(path, overwrite, |file| {
        file.write_all(text.as_bytes())
            .map_err(|e| write_error(path, e))
    })
}

/// The error for a failed write of `path`; `source` is any error (I/O, encoder).
pub(crate) fn write_error(
    path: &Path,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source: std::io::Error::other(source),
    }
}

/// Fails if `path` exists and `overwrite` is [`Overwrite::Refuse`].
pub(crate) fn check_writable(path: &Path, overwrite: Overwrite) -> Result<()> {
    if overwrite == Overwrite::Refuse && path.exists() {
        return Err(Error::Io {
            action: "refusing to overwrite",
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the file exists (use --force to replace it)",
            ),
        });
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
