//! MetaImage volumes (ITK's `.mha`, and `.mhd` with a separate data file), in and out.
//!
//! There is no maintained Rust crate for the format; its header is a short list of
//! `Key = Value` lines, parsed here with every field bounded. `TransformMatrix` holds
//! the world direction of each index axis in turn (ITK's convention), `Offset` the
//! first voxel's centre, both in the LPS+ frame this crate uses.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array3, ArrayView3};

use super::bounded::{read_file, unzlib};
use super::samples::{byte_len, decode, ByteOrder, SampleType};
use super::volume::{LoadedVolume, VolumeFormat};
use super::{check_writable, write_atomically, write_error, Overwrite};
use crate::error::{Error, Result};
use crate::geometry::MAX_AXIS_LEN;
use crate::VolumeGeometry;

/// Longest header searched for `ElementDataFile` (real ones are a few hundred bytes).
const MAX_HEADER_BYTES: usize = 64 << 10;

/// Whether `head` looks like the start of a MetaImage header.
pub(crate) fn is_metaimage(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&head[..head.len().min(256)]);
    let first = text.trim_start().to_ascii_lowercase();
    ["objecttype", "ndims", "comment"]
        .iter()
        .any(|key| first.starts_with(key))
}

/// Reads a `.mha` or `.mhd` file (and the data file a `.mhd` names).
///
/// # Errors
/// See [`parse_metaimage`]; also [`Error::Io`] for either file.
pub(crate) fn read_metaimage(path: &Path, max_bytes: u64) -> Result<LoadedVolume> {
    let bytes = read_file(path, max_bytes)?;
    parse_metaimage(path, &bytes, max_bytes, &|name| {
        let data_path = super::parent_dir(path).join(name);
        read_file(&data_path, max_bytes)
    })
}

/// Parses a MetaImage file held in `bytes`; `path` names it in errors, and
/// `load_data_file` reads the data file a `.mhd` header names (relative to it).
///
/// # Errors
/// [`Error::Format`] naming the field for: a header that is not a 3D scalar image, a
/// missing or malformed `DimSize`, `ElementType`, `ElementSpacing`, `Offset` or
/// `TransformMatrix`, a data file given as a list or pattern or outside the header's
/// directory, compressed data that inflates to the wrong size, data shorter than the
/// header implies; [`Error::Allocation`].
pub fn parse_metaimage(
    path: &Path,
    bytes: &[u8],
    max_bytes: u64,
    load_data_file: &dyn Fn(&str) -> Result<Vec<u8>>,
) -> Result<LoadedVolume> {
    let bad = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    let image = parse_image(path, bytes)?;
    let external;
    let stored: &[u8] = match &image.data_file {
        None => &bytes[image.header_len..],
        Some(name) => {
            external = load_data_file(name)?;
            &external
        }
    };
    let inflated;
    let data_bytes = if image.compressed {
        if image.raw_len as u64 > max_bytes {
            return Err(bad(format!(
                "the image is {} bytes, over the reader's limit of {max_bytes}",
                image.raw_len
            )));
        }
        inflated = unzlib(path, stored, image.raw_len as u64)?;
        &inflated[..]
    } else {
        let skip = image.skip.min(stored.len());
        &stored[skip..]
    };
    let data = decode(
        path,
        data_bytes,
        image.count,
        image.sample,
        image.order,
        (1.0, 0.0),
    )?;
    let data = Array3::from_shape_vec(image.shape, data).expect("count = nx * ny * nz");
    Ok(LoadedVolume {
        data,
        grid: image.grid,
        format: VolumeFormat::MetaImage,
    })
}

/// A MetaImage header's image: its grid, how its samples are stored, and where.
pub(super) struct Image {
    /// `[nz, ny, nx]`, the array's shape.
    pub(super) shape: [usize; 3],
    /// `nz * ny * nx` (it does not overflow).
    pub(super) count: usize,
    /// Bytes of the uncompressed samples (it does not overflow).
    pub(super) raw_len: usize,
    /// The element type.
    pub(super) sample: SampleType,
    /// The byte order.
    pub(super) order: ByteOrder,
    /// Whether the data are zlib-compressed (`CompressedData = True`).
    pub(super) compressed: bool,
    /// The data file, a plain name beside the header; `None` for `LOCAL` (the data
    /// follow the header in the same file).
    pub(super) data_file: Option<String>,
    /// Bytes up to and including the `ElementDataFile` line.
    pub(super) header_len: usize,
    /// `HeaderSize`: bytes to skip at the start of the (uncompressed) data.
    pub(super) skip: usize,
    /// The grid in the LPS+ world frame.
    pub(super) grid: VolumeGeometry,
}

