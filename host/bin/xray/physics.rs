//! `--kvp` and its companions: the polychromatic radiograph model of `drr` and
//! `project` (the library's `physics` module).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ndarray::{Array3, ArrayView3};
use xray_projector::physics::{
    Absorber, Detector, Exposure, Material, RadiographModel, Response, Scatter, Scintillator,
    Spectrum,
};
use xray_projector::{ProjectionGeometry, VolumeGeometry};

/// The tube voltage of the built-in head when no --kvp is given: a lateral skull
/// radiograph's.
pub const HEAD_KVP: f64 = 80.0;

/// The anode angle when --anode-angle is not given, degrees.
const DEFAULT_ANODE_ANGLE: f64 = 12.0;

/// The filtration when --filter is not given: a typical total filtration.
const DEFAULT_FILTER: &str = "2.5mm-al";

/// The tube charge when --mas is not given.
const DEFAULT_MAS: f64 = 4.0;

/// The detector's absorbing layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DetectorName {
    /// Caesium iodide, 0.6 mm at 80 % packing (flat-panel radiography).
    Csi,
    /// Gadolinium oxysulfide screen, 0.2 mm at 50 % packing.
    Gos,
    /// Stops every photon.
    Ideal,
}

/// The beam: a tube's spectrum and its filters, or a user's spectrum.
#[derive(Args, Debug)]
pub struct BeamArgs {
    /// Simulate a tungsten X-ray tube at this voltage (40-150 kV, whole numbers):
    /// material maps (the built-in head, or a CT with --hu) are projected one per
    /// material and combined over the spectrum. The built-in head uses 80 kV unless
    /// told.
    #[arg(long, value_name = "KV", allow_negative_numbers = true)]
    kvp: Option<f64>,
    /// Anode angle of the tube, degrees (8-20) [default: 12].
    #[arg(long, value_name = "DEG", allow_negative_numbers = true)]
    anode_angle: Option<f64>,
    /// Beam filtration, comma-separated THICKNESSmm-MATERIAL (al, cu, or any
    /// material), or none [default: 2.5mm-al].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    filter: Option<Vec<String>>,
    /// Use this spectrum instead of a tube's: a CSV of keV and photons per cm^2 per mAs
    /// at 100 cm (the filters still apply).
    #[arg(long, value_name = "FILE.csv", conflicts_with = "kvp")]
    spectrum: Option<PathBuf>,
}

impl BeamArgs {
    /// Whether a spectrum was asked for.
    pub fn requested(&self) -> bool {
        self.kvp.is_some() || self.spectrum.is_some()
    }

    /// The filtered spectrum; `default_kvp` where neither --kvp nor --spectrum is given.
    pub fn spectrum(&self, default_kvp: f64) -> Result<Spectrum> {
        let mut spectrum = match &self.spectrum {
            Some(path) => Spectrum::from_csv(path)
                .with_context(|| format!("--spectrum {}", path.display()))?,
            None => Spectrum::tube(
                self.kvp.unwrap_or(default_kvp),
                self.anode_angle.unwrap_or(DEFAULT_ANODE_ANGLE),
            )
            .context("--kvp/--anode-angle")?,
        };
        for text in &self.filters() {
            if let Some((material, mm)) = parse_filter(text)? {
                spectrum = spectrum.filtered(material, mm).context("--filter")?;
            }
        }
        Ok(spectrum)
    }

    /// The beam in words: its source and filters.
    fn describe(&self, default_kvp: f64) -> String {
        let source = match (&self.spectrum, self.kvp) {
            (Some(path), _) => path.display().to_string(),
            (None, kvp) => format!("{} kV", kvp.unwrap_or(default_kvp)),
        };
        format!("{source} through {}", self.filters().join("+"))
    }

    /// --filter, or its default.
    fn filters(&self) -> Vec<String> {
        self.filter
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_FILTER.to_string()])
    }

    /// The options given on the command line, by name.
    fn given(&self) -> Vec<&'static str> {
        [
            ("--anode-angle", self.anode_angle.is_some()),
            ("--filter", self.filter.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }
}

