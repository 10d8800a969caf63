//! The detector: its scintillator's absorption efficiency, how it weighs a photon
//! (energy-integrating or photon-counting), gain, offset, electronic noise and blur.

use ndarray::{Array2, ArrayViewMut2, Axis};

use super::material::Material;
use crate::error::{Error, Result};

/// How the detector weighs an absorbed photon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// By its energy (keV): flat-panel scintillator detectors.
    EnergyIntegrating,
    /// One count each: photon-counting detectors.
    PhotonCounting,
}

/// A scintillator layer: the fraction of photons of energy `E` it stops is
/// `1 - exp(-(mu/rho)(E) rho fill t)`, with the coefficient without coherent
/// scattering (photoelectric absorption and Compton scattering). The model counts a
/// stopped photon's whole energy (no K-fluorescence escape, no light statistics).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scintillator {
    /// What it is made of.
    pub material: Material,
    /// Thickness, mm.
    pub thickness_mm: f64,
    /// Packing fraction: the layer's density over the material's (needles, powder).
    pub fill: f64,
}

impl Scintillator {
    /// Caesium iodide needles, 0.6 mm at 80 % packing (about 0.22 g/cm^2), as in
    /// flat-panel radiography detectors.
    pub fn csi() -> Scintillator {
        Scintillator {
            material: Material::CsI,
            thickness_mm: 0.6,
            fill: 0.8,
        }
    }

    /// A gadolinium oxysulfide screen, 0.2 mm at 50 % packing (about 75 mg/cm^2).
    pub fn gos() -> Scintillator {
        Scintillator {
            material: Material::Gos,
            thickness_mm: 0.2,
            fill: 0.5,
        }
    }

    /// The fraction of photons of `energy_kev` that the layer stops.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an energy outside the tables.
    pub fn efficiency(&self, energy_kev: f64) -> Result<f64> {
        let mu = self.material.mass_attenuation(energy_kev, false)?
            * self.material.density()
            * self.fill
            / 10.0;
        Ok(-(-mu * self.thickness_mm).exp_m1())
    }
}

/// A detector. [`Detector::ideal`] stops every photon and adds nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detector {
    /// The absorbing layer; `None` stops every photon.
    pub scintillator: Option<Scintillator>,
    /// How a photon is weighed.
    pub response: Response,
    /// Output per unit of signal (keV or counts).
    pub gain: f64,
    /// Added to every output pixel.
    pub offset: f64,
    /// Standard deviation of the Gaussian electronic noise, in output units (added
    /// only when noise is asked for).
    pub electronic_noise: f64,
    /// Standard deviation of the Gaussian blur (light spread in the scintillator), in
    /// pixels; 0 for none.
    pub blur_pixels: f64,
}

impl Detector {
    /// Every photon counted once: the detector of Beer-Lambert's law.
    pub fn ideal() -> Detector {
        Detector {
            scintillator: None,
            response: Response::PhotonCounting,
            gain: 1.0,
            offset: 0.0,
            electronic_noise: 0.0,
            blur_pixels: 0.0,
        }
    }

    /// An energy-integrating flat panel with `scintillator` and no blur or noise of
    /// its own.
    pub fn flat_panel(scintillator: Scintillator) -> Detector {
        Detector {
            scintillator: Some(scintillator),
            response: Response::EnergyIntegrating,
            ..Detector::ideal()
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the field that is out of range.
    pub fn validate(&self) -> Result<()> {
        let check = |name: &'static str, value: f64, ok: bool| {
            if value.is_finite() && ok {
                Ok(())
            } else {
                Err(Error::InvalidParameter {
                    name,
                    reason: format!("out of range: {value}"),
                })
            }
        };
        if let Some(s) = &self.scintillator {
            check(
                "scintillator thickness (mm)",
                s.thickness_mm,
                s.thickness_mm > 0.0,
            )?;
            check("scintillator fill", s.fill, s.fill > 0.0 && s.fill <= 1.0)?;
        }
        check("detector gain", self.gain, self.gain > 0.0)?;
        check("detector offset", self.offset, true)?;
        check(
            "electronic noise",
            self.electronic_noise,
            self.electronic_noise >= 0.0,
        )?;
        check(
            "detector blur (pixels)",
            self.blur_pixels,
            (0.0..=MAX_BLUR_PIXELS).contains(&self.blur_pixels),
        )
    }

    /// The fraction of photons of `energy_kev` detected and the weight each adds to
    /// the signal.
    pub(crate) fn response_at(&self, energy_kev: f64) -> Result<(f64, f64)> {
        let efficiency = match &self.scintillator {
            Some(s) => s.efficiency(energy_kev)?,
            None => 1.0,
        };
        let weight = match self.response {
            Response::EnergyIntegrating => energy_kev,
            Response::PhotonCounting => 1.0,
        };
        Ok((efficiency, weight))
    }
}

/// Largest blur accepted, pixels.
pub const MAX_BLUR_PIXELS: f64 = 64.0;

/// A Gaussian blur of one image with the detector's edge handling: the kernel is cut
/// at the detector's edge and renormalised over what remains, so that a uniform image
/// stays uniform. `y = B x / B 1` with `B` the symmetric (zero-padded) convolution.
#[derive(Clone, Debug)]
pub(crate) struct Blur {
    kernel: Vec<f64>,
}

impl Blur {
    /// The blur of standard deviation `sigma` pixels (radius 3 sigma); `None` for 0.
    pub(crate) fn new(sigma: f64) -> Option<Blur> {
        if sigma <= 0.0 {
            return None;
        }
        let radius = (3.0 * sigma).ceil() as isize;
        let kernel: Vec<f64> = (-radius..=radius)
            .map(|i| (-0.5 * (i as f64 / sigma).powi(2)).exp())
            .collect();
        let sum: f64 = kernel.iter().sum();
        Some(Blur {
            kernel: kernel.into_iter().map(|k| k / sum).collect(),
        })
    }

