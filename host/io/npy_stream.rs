//! Projections written to a `.npy` file batch by batch ([`NpyStream`]), so that a
//! projection of a volume larger than RAM never holds all its views in memory.
//!
//! The file (little-endian float32, C order, `[views, rows, cols]`, NumPy format 1.0)
//! is created at full length, zero-filled, and its views are written, read back and
//! accumulated in place with positional I/O, in any order. As every writer here, it
//! is written to a temporary file beside the destination and renamed into place by
//! [`NpyStream::finish`], so an interrupted run leaves nothing behind and an existing
//! file is replaced only when asked to.

use std::borrow::Cow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{check_writable, parent_dir, write_error, Overwrite};
use crate::alloc::{reserved, zeroed};
use crate::error::{Error, Result};

/// A `[views, rows, cols]` float32 `.npy` file being written view batch by view
/// batch: [`write_views`](NpyStream::write_views),
/// [`add_views`](NpyStream::add_views) and [`read_views`](NpyStream::read_views)
/// take whole views from a given view index; views never written hold zeros.
/// Nothing appears at the destination until [`finish`](NpyStream::finish); dropping
/// the stream unfinished deletes its file.
#[derive(Debug)]
pub struct NpyStream {
    /// The destination.
    path: PathBuf,
    /// The file being written, beside the destination.
    file: tempfile::NamedTempFile,
    shape: [usize; 3],
    /// Bytes of the header, where view 0 starts.
    header_len: u64,
    overwrite: Overwrite,
}

impl NpyStream {
    /// Starts a `.npy` file at `path` for float32 projections of `shape` `[views,
    /// rows, cols]`: writes its header and sets its full length (zeros, sparse where
    /// the file system allows).
    ///
    /// # Errors
    /// [`Error::Io`] if `path` exists and `overwrite` is [`Overwrite::Refuse`], or the
    /// file cannot be created; [`Error::InvalidParameter`] for an empty shape or one
    /// whose data would exceed what a file offset can address.
    pub fn create(path: &Path, shape: [usize; 3], overwrite: Overwrite) -> Result<NpyStream> {
        check_writable(path, overwrite)?;
        if shape.contains(&0) {
            return Err(Error::InvalidParameter {
                name: "projection shape",
                reason: format!("{shape:?} [views, rows, cols] has an empty axis"),
            });
        }
        let header = header(shape);
        let file_len = shape
            .iter()
            .try_fold(4usize, |n, &d| n.checked_mul(d))
            .and_then(|n| u64::try_from(n).ok())
            .and_then(|n| n.checked_add(header.len() as u64))
            .ok_or_else(|| Error::InvalidParameter {
                name: "projection shape",
                reason: format!("{shape:?} float32 values are too many for one file"),
            })?;
        let file =
            tempfile::NamedTempFile::new_in(parent_dir(path)).map_err(|e| write_error(path, e))?;
        file.as_file()
            .write_all_at(&header, 0)
            .and_then(|()| file.as_file().set_len(file_len))
            .map_err(|e| write_error(path, e))?;
        Ok(NpyStream {
            path: path.to_path_buf(),
            file,
            shape,
            header_len: header.len() as u64,
            overwrite,
        })
    }

    /// The array's shape, `[views, rows, cols]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Writes `values` (whole views, `[view, row, col]`) as views `first..`,
    /// replacing what they held.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `values` is not whole views or runs past the
    /// last view; [`Error::Io`] if the write fails.
    pub fn write_views(&mut self, first: usize, values: &[f32]) -> Result<()> {
        let at = self.offset(first, values.len())?;
        let bytes = le_bytes(values)?;
        self.file
            .as_file()
            .write_all_at(&bytes, at)
            .map_err(|e| write_error(&self.path, e))
    }

    /// Reads views `first..` into `out` (whole views, `[view, row, col]`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `out` is not whole views or runs past the last
    /// view; [`Error::Io`] if the read fails.
    pub fn read_views(&self, first: usize, out: &mut [f32]) -> Result<()> {
        let at = self.offset(first, out.len())?;
        self.file
            .as_file()
            .read_exact_at(bytemuck::cast_slice_mut(out), at)
            .map_err(|source| Error::Io {
                action: "cannot read",
                path: self.path.clone(),
                source,
            })?;
        // The file is little-endian; this is a no-op on little-endian machines.
        for v in out.iter_mut() {
            *v = f32::from_bits(u32::from_le(v.to_bits()));
        }
        Ok(())
    }

    /// Adds `values` (whole views, `[view, row, col]`) to views `first..`: reads
    /// them, adds, and writes them back.
    ///
    /// # Errors
    /// As [`read_views`](Self::read_views) and [`write_views`](Self::write_views);
    /// [`Error::Allocation`] for the batch's buffer.
    pub fn add_views(&mut self, first: usize, values: &[f32]) -> Result<()> {
        let mut sum = zeroed(values.len(), "a batch of projections")?;
        self.read_views(first, &mut sum)?;
        for (s, v) in sum.iter_mut().zip(values) {
            *s += v;
        }
        self.write_views(first, &sum)
    }

    /// Flushes the file to disk and moves it to its destination.
    ///
    /// # Errors
    /// [`Error::Io`] if the sync or the rename fails, or if the destination has
    /// appeared meanwhile and the stream was created with [`Overwrite::Refuse`].
    pub fn finish(self) -> Result<()> {
        let NpyStream {
            path,
            file,
            overwrite,
            ..
        } = self;
        file.as_file()
            .sync_all()
            .map_err(|e| write_error(&path, e))?;
        match overwrite {
            Overwrite::Replace => file.persist(&path).map(drop),
            Overwrite::Refuse => file.persist_noclobber(&path).map(drop),
        }
        .map_err(|e| Error::Io {
            action: "cannot write",
            path,
            source: e.error,
        })
    }

