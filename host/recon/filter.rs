//! The ramp filter of filtered backprojection, applied along detector rows by FFT.
//!
//! The filter is the discrete Ram-Lak kernel of Kak and Slaney (eq. 3.61):
//! `h(0) = 1 / (4 tau^2)`, `h(n) = -1 / (n pi tau)^2` for odd `n`, 0 for even `n`,
//! with `tau` the pixel width. Built in the spatial domain and transformed, rather than
//! sampling `|f|` directly, it has the right DC term and no DC offset in the
//! reconstruction. Rows are zero-padded to at least twice their length so that the
//! circular convolution of the FFT equals the linear one. An apodization window
//! ([`Filter`]) then tapers the high frequencies, trading resolution for noise.

use std::sync::Arc;

use ndarray::{ArrayViewMut2, Axis};
use rayon::prelude::*;
use realfft::{num_complex::Complex, ComplexToReal, RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The ramp filter's apodization window, as in ASTRA and TIGRE. With `x` the frequency
/// as a fraction of Nyquist:
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    /// The bare ramp (window 1): sharpest, noisiest.
    #[default]
    RamLak,
    /// `sinc(x / 2) = sin(pi x / 2) / (pi x / 2)`: slightly smoother.
    SheppLogan,
    /// `cos(pi x / 2)`.
    Cosine,
    /// `(1 + cos(pi x)) / 2`: smoothest, for noisy data.
    Hann,
}

impl Filter {
    /// Every filter, for help texts and tests.
    pub const ALL: [Filter; 4] = [
        Filter::RamLak,
        Filter::SheppLogan,
        Filter::Cosine,
        Filter::Hann,
    ];

    /// The window's value at `x` (frequency over Nyquist, 0 to 1).
    pub fn window(self, x: f64) -> f64 {
        use std::f64::consts::PI;
        match self {
            Filter::RamLak => 1.0,
            Filter::SheppLogan if x == 0.0 => 1.0,
            Filter::SheppLogan => (PI * x / 2.0).sin() / (PI * x / 2.0),
            Filter::Cosine => (PI * x / 2.0).cos(),
            Filter::Hann => 0.5 * (1.0 + (PI * x).cos()),
        }
    }
}

/// A ramp filter ready to apply to rows of one length.
pub(crate) struct RampFilter {
    /// Row length (detector columns).
    cols: usize,
    /// Padded FFT length (a power of two, at least `2 cols`).
    padded: usize,
    /// The windowed filter's spectrum, times `tau / padded` (the convolution's `dp` and
    /// the inverse FFT's normalisation), one value per real-FFT bin.
    spectrum: Vec<f32>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

impl RampFilter {
    /// The filter for rows of `cols` pixels `pixel_width` apart (mm), with `window`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a non-positive or non-finite pixel width, or a
    /// row too long to pad.
    pub(crate) fn new(cols: usize, pixel_width: f64, window: Filter) -> Result<RampFilter> {
        if !(pixel_width.is_finite() && pixel_width > 0.0) {
            return Err(Error::InvalidParameter {
                name: "pixel width",
                reason: format!("the ramp filter needs a positive pixel width, got {pixel_width}"),
            });
        }
        let padded = cols
            .checked_mul(2)
            .and_then(usize::checked_next_power_of_two)
            .filter(|&n| n <= 1 << 24)
            .ok_or_else(|| Error::InvalidParameter {
                name: "detector columns",
                reason: format!("{cols} columns are too many to filter"),
            })?
            .max(64);
        let tau = pixel_width;
        // The spatial kernel, wrapped so that negative offsets sit at the end.
        let mut kernel = vec![0.0f64; padded];
        kernel[0] = 1.0 / (4.0 * tau * tau);
        for n in (1..padded / 2).step_by(2) {
            let value = -1.0 / (n as f64 * std::f64::consts::PI * tau).powi(2);
            kernel[n] = value;
            kernel[padded - n] = value;
        }
        let mut planner64 = RealFftPlanner::<f64>::new();
        let mut kernel_spectrum = planner64.plan_fft_forward(padded).make_output_vec();
        planner64
            .plan_fft_forward(padded)
            .process(&mut kernel, &mut kernel_spectrum)
            .map_err(|error| fft_error(&error))?;
        let bins = kernel_spectrum.len();
        let spectrum = kernel_spectrum
            .iter()
            .enumerate()
            .map(|(k, h)| {
                // The kernel is real and even, so its spectrum is real.
                let x = k as f64 / (bins - 1) as f64;
                (h.re * window.window(x) * tau / padded as f64) as f32
            })
            .collect();
        let mut planner = RealFftPlanner::<f32>::new();
        Ok(RampFilter {
            cols,
            padded,
            spectrum,
            forward: planner.plan_fft_forward(padded),
            inverse: planner.plan_fft_inverse(padded),
        })
    }

