//! Scatter from the object: scatter kernel superposition on water-equivalent
//! thickness, with kernels from a Monte Carlo of water slabs.
//!
//! The method is the scatter kernel superposition of Ohnesorge et al. (Eur. Radiol. 9
//! (1999) 563) and Sun & Star-Lack (Phys. Med. Biol. 55 (2010) 6695): every detector
//! pixel's ray is treated as a pencil beam through a laterally infinite slab of water
//! as thick as the ray's water-equivalent thickness, and that pencil's scatter
//! point-spread function, weighted by the photons the pixel's ray carries into the
//! object, is added over the detector. Here the point-spread functions are not fitted
//! curves but the Monte Carlo tallies themselves (`data/physics/scatter-kernels.csv`,
//! written by `scripts/make-scatter-kernels.py`: Compton with the incoherent scattering
//! function, Rayleigh with form factors, photoelectric absorption; xraylib's cross
//! sections), per primary energy (10 to 150 keV), water thickness (25 to 400 mm) and
//! air gap between the exit face and the detector (0 to 800 mm), so the spectrum and
//! the detector's response enter exactly, energy by energy.
//!
//! * The water-equivalent thickness of a pixel is the thickness of water that gives
//!   its primary transmission (with this spectrum and detector, so beam hardening is
//!   in it), up to [`MAX_WATER_MM`]. The kernels are interpolated log-linearly in
//!   energy and air gap; between tabulated thicknesses they are blended linearly and
//!   scaled to the log-linear total; beyond 400 mm the 400 mm kernel falls on as it
//!   falls from 300 to 400 mm.
//! * A scattered photon is detected with the scintillator's efficiency at the mean
//!   energy of the scattered photons of its ring, at normal incidence.
//! * Convolutions by FFT; a detector larger than [`MAX_GRID`] pixels a side is binned
//!   for the estimate (scatter is smooth) and the result interpolated back.
//!
//! Validity: exact (to the Monte Carlo's statistics) for a uniform water slab under a
//! parallel beam; for real objects the usual SKS approximations hold: a heterogeneous
//! body is replaced pencil by pencil with water, the object's edges and its shape
//! along the ray are ignored, the beam's divergence is ignored. The tests compare a
//! water slab's scatter-to-primary ratio and its fall with the air gap with published
//! values, and a heterogeneous slab's scatter with a broad-beam Monte Carlo
//! (`data/physics/scatter-check.csv`): within 3 % where the slab is uniform, 12-22 %
//! high behind a layer of low density (the layered slab counted as compact water).

use std::sync::{Arc, OnceLock};

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

use super::detector::Detector;
use super::material::Material;
use super::model::{cross, dot, norm};
use crate::error::{Error, Result};
use crate::geometry::{ProjectionGeometry, VolumeGeometry};

/// The Monte Carlo's kernels (`scatter-kernels.csv`).
const KERNELS_CSV: &str = include_str!("../../data/physics/scatter-kernels.csv");

/// Largest grid, in pixels a side, on which scatter is estimated; larger detectors are
/// binned to it.
pub const MAX_GRID: usize = 256;

/// Thickest water (mm) told apart by the water-equivalent thickness; beyond, a pixel
/// counts as this thick.
pub const MAX_WATER_MM: f64 = 1000.0;

/// Step of the water transmission curve that gives water-equivalent thicknesses, mm.
const THICKNESS_STEP_MM: f64 = 1.0;

/// The parsed kernel table: values indexed `[energy][thickness][gap][ring]`.
#[derive(Debug)]
struct KernelTable {
    energies_kev: Vec<f64>,
    thicknesses_mm: Vec<f64>,
    gaps_mm: Vec<f64>,
    ring_edges_mm: Vec<f64>,
    /// Scattered photons per mm^2 of detector per photon entering the slab.
    density: Vec<f64>,
    /// Their mean energy, keV (0 where none was tallied).
    mean_kev: Vec<f64>,
}

impl KernelTable {
    fn rings(&self) -> usize {
        self.ring_edges_mm.len() - 1
    }

    fn index(&self, e: usize, t: usize, g: usize) -> usize {
        ((e * self.thicknesses_mm.len() + t) * self.gaps_mm.len() + g) * self.rings()
    }
}