/// Parses the header of the MetaImage file held in `bytes` and checks where it puts
/// the data (the data themselves are not read); `path` names it in errors.
///
/// # Errors
/// As [`parse_metaimage`], but for the data.
pub(super) fn parse_image(path: &Path, bytes: &[u8]) -> Result<Image> {
    let bad = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    let header = Header::parse(bytes).map_err(bad)?;
    let [nx, ny, nz] = header.dims;
    let count = nx
        .checked_mul(ny)
        .and_then(|n| n.checked_mul(nz))
        .ok_or_else(|| bad(format!("DimSize {:?} overflows", header.dims)))?;
    let raw_len = byte_len(count, header.sample)
        .ok_or_else(|| bad(format!("DimSize {:?} overflows", header.dims)))?;
    let mut affine = [[0.0; 4]; 3];
    for (row, line) in affine.iter_mut().enumerate() {
        for (axis, value) in line[..3].iter_mut().enumerate() {
            *value = header.direction[axis][row] * header.spacing[axis];
        }
        line[3] = header.offset[row];
    }
    let grid = VolumeGeometry::from_voxel_centre_affine([nz, ny, nx], affine)
        .map_err(|e| bad(format!("unusable ElementSpacing/TransformMatrix: {e}")))?;
    let data_file = match header.data_file.as_str() {
        "LOCAL" => None,
        name => {
            if name.eq_ignore_ascii_case("list") || name.contains('%') {
                return Err(bad(format!(
                    "ElementDataFile = {name}: lists and patterns of files are not supported"
                )));
            }
            if Path::new(name)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(bad(format!(
                    "ElementDataFile = {name}: the data file must be beside the header"
                )));
            }
            Some(name.to_string())
        }
    };
    Ok(Image {
        shape: [nz, ny, nx],
        count,
        raw_len,
        sample: header.sample,
        order: header.order,
        compressed: header.compressed,
        data_file,
        header_len: header.header_len,
        skip: header.skip,
        grid,
    })
}

/// The header fields a volume needs.
struct Header {
    /// `[nx, ny, nz]`.
    dims: [usize; 3],
    sample: SampleType,
    order: ByteOrder,
    spacing: [f64; 3],
    /// First voxel's centre.
    offset: [f64; 3],
    /// `direction[axis]`: world direction of index axis `axis`.
    direction: [[f64; 3]; 3],
    compressed: bool,
    /// `HeaderSize` of an external data file (bytes to skip).
    skip: usize,
    data_file: String,
    /// Bytes up to and including the `ElementDataFile` line.
    header_len: usize,
}

impl Header {
    fn parse(bytes: &[u8]) -> std::result::Result<Header, String> {
        let mut dims = None;
        let mut sample = None;
        let mut order = ByteOrder::Little;
        let mut spacing = [1.0; 3];
        let mut offset = [0.0; 3];
        let mut direction = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let mut compressed = false;
        let mut skip = 0usize;
        let mut at = 0usize;
        loop {
            if at >= bytes.len().min(MAX_HEADER_BYTES) {
                return Err("no ElementDataFile line in the header".into());
            }
            let end = bytes[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |p| at + p + 1);
            let line = std::str::from_utf8(&bytes[at..end])
                .map_err(|_| format!("header line at byte {at} is not text"))?;
            at = end;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("header line {line:?} is not Key = Value"));
            };
            let (key, value) = (key.trim(), value.trim());
            match key.to_ascii_lowercase().as_str() {
                "objecttype" if !value.eq_ignore_ascii_case("image") => {
                    return Err(format!("ObjectType = {value}: only Image is read"));
                }
                "ndims" if value != "3" => {
                    return Err(format!("NDims = {value}: only 3D images are read"));
                }
                "elementnumberofchannels" if value != "1" => {
                    return Err(format!(
                        "ElementNumberOfChannels = {value}: only scalar images are read"
                    ));
                }
                "dimsize" => {
                    let d: [f64; 3] = numbers(key, value)?;
                    let mut n = [0usize; 3];
                    for (k, (&v, out)) in d.iter().zip(&mut n).enumerate() {
                        if !(v >= 1.0 && v <= MAX_AXIS_LEN as f64 && v.fract() == 0.0) {
                            return Err(format!("DimSize[{k}] = {v} is not a valid size"));
                        }
                        *out = v as usize;
                    }
                    dims = Some(n);
                }
                "elementtype" => sample = Some(sample_type(value)?),
                "elementbyteordermsb" | "binarydatabyteordermsb" => {
                    order = if boolean(key, value)? {
                        ByteOrder::Big
                    } else {
                        ByteOrder::Little
                    };
                }
                "elementspacing" | "elementsize" => spacing = numbers(key, value)?,
                "offset" | "origin" | "position" => offset = numbers(key, value)?,
                "transformmatrix" | "rotation" | "orientation" => {
                    let m: [f64; 9] = numbers(key, value)?;
                    for axis in 0..3 {
                        direction[axis].copy_from_slice(&m[3 * axis..3 * axis + 3]);
                    }
                }
                "compresseddata" => compressed = boolean(key, value)?,
                "headersize" => {
                    let [h]: [f64; 1] = numbers(key, value)?;
                    if h == -1.0 {
                        return Err(
                            "HeaderSize = -1 (data at the file's end) is not supported".into()
                        );
                    }
                    if !(h >= 0.0 && h.fract() == 0.0 && h <= u32::MAX as f64) {
                        return Err(format!("HeaderSize = {h} is not a byte count"));
                    }
                    skip = h as usize;
                }
                "elementdatafile" => {
                    return Ok(Header {
                        dims: dims.ok_or("no DimSize before ElementDataFile")?,
                        sample: sample.ok_or("no ElementType before ElementDataFile")?,
                        order,
                        spacing,
                        offset,
                        direction,
                        compressed,
                        skip,
                        data_file: if value.eq_ignore_ascii_case("local") {
                            "LOCAL".into()
                        } else {
                            value.to_string()
                        },
                        header_len: at,
                    });
                }
                _ => {}
            }
        }
    }
}

