//! Volumes read by slabs of z slices from a memory-mapped file ([`SlabSource`]), for
//! volumes larger than RAM.
//!
//! [`read_volume`](super::read_volume) holds a whole volume in memory. A
//! [`SlabSource`] instead maps the file read-only and copies out the slices asked for,
//! converted to `f32` exactly as the whole-file readers convert them (it shares their
//! header parsing and sample decoding), then tells the kernel it may drop the pages it
//! copied from. The resident set is then bounded by the caller's slab buffers, not by
//! the file: dropped pages are re-read from the file if they are read again.
//!
//! Readable: uncompressed NIfTI-1 and NIfTI-2 (`.nii`), MetaImage with uncompressed
//! data (`.mha`, or `.mhd` and its data file), C-order NumPy `.npy` (either byte order)
//! and raw files. Compressed files (`.nii.gz`, `CompressedData = True`) cannot be
//! mapped and are refused, as are DICOM series (one file per slice).

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray_npy::npy::header::Header as NpyHeader;

use super::bounded::is_gzip;
use super::samples::{byte_len, decode_into, ByteOrder, SampleType};
use super::volume::{check_spacing, detect_format, raw_count, raw_skip};
use super::{ReadOptions, VolumeFormat};
use crate::error::{Error, Result};
use crate::VolumeGeometry;

/// A volume file mapped into memory, read slab by slab: [`read_slices`] copies z
/// slices `[z0, z1)` of the `[z, y, x]` volume (x fastest) into a caller's buffer.
///
/// The file must not be changed while it is open: its bytes are read through the map,
/// so another process's writes would show through, and a truncation would end the
/// program with `SIGBUS` (as with every memory-mapped reader).
///
/// [`read_slices`]: SlabSource::read_slices
#[derive(Debug)]
pub struct SlabSource {
    /// The file holding the voxels (a `.mhd` header's data file).
    path: PathBuf,
    map: Mmap,
    stored: Stored,
    /// Bytes of one z slice in the file; `nz` of them from `stored.offset` fit in it.
    slice_bytes: usize,
    grid: VolumeGeometry,
    format: VolumeFormat,
}

/// Where and how the voxels lie in the mapped file.
#[derive(Debug)]
struct Stored {
    /// Byte offset of voxel `[0, 0, 0]`.
    offset: usize,
    /// `[nz, ny, nx]`.
    shape: [usize; 3],
    sample: SampleType,
    order: ByteOrder,
    /// `(slope, intercept)` applied to every sample, `(1.0, 0.0)` for none.
    scale: (f64, f64),
}

