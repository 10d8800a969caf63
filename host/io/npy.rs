//! NumPy `.npy` arrays: volumes in (3D `f32`, `f64`, `i16`, `u16`, `u8`), arrays out
//! (`f32`).

use std::path::Path;

use ndarray::{Array3, ArrayBase, ArrayView3, Data, Dimension};
use ndarray_npy::{ViewNpyExt, WriteNpyExt};

use super::bounded::read_file;
use super::{write_atomically, write_error, Overwrite};
use crate::error::{Error, Result};

/// Reads a 3D `.npy` array of `f32`, `f64`, `i16`, `u16` or `u8` (converted to `f32`),
/// indexed `[z, y, x]`.
///
/// The file is read whole (at most `max_bytes`) and the header's shape is checked
/// against the bytes actually present before anything else is allocated, so a corrupt
/// or hostile header cannot trigger a huge allocation.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] naming the problem if it
/// is not a little-endian 3D `.npy` of a supported type, is truncated, or is larger than
/// `max_bytes`; [`Error::Allocation`].
pub fn read_volume_npy(path: &Path, max_bytes: u64) -> Result<Array3<f32>> {
    parse_npy(path, &read_file(path, max_bytes)?)
}

/// Parses a whole `.npy` file held in `bytes`; `path` names it in errors.
///
/// # Errors
/// As [`read_volume_npy`].
pub fn parse_npy(path: &Path, bytes: &[u8]) -> Result<Array3<f32>> {
    check_header_length(path, bytes)?;
    // u64 words keep the data aligned for every element type (the .npy header is
    // padded to a multiple of 16 bytes).
    let mut words = zeroed_words(bytes.len())?;
    let aligned = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()];
    aligned.copy_from_slice(bytes);
    let bytes = &*aligned;
    let format = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    /// `Some` unless the element type is another one.
    fn view<T: ndarray_npy::ViewElement + Copy>(
        bytes: &[u8],
        to_f32: impl Fn(T) -> f32,
    ) -> Option<std::result::Result<Array3<f32>, ndarray_npy::ViewNpyError>> {
        match ArrayView3::<T>::view_npy(bytes) {
            Ok(view) => Some(Ok(view.mapv(to_f32))),
            Err(ndarray_npy::ViewNpyError::WrongDescriptor(_)) => None,
            Err(e) => Some(Err(e)),
        }
    }
    let result = view::<f32>(bytes, |v| v)
        .or_else(|| view::<f64>(bytes, |v| v as f32))
        .or_else(|| view::<i16>(bytes, f32::from))
        .or_else(|| view::<u16>(bytes, f32::from))
        .or_else(|| view::<u8>(bytes, f32::from));
    match result {
        Some(Ok(array)) => Ok(array),
        Some(Err(e)) => Err(format(format!("not a readable 3D .npy array: {e}"))),
        None => Err(format(
            "unsupported element type: volumes must be float32, float64, int16, uint16 or \
             uint8 (little-endian)"
                .into(),
        )),
    }
}

/// `ndarray-npy` allocates the header's declared length before reading it (up to 4 GiB
/// in format 2 and 3; found by fuzzing): check it against the bytes present first.
pub(super) fn check_header_length(path: &Path, bytes: &[u8]) -> Result<()> {
    let (length, start) = match (bytes.get(..6), bytes.get(6)) {
        (Some(b"\x93NUMPY"), Some(1)) => (
            bytes
                .get(8..10)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize),
            10,
        ),
        (Some(b"\x93NUMPY"), Some(2 | 3)) => (
            bytes
                .get(8..12)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize),
            12,
        ),
        // Not .npy, or a version ndarray-npy refuses before allocating.
        _ => return Ok(()),
    };
    match length {
        Some(n) if start + n <= bytes.len() => Ok(()),
        _ => Err(Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "truncated header: it declares {} bytes, the file has {}",
                length.map_or("more".into(), |n| (start + n).to_string()),
                bytes.len()
            ),
        }),
    }
}

fn zeroed_words(bytes: usize) -> Result<Vec<u64>> {
    let mut words: Vec<u64> = Vec::new();
    words
        .try_reserve_exact(bytes.div_ceil(8))
        .map_err(|_| Error::Allocation {
            what: "the .npy file's content",
            bytes: bytes as u128,
        })?;
    words.resize(bytes.div_ceil(8), 0);
    Ok(words)
}

/// Writes `array` as a `.npy` file (C order), atomically.
///
/// # Errors
/// [`Error::Io`] if the file exists and `overwrite` is [`Overwrite::Refuse`], or the
/// write fails.
pub fn write_npy<S, D>(path: &Path, array: &ArrayBase<S, D>, overwrite: Overwrite) -> Result<()>
where
    S: Data<Elem = f32>,
    D: Dimension,
{
    write_atomically(path, overwrite, |file| {
        array
            .as_standard_layout()
            .write_npy(std::io::BufWriter::new(file))
            .map_err(|e| write_error(path, e))
    })
}