/// The table, parsed on first use (part of the build and checked by the tests: a
/// parse failure is a defect of the build, not of any input).
fn table() -> &'static KernelTable {
    static TABLE: OnceLock<KernelTable> = OnceLock::new();
    TABLE.get_or_init(|| match parse(KERNELS_CSV) {
        Ok(table) => table,
        Err(reason) => panic!("the embedded scatter kernels are malformed: {reason}"),
    })
}

/// Parses `scatter-kernels.csv`.
fn parse(text: &str) -> Result<KernelTable, String> {
    let edges_line = text
        .lines()
        .find_map(|l| l.strip_prefix("# r_edges_mm: "))
        .ok_or("no ring edges")?;
    let ring_edges_mm = numbers(edges_line)?;
    if ring_edges_mm.len() < 2 || ring_edges_mm.windows(2).any(|w| w[1] <= w[0]) {
        return Err("ring edges must increase".into());
    }
    let rings = ring_edges_mm.len() - 1;
    let mut rows: Vec<([f64; 3], &str, Vec<f64>)> = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .skip(1)
    {
        let mut fields = line.splitn(5, ',');
        let mut key = [0.0; 3];
        for k in &mut key {
            *k = fields
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("bad row: {line}"))?;
        }
        let quantity = fields.next().ok_or("no quantity")?;
        let values = numbers(fields.next().ok_or("no values")?)?;
        if values.len() != rings {
            return Err(format!("{} values for {rings} rings", values.len()));
        }
        rows.push((key, quantity, values));
    }
    let axis = |k: usize| {
        let mut v: Vec<f64> = rows.iter().map(|r| r.0[k]).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (energies_kev, thicknesses_mm, gaps_mm) = (axis(0), axis(1), axis(2));
    let cells = energies_kev.len() * thicknesses_mm.len() * gaps_mm.len();
    if rows.len() != 2 * cells {
        return Err(format!("{} rows, expected {}", rows.len(), 2 * cells));
    }
    let mut table = KernelTable {
        energies_kev,
        thicknesses_mm,
        gaps_mm,
        ring_edges_mm,
        density: vec![f64::NAN; cells * rings],
        mean_kev: vec![f64::NAN; cells * rings],
    };
    for (key, quantity, values) in rows {
        let find = |axis: &[f64], v: f64| axis.iter().position(|&a| a == v);
        let (Some(e), Some(t), Some(g)) = (
            find(&table.energies_kev, key[0]),
            find(&table.thicknesses_mm, key[1]),
            find(&table.gaps_mm, key[2]),
        ) else {
            return Err("row outside the axes".into());
        };
        let at = table.index(e, t, g);
        let target = match quantity {
            "photons_per_mm2" => &mut table.density,
            "mean_kev" => &mut table.mean_kev,
            other => return Err(format!("unknown quantity {other}")),
        };
        target[at..at + rings].copy_from_slice(&values);
    }
    if table
        .density
        .iter()
        .chain(&table.mean_kev)
        .any(|v| !(v.is_finite() && *v >= 0.0))
    {
        return Err("a cell is missing or negative".into());
    }
    Ok(table)
}

fn numbers(text: &str) -> Result<Vec<f64>, String> {
    text.split(',')
        .map(|v| v.trim().parse().map_err(|_| format!("not a number: {v}")))
        .collect()
}

/// Linear interpolation weights of `x` on the ascending `axis`, held at the ends.
fn bracket(axis: &[f64], x: f64) -> [(usize, f64); 2] {
    let last = axis.len() - 1;
    if x.is_nan() || x <= axis[0] {
        return [(0, 1.0), (0, 0.0)];
    }
    if x >= axis[last] {
        return [(last, 1.0), (last, 0.0)];
    }
    let i = axis.partition_point(|&a| a <= x) - 1;
    let f = (x - axis[i]) / (axis[i + 1] - axis[i]);
    [(i, 1.0 - f), (i + 1, f)]
}

/// The scatter estimate's settings: scatter from the object, by scatter kernel
/// superposition (see the module's documentation), off unless a model is given one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scatter {
    air_gap_mm: f64,
}

impl Scatter {
    /// Largest air gap the kernels cover, mm.
    pub const MAX_AIR_GAP_MM: f64 = 800.0;