impl SlabSource {
    /// Opens a volume file for reading by slabs, recognising its format as
    /// [`read_volume`](super::read_volume) does, with the same options: with
    /// [`ReadOptions::raw`] set the file is read as raw; `.npy` and raw files need
    /// [`ReadOptions::spacing`] (their grid is centred on the origin, axis-aligned),
    /// the other formats refuse it. [`ReadOptions::max_bytes`] does not apply: nothing
    /// is held but the header. The header is parsed and the file's length checked
    /// against it here, so [`read_slices`](Self::read_slices) cannot run off its end.
    ///
    /// # Errors
    /// [`Error::Io`] if the file (or a `.mhd` header's data file) cannot be opened or
    /// mapped; [`Error::Format`] naming the file for a malformed header (as the
    /// whole-file readers report it), a file shorter than its header implies, a
    /// compressed file, a Fortran-order `.npy`, a `.npy` that is not 3D or of an
    /// unsupported type, or a DICOM series; [`Error::InvalidParameter`] for a missing
    /// or superfluous spacing or an empty raw shape; a [`crate::GeometryError`] for an
    /// unusable grid.
    pub fn open(path: &Path, options: &ReadOptions) -> Result<SlabSource> {
        let format = match options.raw {
            Some(_) => VolumeFormat::Raw,
            None => detect_format(path)?,
        };
        check_spacing(path, format, options.spacing)?;
        let bad = |reason: &str| Error::Format {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        match (format, options.raw, options.spacing) {
            (VolumeFormat::Raw, Some(layout), Some(spacing)) => {
                let count = raw_count(&layout)?;
                let map = map_file(path)?;
                let offset = raw_skip(path, &layout, count, map.len() as u64)?;
                let stored = Stored {
                    offset,
                    shape: layout.shape,
                    sample: layout.sample,
                    order: layout.order,
                    scale: (1.0, 0.0),
                };
                let grid = centred(layout.shape, spacing)?;
                SlabSource::new(path, map, stored, grid, format)
            }
            (VolumeFormat::Npy, None, Some(spacing)) => {
                let map = map_file(path)?;
                let stored = npy_layout(path, &map)?;
                let grid = centred(stored.shape, spacing)?;
                SlabSource::new(path, map, stored, grid, format)
            }
            (VolumeFormat::Nifti, None, None) => {
                let map = map_file(path)?;
                if is_gzip(&map) {
                    return Err(bad(
                        "a compressed NIfTI file (.nii.gz) cannot be mapped: decompress it \
                         (gunzip) to read it by slabs",
                    ));
                }
                let layout = super::nifti::layout(path, &map)?;
                let stored = Stored {
                    offset: layout.offset,
                    shape: layout.shape,
                    sample: layout.sample,
                    order: layout.order,
                    scale: layout.scale,
                };
                SlabSource::new(path, map, stored, layout.grid, format)
            }
            (VolumeFormat::MetaImage, None, None) => {
                let header = map_file(path)?;
                let image = super::metaimage::parse_image(path, &header)?;
                if image.compressed {
                    return Err(bad(
                        "CompressedData = True: compressed data cannot be mapped; write the \
                         image uncompressed to read it by slabs",
                    ));
                }
                let (data_path, map, offset) = match &image.data_file {
                    // As the whole-file reader: HeaderSize bytes follow the header.
                    None => (
                        path.to_path_buf(),
                        header,
                        image.header_len.saturating_add(image.skip),
                    ),
                    Some(name) => {
                        let data_path = super::parent_dir(path).join(name);
                        let map = map_file(&data_path)?;
                        (data_path, map, image.skip)
                    }
                };
                let stored = Stored {
                    offset,
                    shape: image.shape,
                    sample: image.sample,
                    order: image.order,
                    scale: (1.0, 0.0),
                };
                SlabSource::new(&data_path, map, stored, image.grid, format)
            }
            (VolumeFormat::Dicom, ..) => Err(bad(
                "a DICOM series (one file per slice) cannot be mapped as one file: read it \
                 whole with read_volume",
            )),
            // `check_spacing` has refused every other combination.
            _ => Err(bad("these read options do not fit the file's format")),
        }
    }

    /// Checks that `map` holds the voxels `stored` describes.
    fn new(
        path: &Path,
        map: Mmap,
        stored: Stored,
        grid: VolumeGeometry,
        format: VolumeFormat,
    ) -> Result<SlabSource> {
        let [nz, ny, nx] = stored.shape;
        let slice_bytes = ny.checked_mul(nx).and_then(|n| byte_len(n, stored.sample));
        let end = slice_bytes
            .and_then(|n| n.checked_mul(nz))
            .and_then(|n| n.checked_add(stored.offset));
        let file_len = map.len();
        match (slice_bytes, end) {
            (Some(slice_bytes), Some(end)) if end <= file_len => Ok(SlabSource {
                path: path.to_path_buf(),
                map,
                stored,
                slice_bytes,
                grid,
                format,
            }),
            _ => Err(Error::Format {
                path: path.to_path_buf(),
                reason: format!(
                    "truncated: {:?} samples of {:?} from byte {} need a file of {} bytes, \
                     the file has {file_len}",
                    stored.shape,
                    stored.sample,
                    stored.offset,
                    end.map_or("more".into(), |n| n.to_string()),
                ),
            }),
        }
    }

    /// Voxel counts `[nz, ny, nx]`.
    pub fn shape(&self) -> [usize; 3] {
        self.stored.shape
    }

    /// The grid in the LPS+ world frame: what [`read_volume`](super::read_volume)
    /// gives for the same file and options.
    pub fn geometry(&self) -> &VolumeGeometry {
        &self.grid
    }

    /// The format the file was read as.
    pub fn format(&self) -> VolumeFormat {
        self.format
    }

    /// Values in one z slice, `ny * nx`: a slab of `n` slices fills `n *
    /// slice_len()` values.
    pub fn slice_len(&self) -> usize {
        self.stored.shape[1] * self.stored.shape[2]
    }

    /// Bytes one z slice takes in the file (`ny * nx` samples).
    pub fn slice_bytes(&self) -> usize {
        self.slice_bytes
    }

    /// Copies z slices `slices` into `out` (`[z, y, x]`, x fastest, `slices.len() *
    /// slice_len()` values), converted to `f32` with the file's rescale as
    /// [`read_volume`](super::read_volume) converts them; values are not checked for
    /// finiteness (the projector does). The file's pages the slab was read from are
    /// then released, so that reading a whole volume slab by slab keeps only the
    /// caller's buffers resident.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `slices` is not a range of the volume's slices
    /// or `out` is not the slab's size.
    pub fn read_slices(&self, slices: Range<usize>, out: &mut [f32]) -> Result<()> {
        let nz = self.stored.shape[0];
        if slices.start > slices.end || slices.end > nz {
            return Err(Error::InvalidParameter {
                name: "slices",
                reason: format!("{slices:?} is not a range of the volume's {nz} z slices"),
            });
        }
        let count = slices.end - slices.start;
        // At most nz slices, which fit in the file.
        let voxels = count * self.slice_len();
        if out.len() != voxels {
            return Err(Error::InvalidParameter {
                name: "slab buffer",
                reason: format!(
                    "it holds {} values, but z slices {slices:?} hold {voxels}",
                    out.len()
                ),
            });
        }
        let start = self.stored.offset + slices.start * self.slice_bytes;
        let len = count * self.slice_bytes;
        let bytes = self
            .map
            .get(start..start + len)
            .ok_or_else(|| Error::Format {
                path: self.path.clone(),
                reason: format!("bytes {start}..{} are past the file's end", start + len),
            })?;
        let Stored {
            sample,
            order,
            scale,
            ..
        } = self.stored;
        decode_into(bytes, out, sample, order, scale);
        if len > 0 {
            self.release(start, len);
        }
        Ok(())
    }

    /// Lets the kernel drop the mapped pages of `len` bytes from `offset` (in the map).
    #[cfg(unix)]
    fn release(&self, offset: usize, len: usize) {
        // SAFETY: MADV_DONTNEED on this map changes no byte any borrow of it can see:
        // the map is a read-only shared mapping of a file (not anonymous or private
        // memory), so a dropped page is read back from the file, with the same bytes
        // (the file is not changed while it is open: see `SlabSource`), when it is next
        // touched, by this thread or by another one reading a neighbouring slab. The
        // range lies within the map (checked by the caller's `get`).
        let released = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
        };
        if let Err(e) = released {
            // Only advice: the data were read; the pages stay until the kernel needs them.
            log::debug!("{}: madvise(DONTNEED) failed: {e}", self.path.display());
        }
    }

