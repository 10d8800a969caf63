//! Volumes from files: the format-neutral front ([`read_volume`]) that recognises a
//! file by its content (then its extension) and hands it to the right reader.
//!
//! **World frame.** Every reader returns its grid in one world frame, DICOM's patient
//! LPS+ (x towards the patient's left, y posterior, z superior), which ITK and
//! MetaImage also use. NIfTI files (RAS+) are converted on the way in and out. Files
//! that record no position (`.npy`, raw) are centred on the origin, axis-aligned.

use std::path::Path;

use ndarray::Array3;

use super::bounded::{is_gzip, read_file, DEFAULT_MAX_BYTES};
use super::samples::{byte_len, decode, ByteOrder, SampleType};
use crate::error::{Error, Result};
use crate::VolumeGeometry;

/// The file formats volumes are read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeFormat {
    /// NIfTI-1 or NIfTI-2, single file, optionally gzip-compressed.
    Nifti,
    /// A directory holding one DICOM CT series, one slice per file.
    Dicom,
    /// MetaImage: `.mha` (header and data in one file) or `.mhd` with its data file.
    MetaImage,
    /// A NumPy `.npy` array `[z, y, x]`.
    Npy,
    /// Headerless samples described by a [`RawLayout`].
    Raw,
}

/// How a headerless file is laid out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawLayout {
    /// Voxel counts `[nz, ny, nx]`, x fastest in the file.
    pub shape: [usize; 3],
    /// Element type.
    pub sample: SampleType,
    /// Byte order of multi-byte samples.
    pub order: ByteOrder,
    /// Bytes to skip at the start of the file.
    pub header_bytes: u64,
}

/// Options of [`read_volume`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReadOptions {
    /// Ceiling on the bytes held for any one file, after decompression, and for a
    /// DICOM series on its files and decoded values together ([`DEFAULT_MAX_BYTES`] by
    /// default). A larger input is refused, not truncated.
    pub max_bytes: u64,
    /// Voxel size `[sx, sy, sz]` (mm) for formats that do not record it (`.npy`, raw);
    /// refused for the others, whose own spacing would silently lose.
    pub spacing: Option<[f64; 3]>,
    /// The layout of a raw file; reading a file as raw needs it.
    pub raw: Option<RawLayout>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_bytes: DEFAULT_MAX_BYTES,
            spacing: None,
            raw: None,
        }
    }
}

/// A volume read from a file: the voxel values and where they are in the world.
#[derive(Clone, Debug)]
pub struct LoadedVolume {
    /// Values `[z, y, x]` as stored (after the file's own rescale: CT numbers for a
    /// CT series); see [`crate::hounsfield`] to turn HU into attenuation.
    pub data: Array3<f32>,
    /// The grid in the LPS+ world frame.
    pub grid: VolumeGeometry,
    /// The format it was read from.
    pub format: VolumeFormat,
}

/// Reads a volume, recognising the format by content: a directory is a DICOM series;
/// gzip, NIfTI, NumPy and MetaImage files by their first bytes. With
/// [`ReadOptions::raw`] set, the file is read as raw whatever it holds.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] naming the file and the
/// field for anything malformed, truncated or unsupported, or for a file whose format
/// cannot be told; [`Error::InvalidParameter`] for options that do not fit the format;
/// [`Error::Allocation`].
pub fn read_volume(path: &Path, options: &ReadOptions) -> Result<LoadedVolume> {
    let format = match options.raw {
        Some(_) => VolumeFormat::Raw,
        None => detect_format(path)?,
    };
    check_spacing(path, format, options.spacing)?;
    let centred = |data: Array3<f32>| -> Result<LoadedVolume> {
        let spacing = options.spacing.expect("checked above");
        let (nz, ny, nx) = data.dim();
        let grid = VolumeGeometry::centered([nz, ny, nx], spacing);
        grid.validate()?;
        Ok(LoadedVolume { data, grid, format })
    };
    match format {
        VolumeFormat::Nifti => super::nifti::read_nifti(path, options.max_bytes),
        VolumeFormat::Dicom => super::dicom::read_dicom_series(path, options.max_bytes),
        VolumeFormat::MetaImage => super::metaimage::read_metaimage(path, options.max_bytes),
        VolumeFormat::Npy => centred(super::npy::read_volume_npy(path, options.max_bytes)?),
        VolumeFormat::Raw => {
            let layout = options.raw.expect("raw format implies a layout");
            centred(read_raw(path, &layout, options.max_bytes)?)
        }
    }
}