/// `N` numbers separated by white space.
fn numbers<const N: usize>(key: &str, value: &str) -> std::result::Result<[f64; N], String> {
    let mut out = [0.0; N];
    let mut words = value.split_whitespace();
    for o in out.iter_mut() {
        *o = words
            .next()
            .and_then(|w| w.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{key} = {value}: needs {N} finite numbers"))?;
    }
    if words.next().is_some() {
        return Err(format!("{key} = {value}: needs exactly {N} numbers"));
    }
    Ok(out)
}

fn boolean(key: &str, value: &str) -> std::result::Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{key} = {value}: not True or False")),
    }
}

fn sample_type(value: &str) -> std::result::Result<SampleType, String> {
    Ok(match value {
        "MET_UCHAR" => SampleType::U8,
        "MET_CHAR" => SampleType::I8,
        "MET_USHORT" => SampleType::U16,
        "MET_SHORT" => SampleType::I16,
        "MET_UINT" => SampleType::U32,
        "MET_INT" => SampleType::I32,
        "MET_FLOAT" => SampleType::F32,
        "MET_DOUBLE" => SampleType::F64,
        other => return Err(format!("ElementType = {other} is not supported")),
    })
}

/// Writes `volume` on `grid` as MetaImage float32: one `.mha` file, or for a `.mhd`
/// path the header and a `.raw` data file beside it. Atomic per file; refuses to
/// replace either file unless `overwrite` says so.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `volume` is not `grid`'s shape; [`Error::Io`].
pub fn write_metaimage(
    path: &Path,
    volume: ArrayView3<'_, f32>,
    grid: &VolumeGeometry,
    overwrite: Overwrite,
) -> Result<()> {
    grid.check_shape(volume.shape())?;
    let affine = grid.voxel_centre_affine();
    let [nz, ny, nx] = grid.shape;
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let transform: Vec<f64> = (0..3)
        .flat_map(|axis| grid.direction.map(|row| row[axis]))
        .collect();
    let separate = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mhd"));
    let data_path: Option<PathBuf> = separate.then(|| path.with_extension("raw"));
    let data_file = match &data_path {
        Some(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        None => "LOCAL".into(),
    };
    let header = format!(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n\
         CompressedData = False\nTransformMatrix = {}\nOffset = {}\nElementSpacing = {}\n\
         DimSize = {nx} {ny} {nz}\nElementType = MET_FLOAT\nElementDataFile = {data_file}\n",
        list(&transform),
        list(&[affine[0][3], affine[1][3], affine[2][3]]),
        list(&grid.spacing),
    );
    let write_samples = |file: &mut std::fs::File, target: &Path| -> Result<()> {
        let mut out = std::io::BufWriter::new(file);
        let standard = volume.as_standard_layout();
        let samples = standard.as_slice().expect("standard layout");
        out.write_all(bytemuck::cast_slice(samples))
            .and_then(|()| out.flush())
            .map_err(|e| write_error(target, e))
    };
    let write_header = |file: &mut std::fs::File| -> Result<()> {
        file.write_all(header.as_bytes())
            .map_err(|e| write_error(path, e))
    };
    match &data_path {
        Some(data_path) => {
            // Fail before writing the data file, so that nothing is left behind.
            check_writable(path, overwrite)?;
            write_atomically(data_path, overwrite, |f| write_samples(f, data_path))?;
            write_atomically(path, overwrite, write_header)
        }
        None => write_atomically(path, overwrite, |file| {
            write_header(file)?;
            write_samples(file, path)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_are_checked() {
        let ok = "NDims = 3\nDimSize = 2 3 4\nElementType = MET_SHORT\nElementDataFile = LOCAL\n";
        let h = Header::parse(ok.as_bytes()).unwrap();
        assert_eq!(h.dims, [2, 3, 4]);
        assert_eq!(h.header_len, ok.len());
        for (text, complaint) in [
            ("NDims = 2\n", "only 3D"),
            ("DimSize = 2 0 4\n", "DimSize[1] = 0"),
            ("DimSize = 2 3\n", "needs 3 finite"),
            ("DimSize = 2 3 1e30\n", "DimSize[2]"),
            ("ElementSpacing = 1 nan 1\n", "finite"),
            ("ElementType = MET_LONG_LONG\n", "not supported"),
            (
                "DimSize = 2 3 4\nElementDataFile = LOCAL\n",
                "no ElementType",
            ),
            ("NDims = 3\n", "no ElementDataFile"),
        ] {
            let err = Header::parse(text.as_bytes()).err().unwrap();
            assert!(err.contains(complaint), "{text:?}: {err}");
        }
    }
}
