//! Voxel sample types and byte orders of the binary formats, and their conversion to
//! `f32` with the length checked before anything is allocated.

use std::path::Path;

use crate::alloc::zeroed;
use crate::error::{Error, Result};

/// The element type of stored voxels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleType {
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 16-bit integer (CT numbers).
    I16,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 32-bit integer.
    I32,
    /// IEEE 754 single precision.
    F32,
    /// IEEE 754 double precision.
    F64,
}

/// Byte order of multi-byte samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ByteOrder {
    /// Least significant byte first (x86, ARM; almost every file today).
    #[default]
    Little,
    /// Most significant byte first.
    Big,
}

impl SampleType {
    /// Bytes per sample.
    pub fn size(self) -> usize {
        match self {
            SampleType::U8 | SampleType::I8 => 1,
            SampleType::U16 | SampleType::I16 => 2,
            SampleType::U32 | SampleType::I32 | SampleType::F32 => 4,
            SampleType::F64 => 8,
        }
    }

    /// Value of one sample stored in `bytes` (exactly [`size`](Self::size) long).
    fn value(self, bytes: &[u8], order: ByteOrder) -> f32 {
        fn array<const N: usize>(bytes: &[u8], order: ByteOrder) -> [u8; N] {
            let mut a = [0u8; N];
            a.copy_from_slice(bytes);
            if order == ByteOrder::Big {
                a.reverse();
            }
            a
        }
        match self {
            SampleType::U8 => f32::from(bytes[0]),
            SampleType::I8 => f32::from(bytes[0] as i8),
            SampleType::U16 => f32::from(u16::from_le_bytes(array(bytes, order))),
            SampleType::I16 => f32::from(i16::from_le_bytes(array(bytes, order))),
            SampleType::U32 => u32::from_le_bytes(array(bytes, order)) as f32,
            SampleType::I32 => i32::from_le_bytes(array(bytes, order)) as f32,
            SampleType::F32 => f32::from_le_bytes(array(bytes, order)),
            SampleType::F64 => f64::from_le_bytes(array(bytes, order)) as f32,
        }
    }
}

impl std::str::FromStr for SampleType {
    type Err = String;

    /// Parses the short names `u8`, `i8`, `u16`, `i16`, `u32`, `i32`, `f32`, `f64`.
    fn from_str(name: &str) -> std::result::Result<Self, String> {
        Ok(match name {
            "u8" => SampleType::U8,
            "i8" => SampleType::I8,
            "u16" => SampleType::U16,
            "i16" => SampleType::I16,
            "u32" => SampleType::U32,
            "i32" => SampleType::I32,
            "f32" => SampleType::F32,
            "f64" => SampleType::F64,
            other => {
                return Err(format!(
                    "{other:?} is not a sample type (u8, i8, u16, i16, u32, i32, f32, f64)"
                ))
            }
        })
    }
}

/// Bytes that `count` samples of `sample` take, or `None` on overflow.
pub(crate) fn byte_len(count: usize, sample: SampleType) -> Option<usize> {
    count.checked_mul(sample.size())
}

/// Converts the first `count` samples of `bytes` to `f32`, applying `value * slope +
/// intercept` (pass `(1.0, 0.0)` for none).
///
/// # Errors
/// [`Error::Format`] naming `path` if `bytes` holds fewer than `count` samples;
/// [`Error::Allocation`] for the output.
pub(crate) fn decode(
    path: &Path,
    bytes: &[u8],
    count: usize,
    sample: SampleType,
    order: ByteOrder,
    scale: (f64, f64),
) -> Result<Vec<f32>> {
    let needed = byte_len(count, sample).filter(|&n| n <= bytes.len());
    let Some(needed) = needed else {
        return Err(Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "truncated: the voxel data holds {} bytes, but {count} samples of {sample:?} \
                 need {}",
                bytes.len(),
                byte_len(count, sample).map_or("more".into(), |n| n.to_string())
            ),
        });
    };
    let mut out = zeroed(count, "the volume's voxels")?;
    decode_into(&bytes[..needed], &mut out, sample, order, scale);
    Ok(out)
}

/// Converts the samples in `bytes` to `f32` into `out`, one per sample, applying
/// `value * slope + intercept` exactly as [`decode`] does (the slab reader and the
/// whole-file readers share it, so both give the same values). Converts
/// `min(out.len(), bytes.len() / sample size)` samples: the caller sizes both.
pub(crate) fn decode_into(
    bytes: &[u8],
    out: &mut [f32],
    sample: SampleType,
    order: ByteOrder,
    (slope, intercept): (f64, f64),
) {
    let scaled = slope != 1.0 || intercept != 0.0;
    for (o, chunk) in out.iter_mut().zip(bytes.chunks_exact(sample.size())) {
        let v = sample.value(chunk, order);
        *o = if scaled {
            (f64::from(v) * slope + intercept) as f32
        } else {
            v
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> &'static Path {
        Path::new("test.raw")
    }

    #[test]
    fn decodes_every_type_in_both_orders() {
        let cases: [(SampleType, Vec<u8>, f32); 8] = [
            (SampleType::U8, vec![200], 200.0),
            (SampleType::I8, vec![0xF6], -10.0),
            (SampleType::U16, 60000u16.to_le_bytes().to_vec(), 60000.0),
            (SampleType::I16, (-1024i16).to_le_bytes().to_vec(), -1024.0),
            (SampleType::U32, 70000u32.to_le_bytes().to_vec(), 70000.0),
            (
                SampleType::I32,
                (-70000i32).to_le_bytes().to_vec(),
                -70000.0,
            ),
            (SampleType::F32, 0.25f32.to_le_bytes().to_vec(), 0.25),
            (SampleType::F64, (-1.5f64).to_le_bytes().to_vec(), -1.5),
        ];
        for (sample, little, want) in cases {
            let got = decode(here(), &little, 1, sample, ByteOrder::Little, (1.0, 0.0));
            assert_eq!(got.unwrap(), vec![want], "{sample:?} little");
            let big: Vec<u8> = little.iter().rev().copied().collect();
            let got = decode(here(), &big, 1, sample, ByteOrder::Big, (1.0, 0.0));
            assert_eq!(got.unwrap(), vec![want], "{sample:?} big");
        }
    }

    #[test]
    fn sample_types_parse_from_their_short_names() {
        assert_eq!("i16".parse(), Ok(SampleType::I16));
        assert_eq!("f64".parse(), Ok(SampleType::F64));
        assert!("int16"
            .parse::<SampleType>()
            .unwrap_err()
            .contains("u8, i8"));
    }

    #[test]
    fn applies_the_rescale_and_refuses_short_data() {
        let bytes: Vec<u8> = [100i16, -1000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let little = ByteOrder::Little;
        let got = decode(here(), &bytes, 2, SampleType::I16, little, (0.5, -3.0));
        assert_eq!(got.unwrap(), vec![47.0, -503.0]);
        let short = decode(here(), &bytes, 3, SampleType::I16, little, (1.0, 0.0));
        assert!(short.unwrap_err().to_string().contains("need 6"));
        let huge = decode(
            here(),
            &bytes,
            usize::MAX,
            SampleType::F64,
            little,
            (1.0, 0.0),
        );
        assert!(huge.unwrap_err().to_string().contains("need more"));
    }
}