/// Options of the polychromatic model.
#[derive(Args, Debug)]
pub struct PhysicsArgs {
    #[command(flatten)]
    beam: BeamArgs,
    /// The detector's scintillator [default: csi].
    #[arg(long, value_enum)]
    detector: Option<DetectorName>,
    /// Count photons (a photon-counting detector) instead of integrating their energy.
    #[arg(long)]
    counting: bool,
    /// Tube charge, mAs: photons per pixel follow from the spectrum, the pixel's area
    /// and its distance from the source [default: 4].
    #[arg(long, value_name = "MAS", allow_negative_numbers = true)]
    mas: Option<f64>,
    /// Standard deviation of the detector's electronic noise (output units; with
    /// --noise-seed) [default: 0].
    #[arg(long, value_name = "SIGMA", allow_negative_numbers = true)]
    electronic_noise: Option<f64>,
    /// Standard deviation of the detector's blur, pixels [default: 0].
    #[arg(long, value_name = "PIXELS", allow_negative_numbers = true)]
    blur: Option<f64>,
    /// Detector gain (output per keV, or per count with --counting) [default: 1].
    #[arg(long, value_name = "GAIN", allow_negative_numbers = true)]
    gain: Option<f64>,
    /// Detector offset (dark signal) [default: 0].
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    offset: Option<f64>,
    /// Write the detector's output (gain x signal + offset) instead of the
    /// flat-field-corrected radiograph -ln((signal - offset) / (flat - offset)).
    #[arg(long)]
    pub raw_signal: bool,
    /// Add scatter from the object: scatter kernel superposition on each ray's
    /// water-equivalent thickness, with Monte Carlo kernels of water slabs (off by
    /// default: the primary image).
    #[arg(long)]
    scatter: bool,
    /// Air gap between the object and the detector for --scatter, mm (0 to 800)
    /// [default: from the volume's box to the detector].
    #[arg(
        long,
        value_name = "MM",
        requires = "scatter",
        allow_negative_numbers = true
    )]
    air_gap: Option<f64>,
}

impl PhysicsArgs {
    /// Whether a spectrum was asked for.
    pub fn requested(&self) -> bool {
        self.beam.requested()
    }

    /// The model's options given on the command line, by name: refused where no
    /// model runs.
    pub fn given(&self) -> Vec<&'static str> {
        let mut names = self.beam.given();
        names.extend(
            [
                ("--detector", self.detector.is_some()),
                ("--counting", self.counting),
                ("--mas", self.mas.is_some()),
                ("--electronic-noise", self.electronic_noise.is_some()),
                ("--blur", self.blur.is_some()),
                ("--gain", self.gain.is_some()),
                ("--offset", self.offset.is_some()),
                ("--raw-signal", self.raw_signal),
                ("--scatter", self.scatter),
                ("--air-gap", self.air_gap.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, given)| given.then_some(name)),
        );
        names
    }

    /// One line on `model` for the report: kV, filters, detector, mAs, mean energy,
    /// half-value layer and scatter.
    pub fn summary(&self, model: &RadiographModel, default_kvp: f64) -> String {
        let beam = match self.beam.spectrum(default_kvp) {
            Ok(s) => format!(
                ", mean {:.1} keV, HVL {:.2} mm Al",
                s.mean_energy_kev(),
                s.half_value_layer_mm_al()
            ),
            Err(_) => String::new(),
        };
        let scatter = match model.scatter() {
            Some(s) => format!(", scatter (air gap {:.0} mm)", s.air_gap_mm()),
            None => String::new(),
        };
        format!(
            "{}, {:?} detector{}, {} mAs{beam}{scatter}",
            self.beam.describe(default_kvp),
            self.detector.unwrap_or(DetectorName::Csi),
            if self.counting { " (counting)" } else { "" },
            self.mas.unwrap_or(DEFAULT_MAS)
        )
    }

    /// The model for `absorbers` of `grid` seen by `geometry` (which set the air gap
    /// of --scatter unless --air-gap does).
    pub fn model(
        &self,
        absorbers: Vec<Absorber>,
        default_kvp: f64,
        grid: &VolumeGeometry,
        geometry: &ProjectionGeometry,
    ) -> Result<RadiographModel> {
        let mut detector = match self.detector.unwrap_or(DetectorName::Csi) {
            DetectorName::Csi => Detector::flat_panel(Scintillator::csi()),
            DetectorName::Gos => Detector::flat_panel(Scintillator::gos()),
            DetectorName::Ideal => Detector {
                response: Response::EnergyIntegrating,
                ..Detector::ideal()
            },
        };
        if self.counting {
            detector.response = Response::PhotonCounting;
        }
        detector.gain = self.gain.unwrap_or(1.0);
        detector.offset = self.offset.unwrap_or(0.0);
        detector.electronic_noise = self.electronic_noise.unwrap_or(0.0);
        detector.blur_pixels = self.blur.unwrap_or(0.0);
        let model = RadiographModel::new(
            &self.beam.spectrum(default_kvp)?,
            absorbers,
            detector,
            Exposure::TubeCurrent {
                mas: self.mas.unwrap_or(DEFAULT_MAS),
            },
        )
        .context("the detector and exposure options")?;
        if !self.scatter {
            return Ok(model);
        }
        let scatter = match self.air_gap {
            Some(gap) => Scatter::new(gap).context("--air-gap")?,
            None => Scatter::behind(grid, geometry),
        };
        model.with_scatter(scatter).context("--scatter")
    }

    /// The radiographs from one projection per absorber: the noise-free output, or one
    /// exposure with `seed`; flat-field corrected and logged unless --raw-signal.
    pub fn radiographs(
        &self,
        model: &RadiographModel,
        projections: &[Array3<f32>],
        geometry: &ProjectionGeometry,
        seed: Option<u64>,
    ) -> Result<Array3<f32>> {
        let views: Vec<ArrayView3<f32>> = projections.iter().map(|p| p.view()).collect();
        let mut signal = match seed {
            Some(seed) => model.sample(&views, geometry, seed),
            None => model.expected(&views, geometry),
        }
        .context("the detector model")?;
        if !self.raw_signal {
            let flat = model.flat_field(geometry)?;
            let dark = model.detector().offset;
            signal.zip_mut_with(&flat, |s, &f| {
                let ratio = (f64::from(*s) - dark) / (f64::from(f) - dark);
                *s = -(ratio.max(MIN_TRANSMISSION)).ln() as f32;
            });
        }
        Ok(signal)
    }
}

