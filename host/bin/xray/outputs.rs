//! Writing results: the output file's extension picks the format.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ndarray::{ArrayBase, ArrayView3, Data, Dimension, Ix2};
use xray_projector::io::{
    write_metaimage, write_nifti, write_npy, write_png, write_tiff, BitDepth, Overwrite, Window,
};
use xray_projector::{ProjectionGeometry, VolumeGeometry};

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

/// How a PNG maps values to grey levels.
#[derive(Args, Debug)]
pub struct PngArgs {
    /// PNG sample depth.
    #[arg(long, value_enum, default_value_t = Bits::Eight)]
    pub bits: Bits,
    /// PNG window: values LOW and below are black, HIGH and above white (default: the
    /// image's full range).
    #[arg(
        long,
        value_name = "LOW,HIGH",
        value_delimiter = ',',
        allow_negative_numbers = true,
        conflicts_with = "percentiles"
    )]
    pub window: Option<Vec<f32>>,
    /// PNG window from percentiles of the image, e.g. 1,99, robust to a few extremes.
    #[arg(long, value_name = "LOW,HIGH", value_delimiter = ',')]
    pub percentiles: Option<Vec<f64>>,
    /// Show the PNG as a negative. By default dense material is bright, as on a
    /// radiograph: line integrals as they are, intensities (--i0) inverted.
    #[arg(long)]
    pub negative: bool,
}

/// The file formats `xray` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A greyscale image (.png).
    Png,
    /// A float32 NumPy array (.npy).
    Npy,
    /// A float32 multi-page TIFF (.tif, .tiff).
    Tiff,
    /// A float32 NIfTI-1 image (.nii, .nii.gz).
    Nifti,
    /// A float32 MetaImage (.mha, .mhd with .raw).
    MetaImage,
}

/// The format named by `path`'s extension.
pub fn format_of(path: &Path, allowed: &[Format]) -> Result<Format> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let format = match ext {
        "png" => Format::Png,
        "npy" => Format::Npy,
        "tif" | "tiff" => Format::Tiff,
        "nii" => Format::Nifti,
        "gz" if name.ends_with(".nii.gz") => Format::Nifti,
        "mha" | "mhd" => Format::MetaImage,
        _ => bail!(
            "cannot tell the format of {}: use {}",
            path.display(),
            extensions(allowed)
        ),
    };
    if !allowed.contains(&format) {
        bail!(
            "{}: this command writes only {}",
            path.display(),
            extensions(allowed)
        );
    }
    Ok(format)
}

/// The extensions of `formats`, for messages: ".png, .npy or .tif".
fn extensions(formats: &[Format]) -> String {
    let names: Vec<&str> = formats
        .iter()
        .map(|f| match f {
            Format::Png => ".png",
            Format::Npy => ".npy",
            Format::Tiff => ".tif",
            Format::Nifti => ".nii(.gz)",
            Format::MetaImage => ".mha/.mhd",
        })
        .collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Writes an image as PNG with the window asked for; `intensities` says the values
/// are detected counts, which are inverted so that dense material is bright.
pub fn png<S: Data<Elem = f32>>(
    path: &Path,
    image: &ArrayBase<S, Ix2>,
    args: &PngArgs,
    intensities: bool,
    overwrite: Overwrite,
) -> Result<()> {
    let window = match (&args.window, &args.percentiles) {
        (Some(w), _) => match w[..] {
            [low, high] if low < high => Window {
                low,
                high,
                invert: false,
            },
            _ => bail!("--window needs LOW,HIGH with LOW < HIGH, got {w:?}"),
        },
        (None, Some(p)) => match p[..] {
            [low, high] => Window::percentiles(image, low, high).context("--percentiles")?,
            _ => bail!("--percentiles needs LOW,HIGH, got {p:?}"),
        },
        (None, None) => Window::full_range(image),
    };
    let window = Window {
        invert: intensities != args.negative,
        ..window
    };
    let depth = match args.bits {
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

/// Writes projections `[views, rows, cols]` as .npy, TIFF pages or a NIfTI stack (x
/// along columns, y along rows with the detector's pixel size, z the view index).
pub fn projections(
    path: &Path,
    format: Format,
    projections: ArrayView3<'_, f32>,
    geometry: &ProjectionGeometry,
    overwrite: Overwrite,
) -> Result<()> {
    let written = match format {
        Format::Npy => write_npy(path, &projections, overwrite),
        Format::Tiff => write_tiff(path, projections, overwrite),
        Format::Nifti => {
            let pixel = |w: [f64; 3]| (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt();
            let view = geometry.views[0];
            let (views, rows, cols) = projections.dim();
            let stack =
                VolumeGeometry::centered([views, rows, cols], [pixel(view.u), pixel(view.v), 1.0]);
            write_nifti(path, projections, &stack, overwrite)
        }
        Format::Png | Format::MetaImage => bail!("{format:?} is not a projection stack format"),
    };
    written.with_context(|| format!("writing {}", path.display()))
}

/// Writes a volume on its grid as .npy, NIfTI or MetaImage.
pub fn volume(
    path: &Path,
    format: Format,
    volume: ArrayView3<'_, f32>,
    grid: &VolumeGeometry,
    overwrite: Overwrite,
) -> Result<()> {
    let written = match format {
        Format::Npy => write_npy(path, &volume, overwrite),
        Format::Nifti => write_nifti(path, volume, grid, overwrite),
        Format::MetaImage => write_metaimage(path, volume, grid, overwrite),
        Format::Png | Format::Tiff => bail!("{format:?} is not a volume format"),
    };
    written.with_context(|| format!("writing {}", path.display()))
}

/// Writes a text file (a CSV table).
pub fn text(path: &Path, text: &str, overwrite: Overwrite) -> Result<()> {
    xray_projector::io::write_text(path, text, overwrite)
        .with_context(|| format!("writing {}", path.display()))
}

/// `--force` as an [`Overwrite`].
pub fn overwrite(force: bool) -> Overwrite {
    if force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    }
}
