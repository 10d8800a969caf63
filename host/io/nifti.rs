//! NIfTI-1 and NIfTI-2 volumes (`.nii`, `.nii.gz`), in and out.
//!
//! The NIfTI-1 header is parsed by the `nifti` crate; NIfTI-2, which that crate does
//! not read, by the fixed layout of its 540-byte header. Both end in [`Header`], from
//! which one bounded path checks the dimensions against the bytes present, decodes the
//! samples with `scl_slope`/`scl_inter`, and picks the affine (sform, else qform, else
//! pixdim). NIfTI's world is RAS+; this crate's is DICOM's LPS+ (see
//! [`super::volume`]), so x and y change sign on the way in and out.

use std::path::Path;

use ndarray::{Array3, ArrayView3};

use super::bounded::{gunzip, is_gzip, read_file};
use super::samples::{decode, ByteOrder, SampleType};
use super::volume::{LoadedVolume, VolumeFormat};
use super::{write_atomically, write_error, Overwrite};
use crate::error::{Error, Result};
use crate::geometry::MAX_AXIS_LEN;
use crate::VolumeGeometry;

/// The header fields a volume needs, from either version.
#[derive(Debug)]
struct Header {
    /// `dim[0..8]`.
    dim: [i64; 8],
    datatype: i64,
    pixdim: [f64; 8],
    vox_offset: f64,
    scl_slope: f64,
    scl_inter: f64,
    qform_code: i64,
    sform_code: i64,
    /// quatern_b, c, d, qoffset_x, y, z.
    quatern: [f64; 6],
    srow: [[f64; 4]; 3],
    order: ByteOrder,
    /// 348 or 540.
    header_size: usize,
}

/// Whether `bytes` (decompressed) begins with a NIfTI-1 or NIfTI-2 header.
pub(crate) fn is_nifti(bytes: &[u8]) -> bool {
    let size = |order| read_i32(bytes, 0, order);
    // "ni1" (a two-file header) is recognised so that its reader can say it is not read.
    let nifti1 = bytes
        .get(344..348)
        .is_some_and(|m| m == b"n+1\0" || m == b"ni1\0")
        && (size(ByteOrder::Little) == Some(348) || size(ByteOrder::Big) == Some(348));
    let nifti2 = bytes.get(4..8).is_some_and(|m| m == b"n+2\0")
        && (size(ByteOrder::Little) == Some(540) || size(ByteOrder::Big) == Some(540));
    nifti1 || nifti2
}

/// Reads a NIfTI volume from `path` (gzip-compressed or not).
///
/// # Errors
/// See [`parse_nifti`]; also [`Error::Io`].
pub(crate) fn read_nifti(path: &Path, max_bytes: u64) -> Result<LoadedVolume> {
    let bytes = read_file(path, max_bytes)?;
    parse_nifti(path, &bytes, max_bytes)
}

/// Parses a whole NIfTI file held in `bytes`; `path` names it in errors.
///
/// # Errors
/// [`Error::Format`] naming the field for: a missing or two-file (`.hdr`/`.img`)
/// header, more than 3 dimensions, a zero or negative dimension, an unsupported
/// datatype, a `vox_offset` inside the header or data past the end of the file, a
/// non-finite scale, a sheared affine; [`Error::Allocation`].
pub fn parse_nifti(path: &Path, bytes: &[u8], max_bytes: u64) -> Result<LoadedVolume> {
    let inflated;
    let bytes = if is_gzip(bytes) {
        inflated = gunzip(path, bytes, max_bytes)?;
        &inflated[..]
    } else {
        bytes
    };
    let layout = layout(path, bytes)?;
    let data = decode(
        path,
        &bytes[layout.offset..],
        layout.count,
        layout.sample,
        layout.order,
        layout.scale,
    )?;
    // NIfTI stores i fastest, as the [z, y, x] array does x.
    let data = Array3::from_shape_vec(layout.shape, data).expect("count = nz * ny * nx");
    Ok(LoadedVolume {
        data,
        grid: layout.grid,
        format: VolumeFormat::Nifti,
    })
}

/// Where and how an uncompressed NIfTI file's voxels are stored, from its header.
pub(super) struct Layout {
    /// `[nz, ny, nx]`, the array's shape.
    pub(super) shape: [usize; 3],
    /// `nz * ny * nx` (it does not overflow).
    pub(super) count: usize,
    /// The element type.
    pub(super) sample: SampleType,
    /// The byte order.
    pub(super) order: ByteOrder,
    /// `(scl_slope, scl_inter)` to apply, `(1.0, 0.0)` for none.
    pub(super) scale: (f64, f64),
    /// Byte offset of the first voxel (`vox_offset`), at most the file's length.
    pub(super) offset: usize,
    /// The grid in the LPS+ world frame.
    pub(super) grid: VolumeGeometry,
}

