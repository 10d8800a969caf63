//! DICOM CT series: one directory, one slice per file, read with `dicom-object` and
//! decoded (native, RLE, JPEG) with `dicom-pixeldata`.
//!
//! Slices are ordered by their position along the slice normal, not by file name;
//! the grid comes from Image Position/Orientation (Patient), Pixel Spacing and the
//! distance between slices, in DICOM's LPS+ patient frame. Values are the modality
//! LUT's output (Rescale Slope/Intercept): CT numbers in HU.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use ndarray::Array3;

use super::bounded::read_file;
use super::dicom_guard;
use super::volume::{LoadedVolume, VolumeFormat};
use crate::alloc::zeroed;
use crate::error::{Error, Result};
use crate::geometry::check::{cross, dot, norm, scale, sub};
use crate::VolumeGeometry;

/// Slices closer than this along the normal are the same position (mm).
const SAME_POSITION_MM: f64 = 1e-3;

/// Largest relative difference between slice gaps accepted as one spacing.
const GAP_TOLERANCE: f64 = 0.01;

/// One decoded slice and where it is.
struct Slice {
    file: PathBuf,
    series: String,
    position: [f64; 3],
    /// Row direction (along a row, increasing column) then column direction.
    orientation: [f64; 6],
    /// Distance between rows, then between columns (DICOM's order).
    pixel_spacing: [f64; 2],
    thickness: Option<f64>,
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

/// Reads the DICOM series in directory `dir` (files directly in it; files that are
/// not DICOM, and DICOM objects without pixel data such as a DICOMDIR, are skipped).
///
/// # Errors
/// [`Error::Format`] naming the file and attribute for: no image in the directory,
/// several series, a slice that cannot be parsed or decoded, a missing or malformed
/// position, orientation or spacing, multi-frame or colour images, slices of
/// different size or orientation, two slices at one position, uneven or sheared
/// slice positions; [`Error::Io`]; [`Error::Allocation`].
pub(crate) fn read_dicom_series(dir: &Path, max_bytes: u64) -> Result<LoadedVolume> {
    let io = |source| Error::Io {
        action: "cannot list",
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(io)?;
    files.retain(|f| f.is_file());
    files.sort();
    let mut budget = max_bytes;
    let mut slices = Vec::new();
    for file in files {
        let bytes = read_file(&file, budget)?;
        budget -= bytes.len() as u64;
        if bytes.get(128..132) != Some(b"DICM") {
            continue;
        }
        if let Some(slice) = parse_slice(&file, &bytes, &mut budget)? {
            slices.push(slice);
        }
    }
    assemble(dir, slices)
}

/// Parses and decodes one DICOM file held in `bytes` as a CT slice (for checking files
/// one by one, and for fuzzing): `Ok(true)` if it holds an image, `Ok(false)` if it is
/// DICOM without pixel data. `budget` is the bytes the decoded values may still take;
/// this slice's are taken off it.
///
/// # Errors
/// As [`read_volume`](super::read_volume) for a series, for this file.
pub fn parse_dicom_slice(path: &Path, bytes: &[u8], budget: &mut u64) -> Result<bool> {
    parse_slice(path, bytes, budget).map(|s| s.is_some())
}

fn parse_slice(path: &Path, bytes: &[u8], budget: &mut u64) -> Result<Option<Slice>> {
    let bad = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    dicom_guard::check_lengths(bytes)
        .map_err(|reason| bad(format!("not a readable DICOM file: {reason}")))?;
    let object: DefaultDicomObject = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(bytes)
        .map_err(|e| bad(format!("not a readable DICOM file: {e}")))?;
    if object.get(tags::PIXEL_DATA).is_none() {
        return Ok(None);
    }
    let floats = |tag, name: &str, n: usize| -> Result<Vec<f64>> {
        let values = object
            .element(tag)
            .map_err(|_| bad(format!("no {name}")))?
            .to_multi_float64()
            .map_err(|e| bad(format!("{name} is not numeric: {e}")))?;
        if values.len() != n || values.iter().any(|v| !v.is_finite()) {
            return Err(bad(format!(
                "{name} needs {n} finite numbers, has {values:?}"
            )));
        }
        Ok(values)
    };
    let integer = |tag, name: &str| -> Result<u32> {
        object
            .element(tag)
            .map_err(|_| bad(format!("no {name}")))?
            .to_int::<u32>()
            .map_err(|e| bad(format!("{name} is not an integer: {e}")))
    };
    let frames = match object.get(tags::NUMBER_OF_FRAMES) {
        Some(e) => e
            .to_int::<u32>()
            .map_err(|e| bad(format!("Number of Frames is not an integer: {e}")))?,
        None => 1,
    };
    if frames != 1 {
        return Err(bad(format!(
            "{frames} frames: multi-frame images are not read, only one slice per file"
        )));
    }
    if object.get(tags::SAMPLES_PER_PIXEL).is_some()
        && integer(tags::SAMPLES_PER_PIXEL, "Samples per Pixel")? != 1
    {
        return Err(bad(
            "a colour image: only greyscale CT slices are read".into()
        ));
    }
    let rows = integer(tags::ROWS, "Rows")? as usize;
    let cols = integer(tags::COLUMNS, "Columns")? as usize;
    if rows == 0 || cols == 0 {
        return Err(bad(format!("{rows} x {cols} pixels: an empty image")));
    }
    let decoded_bytes = (rows as u64)
        .checked_mul(cols as u64)
        .and_then(|n| n.checked_mul(std::mem::size_of::<f32>() as u64))
        .unwrap_or(u64::MAX);
    if decoded_bytes > *budget {
        return Err(bad(format!(
            "decoding {rows} x {cols} pixels would pass the reader's byte limit"
        )));
    }
    *budget -= decoded_bytes;
    let position = floats(tags::IMAGE_POSITION_PATIENT, "Image Position (Patient)", 3)?;
    let orientation = floats(
        tags::IMAGE_ORIENTATION_PATIENT,
        "Image Orientation (Patient)",
        6,
    )?;
    let pixel_spacing = floats(tags::PIXEL_SPACING, "Pixel Spacing", 2)?;
    if pixel_spacing.iter().any(|&s| s <= 0.0) {
        return Err(bad(format!(
            "Pixel Spacing {pixel_spacing:?} is not positive"
        )));
    }
    let thickness = object
        .get(tags::SLICE_THICKNESS)
        .and_then(|e| e.to_float64().ok())
        .filter(|t| t.is_finite() && *t > 0.0);
    let series = object
        .get(tags::SERIES_INSTANCE_UID)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default();
    // dicom-pixeldata asserts (panics) on a Bits Stored of 0 and builds a lookup table
    // of 2^Bits Stored entries: keep both to what CT uses.
    let bits = integer(tags::BITS_ALLOCATED, "Bits Allocated")?;
    let stored = integer(tags::BITS_STORED, "Bits Stored")?;
    if !matches!(bits, 8 | 16) || !(1..=bits).contains(&stored) {
        return Err(bad(format!(
            "Bits Allocated = {bits}, Bits Stored = {stored}: 8- or 16-bit samples are read"
        )));
    }
    let syntax = object
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' ']);
    if syntax == dicom_guard::RLE_LOSSLESS {
        let fragments = object
            .element(tags::PIXEL_DATA)
            .ok()
            .and_then(|e| e.value().fragments())
            .ok_or_else(|| bad("RLE pixel data without fragments".into()))?;
        dicom_guard::check_rle(fragments, rows, cols, bits as usize / 8)
            .map_err(|reason| bad(format!("cannot decode the pixel data: {reason}")))?;
    }
    let values = object
        .decode_pixel_data()
        .and_then(|pixels| pixels.to_vec::<f32>())
        .map_err(|e| bad(format!("cannot decode the pixel data: {e}")))?;
    if values.len() != rows * cols {
        return Err(bad(format!(
            "the pixel data decodes to {} values, not Rows x Columns = {}",
            values.len(),
            rows * cols
        )));
    }
    Ok(Some(Slice {
        file: path.to_path_buf(),
        series,
        position: [position[0], position[1], position[2]],
        orientation: orientation.try_into().expect("6 values"),
        pixel_spacing: [pixel_spacing[0], pixel_spacing[1]],
        thickness,
        rows,
        cols,
        values,
    }))
}

