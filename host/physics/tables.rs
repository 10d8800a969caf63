//! The embedded physics tables (`data/physics/*.csv`, written by
//! `scripts/make-physics-tables.py`), parsed once on first use.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Number of 1 keV energy bins of the tables: 1 to 150 keV.
pub const BINS: usize = 149;

/// The centre (keV) of table bin `bin`: 1.5, 2.5, ..., 149.5.
pub fn bin_centre_kev(bin: usize) -> f64 {
    1.5 + bin as f64
}

/// Lowest and highest photon energy the tables cover, keV.
pub const ENERGY_RANGE_KEV: [f64; 2] = [1.0, 150.0];

/// Mass attenuation coefficients and densities (`attenuation.csv`).
const ATTENUATION_CSV: &str = include_str!("../../data/physics/attenuation.csv");
/// Unfiltered tube spectra (`spectra.csv`).
const SPECTRA_CSV: &str = include_str!("../../data/physics/spectra.csv");

/// The parsed tables.
#[derive(Debug)]
pub(crate) struct Tables {
    /// Column name (`water_total`, `bone_nocoh`, `air_energy_absorption`, ...) to its
    /// values on the bins, cm^2/g.
    pub columns: HashMap<String, [f64; BINS]>,
    /// Material name to its reference density, g/cm^3.
    pub densities: HashMap<String, f64>,
    /// (kVp, anode angle in degrees) to photons per keV per cm^2 per mAs at 100 cm on
    /// the bins.
    pub spectra: HashMap<(u32, u32), [f64; BINS]>,
    /// The anode angles tabulated, ascending.
    pub anode_angles: Vec<u32>,
}

/// The tables, parsed on first use. They are part of the build and checked by the
/// tests, so a parse failure is a defect of the build, not of any input.
pub(crate) fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| match parse(ATTENUATION_CSV, SPECTRA_CSV) {
        Ok(tables) => tables,
        Err(reason) => panic!("the embedded physics tables are malformed: {reason}"),
    })
}

/// Parses both tables.
fn parse(attenuation: &str, spectra: &str) -> Result<Tables, String> {
    let mut densities = HashMap::new();
    for line in attenuation.lines().filter(|l| l.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["#", "density", name, value, ..] = words[..] {
            let value: f64 = value
                .parse()
                .map_err(|_| format!("density of {name}: {value}"))?;
            densities.insert(name.to_string(), value);
        }
    }
    let (header, data) = rows(attenuation)?;
    let mut columns = HashMap::new();
    for (index, name) in header.iter().enumerate().skip(1) {
        let mut values = [0.0; BINS];
        for (value, row) in values.iter_mut().zip(&data) {
            *value = row[index];
        }
        columns.insert(name.clone(), values);
    }
    let (_, spectrum_rows) = rows(spectra)?;
    let mut table = HashMap::new();
    let mut anode_angles = Vec::new();
    for row in &spectrum_rows {
        let (kvp, angle) = (row[0] as u32, row[1] as u32);
        let mut values = [0.0; BINS];
        values.copy_from_slice(&row[2..]);
        table.insert((kvp, angle), values);
        if !anode_angles.contains(&angle) {
            anode_angles.push(angle);
        }
    }
    anode_angles.sort_unstable();
    Ok(Tables {
        columns,
        densities,
        spectra: table,
        anode_angles,
    })
}

/// The header and the numeric rows of a table; every energy table has [`BINS`] rows
/// or [`BINS`] + 2 columns.
fn rows(text: &str) -> Result<(Vec<String>, Vec<Vec<f64>>), String> {
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or("no header")?
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|line| {
            let row = line
                .split(',')
                .map(|v| v.parse::<f64>().map_err(|_| format!("not a number: {v}")))
                .collect::<Result<Vec<f64>, String>>()?;
            if row.len() == header.len() {
                Ok(row)
            } else {
                Err(format!("{} values under {} names", row.len(), header.len()))
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    if header[0] == "energy_kev" {
        let centres = rows.iter().map(|r| r[0]).collect::<Vec<_>>();
        let expected = (0..BINS).map(bin_centre_kev).collect::<Vec<_>>();
        if centres != expected {
            return Err("the energies are not the 1 keV bin centres".into());
        }
    } else if header.len() != BINS + 2 {
        return Err(format!("{} columns, expected {}", header.len(), BINS + 2));
    }
    Ok((header, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_tables_parse_and_cover_every_kvp_and_angle() {
        let t = tables();
        assert_eq!(t.anode_angles, vec![8, 12, 16, 20]);
        for angle in &t.anode_angles {
            for kvp in 40..=150 {
                let spectrum = &t.spectra[&(kvp, *angle)];
                // Photons up to the kVp, none above.
                for (bin, &value) in spectrum.iter().enumerate() {
                    let e = bin_centre_kev(bin);
                    assert!(value >= 0.0);
                    assert!(e < kvp as f64 || value == 0.0, "{kvp} kVp at {e} keV");
                }
                assert!(spectrum[(kvp as usize) - 3] > 0.0);
            }
        }
        assert_eq!(t.densities["water"], 1.0);
        assert!(t.columns.len() >= 23);
    }

    #[test]
    fn malformed_tables_are_refused_with_a_reason() {
        assert!(parse("energy_kev,a\n1.5,x\n", SPECTRA_CSV)
            .unwrap_err()
            .contains("not a number"));
        assert!(parse("energy_kev,a\n1.5,1,2\n", SPECTRA_CSV)
            .unwrap_err()
            .contains("values under"));
        assert!(parse("energy_kev,a\n2.5,1\n", SPECTRA_CSV)
            .unwrap_err()
            .contains("bin centres"));
    }
}