    /// Filters every row of `rows` (`[.., cols]`, each a detector row) in place, in
    /// parallel.
    pub(crate) fn apply(&self, mut rows: ArrayViewMut2<'_, f32>) -> Result<()> {
        debug_assert_eq!(rows.ncols(), self.cols);
        rows.axis_iter_mut(Axis(0))
            .into_par_iter()
            .map_init(
                || {
                    (
                        self.forward.make_input_vec(),
                        self.forward.make_output_vec(),
                        self.forward.make_scratch_vec(),
                        self.inverse.make_scratch_vec(),
                    )
                },
                |(signal, spectrum, forward_scratch, inverse_scratch), mut row| {
                    signal.fill(0.0);
                    for (s, &value) in signal.iter_mut().zip(row.iter()) {
                        *s = value;
                    }
                    self.forward
                        .process_with_scratch(signal, spectrum, forward_scratch)
                        .map_err(|error| fft_error(&error))?;
                    for (bin, &gain) in spectrum.iter_mut().zip(&self.spectrum) {
                        *bin = Complex::new(bin.re * gain, bin.im * gain);
                    }
                    // The inverse needs purely real DC and Nyquist bins; they are
                    // (a real signal times a real gain), up to rounding.
                    spectrum[0].im = 0.0;
                    if let Some(last) = spectrum.last_mut() {
                        last.im = 0.0;
                    }
                    self.inverse
                        .process_with_scratch(spectrum, signal, inverse_scratch)
                        .map_err(|error| fft_error(&error))?;
                    for (value, &s) in row.iter_mut().zip(signal.iter()) {
                        *value = s;
                    }
                    Ok(())
                },
            )
            .collect::<Result<()>>()?;
        debug_assert!(self.padded >= 2 * self.cols);
        Ok(())
    }
}

/// realfft only fails on buffers of the wrong length, which would be a bug here.
fn fft_error(error: &realfft::FftError) -> Error {
    Error::InvalidParameter {
        name: "FFT buffers",
        reason: format!("internal error in the ramp filter: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// The direct (O(n^2)) convolution with the Ram-Lak kernel, times tau.
    fn direct(row: &[f64], tau: f64) -> Vec<f64> {
        let h = |n: i64| -> f64 {
            if n == 0 {
                1.0 / (4.0 * tau * tau)
            } else if n % 2 != 0 {
                -1.0 / (n as f64 * std::f64::consts::PI * tau).powi(2)
            } else {
                0.0
            }
        };
        (0..row.len() as i64)
            .map(|i| {
                (0..row.len() as i64)
                    .map(|k| h(i - k) * row[k as usize])
                    .sum::<f64>()
                    * tau
            })
            .collect()
    }

    #[test]
    fn ram_lak_equals_the_direct_linear_convolution() {
        let cols = 37;
        let tau = 0.7;
        let row: Vec<f64> = (0..cols).map(|i| ((i * 7919) % 13) as f64 - 4.0).collect();
        let mut data = Array2::from_shape_fn((2, cols), |(r, c)| (row[c] * (r + 1) as f64) as f32);
        RampFilter::new(cols, tau, Filter::RamLak)
            .unwrap()
            .apply(data.view_mut())
            .unwrap();
        let want = direct(&row, tau);
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for r in 0..2 {
            for c in 0..cols {
                let expected = want[c] * (r + 1) as f64;
                assert!(
                    (data[[r, c]] as f64 - expected).abs() < 1e-5 * scale * (r + 1) as f64,
                    "row {r} col {c}: {} vs {expected}",
                    data[[r, c]]
                );
            }
        }
    }

    #[test]
    fn windows_are_one_at_dc_and_taper_as_documented() {
        for filter in Filter::ALL {
            assert_eq!(filter.window(0.0), 1.0, "{filter:?}");
        }
        assert_eq!(Filter::RamLak.window(1.0), 1.0);
        assert!((Filter::SheppLogan.window(1.0) - 2.0 / std::f64::consts::PI).abs() < 1e-12);
        assert!(Filter::Cosine.window(1.0).abs() < 1e-12);
        assert!(Filter::Hann.window(1.0).abs() < 1e-12);
        assert!((Filter::Hann.window(0.5) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn smoother_windows_remove_more_of_a_checkerboard() {
        // The highest frequency a detector row can hold: +1, -1, +1, ...
        let cols = 64;
        let energy = |filter: Filter| {
            let mut data =
                Array2::from_shape_fn((1, cols), |(_, c)| if c % 2 == 0 { 1.0 } else { -1.0 });
            RampFilter::new(cols, 1.0, filter)
                .unwrap()
                .apply(data.view_mut())
                .unwrap();
            data.iter().map(|v| (*v as f64).powi(2)).sum::<f64>()
        };
        let ram_lak = energy(Filter::RamLak);
        let shepp_logan = energy(Filter::SheppLogan);
        let cosine = energy(Filter::Cosine);
        let hann = energy(Filter::Hann);
        assert!(ram_lak > shepp_logan && shepp_logan > cosine && cosine > hann);
        assert!(hann < 1e-2 * ram_lak, "Hann keeps {hann} of {ram_lak}");
    }

    #[test]
    fn rejects_a_bad_pixel_width() {
        assert!(RampFilter::new(8, 0.0, Filter::RamLak).is_err());
        assert!(RampFilter::new(8, f64::NAN, Filter::RamLak).is_err());
    }
}
