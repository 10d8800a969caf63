//! The scatter estimate against what must hold: a uniform water slab's scatter is the
//! kernel's integral over the field (superposition is exact there), its
//! scatter-to-primary ratio lies in the published range and grows with thickness and
//! field and falls with the air gap; noise keeps the model's mean and does not depend
//! on threads; the gradient and bad settings are refused.

use ndarray::Array3;

use super::tests::on_one_and_two_threads;
use super::*;
use crate::geometry::{Beam, View};

/// A parallel beam onto `n x n` pixels of `pitch` mm: the field is the detector.
fn field(n: usize, pitch: f64) -> ProjectionGeometry {
    ProjectionGeometry {
        beam: Beam::Parallel,
        rows: n,
        cols: n,
        views: vec![View {
            source: [0.0, 1.0, 0.0],
            detector: [0.0, 500.0, 0.0],
            u: [pitch, 0.0, 0.0],
            v: [0.0, 0.0, pitch],
        }],
    }
}

/// A uniform water slab of `thickness_mm` over the whole detector.
fn slab(geometry: &ProjectionGeometry, thickness_mm: f64) -> Array3<f32> {
    Array3::from_elem(geometry.shape(), thickness_mm as f32)
}

fn beam(kvp: f64) -> Spectrum {
    Spectrum::tube(kvp, 12.0)
        .unwrap()
        .filtered(Material::Aluminium, 2.5)
        .unwrap()
}

fn water_model(spectrum: &Spectrum, detector: Detector, gap: f64) -> RadiographModel {
    RadiographModel::new(
        spectrum,
        vec![Absorber::Material(Material::Water)],
        detector,
        Exposure::PerPixel,
    )
    .unwrap()
    .with_scatter(Scatter::new(gap).unwrap())
    .unwrap()
}

/// Scatter over primary at the centre pixel.
fn spr(model: &RadiographModel, geometry: &ProjectionGeometry, thickness_mm: f64) -> f64 {
    let p = slab(geometry, thickness_mm);
    let scatter = model.scatter_estimate(&[p.view()], geometry).unwrap();
    let primary = model
        .clone()
        .without_scatter()
        .expected(&[p.view()], geometry)
        .unwrap();
    let c = geometry.rows / 2;
    f64::from(scatter[[0, c, c]]) / f64::from(primary[[0, c, c]])
}

/// The kernels' scattered photons per mm^2 per incident photon at `energy_kev` (a
/// tabulated energy), `thickness_mm` and gap 0, summed ring by ring straight from the
/// CSV: the whole plane's scatter of one pencil.
fn tabulated_total(energy_kev: f64, thickness_mm: f64) -> f64 {
    let text = include_str!("../../data/physics/scatter-kernels.csv");
    let edges: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("# r_edges_mm: "))
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let key = format!("{energy_kev},{thickness_mm},0,photons_per_mm2,");
    let row = text.lines().find(|l| l.starts_with(&key)).unwrap();
    row[key.len()..]
        .split(',')
        .map(|v| v.parse::<f64>().unwrap())
        .zip(edges.windows(2))
        .map(|(d, e)| d * std::f64::consts::PI * (e[1] * e[1] - e[0] * e[0]))
        .sum()
}

#[test]
fn a_uniform_slabs_scatter_is_the_kernels_integral_over_the_field() {
    // One energy, an ideal counting detector, a field (1.6 m) that holds the kernel's
    // whole extent (0.8 m radius): the centre pixel receives the pencil's total.
    let spectrum = Spectrum::monochromatic(60.0, 1.0).unwrap();
    let model = water_model(&spectrum, Detector::ideal(), 0.0);
    let expected = tabulated_total(60.0, 200.0);
    // 256 pixels (estimated as they are) and 512 (binned by 2).
    for (n, pitch) in [(256, 6.25), (512, 3.125)] {
        let geometry = field(n, pitch);
        let p = slab(&geometry, 200.0);
        let scatter = model.scatter_estimate(&[p.view()], &geometry).unwrap();
        let c = n / 2;
        let got = f64::from(scatter[[0, c, c]]);
        assert!(
            (got / expected - 1.0).abs() < 0.015,
            "{n} pixels: {got} against {expected}"
        );
        // Uniform in the middle of the field, falling towards its edges.
        let quarter = f64::from(scatter[[0, c, c / 2]]);
        assert!(
            (quarter / got - 1.0).abs() < 0.02,
            "{quarter} against {got}"
        );
        assert!(f64::from(scatter[[0, c, 0]]) < 0.8 * got);
    }
}

