//! Whole-file and decompressed reads with a ceiling on the bytes held, so that neither
//! a hostile header nor a decompression bomb can make a reader allocate without bound.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Default ceiling on the bytes a reader holds for one file (decompressed): 16 GiB,
/// a 2048^3 float32 volume with room to spare.
pub const DEFAULT_MAX_BYTES: u64 = 16 << 30;

/// Reads all of `path`, refusing files larger than `max_bytes`.
///
/// # Errors
/// [`Error::Io`] if it cannot be read; [`Error::Format`] if it is larger than
/// `max_bytes`; [`Error::Allocation`].
pub(crate) fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > max_bytes {
        return Err(over_limit(path, "the file", size, max_bytes));
    }
    let mut bytes = reserve(size, "the file's content")?;
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(over_limit(path, "the file", bytes.len() as u64, max_bytes));
    }
    Ok(bytes)
}

/// Whether `bytes` starts with the gzip magic number.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Decompresses a gzip stream (all members), refusing more than `max_bytes` of output.
///
/// # Errors
/// [`Error::Format`] naming `path` for a corrupt or truncated stream or one that
/// inflates past `max_bytes`.
pub(crate) fn gunzip(path: &Path, compressed: &[u8], max_bytes: u64) -> Result<Vec<u8>> {
    inflate(
        path,
        flate2::read::MultiGzDecoder::new(compressed),
        "gzip",
        max_bytes,
    )
}

/// Decompresses a zlib stream that must inflate to exactly `expected` bytes.
///
/// # Errors
/// [`Error::Format`] naming `path` for a corrupt stream, or one that inflates to more
/// or fewer bytes.
pub(crate) fn unzlib(path: &Path, compressed: &[u8], expected: u64) -> Result<Vec<u8>> {
    let out = inflate(
        path,
        flate2::read::ZlibDecoder::new(compressed),
        "zlib",
        expected,
    )?;
    if out.len() as u64 != expected {
        return Err(Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "the compressed data inflates to {} bytes, but the header implies {expected}",
                out.len()
            ),
        });
    }
    Ok(out)
}

fn inflate(path: &Path, decoder: impl Read, kind: &str, max_bytes: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decoder
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Error::Format {
            path: path.to_path_buf(),
            reason: format!("corrupt or truncated {kind} data: {e}"),
        })?;
    if out.len() as u64 > max_bytes {
        return Err(over_limit(
            path,
            &format!("the {kind} data inflates, and"),
            out.len() as u64,
            max_bytes,
        ));
    }
    Ok(out)
}

fn reserve(bytes: u64, what: &'static str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    usize::try_from(bytes)
        .ok()
        .and_then(|n| v.try_reserve_exact(n).ok())
        .ok_or(Error::Allocation {
            what,
            bytes: u128::from(bytes),
        })?;
    Ok(v)
}

fn over_limit(path: &Path, what: &str, size: u64, max_bytes: u64) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        reason: format!(
            "{what} is at least {size} bytes, over the reader's limit of {max_bytes} bytes \
             (raise it with --max-bytes / ReadOptions::max_bytes if this is meant)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 1 << 20]);
        let path = Path::new("bomb.gz");
        assert_eq!(gunzip(path, &bomb, 1 << 20).unwrap().len(), 1 << 20);
        let err = gunzip(path, &bomb, 1000).unwrap_err().to_string();
        assert!(err.contains("limit of 1000 bytes"), "{err}");
        let err = gunzip(path, &bomb[..bomb.len() / 2], 1 << 21).unwrap_err();
        assert!(err.to_string().contains("corrupt or truncated"), "{err}");
    }

    #[test]
    fn unzlib_wants_the_exact_size() {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&[7u8; 100]).unwrap();
        let z = e.finish().unwrap();
        let path = Path::new("x.mha");
        assert_eq!(unzlib(path, &z, 100).unwrap(), vec![7u8; 100]);
        assert!(unzlib(path, &z, 99).is_err());
        assert!(unzlib(path, &z, 101).is_err());
    }
}
