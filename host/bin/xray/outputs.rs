//! Writing results: the output file's extension picks the format.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use ndarray::{ArrayBase, Data, Dimension, Ix2};
use xray_projector::io::{write_npy, write_png, BitDepth, Overwrite, Window};

/// PNG sample depth on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Bits {
    /// 8-bit greyscale.
    #[value(name = "8")]
    Eight,
    /// 16-bit greyscale.
    #[value(name = "16")]
    Sixteen,
}

/// The file formats `xray` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A greyscale image.
    Png,
    /// A float32 NumPy array.
    Npy,
}

/// The format named by `path`'s extension.
pub fn format_of(path: &Path, allowed: &[Format]) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("png") => Format::Png,
        Some("npy") => Format::Npy,
        _ => bail!(
            "cannot tell the format of {}: use a .png or .npy extension",
            path.display()
        ),
    };
    if !allowed.contains(&format) {
        bail!(
            "{} : this command writes only {allowed:?} files",
            path.display()
        );
    }
    Ok(format)
}

/// Writes an image as PNG: the full range of values, inverted when `invert` (for
/// intensities, so that dense material is bright as on a radiograph).
pub fn png<S: Data<Elem = f32>>(
    path: &Path,
    image: &ArrayBase<S, Ix2>,
    bits: Bits,
    invert: bool,
    overwrite: Overwrite,
) -> Result<()> {
    let window = Window {
        invert,
        ..Window::full_range(image)
    };
    let depth = match bits {
        Bits::Eight => BitDepth::Eight,
        Bits::Sixteen => BitDepth::Sixteen,
    };
    write_png(path, image, window, depth, overwrite)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes any float32 array as .npy.
pub fn npy<S: Data<Elem = f32>, D: Dimension>(
    path: &Path,
    array: &ArrayBase<S, D>,
    overwrite: Overwrite,
) -> Result<()> {
    write_npy(path, array, overwrite).with_context(|| format!("writing {}", path.display()))
}

/// `--force` as an [`Overwrite`].
pub fn overwrite(force: bool) -> Overwrite {
    if force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    }
}
