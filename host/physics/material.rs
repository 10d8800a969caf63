//! Materials: their names, reference densities and mass attenuation coefficients at any
//! energy from 1 to 150 keV (log-log interpolation between the tables' 1 keV bins).

use std::fmt;
use std::str::FromStr;

use super::tables::{bin_centre_kev, tables, BINS, ENERGY_RANGE_KEV};
use crate::error::{Error, Result};

/// A material of the tables: compositions and densities from NIST's compound list
/// (ICRP tissues; Hubbell & Seltzer, NISTIR 5632), coefficients from xraylib 4.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Material {
    /// Dry air near sea level, 0.001205 g/cm^3.
    Air,
    /// Lung (ICRP) tissue; 1.05 g/cm^3 is the tissue's, inflated lung is about 0.26.
    Lung,
    /// Adipose tissue (ICRP), 0.92 g/cm^3.
    Adipose,
    /// Soft tissue (ICRP), 1.0 g/cm^3.
    SoftTissue,
    /// Brain (ICRP), 1.03 g/cm^3.
    Brain,
    /// Cortical bone (ICRP), 1.85 g/cm^3.
    Bone,
    /// Liquid water, 1.0 g/cm^3.
    Water,
    /// Aluminium, 2.699 g/cm^3 (filters, step wedges).
    Aluminium,
    /// Copper, 8.96 g/cm^3 (filters).
    Copper,
    /// Caesium iodide, 4.51 g/cm^3 (scintillator).
    CsI,
    /// Gadolinium oxysulfide, 7.44 g/cm^3 (scintillator).
    Gos,
}

impl Material {
    /// Every material of the tables.
    pub const ALL: [Material; 11] = [
        Material::Air,
        Material::Lung,
        Material::Adipose,
        Material::SoftTissue,
        Material::Brain,
        Material::Bone,
        Material::Water,
        Material::Aluminium,
        Material::Copper,
        Material::CsI,
        Material::Gos,
    ];

    /// The name used in the tables and on the command line (`soft_tissue`, `csi`).
    pub fn name(self) -> &'static str {
        match self {
            Material::Air => "air",
            Material::Lung => "lung",
            Material::Adipose => "adipose",
            Material::SoftTissue => "soft_tissue",
            Material::Brain => "brain",
            Material::Bone => "bone",
            Material::Water => "water",
            Material::Aluminium => "aluminium",
            Material::Copper => "copper",
            Material::CsI => "csi",
            Material::Gos => "gos",
        }
    }

    /// The reference density, g/cm^3.
    pub fn density(self) -> f64 {
        tables().densities[self.name()]
    }

    /// Mass attenuation coefficients (cm^2/g) at the table's bin centres
    /// ([`super::bin_centre_kev`]), with coherent (Rayleigh) scattering or without.
    pub fn mass_attenuation_table(self, coherent: bool) -> &'static [f64; super::BINS] {
        let suffix = if coherent { "total" } else { "nocoh" };
        &tables().columns[&format!("{}_{suffix}", self.name())]
    }

    /// The mass attenuation coefficient (cm^2/g) at `energy_kev`, with coherent
    /// scattering or without: the table's value at a bin centre, log-log interpolated
    /// between them (an absorption edge between two centres is smoothed over 1 keV).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] outside 1 to 150 keV.
    pub fn mass_attenuation(self, energy_kev: f64, coherent: bool) -> Result<f64> {
        interpolate(self.mass_attenuation_table(coherent), energy_kev)
    }
}

/// Log-log interpolation of a table on the bin centres, extrapolated over the half
/// bins at either end of 1 to 150 keV.
pub(crate) fn interpolate(table: &[f64; BINS], energy_kev: f64) -> Result<f64> {
    check_energy(energy_kev)?;
    let position = (energy_kev - bin_centre_kev(0)).clamp(0.0, (BINS - 2) as f64 + 1.0);
    let low = (position.floor() as usize).min(BINS - 2);
    let (e0, e1) = (bin_centre_kev(low), bin_centre_kev(low + 1));
    let (v0, v1) = (table[low], table[low + 1]);
    if energy_kev == e0 {
        return Ok(v0);
    }
    let slope = (v1 / v0).ln() / (e1 / e0).ln();
    Ok(v0 * (energy_kev / e0).powf(slope))
}