    /// `B x`: the zero-padded separable convolution (self-adjoint).
    fn convolve(&self, image: &Array2<f64>) -> Array2<f64> {
        let radius = (self.kernel.len() / 2) as isize;
        let mut once = image.clone();
        for (axis, out) in [(Axis(1), 0), (Axis(0), 1)] {
            let source = if out == 0 {
                image.clone()
            } else {
                once.clone()
            };
            for (line_in, mut line_out) in source.lanes(axis).into_iter().zip(once.lanes_mut(axis))
            {
                let n = line_in.len() as isize;
                for (i, value) in line_out.iter_mut().enumerate() {
                    let mut sum = 0.0;
                    for (k, weight) in self.kernel.iter().enumerate() {
                        let j = i as isize + k as isize - radius;
                        if (0..n).contains(&j) {
                            sum += weight * line_in[j as usize];
                        }
                    }
                    *value = sum;
                }
            }
        }
        once
    }

    /// Blurs `image` in place: `B x / B 1`.
    pub(crate) fn apply(&self, mut image: ArrayViewMut2<f32>) {
        let x = image.mapv(f64::from);
        let blurred = self.convolve(&x);
        let norm = self.convolve(&Array2::ones(x.dim()));
        for ((out, b), n) in image.iter_mut().zip(&blurred).zip(&norm) {
            *out = (b / n) as f32;
        }
    }

    /// The adjoint of [`Blur::apply`]: `B (y / B 1)`, in place.
    pub(crate) fn apply_adjoint(&self, mut image: ArrayViewMut2<f32>) {
        let norm = self.convolve(&Array2::ones(image.dim()));
        let scaled = ndarray::Zip::from(&image)
            .and(&norm)
            .map_collect(|&y, &n| f64::from(y) / n);
        let blurred = self.convolve(&scaled);
        for (out, b) in image.iter_mut().zip(&blurred) {
            *out = *b as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn a_thick_layer_stops_everything_and_a_thin_one_little() {
        let thick = Scintillator {
            thickness_mm: 100.0,
            ..Scintillator::csi()
        };
        assert!((thick.efficiency(60.0).unwrap() - 1.0).abs() < 1e-12);
        let thin = Scintillator {
            thickness_mm: 1e-4,
            ..Scintillator::csi()
        };
        // Thin: efficiency ~ mu t.
        let mu = Material::CsI.mass_attenuation(60.0, false).unwrap() * 4.51 * 0.8 / 10.0;
        assert!((thin.efficiency(60.0).unwrap() / (mu * 1e-4) - 1.0).abs() < 1e-3);
        // CsI's K edges (33.2 and 36.0 keV): more absorbed just above.
        let csi = Scintillator::csi();
        assert!(csi.efficiency(37.5).unwrap() > csi.efficiency(32.5).unwrap());
    }

    #[test]
    fn bad_detectors_are_refused() {
        for detector in [
            Detector {
                gain: 0.0,
                ..Detector::ideal()
            },
            Detector {
                electronic_noise: -1.0,
                ..Detector::ideal()
            },
            Detector {
                blur_pixels: f64::NAN,
                ..Detector::ideal()
            },
            Detector {
                blur_pixels: 1e3,
                ..Detector::ideal()
            },
            Detector::flat_panel(Scintillator {
                fill: 1.5,
                ..Scintillator::gos()
            }),
            Detector::flat_panel(Scintillator {
                thickness_mm: 0.0,
                ..Scintillator::gos()
            }),
        ] {
            assert!(detector.validate().is_err(), "{detector:?}");
        }
        assert!(Detector::flat_panel(Scintillator::csi()).validate().is_ok());
    }

    #[test]
    fn the_blur_keeps_uniform_images_and_its_adjoint_is_exact() {
        let blur = Blur::new(1.5).unwrap();
        let mut flat = Array2::from_elem((9, 13), 3.0f32);
        blur.apply(flat.view_mut());
        assert!(flat.iter().all(|v| (v - 3.0).abs() < 1e-5));
        // <B x, y> = <x, B^T y> for random-ish images.
        let x = Array2::from_shape_fn((9, 13), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
        let y = Array2::from_shape_fn((9, 13), |(i, j)| ((i * 5 + j * 2) % 7) as f32 + 0.5);
        let (mut bx, mut bty) = (x.clone(), y.clone());
        blur.apply(bx.view_mut());
        blur.apply_adjoint(bty.view_mut());
        let left: f64 = bx
            .iter()
            .zip(&y)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let right: f64 = x
            .iter()
            .zip(&bty)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        assert!((left - right).abs() < 1e-4 * left.abs(), "{left} {right}");
        assert!(Blur::new(0.0).is_none());
    }
}