/// Checks [`ReadOptions::spacing`] against `format`: formats that do not record their
/// voxel size (`.npy`, raw) need it, the others refuse it.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `path` if the spacing is missing or superfluous.
pub(super) fn check_spacing(
    path: &Path,
    format: VolumeFormat,
    spacing: Option<[f64; 3]>,
) -> Result<()> {
    let needs_spacing = matches!(format, VolumeFormat::Npy | VolumeFormat::Raw);
    match (needs_spacing, spacing) {
        (true, None) => Err(Error::InvalidParameter {
            name: "spacing",
            reason: format!(
                "{} ({format:?}) does not record its voxel size: give the spacing",
                path.display()
            ),
        }),
        (false, Some(_)) => Err(Error::InvalidParameter {
            name: "spacing",
            reason: format!(
                "{} ({format:?}) records its own voxel size: leave the spacing out",
                path.display()
            ),
        }),
        _ => Ok(()),
    }
}

/// Tells a volume file's format from its content, falling back on its extension.
///
/// # Errors
/// [`Error::Io`] if it cannot be read; [`Error::Format`] if it is none of the formats.
pub fn detect_format(path: &Path) -> Result<VolumeFormat> {
    if path.is_dir() {
        return Ok(VolumeFormat::Dicom);
    }
    let head = read_head(path)?;
    let head = if is_gzip(&head) {
        // A gzip file is a NIfTI if its decompressed start is.
        let file = std::fs::File::open(path).map_err(|source| Error::Io {
            action: "cannot read",
            path: path.to_path_buf(),
            source,
        })?;
        let mut start = Vec::new();
        let decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
        // A corrupt stream is reported by the reader itself; here it just stays short.
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(decoder, 544), &mut start);
        start
    } else {
        head
    };
    let name = path.to_string_lossy().to_ascii_lowercase();
    if super::nifti::is_nifti(&head) {
        Ok(VolumeFormat::Nifti)
    } else if head.starts_with(b"\x93NUMPY") {
        Ok(VolumeFormat::Npy)
    } else if super::metaimage::is_metaimage(&head) {
        Ok(VolumeFormat::MetaImage)
    } else if head.get(128..132) == Some(b"DICM") {
        Err(Error::Format {
            path: path.to_path_buf(),
            reason: "a single DICOM file: give the directory that holds the whole series".into(),
        })
    } else {
        Err(Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "not a NIfTI, MetaImage, NumPy or DICOM volume{}",
                if name.ends_with(".raw") || name.ends_with(".bin") {
                    " (for headerless data, give its layout: --raw SHAPE --dtype TYPE)"
                } else {
                    ""
                }
            ),
        })
    }
}

/// The first 544 bytes of `path` (fewer if it is shorter).
fn read_head(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut head = Vec::with_capacity(544);
    std::io::Read::read_to_end(&mut std::io::Read::take(file, 544), &mut head).map_err(io)?;
    Ok(head)
}

/// Reads a headerless file laid out as `layout`.
///
/// # Errors
/// [`Error::Format`] if the file is shorter than the layout needs;
/// [`Error::InvalidParameter`] for an empty or oversized shape; [`Error::Io`].
pub fn read_raw(path: &Path, layout: &RawLayout, max_bytes: u64) -> Result<Array3<f32>> {
    let count = raw_count(layout)?;
    let bytes = read_file(path, max_bytes)?;
    let skip = raw_skip(path, layout, count, bytes.len() as u64)?;
    let data = decode(
        path,
        &bytes[skip..],
        count,
        layout.sample,
        layout.order,
        (1.0, 0.0),
    )?;
    Ok(Array3::from_shape_vec(layout.shape, data).expect("count matches the shape"))
}

/// The voxel count of `layout`'s shape.
///
/// # Errors
/// [`Error::InvalidParameter`] for an empty axis; a [`crate::GeometryError`] if the
/// count overflows.
pub(super) fn raw_count(layout: &RawLayout) -> Result<usize> {
    let count = VolumeGeometry::centered(layout.shape, [1.0; 3]).voxel_count()?;
    if layout.shape.contains(&0) {
        return Err(Error::InvalidParameter {
            name: "raw shape",
            reason: format!("{:?} has an empty axis", layout.shape),
        });
    }
    Ok(count)
}

/// Checks that a raw file of `file_len` bytes holds exactly `layout`'s header and
/// `count` samples; returns the header bytes to skip.
///
/// # Errors
/// [`Error::Format`] if the file is shorter or longer than the layout needs.
pub(super) fn raw_skip(
    path: &Path,
    layout: &RawLayout,
    count: usize,
    file_len: u64,
) -> Result<usize> {
    let skip = usize::try_from(layout.header_bytes)
        .ok()
        .filter(|&n| n as u64 <= file_len)
        .ok_or_else(|| Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "the file has {file_len} bytes, fewer than the {} header bytes to skip",
                layout.header_bytes
            ),
        })?;
    let expected = byte_len(count, layout.sample);
    let data_len = file_len - skip as u64;
    if expected.map(|n| n as u64) != Some(data_len) {
        return Err(Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "the file holds {data_len} bytes after the {skip} header bytes, but {:?} \
                 samples of {:?} are {} bytes: check the shape and type",
                layout.shape,
                layout.sample,
                expected.map_or("more".into(), |n| n.to_string())
            ),
        });
    }
    Ok(skip)
}