/// Orders the slices along their normal and builds the volume and its grid.
fn assemble(dir: &Path, mut slices: Vec<Slice>) -> Result<LoadedVolume> {
    let bad = |reason: String| Error::Format {
        path: dir.to_path_buf(),
        reason,
    };
    let Some(first) = slices.first() else {
        return Err(bad("no DICOM image in this directory".into()));
    };
    let mut series: Vec<&str> = slices.iter().map(|s| s.series.as_str()).collect();
    series.sort_unstable();
    series.dedup();
    if series.len() > 1 {
        return Err(bad(format!(
            "{} series are mixed here ({}): put each series in its own directory",
            series.len(),
            series.join(", ")
        )));
    }
    let row_dir = unit([
        first.orientation[0],
        first.orientation[1],
        first.orientation[2],
    ]);
    let col_dir = unit([
        first.orientation[3],
        first.orientation[4],
        first.orientation[5],
    ]);
    let (Some(row_dir), Some(col_dir)) = (row_dir, col_dir) else {
        return Err(bad(format!(
            "{}: Image Orientation (Patient) has a zero vector",
            first.file.display()
        )));
    };
    let normal = cross(row_dir, col_dir);
    let (rows, cols, spacing, orientation) = (
        first.rows,
        first.cols,
        first.pixel_spacing,
        first.orientation,
    );
    for s in &slices {
        let same = s.rows == rows
            && s.cols == cols
            && s.pixel_spacing
                .iter()
                .zip(spacing)
                .all(|(a, b)| (a - b).abs() <= 1e-6 * b.abs().max(1.0))
            && s.orientation
                .iter()
                .zip(orientation)
                .all(|(a, b)| (a - b).abs() <= 1e-4);
        if !same {
            return Err(bad(format!(
                "{} differs from {} in size, pixel spacing or orientation",
                s.file.display(),
                first.file.display()
            )));
        }
    }
    let along = |s: &Slice| dot(s.position, normal);
    slices.sort_by(|a, b| along(a).total_cmp(&along(b)));
    let gaps: Vec<f64> = slices
        .windows(2)
        .map(|w| along(&w[1]) - along(&w[0]))
        .collect();
    if let Some(i) = gaps.iter().position(|&g| g < SAME_POSITION_MM) {
        return Err(bad(format!(
            "{} and {} are at the same position",
            slices[i].file.display(),
            slices[i + 1].file.display()
        )));
    }
    let gap = match gaps.len() {
        0 => first_thickness(&slices)
            .ok_or_else(|| bad("one slice without Slice Thickness: its depth is unknown".into()))?,
        n => gaps.iter().sum::<f64>() / n as f64,
    };
    if let Some(g) = gaps
        .iter()
        .find(|&&g| (g - gap).abs() > GAP_TOLERANCE * gap)
    {
        return Err(bad(format!(
            "uneven slice spacing ({g:.4} mm against a mean of {gap:.4} mm): missing \
             slices, or a series of varying thickness"
        )));
    }
    let origin = slices[0].position;
    for s in &slices {
        let offset = sub(s.position, origin);
        let sideways = sub(offset, scale(normal, dot(offset, normal)));
        if norm(sideways) > GAP_TOLERANCE * gap.max(1.0) {
            return Err(bad(format!(
                "{} is shifted sideways from the slice normal (gantry tilt): sheared \
                 series are not read",
                s.file.display()
            )));
        }
    }
    let nz = slices.len();
    let per_slice = rows * cols;
    let mut data = zeroed(nz * per_slice, "the DICOM series' voxels")?;
    for (chunk, slice) in data.chunks_exact_mut(per_slice).zip(&mut slices) {
        chunk.copy_from_slice(&slice.values);
        slice.values = Vec::new();
    }
    let data = Array3::from_shape_vec([nz, rows, cols], data).expect("nz * rows * cols");
    // x runs along a row (column index), y down the columns (row index), z along the
    // normal; Pixel Spacing is (between rows, between columns).
    let axes = [
        scale(row_dir, spacing[1]),
        scale(col_dir, spacing[0]),
        scale(normal, gap),
    ];
    let mut affine = [[0.0; 4]; 3];
    for (r, row) in affine.iter_mut().enumerate() {
        *row = [axes[0][r], axes[1][r], axes[2][r], origin[r]];
    }
    let grid = VolumeGeometry::from_voxel_centre_affine([nz, rows, cols], affine)
        .map_err(|e| bad(format!("unusable slice geometry: {e}")))?;
    Ok(LoadedVolume {
        data,
        grid,
        format: VolumeFormat::Dicom,
    })
}

fn first_thickness(slices: &[Slice]) -> Option<f64> {
    slices.first().and_then(|s| s.thickness)
}

fn unit(a: [f64; 3]) -> Option<[f64; 3]> {
    let n = norm(a);
    (n > 1e-6).then(|| scale(a, 1.0 / n))
}