    /// Scatter with `air_gap_mm` between the object's exit surface and the detector
    /// (0 for an object on the detector; the kernels cover 0 to
    /// [`Scatter::MAX_AIR_GAP_MM`]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a gap that is not finite or out of range.
    pub fn new(air_gap_mm: f64) -> Result<Scatter> {
        if air_gap_mm.is_finite() && (0.0..=Self::MAX_AIR_GAP_MM).contains(&air_gap_mm) {
            Ok(Scatter { air_gap_mm })
        } else {
            Err(Error::InvalidParameter {
                name: "air gap (mm)",
                reason: format!(
                    "must be between 0 and {} mm (the scatter kernels' range), got {air_gap_mm}",
                    Self::MAX_AIR_GAP_MM
                ),
            })
        }
    }

    /// The air gap, mm.
    pub fn air_gap_mm(&self) -> f64 {
        self.air_gap_mm
    }

    /// Scatter with the air gap between `grid`'s box and the detector: over the
    /// views, the least distance from the box's far side (along the detector's
    /// normal) to the detector plane, held within the kernels' range. A box with air
    /// around the body gives a gap a little short of the body's (so a little more
    /// scatter); give the gap with [`Scatter::new`] where it is known.
    pub fn behind(grid: &VolumeGeometry, geometry: &ProjectionGeometry) -> Scatter {
        let centre = grid.centre();
        let axes = [0, 1, 2].map(|a| {
            let direction = [0, 1, 2].map(|r| grid.direction[r][a]);
            let size = grid.shape[2 - a] as f64 * grid.spacing[a];
            (direction, size)
        });
        let gap = geometry
            .views
            .iter()
            .map(|v| {
                let n = cross(v.u, v.v);
                let length = norm(n);
                let n = n.map(|x| x / length);
                let to_detector = dot(n, [0, 1, 2].map(|a| v.detector[a] - centre[a])).abs();
                let half: f64 = axes
                    .iter()
                    .map(|(d, size)| 0.5 * size * dot(n, *d).abs())
                    .sum();
                to_detector - half
            })
            .fold(f64::INFINITY, f64::min);
        let gap = if gap.is_finite() { gap } else { 0.0 };
        Scatter {
            air_gap_mm: gap.clamp(0.0, Self::MAX_AIR_GAP_MM),
        }
    }
}

/// One energy of a model's spectrum as the scatter estimate needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScatterLine {
    /// keV.
    pub energy_kev: f64,
    /// Photons per unit of exposure.
    pub photons: f64,
}

/// A model's scatter kernels: radial profiles per water thickness, and the water
/// transmission curve that turns a pixel's primary into a thickness.
#[derive(Clone, Debug)]
pub(crate) struct ScatterKernels {
    settings: Scatter,
    /// Water thicknesses of the profiles, mm: 0 (no scatter), then the table's.
    nodes_mm: Vec<f64>,
    /// Per node: the whole plane's signal per unit of exposure.
    totals: Vec<f64>,
    /// Per node and ring: detected signal per mm^2 of detector per unit of exposure.
    signal: Vec<Vec<f64>>,
    /// Per node and ring: detected photons per mm^2 per unit of exposure.
    photons: Vec<Vec<f64>>,
    /// Ring edges, mm.
    edges_mm: Vec<f64>,
    /// Ring centres, mm.
    centres_mm: Vec<f64>,
    /// Primary transmission of water every [`THICKNESS_STEP_MM`] from 0, decreasing.
    water: Vec<f64>,
}

/// The scatter a view receives, per pixel: signal (as the model's output before gain,
/// blur and offset) and, when asked for, detected photons.
pub(crate) struct ScatterImage {
    pub signal: Array2<f64>,
    pub photons: Option<Array2<f64>>,
}

