//! X-ray spectra: tungsten-anode tube spectra by kVp and anode angle (SpekPy's, from
//! the embedded table), filtration, a single energy, or a user's CSV; with the mean
//! energy and the first half-value layer.

use std::path::Path;

use super::material::{check_energy, interpolate, Material};
use super::tables::{bin_centre_kev, tables, BINS};
use crate::error::{Error, Result};

/// Lowest and highest tube voltage of the table, kV.
pub const KVP_RANGE: [u32; 2] = [40, 150];

/// Most lines a user's spectrum file may hold.
pub const MAX_LINES: usize = 100_000;

/// One energy of a spectrum and its photons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line {
    /// Photon energy, keV (1 to 150).
    pub energy_kev: f64,
    /// Photons per cm^2 per mAs at 100 cm from the focal spot (for a tube spectrum:
    /// the fluence per keV times the 1 keV bin).
    pub photons: f64,
}

/// A spectrum: photon lines of positive fluence, energies ascending.
#[derive(Clone, Debug, PartialEq)]
pub struct Spectrum {
    lines: Vec<Line>,
}

/// The mass energy-absorption coefficient of air, cm^2/g, for air kerma.
fn air_energy_absorption(energy_kev: f64) -> Result<f64> {
    interpolate(&tables().columns["air_energy_absorption"], energy_kev)
}

impl Spectrum {
    /// The unfiltered spectrum (the anode's self-filtration only) of a tungsten tube at
    /// `kvp` (an integer from 40 to 150) with anode angle `anode_angle_deg` (8 to 20
    /// degrees, linear between the tabulated 8, 12, 16 and 20), on 1 keV bins. Add the
    /// tube's inherent and added filtration with [`Spectrum::filtered`].
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a kVp or an angle outside the table, or a
    /// kVp that is not a whole number.
    pub fn tube(kvp: f64, anode_angle_deg: f64) -> Result<Spectrum> {
        let [low, high] = KVP_RANGE;
        if !(kvp.fract() == 0.0 && (f64::from(low)..=f64::from(high)).contains(&kvp)) {
            return Err(Error::InvalidParameter {
                name: "kVp",
                reason: format!("must be a whole number from {low} to {high}, got {kvp}"),
            });
        }
        let angles = &tables().anode_angles;
        let (first, last) = (angles[0], angles[angles.len() - 1]);
        if !(f64::from(first)..=f64::from(last)).contains(&anode_angle_deg) {
            return Err(Error::InvalidParameter {
                name: "anode angle",
                reason: format!("must be from {first} to {last} degrees, got {anode_angle_deg}"),
            });
        }
        let upper = angles
            .iter()
            .position(|&a| f64::from(a) >= anode_angle_deg)
            .unwrap_or(angles.len() - 1)
            .max(1);
        let (a0, a1) = (angles[upper - 1], angles[upper]);
        let weight = (anode_angle_deg - f64::from(a0)) / f64::from(a1 - a0);
        let kvp = kvp as u32;
        let (s0, s1) = (&tables().spectra[&(kvp, a0)], &tables().spectra[&(kvp, a1)]);
        let lines = (0..BINS)
            .map(|bin| Line {
                energy_kev: bin_centre_kev(bin),
                photons: (1.0 - weight) * s0[bin] + weight * s1[bin],
            })
            .filter(|line| line.photons > 0.0)
            .collect();
        Ok(Spectrum { lines })
    }

    /// One energy: `photons` per cm^2 per mAs at 100 cm, all at `energy_kev`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an energy outside 1 to 150 keV or a
    /// non-positive or non-finite photon count.
    pub fn monochromatic(energy_kev: f64, photons: f64) -> Result<Spectrum> {
        Spectrum::from_lines(vec![Line {
            energy_kev,
            photons,
        }])
    }

    /// A spectrum of the given lines (any order; lines of the same energy add).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no lines, more than [`MAX_LINES`], an energy
    /// outside 1 to 150 keV, or a negative or non-finite photon count.
    pub fn from_lines(mut lines: Vec<Line>) -> Result<Spectrum> {
        if lines.len() > MAX_LINES {
            return Err(Error::InvalidParameter {
                name: "spectrum",
                reason: format!("{} lines, at most {MAX_LINES}", lines.len()),
            });
        }
        for line in &lines {
            check_energy(line.energy_kev)?;
            if !(line.photons.is_finite() && line.photons >= 0.0) {
                return Err(Error::InvalidParameter {
                    name: "spectrum",
                    reason: format!(
                        "photons at {} keV must be finite and non-negative, got {}",
                        line.energy_kev, line.photons
                    ),
                });
            }
        }
        lines.retain(|line| line.photons > 0.0);
        lines.sort_by(|a, b| a.energy_kev.total_cmp(&b.energy_kev));
        lines.dedup_by(|later, earlier| {
            let same = later.energy_kev == earlier.energy_kev;
            if same {
                earlier.photons += later.photons;
            }
            same
        });
        if lines.is_empty() {
            return Err(Error::InvalidParameter {
                name: "spectrum",
                reason: "has no photons".into(),
            });
        }
        Ok(Spectrum { lines })
    }

