//! NumPy `.npy` arrays: volumes in (`f32` or `f64`, 3D), projections out (`f32`).

use std::io::Read;
use std::path::Path;

use ndarray::{Array3, ArrayBase, ArrayView3, Data, Dimension};
use ndarray_npy::{ViewNpyExt, WriteNpyExt};

use super::{write_atomically, Overwrite};
use crate::error::{Error, Result};

/// Reads a 3D `.npy` volume of `f32` or `f64` (converted to `f32`), indexed `[z, y, x]`.
///
/// The file is read whole into memory and the header's shape is checked against the
/// bytes actually present before anything else is allocated, so a corrupt or hostile
/// header cannot trigger a huge allocation.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] naming the problem if it
/// is not a little-endian 3D `f32`/`f64` `.npy`, or is truncated; [`Error::Allocation`].
pub fn read_volume_npy(path: &Path) -> Result<Array3<f32>> {
    let io = |source| Error::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let size = usize::try_from(size).map_err(|_| Error::Allocation {
        what: "the .npy file's content",
        bytes: size as u128,
    })?;
    // u64 words keep the data aligned for f32 and f64 (the .npy header is padded to a
    // multiple of 16 bytes).
    let mut words: Vec<u64> = Vec::new();
    words
        .try_reserve_exact(size.div_ceil(8))
        .map_err(|_| Error::Allocation {
            what: "the .npy file's content",
            bytes: size as u128,
        })?;
    words.resize(size.div_ceil(8), 0);
    let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..size];
    file.read_exact(bytes).map_err(io)?;
    let bytes = &bytemuck::cast_slice::<u64, u8>(&words)[..size];

    let format = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    match ArrayView3::<f32>::view_npy(bytes) {
        Ok(view) => return Ok(view.as_standard_layout().into_owned()),
        Err(ndarray_npy::ViewNpyError::WrongDescriptor(_)) => {}
        Err(e) => return Err(format(format!("not a readable 3D float32 .npy: {e}"))),
    }
    match ArrayView3::<f64>::view_npy(bytes) {
        Ok(view) => Ok(view.mapv(|v| v as f32)),
        Err(ndarray_npy::ViewNpyError::WrongDescriptor(d)) => Err(format(format!(
            "unsupported element type {d}: volumes must be float32 or float64"
        ))),
        Err(e) => Err(format(format!("not a readable 3D float64 .npy: {e}"))),
    }
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
            .map_err(|e| Error::Io {
                action: "cannot write",
                path: path.to_path_buf(),
                source: std::io::Error::other(e),
            })
    })
}