impl ScatterKernels {
    /// The kernels of a spectrum (`lines`) onto `detector`.
    pub(crate) fn new(
        settings: Scatter,
        lines: &[ScatterLine],
        detector: &Detector,
    ) -> Result<ScatterKernels> {
        let t = table();
        let rings = t.rings();
        let gap = bracket(&t.gaps_mm, settings.air_gap_mm);
        let mut nodes_mm = vec![0.0];
        nodes_mm.extend_from_slice(&t.thicknesses_mm);
        let mut signal = vec![vec![0.0; rings]];
        let mut photons = vec![vec![0.0; rings]];
        for ti in 0..t.thicknesses_mm.len() {
            let mut s = vec![0.0; rings];
            let mut n = vec![0.0; rings];
            for line in lines {
                if line.energy_kev < t.energies_kev[0] || line.photons <= 0.0 {
                    continue; // below 10 keV nothing crosses 25 mm of water
                }
                for ring in 0..rings {
                    // Log-linear in energy and gap (the tallies fall about
                    // exponentially with both), linear where a corner is empty.
                    let (mut linear, mut log, mut energy, mut positive) = (0.0, 0.0, 0.0, true);
                    for (e, we) in bracket(&t.energies_kev, line.energy_kev) {
                        for (g, wg) in gap {
                            let w = we * wg;
                            if w == 0.0 {
                                continue;
                            }
                            let at = t.index(e, ti, g) + ring;
                            let d = t.density[at];
                            linear += w * d;
                            energy += w * d * t.mean_kev[at];
                            if d > 0.0 {
                                log += w * d.ln();
                            } else {
                                positive = false;
                            }
                        }
                    }
                    let density = if positive && linear > 0.0 {
                        log.exp()
                    } else {
                        linear
                    };
                    if density > 0.0 {
                        let energy = energy / linear;
                        let (efficiency, weight) = detector.response_at(energy)?;
                        let detected = line.photons * density * efficiency;
                        n[ring] += detected;
                        s[ring] += detected * weight;
                    }
                }
            }
            signal.push(s);
            photons.push(n);
        }
        let mut flat = 0.0;
        let mut weighted = Vec::with_capacity(lines.len());
        for line in lines {
            let (efficiency, weight) = detector.response_at(line.energy_kev)?;
            let w = line.photons * efficiency * weight;
            flat += w;
            let mu = Material::Water.mass_attenuation(line.energy_kev, true)?
                * Material::Water.density()
                / 10.0;
            weighted.push((w, mu));
        }
        let last = *t.thicknesses_mm.last().unwrap_or(&0.0);
        let steps = (MAX_WATER_MM.max(last) / THICKNESS_STEP_MM).ceil() as usize;
        let water = (0..=steps)
            .map(|k| {
                let thickness = k as f64 * THICKNESS_STEP_MM;
                let sum: f64 = weighted
                    .iter()
                    .map(|(w, mu)| w * (-mu * thickness).exp())
                    .sum();
                if flat > 0.0 {
                    sum / flat
                } else {
                    0.0
                }
            })
            .collect();
        let areas: Vec<f64> = t
            .ring_edges_mm
            .windows(2)
            .map(|w| std::f64::consts::PI * (w[1] * w[1] - w[0] * w[0]))
            .collect();
        let totals = signal
            .iter()
            .map(|profile| profile.iter().zip(&areas).map(|(v, a)| v * a).sum())
            .collect();
        Ok(ScatterKernels {
            settings,
            nodes_mm,
            totals,
            signal,
            photons,
            edges_mm: t.ring_edges_mm.clone(),
            centres_mm: t
                .ring_edges_mm
                .windows(2)
                .map(|w| 0.5 * (w[0] + w[1]))
                .collect(),
            water,
        })
    }

    /// How a pencil through `thickness_mm` of water is made of the nodes' kernels:
    /// between two nodes, their linear blend scaled so that its total scatter is the
    /// log-linear one (the total falls about exponentially with thickness: a plain
    /// blend would give up to two thirds too much between 300 and 400 mm); beyond the
    /// last node, the last kernel scaled by the last interval's decay, extended.
    fn node_weights(&self, thickness_mm: f64) -> [(usize, f64); 2] {
        let [(i, wi), (j, wj)] = bracket(&self.nodes_mm, thickness_mm);
        let last = self.nodes_mm.len() - 1;
        let (ti, tj) = (self.totals[i], self.totals[j]);
        if i == last && last >= 2 && thickness_mm > self.nodes_mm[last] {
            let previous = self.totals[last - 1];
            if ti > 0.0 && previous > 0.0 {
                let steps = (thickness_mm - self.nodes_mm[last])
                    / (self.nodes_mm[last] - self.nodes_mm[last - 1]);
                return [(last, (ti / previous).powf(steps)), (last, 0.0)];
            }
        }
        if i == 0 || wj == 0.0 || !(ti > 0.0 && tj > 0.0) {
            return [(i, wi), (j, wj)];
        }
        let linear = wi * ti + wj * tj;
        let scale = (wi * ti.ln() + wj * tj.ln()).exp() / linear;
        [(i, wi * scale), (j, wj * scale)]
    }