    /// Reads a spectrum from a CSV file of two columns, energy in keV and photons per
    /// cm^2 per mAs at 100 cm (one line per energy; `#` comments and one header line
    /// allowed).
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read, [`Error::Format`] for a malformed line,
    /// and [`Spectrum::from_lines`]'s errors.
    pub fn from_csv(path: &Path) -> Result<Spectrum> {
        let bytes = crate::io::read_file(path, (MAX_LINES * 64) as u64)?;
        let format_error = |line: usize, reason: String| Error::Format {
            path: path.to_path_buf(),
            reason: format!("line {line}: {reason}"),
        };
        let text =
            String::from_utf8(bytes).map_err(|_| format_error(0, "is not UTF-8 text".into()))?;
        let mut lines = Vec::new();
        let mut header_allowed = true;
        for (number, row) in text.lines().enumerate() {
            let row = row.trim();
            if row.is_empty() || row.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = row
                .split([',', ';', '\t', ' '])
                .filter(|f| !f.is_empty())
                .collect();
            let parsed: Option<Vec<f64>> = fields.iter().map(|f| f.parse().ok()).collect();
            match (parsed.as_deref(), header_allowed) {
                (Some([energy_kev, photons]), _) => lines.push(Line {
                    energy_kev: *energy_kev,
                    photons: *photons,
                }),
                // One header line, before the numbers.
                (None, true) => {}
                _ => {
                    return Err(format_error(
                        number + 1,
                        format!("expected two numbers (keV, photons), got {row:?}"),
                    ))
                }
            }
            header_allowed = false;
        }
        Spectrum::from_lines(lines)
    }