#[test]
fn a_large_water_phantoms_scatter_to_primary_ratio_is_in_the_published_range() {
    // Published for large phantoms and wide beams without a grid: "SPR in excess of
    // 100%" (a pelvis, cone-beam CT: Siewerdsen & Jaffray, Med. Phys. 28 (2001) 220),
    // "a maximum SPR over 200%" (a large pelvis phantom: Sun & Star-Lack, Phys. Med.
    // Biol. 55 (2010) 6695), "around 5 for large phantoms, wide beams and 120 kV"
    // (Monte Carlo of water cylinders: Malusek et al., Proc. SPIE 5030 (2003)).
    // Here: 300 mm of water, a 400 mm field, 120 kV, a CsI panel, and the air gap of
    // a cone-beam CT (400 mm), then on the detector (0 mm) for 200 mm of water.
    let model = |gap| water_model(&beam(120.0), Detector::flat_panel(Scintillator::csi()), gap);
    let geometry = field(200, 2.0);
    let cbct = spr(&model(400.0), &geometry, 300.0);
    assert!((1.0..=5.0).contains(&cbct), "SPR {cbct}");
    let contact = spr(&model(0.0), &geometry, 200.0);
    assert!((1.0..=5.0).contains(&contact), "SPR {contact}");
}

#[test]
fn scatter_grows_with_thickness_and_field_and_falls_with_the_air_gap() {
    // Radiopaedia, "Scatter to primary ratio": it increases with field size and
    // patient thickness; an air gap decreases it.
    let detector = Detector::flat_panel(Scintillator::csi());
    for kvp in [70.0, 120.0] {
        let model = |gap| water_model(&beam(kvp), detector, gap);
        let by_thickness: Vec<f64> = [50.0, 100.0, 200.0, 300.0]
            .iter()
            .map(|&t| spr(&model(0.0), &field(100, 2.0), t))
            .collect();
        assert!(
            by_thickness.windows(2).all(|w| w[0] < w[1]),
            "{by_thickness:?}"
        );
        let by_field: Vec<f64> = [25, 50, 100, 150, 200]
            .iter()
            .map(|&n| spr(&model(0.0), &field(n, 2.0), 200.0))
            .collect();
        assert!(by_field.windows(2).all(|w| w[0] < w[1]), "{by_field:?}");
        let by_gap: Vec<f64> = [0.0, 50.0, 100.0, 200.0, 400.0, 800.0]
            .iter()
            .map(|&g| spr(&model(g), &field(100, 2.0), 200.0))
            .collect();
        assert!(by_gap.windows(2).all(|w| w[0] > w[1]), "{by_gap:?}");
    }
}

#[test]
fn the_air_gap_rejects_scatter_as_from_a_point_source_15_to_20_cm_before_the_exit() {
    // Sorenson & Floch, Med. Phys. 12 (1985) 308: scatter behind phantoms falls with
    // the air gap g as from an effective point source at X_s = 15-20 cm before the
    // exit surface, (X_s / (X_s + g))^2. With a parallel beam (the primary does not
    // fall), X_s = g / (sqrt(S(0) / S(g)) - 1), for a 10 x 10 cm field through 20 cm
    // of water; a margin of 3 cm below and 2 above for their unstated fields.
    let detector = Detector::flat_panel(Scintillator::csi());
    let geometry = field(50, 2.0);
    for kvp in [70.0, 120.0] {
        let at = |gap| spr(&water_model(&beam(kvp), detector, gap), &geometry, 200.0);
        let contact = at(0.0);
        for gap in [100.0, 200.0, 400.0] {
            let source = gap / ((contact / at(gap)).sqrt() - 1.0);
            assert!(
                (120.0..=220.0).contains(&source),
                "{kvp} kV, gap {gap}: X_s {source} mm"
            );
        }
    }
}

#[test]
fn the_model_adds_scatter_to_the_primary_and_the_flat_field_has_none() {
    let geometry = field(64, 4.0);
    let p = slab(&geometry, 150.0);
    let detector = Detector {
        gain: 2.0,
        offset: 10.0,
        ..Detector::flat_panel(Scintillator::gos())
    };
    let with = water_model(&beam(80.0), detector, 100.0);
    let without = with.clone().without_scatter();
    assert_eq!(with.scatter(), Some(Scatter::new(100.0).unwrap()));
    assert_eq!(without.scatter(), None);
    let total = with.expected(&[p.view()], &geometry).unwrap();
    let primary = without.expected(&[p.view()], &geometry).unwrap();
    let scatter = with.scatter_estimate(&[p.view()], &geometry).unwrap();
    for ((t, p), s) in total.iter().zip(&primary).zip(&scatter) {
        let sum = f64::from(*p) + 2.0 * f64::from(*s);
        assert!(
            (f64::from(*t) / sum - 1.0).abs() < 1e-5,
            "{t} against {sum}"
        );
        assert!(*s > 0.0);
    }
    assert_eq!(
        with.flat_field(&geometry).unwrap(),
        without.flat_field(&geometry).unwrap()
    );
}