/// Options of `xray spectrum`.
#[derive(Args, Debug)]
pub struct SpectrumArgs {
    #[command(flatten)]
    beam: BeamArgs,
    /// Also write the lines as CSV: keV, photons per cm^2 per mAs at 100 cm.
    #[arg(long, value_name = "FILE.csv")]
    out: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
}

/// `xray spectrum`.
pub fn spectrum(args: SpectrumArgs) -> Result<()> {
    if !args.beam.requested() {
        bail!("xray spectrum needs --kvp (a tungsten tube) or --spectrum FILE.csv");
    }
    let spectrum = args.beam.spectrum(0.0)?;
    let mut csv = String::from("# energy_kev,photons_per_cm2_per_mas_at_100cm\n");
    for line in spectrum.lines() {
        csv.push_str(&format!("{},{:.6e}\n", line.energy_kev, line.photons));
    }
    if let Some(path) = &args.out {
        let overwrite = crate::outputs::overwrite(args.force);
        crate::outputs::text(path, &csv, overwrite)?;
    }
    println!("beam               {}", args.beam.describe(0.0));
    println!(
        "photons            {:.4e} per cm^2 per mAs at 100 cm",
        spectrum.photons()
    );
    println!("mean energy        {:.2} keV", spectrum.mean_energy_kev());
    println!(
        "half-value layer   {:.3} mm Al (first, air kerma, narrow beam)",
        spectrum.half_value_layer_mm_al()
    );
    if let Some(path) = &args.out {
        eprintln!(
            "wrote {} ({} lines)",
            path.display(),
            spectrum.lines().len()
        );
    }
    Ok(())
}

/// The smallest transmission a flat-field-corrected pixel may show (noise can take a
/// signal to or below the dark level): -ln of it, 23, is the brightest value.
const MIN_TRANSMISSION: f64 = 1e-10;

/// `2.5mm-al` to aluminium and 2.5; `none` to nothing.
fn parse_filter(text: &str) -> Result<Option<(Material, f64)>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let Some((thickness, material)) = text.split_once("mm-") else {
        bail!("--filter takes THICKNESSmm-MATERIAL (2.5mm-al, 0.1mm-cu) or none, got {text:?}");
    };
    let mm: f64 = thickness
        .parse()
        .with_context(|| format!("--filter {text:?}: {thickness:?} is not a number of mm"))?;
    let material: Material = material
        .parse()
        .with_context(|| format!("--filter {text:?}"))?;
    Ok(Some((material, mm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_filter("2.5mm-al").unwrap(),
            Some((Material::Aluminium, 2.5))
        );
        assert_eq!(
            parse_filter(" 0.1mm-Cu").unwrap(),
            Some((Material::Copper, 0.1))
        );
        assert_eq!(parse_filter("none").unwrap(), None);
        for bad in ["2.5al", "xmm-al", "1mm-gold"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
