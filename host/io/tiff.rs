//! Projections as 32-bit float TIFF: one page per view, values unchanged.
//!
//! As in the PNGs, detector row 0 is the *bottom* row of each page, so that image
//! viewers show the radiograph upright (`v` up); columns run left to right with `u`.

use std::path::Path;

use ndarray::ArrayView3;
use tiff::encoder::{colortype, TiffEncoder};

use super::{write_atomically, write_error, Overwrite};
use crate::error::{Error, Result};

/// Writes `projections` `[views, rows, cols]` as a multi-page float32 TIFF, atomically.
///
/// # Errors
/// [`Error::InvalidParameter`] for an empty array or pages over TIFF's `u32` sizes;
/// [`Error::Io`] if the file exists and `overwrite` is [`Overwrite::Refuse`], or the
/// write fails.
pub fn write_tiff(
    path: &Path,
    projections: ArrayView3<'_, f32>,
    overwrite: Overwrite,
) -> Result<()> {
    let (views, rows, cols) = projections.dim();
    let (Ok(height), Ok(width)) = (u32::try_from(rows), u32::try_from(cols)) else {
        return Err(size_error(rows, cols));
    };
    if views == 0 || rows == 0 || cols == 0 {
        return Err(size_error(rows, cols));
    }
    let io = |e: tiff::TiffError| write_error(path, e);
    write_atomically(path, overwrite, |file| {
        let mut encoder = TiffEncoder::new(std::io::BufWriter::new(file)).map_err(io)?;
        let mut page = Vec::with_capacity(rows * cols);
        for view in projections.outer_iter() {
            page.clear();
            for line in view.outer_iter().rev() {
                page.extend(line.iter());
            }
            encoder
                .write_image::<colortype::Gray32Float>(width, height, &page)
                .map_err(io)?;
        }
        Ok(())
    })
}

fn size_error(rows: usize, cols: usize) -> Error {
    Error::InvalidParameter {
        name: "TIFF page size",
        reason: format!("{rows} x {cols} pixels cannot be written as a TIFF page"),
    }
}