    /// Page release is only available on Unix; elsewhere the kernel reclaims the
    /// mapped pages under memory pressure.
    #[cfg(not(unix))]
    fn release(&self, _offset: usize, _len: usize) {}
}

/// Maps all of `path` read-only.
fn map_file(path: &Path) -> Result<Mmap> {
    let io = |source| Error::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only and owned by one `SlabSource`, which reads it only
    // through shared borrows; `SlabSource` documents that the file must not be changed
    // while it is open (no memory-mapped reader can prevent another process from
    // doing so). The map stays valid after `file` is closed.
    unsafe { Mmap::map(&file) }.map_err(io)
}

/// The axis-aligned grid centred on the origin of a file that records no position.
fn centred(shape: [usize; 3], spacing: [f64; 3]) -> Result<VolumeGeometry> {
    let grid = VolumeGeometry::centered(shape, spacing);
    grid.validate()?;
    Ok(grid)
}

/// The layout of the `.npy` file held in `bytes`, from its header (parsed by
/// `ndarray-npy`, as the whole-file reader's).
fn npy_layout(path: &Path, bytes: &[u8]) -> Result<Stored> {
    let bad = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    // The parser allocates the header's declared length: check it first.
    super::npy::check_header_length(path, bytes)?;
    let mut rest = bytes;
    let header = NpyHeader::from_reader(&mut rest)
        .map_err(|e| bad(format!("not a readable .npy header: {e}")))?;
    let offset = bytes.len() - rest.len();
    if header.layout.is_fortran() {
        return Err(bad(
            "the array is in Fortran order (fortran_order: True); only C-order arrays can \
             be read by slabs: save it with numpy.ascontiguousarray"
                .into(),
        ));
    }
    let shape: [usize; 3] = header.shape.as_slice().try_into().map_err(|_| {
        bad(format!(
            "the array has shape {:?}: a volume is a 3D array [z, y, x]",
            header.shape
        ))
    })?;
    let (sample, order) = header
        .type_descriptor
        .as_string()
        .map(String::as_str)
        .and_then(npy_dtype)
        .ok_or_else(|| {
            bad(format!(
                "unsupported element type {}: volumes must be float32, float64, int8, \
                 uint8, int16, uint16, int32 or uint32",
                header.type_descriptor
            ))
        })?;
    Ok(Stored {
        offset,
        shape,
        sample,
        order,
        scale: (1.0, 0.0),
    })
}