    /// The file offset of view `first`, after checking that `len` values from it are
    /// whole views within the array.
    fn offset(&self, first: usize, len: usize) -> Result<u64> {
        let [views, rows, cols] = self.shape;
        // Neither overflows: the whole array's bytes fit in a usize (see `create`).
        let view = rows * cols;
        if !len.is_multiple_of(view) || first > views || len / view > views - first {
            return Err(Error::InvalidParameter {
                name: "projection batch",
                reason: format!(
                    "{len} values from view {first} are not whole views of {rows} x {cols} \
                     within the {views} views"
                ),
            });
        }
        Ok(self.header_len + (first * view * 4) as u64)
    }
}

/// `values` as little-endian bytes (borrowed on little-endian machines).
fn le_bytes(values: &[f32]) -> Result<Cow<'_, [u8]>> {
    if cfg!(target_endian = "little") {
        return Ok(Cow::Borrowed(bytemuck::cast_slice(values)));
    }
    let mut bytes = reserved(values.len() * 4, "a batch of projections")?;
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    Ok(Cow::Owned(bytes))
}

/// The NumPy format 1.0 header of a little-endian float32 C-order array of `shape`,
/// padded with spaces to a multiple of 64 bytes as NumPy writes it.
fn header([views, rows, cols]: [usize; 3]) -> Vec<u8> {
    let dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({views}, {rows}, {cols}), }}");
    // Magic, version, 2-byte length, the dictionary, padding, a newline. Three
    // integers of at most 20 digits keep it far below 64 KiB.
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use ndarray::Array3;

    use super::*;
    use crate::io::{read_volume_npy, DEFAULT_MAX_BYTES};

    #[test]
    fn batches_out_of_order_and_sums_read_back_as_npy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.npy");
        let shape = [5, 3, 4];
        let view = 12;
        let want = Array3::from_shape_fn(shape, |(v, r, c)| (100 * v + 10 * r + c) as f32 - 0.25);
        let values = want.as_slice().unwrap();
        let mut stream = NpyStream::create(&path, shape, Overwrite::Refuse).unwrap();
        assert_eq!(stream.shape(), shape);
        // Views 3 and 4, then 0 and 1, then 2 as two halves added to the zeros.
        stream.write_views(3, &values[3 * view..]).unwrap();
        stream.write_views(0, &values[..2 * view]).unwrap();
        let half: Vec<f32> = values[2 * view..3 * view].iter().map(|v| v / 2.0).collect();
        stream.add_views(2, &half).unwrap();
        stream.add_views(2, &half).unwrap();
        // Views 0 and 1 twice more: read back, then add and take away.
        let mut back = vec![0.0; 2 * view];
        stream.read_views(0, &mut back).unwrap();
        assert_eq!(back, &values[..2 * view]);
        stream.add_views(0, &back).unwrap();
        let minus: Vec<f32> = back.iter().map(|v| -v).collect();
        stream.add_views(0, &minus).unwrap();
        assert!(!path.exists(), "nothing at the destination before finish");
        stream.finish().unwrap();
        let read = read_volume_npy(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(read, want);
        // The header is as NumPy writes it: 64-byte aligned, version 1.0.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 128 + 5 * 12 * 4);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(bytes[127], b'\n');
    }

    #[test]
    fn unwritten_views_are_zero_and_unfinished_streams_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.npy");
        let mut stream = NpyStream::create(&path, [3, 2, 2], Overwrite::Refuse).unwrap();
        stream.write_views(1, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        drop(stream);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut stream = NpyStream::create(&path, [3, 2, 2], Overwrite::Refuse).unwrap();
        stream.write_views(1, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        stream.finish().unwrap();
        let read = read_volume_npy(&path, DEFAULT_MAX_BYTES).unwrap();
        let mut want = Array3::<f32>::zeros((3, 2, 2));
        want.as_slice_mut().unwrap()[4..8].copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(read, want);
    }

    #[test]
    fn existing_files_are_kept_unless_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.npy");
        std::fs::write(&path, b"keep").unwrap();
        let err = NpyStream::create(&path, [1, 1, 1], Overwrite::Refuse).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
        let mut stream = NpyStream::create(&path, [1, 1, 1], Overwrite::Replace).unwrap();
        stream.write_views(0, &[7.0]).unwrap();
        stream.finish().unwrap();
        let read = read_volume_npy(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(read[[0, 0, 0]], 7.0);
    }

    #[test]
    fn batches_outside_the_array_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.npy");
        let mut stream = NpyStream::create(&path, [2, 2, 3], Overwrite::Refuse).unwrap();
        let six = [1.0f32; 6];
        let twelve = [1.0f32; 12];
        for (first, values) in [
            (0, &six[..5]),
            (2, &six[..]),
            (1, &twelve[..]),
            (3, &[][..]),
        ] {
            let err = stream.write_views(first, values).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidParameter {
                        name: "projection batch",
                        ..
                    }
                ),
                "{first} {}: {err}",
                values.len()
            );
        }
        let mut out = [0.0f32; 12];
        assert!(stream.read_views(1, &mut out).is_err());
        assert!(stream.add_views(1, &twelve).is_err());
        stream.write_views(2, &[]).unwrap();
        for shape in [[0, 2, 2], [usize::MAX, 2, 2]] {
            let err = NpyStream::create(&path, shape, Overwrite::Refuse).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidParameter {
                        name: "projection shape",
                        ..
                    }
                ),
                "{err}"
            );
        }
    }
}