    /// The spectrum after `thickness_mm` of `material` at its reference density
    /// (narrow beam: coherent scattering removes photons too); lines whose photons
    /// underflow to 0 are dropped.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a negative or non-finite thickness, or a filter
    /// that stops every photon.
    pub fn filtered(&self, material: Material, thickness_mm: f64) -> Result<Spectrum> {
        if !(thickness_mm.is_finite() && thickness_mm >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "filter thickness",
                reason: format!("must be finite and non-negative mm, got {thickness_mm}"),
            });
        }
        let rho = material.density();
        let lines = self
            .lines
            .iter()
            .map(|line| {
                let mu = material.mass_attenuation(line.energy_kev, true)? * rho / 10.0;
                Ok(Line {
                    photons: line.photons * (-mu * thickness_mm).exp(),
                    ..*line
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lines: Vec<Line> = lines.into_iter().filter(|l| l.photons > 0.0).collect();
        if lines.is_empty() {
            return Err(Error::InvalidParameter {
                name: "filter",
                reason: format!("{thickness_mm} mm of {material} stops every photon"),
            });
        }
        Ok(Spectrum { lines })
    }

    /// The lines, energies ascending.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Photons per cm^2 per mAs at 100 cm, all energies.
    pub fn photons(&self) -> f64 {
        self.lines.iter().map(|l| l.photons).sum()
    }

    /// The fluence-weighted mean energy, keV.
    pub fn mean_energy_kev(&self) -> f64 {
        self.lines
            .iter()
            .map(|l| l.photons * l.energy_kev)
            .sum::<f64>()
            / self.photons()
    }

    /// Air kerma per mAs at 100 cm, in arbitrary but fixed units (keV cm^2/g per cm^2):
    /// sum of photons x energy x air's mass energy-absorption coefficient.
    fn air_kerma_through_aluminium(&self, al_mm: f64) -> f64 {
        let rho = Material::Aluminium.density();
        self.lines
            .iter()
            .map(|l| {
                // Energies were checked when the lines were made.
                let absorption = air_energy_absorption(l.energy_kev).unwrap_or(0.0);
                let mu = Material::Aluminium
                    .mass_attenuation(l.energy_kev, true)
                    .unwrap_or(0.0)
                    * rho
                    / 10.0;
                l.photons * l.energy_kev * absorption * (-mu * al_mm).exp()
            })
            .sum()
    }

    /// The first half-value layer, mm of aluminium: the thickness that halves the air
    /// kerma (narrow beam), to 1 micrometre.
    pub fn half_value_layer_mm_al(&self) -> f64 {
        let half = 0.5 * self.air_kerma_through_aluminium(0.0);
        let (mut low, mut high) = (0.0, 1.0);
        while self.air_kerma_through_aluminium(high) > half && high < 1e4 {
            high *= 2.0;
        }
        while high - low > 1e-4 {
            let mid = 0.5 * (low + high);
            if self.air_kerma_through_aluminium(mid) > half {
                low = mid;
            } else {
                high = mid;
            }
        }
        0.5 * (low + high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SpekPy's own half-value layers and mean energies (`spectra-reference.csv`).
    const REFERENCE: &str = include_str!("../../data/physics/spectra-reference.csv");

    #[test]
    fn half_value_layers_and_mean_energies_match_spekpys() {
        let mut checked = 0;
        for row in REFERENCE.lines().filter(|l| !l.starts_with('#')).skip(1) {
            let v: Vec<f64> = row.split(',').map(|x| x.parse().unwrap()).collect();
            let spectrum = Spectrum::tube(v[0], v[1])
                .unwrap()
                .filtered(Material::Aluminium, v[2])
                .unwrap()
                .filtered(Material::Copper, v[3])
                .unwrap();
            let (hvl, mean) = (
                spectrum.half_value_layer_mm_al(),
                spectrum.mean_energy_kev(),
            );
            assert!((hvl / v[4] - 1.0).abs() < 0.01, "{row}: HVL {hvl} mm Al");
            assert!((mean / v[5] - 1.0).abs() < 0.005, "{row}: mean {mean} keV");
            checked += 1;
        }
        assert_eq!(checked, 8);
    }

    #[test]
    fn anode_angles_between_the_table_interpolate_and_harder_beams_have_larger_hvl() {
        let s12 = Spectrum::tube(100.0, 12.0).unwrap();
        let s16 = Spectrum::tube(100.0, 16.0).unwrap();
        let s14 = Spectrum::tube(100.0, 14.0).unwrap();
        for ((a, b), c) in s12.lines().iter().zip(s16.lines()).zip(s14.lines()) {
            assert!((c.photons - 0.5 * (a.photons + b.photons)).abs() <= 1e-9 * c.photons);
        }
        let soft = s12.filtered(Material::Aluminium, 1.0).unwrap();
        let hard = s12.filtered(Material::Aluminium, 4.0).unwrap();
        assert!(hard.half_value_layer_mm_al() > soft.half_value_layer_mm_al());
        assert!(hard.mean_energy_kev() > soft.mean_energy_kev());
        assert!(hard.photons() < soft.photons());
    }

    #[test]
    fn a_monochromatic_beams_hvl_is_ln2_over_mu() {
        let s = Spectrum::monochromatic(60.0, 1e6).unwrap();
        let mu = Material::Aluminium.mass_attenuation(60.0, true).unwrap()
            * Material::Aluminium.density()
            / 10.0;
        assert!((s.half_value_layer_mm_al() - std::f64::consts::LN_2 / mu).abs() < 1e-3);
        assert_eq!(s.mean_energy_kev(), 60.0);
    }

    #[test]
    fn bad_spectra_are_refused() {
        assert!(Spectrum::tube(39.0, 12.0).is_err());
        assert!(Spectrum::tube(151.0, 12.0).is_err());
        assert!(Spectrum::tube(80.5, 12.0).is_err());
        assert!(Spectrum::tube(80.0, 7.0).is_err());
        assert!(Spectrum::tube(f64::NAN, 12.0).is_err());
        assert!(Spectrum::monochromatic(200.0, 1.0).is_err());
        assert!(Spectrum::monochromatic(60.0, -1.0).is_err());
        assert!(Spectrum::monochromatic(60.0, 0.0).is_err());
        assert!(Spectrum::tube(80.0, 12.0)
            .unwrap()
            .filtered(Material::Copper, f64::NAN)
            .is_err());
        let error = Spectrum::tube(80.0, 12.0)
            .unwrap()
            .filtered(Material::Copper, 1e4)
            .unwrap_err()
            .to_string();
        assert!(error.contains("stops every photon"), "{error}");
    }

    #[test]
    fn a_users_csv_spectrum_is_read_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("s.csv");
        std::fs::write(&good, "# mine\nkeV,photons\n50,100\n60,300\n50,100\n").unwrap();
        let s = Spectrum::from_csv(&good).unwrap();
        assert_eq!(s.lines().len(), 2);
        assert_eq!(s.photons(), 500.0);
        assert_eq!(s.mean_energy_kev(), (200.0 * 50.0 + 300.0 * 60.0) / 500.0);
        let bad = dir.path().join("b.csv");
        std::fs::write(&bad, "50,100\n60,x\n").unwrap();
        let error = Spectrum::from_csv(&bad).unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        std::fs::write(&bad, "50,100\n300,1\n").unwrap();
        assert!(Spectrum::from_csv(&bad).is_err());
        assert!(Spectrum::from_csv(&dir.path().join("missing.csv")).is_err());
    }
}