#[test]
fn sampled_scatter_keeps_the_models_mean_and_does_not_depend_on_threads() {
    let geometry = field(16, 10.0);
    let p = slab(&geometry, 100.0);
    let spectrum = beam(70.0);
    let scale = 200.0 / spectrum.photons();
    let spectrum = Spectrum::from_lines(
        spectrum
            .lines()
            .iter()
            .map(|l| Line {
                photons: l.photons * scale,
                ..*l
            })
            .collect(),
    )
    .unwrap();
    let model = water_model(&spectrum, Detector::ideal(), 0.0);
    let mean = model.expected(&[p.view()], &geometry).unwrap();
    let n = 2000u64;
    let at = [0, 8, 8];
    let mut sum = 0.0;
    let mut squares = 0.0;
    for seed in 0..n {
        let v = f64::from(model.sample(&[p.view()], &geometry, seed).unwrap()[at]);
        sum += v;
        squares += v * v;
    }
    let sample_mean = sum / n as f64;
    let variance = squares / n as f64 - sample_mean * sample_mean;
    let expected = f64::from(mean[at]);
    // Counting photons: Poisson in the primary and in the scatter, so the variance is
    // the mean.
    assert!(
        (sample_mean - expected).abs() < 5.0 * (expected / n as f64).sqrt(),
        "{sample_mean} against {expected}"
    );
    assert!(
        (variance / expected - 1.0).abs() < 0.12,
        "{variance} against {expected}"
    );
    let (a, b) = on_one_and_two_threads(|| model.sample(&[p.view()], &geometry, 3).unwrap());
    assert_eq!(a, b);
    let primary_only = model.clone().without_scatter();
    assert_ne!(a, primary_only.sample(&[p.view()], &geometry, 3).unwrap());
}

#[test]
fn bad_scatter_settings_and_the_gradient_with_scatter_are_refused() {
    for gap in [-1.0, f64::NAN, f64::INFINITY, 801.0] {
        assert!(Scatter::new(gap).is_err(), "{gap}");
    }
    let geometry = field(8, 4.0);
    let p = slab(&geometry, 50.0);
    let model = water_model(&beam(80.0), Detector::ideal(), 0.0);
    let err = model
        .vjp(&[p.view()], &geometry, p.view())
        .unwrap_err()
        .to_string();
    assert!(err.contains("primary model only"), "{err}");
    let plain = model.without_scatter();
    assert!(plain.vjp(&[p.view()], &geometry, p.view()).is_ok());
    let err = plain
        .scatter_estimate(&[p.view()], &geometry)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no scatter"), "{err}");
}

/// The scatter the superposition gives behind the heterogeneous slab of
/// `scatter-check.csv`, against the broad-beam Monte Carlo's, per row of the table:
/// (energy, gap, x from, x to, Monte Carlo, ours).
fn heterogeneous_slab_against_monte_carlo() -> Vec<(f64, f64, f64, f64, f64, f64)> {
    let text = include_str!("../../data/physics/scatter-check.csv");
    let rows: Vec<Vec<f64>> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    // 300 mm square field of 2 mm pixels; x (columns) from -150 mm.
    let (n, pitch) = (150, 2.0);
    let geometry = field(n, pitch);
    // 200 mm of water, but 50 + 0.3 x 100 + 50 = 130 g/cm^3 mm where x >= 0.
    let p = Array3::from_shape_fn(
        geometry.shape(),
        |(_, _, c)| {
            if c >= n / 2 {
                130.0f32
            } else {
                200.0
            }
        },
    );
    let mut out = Vec::new();
    for row in rows {
        let (energy, gap, from, to, reference) = (row[0], row[1], row[2], row[3], row[4]);
        let model = water_model(
            &Spectrum::monochromatic(energy, 1.0).unwrap(),
            Detector::ideal(),
            gap,
        );
        let scatter = model.scatter_estimate(&[p.view()], &geometry).unwrap();
        // One photon per pixel: a pixel's scatter is per unit of incident fluence.
        let (mut sum, mut count) = (0.0, 0);
        for r in 0..n {
            let y = (r as f64 + 0.5) * pitch - 150.0;
            for c in 0..n {
                let x = (c as f64 + 0.5) * pitch - 150.0;
                if y.abs() < 50.0 && x >= from && x < to {
                    sum += f64::from(scatter[[0, r, c]]);
                    count += 1;
                }
            }
        }
        out.push((energy, gap, from, to, reference, sum / count as f64));
    }
    out
}