/// Parses the header of the uncompressed NIfTI file held in `bytes` (the whole file:
/// `vox_offset` is checked against its length, the voxel data are not); `path` names
/// it in errors.
///
/// # Errors
/// As [`parse_nifti`], but for the data's length.
pub(super) fn layout(path: &Path, bytes: &[u8]) -> Result<Layout> {
    let bad = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    let header = parse_header(bytes).map_err(|r| bad(r.to_string()))?;
    let shape = header.shape().map_err(bad)?;
    let sample = sample_type(header.datatype).map_err(bad)?;
    if !(header.vox_offset.is_finite()
        && header.vox_offset >= header.header_size as f64
        && header.vox_offset <= bytes.len() as f64)
    {
        return Err(bad(format!(
            "vox_offset {} is not between the header's end ({}) and the file's ({})",
            header.vox_offset,
            header.header_size,
            bytes.len()
        )));
    }
    let scale = header.scaling().map_err(bad)?;
    let [nx, ny, nz] = shape;
    let count = nx
        .checked_mul(ny)
        .and_then(|n| n.checked_mul(nz))
        .ok_or_else(|| {
            bad(format!(
                "dim {shape:?} has more voxels than memory can index"
            ))
        })?;
    let grid = VolumeGeometry::from_voxel_centre_affine([nz, ny, nx], ras_to_lps(header.affine()))
        .map_err(|e| bad(format!("unusable affine: {e}")))?;
    Ok(Layout {
        shape: [nz, ny, nx],
        count,
        sample,
        order: header.order,
        scale,
        offset: header.vox_offset as usize,
        grid,
    })
}

fn parse_header(bytes: &[u8]) -> std::result::Result<Header, &'static str> {
    if bytes.get(4..8) == Some(b"n+2\0") {
        return parse_nifti2(bytes);
    }
    match bytes.get(344..348) {
        Some(b"ni1\0") => {
            return Err("a two-file NIfTI header (.hdr/.img) is not supported; \
                        convert it to a single .nii file")
        }
        Some(b"n+1\0") => {}
        _ => return Err("not a NIfTI file (no n+1 or n+2 magic)"),
    }
    let h = nifti::NiftiHeader::from_reader(bytes).map_err(|_| "truncated NIfTI-1 header")?;
    if h.sizeof_hdr != 348 {
        return Err("sizeof_hdr is not 348");
    }
    Ok(Header {
        dim: h.dim.map(|d| i64::from(d as i16)),
        datatype: i64::from(h.datatype),
        pixdim: h.pixdim.map(f64::from),
        vox_offset: f64::from(h.vox_offset),
        scl_slope: f64::from(h.scl_slope),
        scl_inter: f64::from(h.scl_inter),
        qform_code: i64::from(h.qform_code),
        sform_code: i64::from(h.sform_code),
        quatern: [
            h.quatern_b,
            h.quatern_c,
            h.quatern_d,
            h.quatern_x,
            h.quatern_y,
            h.quatern_z,
        ]
        .map(f64::from),
        srow: [h.srow_x, h.srow_y, h.srow_z].map(|row| row.map(f64::from)),
        order: match h.endianness {
            nifti::Endianness::Little => ByteOrder::Little,
            nifti::Endianness::Big => ByteOrder::Big,
        },
        header_size: 348,
    })
}