    /// The signal per unit of exposure that a pencil through `thickness_mm` of water
    /// puts within `radius_mm` of its axis (rings wholly inside): the blend of kernels
    /// that the estimate uses, summed without the detector's grid.
    #[cfg(test)]
    pub(crate) fn pencil_within(&self, thickness_mm: f64, radius_mm: f64) -> f64 {
        let e = &self.edges_mm;
        self.node_weights(thickness_mm)
            .iter()
            .map(|&(node, w)| {
                w * self.signal[node]
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| e[k + 1] <= radius_mm)
                    .map(|(k, v)| v * std::f64::consts::PI * (e[k + 1] * e[k + 1] - e[k] * e[k]))
                    .sum::<f64>()
            })
            .sum()
    }

    /// The settings.
    pub(crate) fn settings(&self) -> Scatter {
        self.settings
    }

    /// The water thickness (mm) whose primary transmission is `transmission`.
    pub(crate) fn water_equivalent_mm(&self, transmission: f64) -> f64 {
        let w = &self.water;
        if transmission.is_nan() || transmission >= 1.0 {
            return 0.0;
        }
        // `w` decreases: the first sample below `transmission`.
        let k = w.partition_point(|&v| v > transmission);
        if k >= w.len() {
            return (w.len() - 1) as f64 * THICKNESS_STEP_MM;
        }
        let (hi, lo) = (w[k - 1], w[k]);
        let f = if hi > lo {
            (hi - transmission) / (hi - lo)
        } else {
            0.0
        };
        ((k - 1) as f64 + f) * THICKNESS_STEP_MM
    }

    /// Where `r` mm falls among the ring centres, as `(k, f)`: the density there is
    /// `values[k] (1 - f) + values[k + 1] f` (the first ring's own value within its
    /// first half, the last ring's up to its outer edge); `None` beyond.
    fn ring_weights(&self, r: f64) -> Option<(usize, f64)> {
        let (e, c) = (&self.edges_mm, &self.centres_mm);
        if r >= e[e.len() - 1] {
            return None;
        }
        let last = c.len() - 1;
        if r <= c[0] {
            return Some((0, 0.0));
        }
        if r >= c[last] {
            return Some((last - 1, 1.0));
        }
        let k = c.partition_point(|&x| x <= r) - 1;
        Some((k, (r - c[k]) / (c[k + 1] - c[k])))
    }

    /// The mean density of `values` over a disc of radius `r` mm (rings are uniform).
    fn disc_mean(&self, values: &[f64], r: f64) -> f64 {
        let e = &self.edges_mm;
        let mut total = 0.0;
        for (k, v) in values.iter().enumerate() {
            let (a, b) = (e[k], e[k + 1].min(r));
            if b <= a {
                break;
            }
            total += v * std::f64::consts::PI * (b * b - a * a);
        }
        total / (std::f64::consts::PI * r * r)
    }

    /// The kernels' spectra for views of `rows x cols` pixels with pixel vectors `u`,
    /// `v` (mm): the signal's, and the detected photons' when `photons` (to sample
    /// noise). Views whose pixels have the same shape share them.
    pub(crate) fn spectra(
        &self,
        rows: usize,
        cols: usize,
        u: [f64; 3],
        v: [f64; 3],
        photons: bool,
    ) -> Result<ViewKernels> {
        let bin = rows.max(cols).div_ceil(MAX_GRID).max(1);
        let (grid_rows, grid_cols) = (rows.div_ceil(bin), cols.div_ceil(bin));
        let scale = bin as f64;
        let (bu, bv) = (u.map(|x| x * scale), v.map(|x| x * scale));
        let area = norm(cross(bu, bv));
        let conv = Convolver::new(grid_rows, grid_cols)?;
        // Ring weights per offset (dr, dc), |dr| < grid_rows, |dc| < grid_cols: the
        // same for every kernel.
        let width = 2 * grid_cols - 1;
        let offset_index = |dr: isize, dc: isize| {
            (dr + grid_rows as isize - 1) as usize * width + (dc + grid_cols as isize - 1) as usize
        };
        let weights: Vec<Option<(usize, f64)>> = (0..(2 * grid_rows - 1) * width)
            .into_par_iter()
            .map(|i| {
                let dr = (i / width) as f64 - (grid_rows - 1) as f64;
                let dc = (i % width) as f64 - (grid_cols - 1) as f64;
                self.ring_weights(norm(std::array::from_fn(|a| dc * bu[a] + dr * bv[a])))
            })
            .collect();
        let spectrum_of = |profile: &[f64]| {
            let centre = self.disc_mean(profile, (area / std::f64::consts::PI).sqrt());
            conv.forward_kernel(|dr, dc| {
                let density = if dr == 0 && dc == 0 {
                    centre
                } else {
                    match weights[offset_index(dr, dc)] {
                        Some((k, f)) => profile[k] * (1.0 - f) + profile[k + 1] * f,
                        None => 0.0,
                    }
                };
                density * area
            })
        };
        let mut signal = vec![Vec::new()];
        let mut counts = vec![Vec::new()];
        for node in 1..self.nodes_mm.len() {
            signal.push(spectrum_of(&self.signal[node])?);
            counts.push(if photons {
                spectrum_of(&self.photons[node])?
            } else {
                Vec::new()
            });
        }
        Ok(ViewKernels {
            rows,
            cols,
            bin,
            shape: pixel_shape(u, v),
            conv,
            signal,
            photons: photons.then_some(counts),
        })
    }

    /// The scatter on one view (of the size and pixel shape of `kernels`) from
    /// `exposure` (photons per unit of spectrum per pixel) and `transmission` (each
    /// pixel's primary over its flat field).
    pub(crate) fn estimate(
        &self,
        kernels: &ViewKernels,
        exposure: ArrayView2<f64>,
        transmission: ArrayView2<f64>,
    ) -> Result<ScatterImage> {
        let (rows, cols, bin) = (kernels.rows, kernels.cols, kernels.bin);
        let conv = &kernels.conv;
        // Incident photons per binned pixel and thickness node.
        let nodes = self.nodes_mm.len();
        let mut sources = vec![Array2::<f64>::zeros((conv.rows, conv.cols)); nodes];
        for ((r, c), &g) in exposure.indexed_iter() {
            let thickness = self.water_equivalent_mm(transmission[[r, c]]);
            for (node, w) in self.node_weights(thickness) {
                if w > 0.0 && node > 0 {
                    sources[node][[r / bin, c / bin]] += g * w;
                }
            }
        }
        let mut signal_spectrum = conv.zeros();
        let mut photon_spectrum = kernels.photons.as_ref().map(|_| conv.zeros());
        for (node, image) in sources.iter().enumerate().skip(1) {
            if image.iter().all(|&s| s == 0.0) {
                continue;
            }
            let source = conv.forward(image.view())?;
            let accumulate = |out: &mut Vec<Complex<f64>>, kernel: &[Complex<f64>]| {
                for ((o, s), k) in out.iter_mut().zip(&source).zip(kernel) {
                    *o += s * k;
                }
            };
            accumulate(&mut signal_spectrum, &kernels.signal[node]);
            if let (Some(out), Some(counts)) = (photon_spectrum.as_mut(), &kernels.photons) {
                accumulate(out, &counts[node]);
            }
        }
        let per_pixel = |spectrum: Vec<Complex<f64>>| -> Result<Array2<f64>> {
            let binned = conv.inverse(spectrum)?;
            Ok(upsample(binned.view(), bin, rows, cols))
        };
        Ok(ScatterImage {
            signal: per_pixel(signal_spectrum)?,
            photons: photon_spectrum.map(per_pixel).transpose()?,
        })
    }
}