#[test]
fn a_heterogeneous_slabs_scatter_is_within_the_stated_error_of_a_monte_carlo() {
    // The broad-beam Monte Carlo of scatter-check.csv (not the kernels' pencils): 200 mm
    // of water, half of it with a 100 mm layer at density 0.3 (130 mm of water
    // equivalent). Measured: where the slab is uniform, 100 mm or more from the
    // layer's edge and on the detector, within 3 %; over the layer the superposition
    // puts 12-22 % too much (it replaces the layered slab with a compact 130 mm of
    // water, whose scatter leaves closer to the detector), and with a 200 mm gap that
    // excess reaches the whole field (4-13 %). The bounds: 5 % and 25 %.
    let rows = heterogeneous_slab_against_monte_carlo();
    assert_eq!(rows.len(), 2 * 2 * 30);
    for (energy, gap, from, to, reference, ours) in rows {
        let error = ours / reference - 1.0;
        let bound = if gap == 0.0 && to <= -100.0 {
            0.05
        } else {
            0.25
        };
        assert!(
            error.abs() < bound,
            "{energy} keV, gap {gap}, x {from}..{to}: {ours} against {reference}"
        );
    }
}

/// One photon's scatter within `radius_mm` of the axis, from the kernels the model
/// blends for a pencil of `energy_kev` through `thickness_mm` of water with `gap_mm`.
fn interpolated_pencil(energy_kev: f64, thickness_mm: f64, gap_mm: f64, radius_mm: f64) -> f64 {
    use super::scatter::ScatterKernels;
    let kernels = ScatterKernels::new(
        Scatter::new(gap_mm).unwrap(),
        &[super::scatter::ScatterLine {
            energy_kev,
            photons: 1.0,
        }],
        &Detector::ideal(),
    )
    .unwrap();
    kernels.pencil_within(thickness_mm, radius_mm)
}

#[test]
fn between_the_tables_points_the_kernels_follow_pencil_beams_of_the_monte_carlo() {
    // scatter-between.csv: pencils at energies, thicknesses and gaps off the table's
    // points (10^6 photons each: 1-2 % statistics within 100 mm). Measured: within
    // 100 mm of the axis -5 to +9 %, over the whole plane -6 to +0 % but for 45 keV
    // through 250 mm (-15 %: the 40 keV kernels there hold few photons). Linear blends
    // of the neighbours gave up to +39 % (350 mm of water) and +22 % (a 600 mm gap).
    let text = include_str!("../../data/physics/scatter-between.csv");
    for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let (energy, thickness, gap) = (v[0], v[1], v[2]);
        for (radius, reference, bound) in [(100.0, v[3], 0.10), (800.0, v[4], 0.16)] {
            let ours = interpolated_pencil(energy, thickness, gap, radius);
            let error = ours / reference - 1.0;
            assert!(
                error.abs() < bound,
                "{energy} keV, {thickness} mm, gap {gap}, within {radius} mm: {ours} against {reference}"
            );
        }
    }
}

#[test]
fn the_estimate_does_not_depend_on_how_the_detector_divides_the_field() {
    // One field, about 610 x 410 mm, under a uniform 200 mm slab: square pixels
    // estimated as they are (254 x 170 of 2.4 mm), the same binned by 2 with partial
    // last bins (509 x 341 of 1.2 mm), and rectangular pixels (305 x 137 of 2 x 3 mm,
    // rows along v). The scatter density at the centre and 100 mm from it agrees
    // (measured: within 0.25 %).
    // Photons in proportion to the pixels' area (a parallel beam: mAs x area).
    let model = RadiographModel::new(
        &beam(100.0),
        vec![Absorber::Material(Material::Water)],
        Detector::ideal(),
        Exposure::TubeCurrent { mas: 1.0 },
    )
    .unwrap()
    .with_scatter(Scatter::new(100.0).unwrap())
    .unwrap();
    let density = |rows: usize, cols: usize, du: f64, dv: f64| {
        let geometry = ProjectionGeometry {
            rows,
            cols,
            ..field(1, 1.0)
        };
        let geometry = ProjectionGeometry {
            views: vec![View {
                u: [du, 0.0, 0.0],
                v: [0.0, 0.0, dv],
                ..geometry.views[0]
            }],
            ..geometry
        };
        let p = slab(&geometry, 200.0);
        let s = model.scatter_estimate(&[p.view()], &geometry).unwrap();
        // Per mm^2 at the centre and 100 mm along u from it.
        let at = |x_mm: f64| {
            let c = ((cols as f64 / 2.0) + x_mm / du) as usize;
            f64::from(s[[0, rows / 2, c]]) / (du * dv)
        };
        (at(0.0), at(100.0))
    };
    let reference = density(170, 254, 2.4, 2.4);
    for (rows, cols, du, dv) in [(341, 509, 1.2, 1.2), (137, 305, 2.0, 3.0)] {
        let got = density(rows, cols, du, dv);
        for (g, r) in [(got.0, reference.0), (got.1, reference.1)] {
            assert!(
                (g / r - 1.0).abs() < 0.01,
                "{rows} x {cols}: {g} against {r}"
            );
        }
    }
}