/// Refuses photon energies outside the tables.
pub(crate) fn check_energy(energy_kev: f64) -> Result<()> {
    let [low, high] = ENERGY_RANGE_KEV;
    if energy_kev.is_finite() && (low..=high).contains(&energy_kev) {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name: "photon energy (keV)",
            reason: format!("must be between {low} and {high} keV, got {energy_kev}"),
        })
    }
}

impl fmt::Display for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Material {
    type Err = Error;

    /// A material by its [`Material::name`], case and `-`/`_` aside; also `al`,
    /// `aluminum`, `cu`, `tissue` and `cortical_bone`.
    fn from_str(s: &str) -> Result<Material> {
        let key = s.trim().to_ascii_lowercase().replace('-', "_");
        let alias = match key.as_str() {
            "al" | "aluminum" => Some(Material::Aluminium),
            "cu" => Some(Material::Copper),
            "tissue" => Some(Material::SoftTissue),
            "cortical_bone" => Some(Material::Bone),
            _ => None,
        };
        alias
            .or_else(|| Material::ALL.into_iter().find(|m| m.name() == key))
            .ok_or_else(|| Error::InvalidParameter {
                name: "material",
                reason: format!(
                    "unknown material {s:?}; known: {}",
                    Material::ALL.map(Material::name).join(", ")
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST's X-ray mass attenuation coefficients (Hubbell & Seltzer, NISTIR 5632,
    /// tables 3 and 4: "mu/rho" with coherent scattering), cm^2/g.
    const NIST: [(Material, f64, f64); 12] = [
        (Material::Water, 20.0, 0.8096),
        (Material::Water, 40.0, 0.2683),
        (Material::Water, 60.0, 0.2059),
        (Material::Water, 100.0, 0.1707),
        (Material::Water, 150.0, 0.1505),
        (Material::Aluminium, 20.0, 3.441),
        (Material::Aluminium, 50.0, 0.3681),
        (Material::Aluminium, 100.0, 0.1704),
        (Material::Copper, 50.0, 2.613),
        (Material::Copper, 100.0, 0.4584),
        (Material::Air, 60.0, 0.1875),
        (Material::Bone, 80.0, 0.2229),
    ];

    #[test]
    fn coefficients_match_nists_published_values() {
        for (material, energy, nist) in NIST {
            let ours = material.mass_attenuation(energy, true).unwrap();
            assert!(
                (ours / nist - 1.0).abs() < 0.005,
                "{material} at {energy} keV: {ours} against NIST's {nist}"
            );
        }
    }

    #[test]
    fn interpolation_meets_the_table_at_bin_centres_and_stays_between_neighbours() {
        let table = Material::Water.mass_attenuation_table(true);
        for bin in [0, 10, 100, BINS - 1] {
            let e = bin_centre_kev(bin);
            assert_eq!(
                Material::Water.mass_attenuation(e, true).unwrap(),
                table[bin]
            );
        }
        let mid = Material::Water.mass_attenuation(60.0, true).unwrap();
        assert!(mid < table[58] && mid > table[59]);
        // Without coherent scattering, less attenuation.
        assert!(
            Material::Bone.mass_attenuation(30.0, false).unwrap()
                < Material::Bone.mass_attenuation(30.0, true).unwrap()
        );
    }

    #[test]
    fn energies_outside_the_tables_and_unknown_names_are_refused() {
        for e in [0.5, 151.0, f64::NAN, f64::INFINITY] {
            assert!(Material::Water.mass_attenuation(e, true).is_err(), "{e}");
        }
        assert!(Material::Water.mass_attenuation(1.0, true).is_ok());
        assert!(Material::Water.mass_attenuation(150.0, true).is_ok());
        assert_eq!(
            "Soft-Tissue".parse::<Material>().unwrap(),
            Material::SoftTissue
        );
        assert_eq!("al".parse::<Material>().unwrap(), Material::Aluminium);
        let error = "unobtainium".parse::<Material>().unwrap_err().to_string();
        assert!(error.contains("soft_tissue"), "{error}");
        for m in Material::ALL {
            assert_eq!(m.name().parse::<Material>().unwrap(), m);
            assert!(m.density() > 0.0);
        }
    }
}