/// What the kernel of an offset depends on: `|u|^2`, `|v|^2` and `u . v`.
fn pixel_shape(u: [f64; 3], v: [f64; 3]) -> [f64; 3] {
    [dot(u, u), dot(v, v), dot(u, v)]
}

/// The kernels' spectra for views of one size and pixel shape.
pub(crate) struct ViewKernels {
    rows: usize,
    cols: usize,
    bin: usize,
    shape: [f64; 3],
    conv: Convolver,
    /// Per thickness node (none for the first, 0 mm).
    signal: Vec<Vec<Complex<f64>>>,
    photons: Option<Vec<Vec<Complex<f64>>>>,
}

impl ViewKernels {
    /// Whether a view of `rows x cols` pixels with pixel vectors `u`, `v` can use
    /// these (the same shape to 1e-9).
    pub(crate) fn fits(&self, rows: usize, cols: usize, u: [f64; 3], v: [f64; 3]) -> bool {
        let shape = pixel_shape(u, v);
        let scale = self.shape[0].max(self.shape[1]);
        rows == self.rows
            && cols == self.cols
            && shape
                .iter()
                .zip(&self.shape)
                .all(|(a, b)| (a - b).abs() <= 1e-9 * scale)
    }
}

/// Back from binned pixels (each holding what `bin x bin` pixels receive) to pixels:
/// bilinear between bin centres, divided among the bin's pixels.
fn upsample(binned: ArrayView2<f64>, bin: usize, rows: usize, cols: usize) -> Array2<f64> {
    if bin == 1 {
        return binned.to_owned();
    }
    let (gr, gc) = binned.dim();
    let share = 1.0 / (bin * bin) as f64;
    let at = |x: usize, n: usize| {
        let p = ((x as f64 + 0.5) / bin as f64 - 0.5).clamp(0.0, (n - 1) as f64);
        let i = (p.floor() as usize).min(n.saturating_sub(2));
        (i, (i + 1).min(n - 1), p - i as f64)
    };
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        let (r0, r1, fr) = at(r, gr);
        let (c0, c1, fc) = at(c, gc);
        let top = binned[[r0, c0]] * (1.0 - fc) + binned[[r0, c1]] * fc;
        let bottom = binned[[r1, c0]] * (1.0 - fc) + binned[[r1, c1]] * fc;
        (top * (1.0 - fr) + bottom * fr) * share
    })
}

