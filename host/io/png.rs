//! Projections as PNG images (8- or 16-bit greyscale), windowed.
//!
//! The image is written with detector row 0 at the *bottom*, so that `v` (increasing
//! rows) points up, as on a radiograph with `v = +z` (the circular scan's convention).
//! Columns run left to right with increasing `u`.

use std::path::Path;

use ndarray::{ArrayBase, Data, Ix2};

use super::{write_atomically, write_error, Overwrite};
use crate::error::{Error, Result};

/// Bits per PNG sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitDepth {
    /// 256 grey levels.
    Eight,
    /// 65536 grey levels.
    Sixteen,
}

/// How values map to grey levels: `low` and below is black, `high` and above white;
/// `invert` swaps them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Value shown black (white if inverted).
    pub low: f32,
    /// Value shown white (black if inverted).
    pub high: f32,
    /// Swap black and white.
    pub invert: bool,
}

impl Window {
    /// The window spanning the finite values of `image` (0 to 1 if there are none).
    pub fn full_range<S: Data<Elem = f32>>(image: &ArrayBase<S, Ix2>) -> Window {
        let (low, high) = image
            .iter()
            .filter(|v| v.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if low.is_finite() {
            Window {
                low,
                high,
                invert: false,
            }
        } else {
            Window {
                low: 0.0,
                high: 1.0,
                invert: false,
            }
        }
    }

    /// The window from the `low` and `high` percentiles (0 to 100) of the finite
    /// values of `image`, robust to a few extreme pixels.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `0 <= low < high <= 100`.
    pub fn percentiles<S: Data<Elem = f32>>(
        image: &ArrayBase<S, Ix2>,
        low: f64,
        high: f64,
    ) -> Result<Window> {
        if !((0.0..100.0).contains(&low) && low < high && high <= 100.0) {
            return Err(Error::InvalidParameter {
                name: "window percentiles",
                reason: format!("need 0 <= low < high <= 100, got {low}, {high}"),
            });
        }
        let mut values: Vec<f32> = image.iter().copied().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return Ok(Window::full_range(image));
        }
        values.sort_unstable_by(f32::total_cmp);
        let at = |p: f64| values[((p / 100.0) * (values.len() - 1) as f64).round() as usize];
        Ok(Window {
            low: at(low),
            high: at(high),
            invert: false,
        })
    }

    /// Grey level in `[0, 1]` of `value`.
    fn level(&self, value: f32) -> f32 {
        let span = self.high - self.low;
        let t = if span > 0.0 {
            (value - self.low) / span
        } else {
            0.0
        };
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        if self.invert {
            1.0 - t
        } else {
            t
        }
    }
}

/// Writes one projection `[rows, cols]` as a greyscale PNG, atomically.
///
/// # Errors
/// [`Error::InvalidParameter`] for an empty image or one wider or taller than PNG allows;
/// [`Error::Io`] if the file exists and `overwrite` is [`Overwrite::Refuse`], or the
/// write fails.
pub fn write_png<S: Data<Elem = f32>>(
    path: &Path,
    image: &ArrayBase<S, Ix2>,
    window: Window,
    depth: BitDepth,
    overwrite: Overwrite,
) -> Result<()> {
    let (rows, cols) = image.dim();
    let (height, width) = match (u32::try_from(rows), u32::try_from(cols)) {
        (Ok(h), Ok(w)) if h > 0 && w > 0 => (h, w),
        _ => {
            return Err(Error::InvalidParameter {
                name: "PNG image size",
                reason: format!("{rows} x {cols} pixels cannot be written as a PNG"),
            })
        }
    };
    // Row 0 of the array goes to the bottom of the picture.
    let levels = image.outer_iter().rev().flat_map(|line| {
        line.into_iter()
            .map(|&v| window.level(v))
            .collect::<Vec<_>>()
    });
    let encoded = match depth {
        BitDepth::Eight => {
            let pixels: Vec<u8> = levels.map(|t| (t * 255.0).round() as u8).collect();
            image::GrayImage::from_raw(width, height, pixels).map(image::DynamicImage::ImageLuma8)
        }
        BitDepth::Sixteen => {
            let pixels: Vec<u16> = levels.map(|t| (t * 65535.0).round() as u16).collect();
            image::ImageBuffer::from_raw(width, height, pixels)
                .map(image::DynamicImage::ImageLuma16)
        }
    }
    .expect("the buffer has rows * cols pixels");
    write_atomically(path, overwrite, |file| {
        encoded
            .write_to(&mut std::io::BufWriter::new(file), image::ImageFormat::Png)
            .map_err(|e| write_error(path, e))
    })
}