/// The sample type and byte order of a NumPy type string such as `<f4` or `|u1`.
fn npy_dtype(descr: &str) -> Option<(SampleType, ByteOrder)> {
    let (order, code) = descr.split_at_checked(1)?;
    let sample = match code {
        "u1" => SampleType::U8,
        "i1" => SampleType::I8,
        "u2" => SampleType::U16,
        "i2" => SampleType::I16,
        "u4" => SampleType::U32,
        "i4" => SampleType::I32,
        "f4" => SampleType::F32,
        "f8" => SampleType::F64,
        _ => return None,
    };
    let order = match order {
        "<" => ByteOrder::Little,
        ">" => ByteOrder::Big,
        "|" if sample.size() == 1 => ByteOrder::Little,
        "=" if cfg!(target_endian = "big") => ByteOrder::Big,
        "=" => ByteOrder::Little,
        _ => return None,
    };
    Some((sample, order))
}

#[cfg(test)]
mod tests {
    use ndarray::{s, Array3};

    use super::*;
    use crate::io::{read_volume, write_metaimage, write_nifti, write_npy, Overwrite, RawLayout};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name)
    }

    fn with_spacing(spacing: [f64; 3]) -> ReadOptions {
        ReadOptions {
            spacing: Some(spacing),
            ..ReadOptions::default()
        }
    }

    /// Distinct values, `100 z + 10 y + x - 17.5`.
    fn ramp(shape: [usize; 3]) -> Array3<f32> {
        Array3::from_shape_fn(shape, |(z, y, x)| (100 * z + 10 * y + x) as f32 - 17.5)
    }

    /// A 90-degree turn about z, off the origin.
    fn turned_grid(shape: [usize; 3]) -> VolumeGeometry {
        VolumeGeometry::new(shape, [0.5, 0.75, 2.0], [10.0, -20.0, 5.0]).with_direction([
            [0.0, -1.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0],
        ])
    }

    /// Reads `path` whole and by slabs of several sizes, and checks that both give
    /// the same grid and the same values; returns the slab source.
    #[track_caller]
    fn same_as_whole(path: &Path, options: &ReadOptions) -> SlabSource {
        let whole = read_volume(path, options).unwrap();
        let source = SlabSource::open(path, options).unwrap();
        let (nz, ny, nx) = whole.data.dim();
        assert_eq!(source.shape(), [nz, ny, nx], "{}", path.display());
        assert_eq!(source.geometry(), &whole.grid, "{}", path.display());
        assert_eq!(source.format(), whole.format);
        assert_eq!(source.slice_len(), ny * nx);
        for slab in [1, 2, 3, nz] {
            let mut z = 0;
            while z < nz {
                let end = (z + slab).min(nz);
                let mut out = vec![f32::NAN; (end - z) * source.slice_len()];
                source.read_slices(z..end, &mut out).unwrap();
                let want: Vec<f32> = whole
                    .data
                    .slice(s![z..end, .., ..])
                    .iter()
                    .copied()
                    .collect();
                assert_eq!(out, want, "{}: slices {z}..{end}", path.display());
                z = end;
            }
        }
        source
    }

    /// A version 1.0 `.npy` file: header, then `data`.
    fn npy_file(descr: &str, fortran: bool, shape: [usize; 3], data: &[u8]) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({}, {}, {}), }}",
            if fortran { "True" } else { "False" },
            shape[0],
            shape[1],
            shape[2]
        );
        let total = (10 + dict.len() + 1).div_ceil(64) * 64;
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&((total - 10) as u16).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        out.extend_from_slice(data);
        out
    }

    /// A NIfTI-1 int16 file `[nx, ny, nz]` with a mirrored sform and a rescale.
    fn nifti1_i16(big: bool, [nx, ny, nz]: [i16; 3], values: &[i16], scale: [f32; 2]) -> Vec<u8> {
        let mut bytes = vec![0u8; 352];
        // Fields are given little-endian and reversed for a big-endian file.
        let mut put = |at: usize, le: &[u8]| {
            let field = &mut bytes[at..at + le.len()];
            field.copy_from_slice(le);
            if big {
                field.reverse();
            }
        };
        put(0, &348i32.to_le_bytes());
        for (k, d) in [3, nx, ny, nz, 1, 1, 1, 1].iter().enumerate() {
            put(40 + 2 * k, &d.to_le_bytes());
        }
        put(70, &4i16.to_le_bytes()); // datatype int16
        put(72, &16i16.to_le_bytes()); // bitpix
        for (k, p) in [1.0f32, 0.5, 0.75, 2.0, 1.0, 1.0, 1.0, 1.0]
            .iter()
            .enumerate()
        {
            put(76 + 4 * k, &p.to_le_bytes());
        }
        put(108, &352.0f32.to_le_bytes()); // vox_offset
        put(112, &scale[0].to_le_bytes());
        put(116, &scale[1].to_le_bytes());
        put(254, &1i16.to_le_bytes()); // sform_code
        let srow = [
            [-0.5f32, 0.0, 0.0, 12.0],
            [0.0, 0.75, 0.0, -3.0],
            [0.0, 0.0, 2.0, 7.5],
        ];
        for (r, row) in srow.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                put(280 + 16 * r + 4 * c, &v.to_le_bytes());
            }
        }
        bytes[344..348].copy_from_slice(b"n+1\0");
        for v in values {
            let mut b = v.to_le_bytes();
            if big {
                b.reverse();
            }
            bytes.extend_from_slice(&b);
        }
        bytes
    }

    #[test]
    fn npy_by_slabs_matches_the_whole_file_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f32.npy");
        write_npy(&path, &ramp([5, 3, 4]), Overwrite::Refuse).unwrap();
        let source = same_as_whole(&path, &with_spacing([0.5, 1.0, 2.0]));
        assert_eq!(source.slice_bytes(), 3 * 4 * 4);
        assert_eq!(
            source.geometry(),
            &VolumeGeometry::centered([5, 3, 4], [0.5, 1.0, 2.0])
        );

        let shape = [4, 3, 5];
        let n = 60;
        let cases: [(&str, Vec<u8>); 4] = [
            (
                "<i2",
                (0..n)
                    .flat_map(|i| (i as i16 * 7 - 200).to_le_bytes())
                    .collect(),
            ),
            (
                "<u2",
                (0..n)
                    .flat_map(|i| (i as u16 * 1000).to_le_bytes())
                    .collect(),
            ),
            ("|u1", (0..n).map(|i| (i * 4) as u8).collect()),
            (
                "<f8",
                (0..n)
                    .flat_map(|i| (i as f64 * 0.1 - 3.0).to_le_bytes())
                    .collect(),
            ),
        ];
        for (descr, data) in cases {
            let path = dir.path().join(format!("{}.npy", &descr[1..]));
            std::fs::write(&path, npy_file(descr, false, shape, &data)).unwrap();
            same_as_whole(&path, &with_spacing([1.0; 3]));
        }
    }

    #[test]
    fn npy_of_either_byte_order_and_more_types() {
        let dir = tempfile::tempdir().unwrap();
        let shape = [3, 2, 5];
        let n = 30;
        let value = |i: usize| i as f64 * 1000.0 - 5000.5;
        let cases: [(&str, Vec<u8>, Vec<f32>); 4] = [
            (
                ">i4",
                (0..n)
                    .flat_map(|i| (i as i32 * 1000 - 5000).to_be_bytes())
                    .collect(),
                (0..n).map(|i| (i as i32 * 1000 - 5000) as f32).collect(),
            ),
            (
                "|i1",
                (0..n).map(|i| (i as i8 - 10) as u8).collect(),
                (0..n).map(|i| f32::from(i as i8 - 10)).collect(),
            ),
            (
                ">f8",
                (0..n).flat_map(|i| value(i).to_be_bytes()).collect(),
                (0..n).map(|i| value(i) as f32).collect(),
            ),
            (
                ">f4",
                (0..n)
                    .flat_map(|i| (value(i) as f32).to_be_bytes())
                    .collect(),
                (0..n).map(|i| value(i) as f32).collect(),
            ),
        ];
        for (descr, data, want) in cases {
            let path = dir.path().join("v.npy");
            std::fs::write(&path, npy_file(descr, false, shape, &data)).unwrap();
            let source = SlabSource::open(&path, &with_spacing([1.0; 3])).unwrap();
            assert_eq!(source.shape(), shape);
            let mut all = vec![0.0; n];
            for z in 0..3 {
                source
                    .read_slices(z..z + 1, &mut all[z * 10..(z + 1) * 10])
                    .unwrap();
            }
            assert_eq!(all, want, "{descr}");
        }
    }

    #[test]
    fn nifti_by_slabs_matches_the_whole_file_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turned.nii");
        let shape = [4, 3, 5];
        write_nifti(
            &path,
            ramp(shape).view(),
            &turned_grid(shape),
            Overwrite::Refuse,
        )
        .unwrap();
        same_as_whole(&path, &ReadOptions::default());

        let values: Vec<i16> = (0..60).map(|i| i * 37 - 1024).collect();
        for big in [false, true] {
            let path = dir.path().join(format!("scaled_{big}.nii"));
            std::fs::write(&path, nifti1_i16(big, [5, 4, 3], &values, [0.5, -3.0])).unwrap();
            let source = same_as_whole(&path, &ReadOptions::default());
            assert_eq!(source.shape(), [3, 4, 5]);
            let mut first = vec![0.0; 20];
            source.read_slices(0..1, &mut first).unwrap();
            assert_eq!(first[1], (-987.0 * 0.5 - 3.0) as f32);
        }

        for name in ["nibabel_qform_float32.nii", "nibabel_nifti2_bigendian.nii"] {
            same_as_whole(&fixture(name), &ReadOptions::default());
        }
    }

    #[test]
    fn metaimage_by_slabs_matches_the_whole_file_reader() {
        let dir = tempfile::tempdir().unwrap();
        let shape = [5, 2, 3];
        for name in ["one.mha", "two.mhd"] {
            let path = dir.path().join(name);
            write_metaimage(
                &path,
                ramp(shape).view(),
                &turned_grid(shape),
                Overwrite::Refuse,
            )
            .unwrap();
            same_as_whole(&path, &ReadOptions::default());
        }
        for name in ["sitk_int16.mha", "sitk_int16.mhd"] {
            same_as_whole(&fixture(name), &ReadOptions::default());
        }
    }

    #[test]
    fn raw_by_slabs_matches_the_whole_file_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.raw");
        let mut bytes = vec![0xAB; 7];
        bytes.extend((0..60u16).flat_map(|i| (i * 1001).to_be_bytes()));
        std::fs::write(&path, &bytes).unwrap();
        let options = ReadOptions {
            raw: Some(RawLayout {
                shape: [3, 4, 5],
                sample: SampleType::U16,
                order: ByteOrder::Big,
                header_bytes: 7,
            }),
            spacing: Some([1.0, 2.0, 3.0]),
            ..ReadOptions::default()
        };
        let source = same_as_whole(&path, &options);
        assert_eq!(source.format(), VolumeFormat::Raw);
        assert_eq!(source.slice_bytes(), 40);

        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = SlabSource::open(&path, &options).unwrap_err().to_string();
        assert!(err.contains("check the shape and type"), "{err}");
    }

    #[test]
    fn truncated_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shape = [4, 3, 5];
        let nii = dir.path().join("v.nii");
        write_nifti(
            &nii,
            ramp(shape).view(),
            &turned_grid(shape),
            Overwrite::Refuse,
        )
        .unwrap();
        let npy = dir.path().join("v.npy");
        write_npy(&npy, &ramp(shape), Overwrite::Refuse).unwrap();
        let mha = dir.path().join("v.mha");
        write_metaimage(
            &mha,
            ramp(shape).view(),
            &turned_grid(shape),
            Overwrite::Refuse,
        )
        .unwrap();
        for (path, options) in [
            (&nii, ReadOptions::default()),
            (&npy, with_spacing([1.0; 3])),
            (&mha, ReadOptions::default()),
        ] {
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            let len = file.metadata().unwrap().len();
            file.set_len(len - 2).unwrap();
            let err = SlabSource::open(path, &options).unwrap_err().to_string();
            assert!(err.contains("truncated"), "{}: {err}", path.display());
        }

        // A header that declares far more than the file holds.
        let path = dir.path().join("huge.npy");
        std::fs::write(&path, npy_file("<f4", false, [1 << 20; 3], &[0; 64])).unwrap();
        let err = SlabSource::open(&path, &with_spacing([1.0; 3])).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn compressed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shape = [2, 3, 4];
        let path = dir.path().join("v.nii.gz");
        write_nifti(
            &path,
            ramp(shape).view(),
            &turned_grid(shape),
            Overwrite::Refuse,
        )
        .unwrap();
        for path in [path, fixture("nibabel_sform_int16.nii.gz")] {
            let err = SlabSource::open(&path, &ReadOptions::default()).unwrap_err();
            assert!(err.to_string().contains("compressed NIfTI"), "{err}");
        }
        let err = SlabSource::open(
            &fixture("sitk_int16_compressed.mha"),
            &ReadOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("CompressedData"), "{err}");
    }

    #[test]
    fn unsupported_npy_arrays_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        let options = with_spacing([1.0; 3]);
        let zeros = [0u8; 24 * 4];
        for (descr, fortran, shape, complaint) in [
            ("<f4", true, [2, 3, 4], "Fortran order"),
            ("<c8", false, [2, 3, 4], "unsupported element type"),
            ("<f4", false, [0, 3, 4], "must be at least 1"),
        ] {
            std::fs::write(&path, npy_file(descr, fortran, shape, &zeros)).unwrap();
            let err = SlabSource::open(&path, &options).unwrap_err().to_string();
            assert!(err.contains(complaint), "{descr} {shape:?}: {err}");
        }
        let mut two_d = npy_file("<f4", false, [2, 3, 4], &zeros);
        let at = two_d.windows(11).position(|w| w == b"(2, 3, 4), ").unwrap();
        two_d[at..at + 11].copy_from_slice(b"(6, 4),    ");
        std::fs::write(&path, two_d).unwrap();
        let err = SlabSource::open(&path, &options).unwrap_err().to_string();
        assert!(err.contains("3D array"), "{err}");
    }

    #[test]
    fn bad_requests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        write_npy(&path, &ramp([3, 2, 2]), Overwrite::Refuse).unwrap();
        let err = SlabSource::open(&path, &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidParameter {
                    name: "spacing",
                    ..
                }
            ),
            "{err}"
        );
        let source = SlabSource::open(&path, &with_spacing([1.0; 3])).unwrap();
        let mut out = vec![0.0; 4];
        for slices in [3..4, 2..4] {
            let err = source.read_slices(slices, &mut out).unwrap_err();
            assert!(
                matches!(err, Error::InvalidParameter { name: "slices", .. }),
                "{err}"
            );
        }
        let err = source.read_slices(0..2, &mut out).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidParameter {
                    name: "slab buffer",
                    ..
                }
            ),
            "{err}"
        );
        source.read_slices(3..3, &mut []).unwrap();
        let err = SlabSource::open(&fixture("dicom_rle"), &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("DICOM"), "{err}");
    }
}