/// Linear 2D convolution of `rows x cols` images by FFT on a grid twice as large:
/// spectra are `[cols / 2 + 1][2 rows]` (column transforms last).
struct Convolver {
    rows: usize,
    cols: usize,
    padded_rows: usize,
    padded_cols: usize,
    half: usize,
    row_forward: Arc<dyn RealToComplex<f64>>,
    row_inverse: Arc<dyn ComplexToReal<f64>>,
    column_forward: Arc<dyn Fft<f64>>,
    column_inverse: Arc<dyn Fft<f64>>,
}

impl Convolver {
    /// Plans for `rows x cols` images (at most [`MAX_GRID`] a side, so the buffers
    /// stay small).
    fn new(rows: usize, cols: usize) -> Result<Convolver> {
        let (padded_rows, padded_cols) = (2 * rows, 2 * cols);
        let mut real = RealFftPlanner::<f64>::new();
        let mut complex = FftPlanner::<f64>::new();
        Ok(Convolver {
            rows,
            cols,
            padded_rows,
            padded_cols,
            half: padded_cols / 2 + 1,
            row_forward: real.plan_fft_forward(padded_cols),
            row_inverse: real.plan_fft_inverse(padded_cols),
            column_forward: complex.plan_fft_forward(padded_rows),
            column_inverse: complex.plan_fft_inverse(padded_rows),
        })
    }

    fn zeros(&self) -> Vec<Complex<f64>> {
        vec![Complex::new(0.0, 0.0); self.half * self.padded_rows]
    }

    /// The spectrum of an image, zero-padded.
    fn forward(&self, image: ArrayView2<f64>) -> Result<Vec<Complex<f64>>> {
        self.transform(|r, c| {
            if r < self.rows && c < self.cols {
                image[[r, c]]
            } else {
                0.0
            }
        })
    }

    /// The spectrum of a kernel given at offsets `(dr, dc)` within the image's extent
    /// (placed circularly).
    fn forward_kernel(
        &self,
        kernel: impl Fn(isize, isize) -> f64 + Sync,
    ) -> Result<Vec<Complex<f64>>> {
        let (pr, pc) = (self.padded_rows as isize, self.padded_cols as isize);
        let (rows, cols) = (self.rows as isize, self.cols as isize);
        self.transform(|r, c| {
            let dr = if (r as isize) < rows {
                r as isize
            } else {
                r as isize - pr
            };
            let dc = if (c as isize) < cols {
                c as isize
            } else {
                c as isize - pc
            };
            if dr.abs() < rows && dc.abs() < cols {
                kernel(dr, dc)
            } else {
                0.0
            }
        })
    }

    fn transform(&self, value: impl Fn(usize, usize) -> f64 + Sync) -> Result<Vec<Complex<f64>>> {
        let (pr, pc, half) = (self.padded_rows, self.padded_cols, self.half);
        // Rows: real to complex.
        let mut rows_out = vec![Complex::new(0.0, 0.0); pr * half];
        rows_out
            .par_chunks_mut(half)
            .enumerate()
            .try_for_each(|(r, out)| {
                let mut input: Vec<f64> = (0..pc).map(|c| value(r, c)).collect();
                self.row_forward
                    .process(&mut input, out)
                    .map_err(|e| fft_error(&e))
            })?;
        // Columns: complex, on the transpose.
        let mut spectrum = vec![Complex::new(0.0, 0.0); pr * half];
        spectrum
            .par_chunks_mut(pr)
            .enumerate()
            .for_each(|(c, column)| {
                for (r, x) in column.iter_mut().enumerate() {
                    *x = rows_out[r * half + c];
                }
                self.column_forward.process(column);
            });
        Ok(spectrum)
    }