/// The NIfTI-2 header: 540 bytes, little- or big-endian by `sizeof_hdr`.
fn parse_nifti2(bytes: &[u8]) -> std::result::Result<Header, &'static str> {
    const TRUNCATED: &str = "truncated NIfTI-2 header";
    if bytes.len() < 540 {
        return Err(TRUNCATED);
    }
    let order = if read_i32(bytes, 0, ByteOrder::Little) == Some(540) {
        ByteOrder::Little
    } else if read_i32(bytes, 0, ByteOrder::Big) == Some(540) {
        ByteOrder::Big
    } else {
        return Err("sizeof_hdr is not 540");
    };
    let f = |at| read_f64(bytes, at, order).ok_or(TRUNCATED);
    let i = |at| read_i64(bytes, at, order).ok_or(TRUNCATED);
    let i32_ = |at| read_i32(bytes, at, order).map(i64::from).ok_or(TRUNCATED);
    let mut dim = [0i64; 8];
    let mut pixdim = [0f64; 8];
    for k in 0..8 {
        dim[k] = i(16 + 8 * k)?;
        pixdim[k] = f(104 + 8 * k)?;
    }
    let mut quatern = [0f64; 6];
    for (k, q) in quatern.iter_mut().enumerate() {
        *q = f(352 + 8 * k)?;
    }
    let mut srow = [[0f64; 4]; 3];
    for (r, row) in srow.iter_mut().enumerate() {
        for (c, value) in row.iter_mut().enumerate() {
            *value = f(400 + 32 * r + 8 * c)?;
        }
    }
    let datatype = read_i16(bytes, 12, order).ok_or(TRUNCATED)?;
    Ok(Header {
        dim,
        datatype: i64::from(datatype),
        pixdim,
        vox_offset: i(168)? as f64,
        scl_slope: f(176)?,
        scl_inter: f(184)?,
        qform_code: i32_(344)?,
        sform_code: i32_(348)?,
        quatern,
        srow,
        order,
        header_size: 540,
    })
}

impl Header {
    /// `[nx, ny, nz]`, each at least 1 and at most [`MAX_AXIS_LEN`]; dimensions past
    /// the third must be 1.
    fn shape(&self) -> std::result::Result<[usize; 3], String> {
        let ndim = self.dim[0];
        if !(1..=7).contains(&ndim) {
            return Err(format!(
                "dim[0] = {ndim} is not a number of dimensions (1 to 7)"
            ));
        }
        let mut shape = [1usize; 3];
        for k in 1..=ndim as usize {
            let n = self.dim[k];
            if n < 1 || n as u128 > MAX_AXIS_LEN as u128 {
                return Err(format!("dim[{k}] = {n} is not a valid size"));
            }
            if k <= 3 {
                shape[k - 1] = n as usize;
            } else if n != 1 {
                return Err(format!(
                    "dim[{k}] = {n}: a {ndim}D image is not a volume (only 3D is read)"
                ));
            }
        }
        Ok(shape)
    }

    /// `(slope, intercept)`; a slope of 0 or NaN means no scaling, as the standard says.
    fn scaling(&self) -> std::result::Result<(f64, f64), String> {
        let (slope, inter) = (self.scl_slope, self.scl_inter);
        if slope == 0.0 || slope.is_nan() {
            return Ok((1.0, 0.0));
        }
        if !slope.is_finite() || !inter.is_finite() {
            return Err(format!(
                "scl_slope {slope} / scl_inter {inter} are not finite"
            ));
        }
        Ok((slope, inter))
    }

    /// The voxel-centre affine in NIfTI's RAS+ world: sform if set, else qform, else
    /// pixdim scaling alone.
    fn affine(&self) -> [[f64; 4]; 3] {
        if self.sform_code > 0 {
            return self.srow;
        }
        let [dx, dy, dz] = [self.pixdim[1], self.pixdim[2], self.pixdim[3]];
        if self.qform_code <= 0 {
            return [
                [dx, 0.0, 0.0, 0.0],
                [0.0, dy, 0.0, 0.0],
                [0.0, 0.0, dz, 0.0],
            ];
        }
        let [b, c, d, qx, qy, qz] = self.quatern;
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let qfac = if self.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - b * b - c * c,
            ],
        ];
        let scale = [dx, dy, dz * qfac];
        let t = [qx, qy, qz];
        let mut m = [[0.0; 4]; 3];
        for row in 0..3 {
            for col in 0..3 {
                m[row][col] = r[row][col] * scale[col];
            }
            m[row][3] = t[row];
        }
        m
    }
}

fn sample_type(datatype: i64) -> std::result::Result<SampleType, String> {
    Ok(match datatype {
        2 => SampleType::U8,
        4 => SampleType::I16,
        8 => SampleType::I32,
        16 => SampleType::F32,
        64 => SampleType::F64,
        256 => SampleType::I8,
        512 => SampleType::U16,
        768 => SampleType::U32,
        other => {
            return Err(format!(
                "datatype {other} is not supported (u8, i8, i16, u16, i32, u32, f32, f64 are)"
            ))
        }
    })
}

/// RAS+ and LPS+ differ by the sign of x and y; the map is its own inverse.
fn ras_to_lps(mut affine: [[f64; 4]; 3]) -> [[f64; 4]; 3] {
    for row in &mut affine[..2] {
        for v in row.iter_mut() {
            *v = -*v;
        }
    }
    affine
}

fn field<const N: usize>(bytes: &[u8], at: usize, order: ByteOrder) -> Option<[u8; N]> {
    let mut a: [u8; N] = bytes.get(at..at.checked_add(N)?)?.try_into().ok()?;
    if order == ByteOrder::Big {
        a.reverse();
    }
    Some(a)
}

fn read_i16(bytes: &[u8], at: usize, order: ByteOrder) -> Option<i16> {
    field(bytes, at, order).map(i16::from_le_bytes)
}

fn read_i32(bytes: &[u8], at: usize, order: ByteOrder) -> Option<i32> {
    field(bytes, at, order).map(i32::from_le_bytes)
}

fn read_i64(bytes: &[u8], at: usize, order: ByteOrder) -> Option<i64> {
    field(bytes, at, order).map(i64::from_le_bytes)
}

fn read_f64(bytes: &[u8], at: usize, order: ByteOrder) -> Option<f64> {
    field(bytes, at, order).map(f64::from_le_bytes)
}

/// Writes `volume` on `grid` as a single-file NIfTI-1 float32 image, gzip-compressed
/// if `path` ends in `.gz`, with the sform (code 1, scanner) holding the grid's
/// affine in RAS+. Atomic, and refuses to replace a file unless `overwrite` says so.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `volume` is not `grid`'s shape; [`Error::InvalidParameter`]
/// for a dimension over NIfTI-1's 32767; [`Error::Io`].
pub fn write_nifti(
    path: &Path,
    volume: ArrayView3<'_, f32>,
    grid: &VolumeGeometry,
    overwrite: Overwrite,
) -> Result<()> {
    grid.check_shape(volume.shape())?;
    if let Some(&n) = volume.shape().iter().find(|&&n| n > i16::MAX as usize) {
        return Err(Error::InvalidParameter {
            name: "NIfTI-1 dimension",
            reason: format!("{n} voxels along an axis exceed NIfTI-1's limit of 32767"),
        });
    }
    let affine = ras_to_lps(grid.voxel_centre_affine());
    let as_f32 = |row: [f64; 4]| row.map(|v| v as f32);
    let header = nifti::NiftiHeader {
        pixdim: [
            1.0,
            grid.spacing[0] as f32,
            grid.spacing[1] as f32,
            grid.spacing[2] as f32,
            1.0,
            1.0,
            1.0,
            1.0,
        ],
        xyzt_units: 2, // mm
        sform_code: 1,
        qform_code: 0,
        srow_x: as_f32(affine[0]),
        srow_y: as_f32(affine[1]),
        srow_z: as_f32(affine[2]),
        ..Default::default()
    };
    let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    write_atomically(path, overwrite, |file| {
        // The nifti crate writes to a path: write beside the destination, then copy
        // into the atomically renamed file.
        let staging = tempfile::Builder::new()
            .suffix(if gz { ".nii.gz" } else { ".nii" })
            .tempfile_in(super::parent_dir(path))
            .map_err(|e| write_error(path, e))?;
        // The crate's arrays are [i, j, k] with i fastest in the file: x, y, z.
        nifti::writer::WriterOptions::new(staging.path())
            .reference_header(&header)
            .write_nifti(&volume.reversed_axes())
            .map_err(|e| write_error(path, e))?;
        let mut written = std::fs::File::open(staging.path()).map_err(|e| write_error(path, e))?;
        std::io::copy(&mut written, file).map_err(|e| write_error(path, e))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qform_of_a_90_degree_turn_about_z() {
        // Quaternion (a, b, c, d) = (cos 45, 0, 0, sin 45): x -> y, y -> -x.
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let header = Header {
            dim: [3, 2, 2, 2, 1, 1, 1, 1],
            datatype: 16,
            pixdim: [-1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0],
            vox_offset: 352.0,
            scl_slope: 0.0,
            scl_inter: 0.0,
            qform_code: 1,
            sform_code: 0,
            quatern: [0.0, 0.0, s, 5.0, 6.0, 7.0],
            srow: [[0.0; 4]; 3],
            order: ByteOrder::Little,
            header_size: 348,
        };
        let m = header.affine();
        let want = [
            [0.0, -3.0, 0.0, 5.0],
            [2.0, 0.0, 0.0, 6.0],
            [0.0, 0.0, -4.0, 7.0], // qfac = -1 flips k
        ];
        for r in 0..3 {
            for c in 0..4 {
                assert!((m[r][c] - want[r][c]).abs() < 1e-12, "{m:?}");
            }
        }
    }
}