    /// The image (the first `rows x cols` of the padded grid) of a spectrum.
    fn inverse(&self, mut spectrum: Vec<Complex<f64>>) -> Result<Array2<f64>> {
        let (pr, pc, half) = (self.padded_rows, self.padded_cols, self.half);
        spectrum
            .par_chunks_mut(pr)
            .for_each(|column| self.column_inverse.process(column));
        let norm = 1.0 / (pr * pc) as f64;
        let rows: Vec<Vec<f64>> = (0..self.rows)
            .into_par_iter()
            .map(|r| {
                let mut input: Vec<Complex<f64>> =
                    (0..half).map(|c| spectrum[c * pr + r]).collect();
                // The transform of a real image: DC and Nyquist are real.
                input[0].im = 0.0;
                input[half - 1].im = 0.0;
                let mut out = vec![0.0; pc];
                self.row_inverse
                    .process(&mut input, &mut out)
                    .map_err(|e| fft_error(&e))?;
                Ok(out[..self.cols].iter().map(|x| x * norm).collect())
            })
            .collect::<Result<_>>()?;
        let flat: Vec<f64> = rows.into_iter().flatten().collect();
        Array2::from_shape_vec((self.rows, self.cols), flat).map_err(|e| Error::InvalidParameter {
            name: "scatter",
            reason: e.to_string(),
        })
    }
}

/// realfft only fails on buffers of the wrong length, which would be a bug here.
fn fft_error(error: &realfft::FftError) -> Error {
    Error::InvalidParameter {
        name: "scatter FFT",
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_kernels_parse_and_cover_their_axes() {
        let t = table();
        assert_eq!(t.energies_kev.len(), 15);
        assert_eq!(
            t.thicknesses_mm,
            [25.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0]
        );
        assert_eq!(t.gaps_mm, [0.0, 100.0, 200.0, 400.0, 800.0]);
        assert_eq!(*t.ring_edges_mm.last().unwrap(), 800.0);
        // Scatter reaches the detector from every energy above 20 keV through 100 mm.
        for e in 2..t.energies_kev.len() {
            let at = t.index(e, 2, 0);
            assert!(t.density[at] > 0.0, "{} keV", t.energies_kev[e]);
            // Compton scattering lowers the energy: the mean is below the primary's.
            assert!(t.mean_kev[at] <= t.energies_kev[e]);
        }
    }

    #[test]
    fn malformed_kernels_are_refused_with_a_reason() {
        let good = "# r_edges_mm: 0,1,2\nenergy_kev,thickness_mm,gap_mm,quantity,ring0,ring1\n\
                    10,25,0,photons_per_mm2,1,2\n10,25,0,mean_kev,9,8\n";
        assert!(parse(good).is_ok());
        for (bad, reason) in [
            (good.replace("# r_edges_mm: 0,1,2\n", ""), "no ring edges"),
            (good.replace("0,1,2\n", "0,2,1\n"), "increase"),
            (good.replace("mm2,1,2\n", "mm2,1\n"), "rings"),
            (good.replace(",9,8\n", ",-9,8\n"), "negative"),
            (good.replace("mean_kev", "mean"), "unknown quantity"),
            (good.replace("10,25,0,mean_kev,9,8\n", ""), "rows"),
        ] {
            let err = parse(&bad).unwrap_err();
            assert!(err.contains(reason), "{err}");
        }
    }

    #[test]
    fn water_equivalent_thickness_inverts_the_water_transmission() {
        let lines = [ScatterLine {
            energy_kev: 60.0,
            photons: 1.0,
        }];
        let k =
            ScatterKernels::new(Scatter::new(0.0).unwrap(), &lines, &Detector::ideal()).unwrap();
        let mu = Material::Water.mass_attenuation(60.0, true).unwrap() / 10.0;
        for t in [0.0, 12.5, 100.0, 333.3, 700.0] {
            let got = k.water_equivalent_mm((-mu * t).exp());
            assert!((got - t).abs() < 0.01, "{got} against {t}");
        }
        assert_eq!(k.water_equivalent_mm(1.5), 0.0);
        assert_eq!(k.water_equivalent_mm(0.0), MAX_WATER_MM);
    }
}
