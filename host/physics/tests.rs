//! The radiograph model against ground truth from outside it: Beer-Lambert's law, the
//! energy integral computed directly from the tables, the statistics of Poisson and
//! Gaussian noise, and finite differences of the whole model with the projector.

use ndarray::{Array3, ArrayView3};

use super::*;
use crate::geometry::{Beam, View};
use crate::intensity::beer_lambert;
use crate::phantom::{Cuboid, Phantom, Solid};
use crate::{Backend, CircularScan};

/// A parallel beam along +y onto a detector of `rows x cols` pixels of 1 mm in x and z.
fn parallel(rows: usize, cols: usize) -> ProjectionGeometry {
    ProjectionGeometry {
        beam: Beam::Parallel,
        rows,
        cols,
        views: vec![View {
            source: [0.0, 1.0, 0.0],
            detector: [0.0, 500.0, 0.0],
            u: [1.0, 0.0, 0.0],
            v: [0.0, 0.0, 1.0],
        }],
    }
}

/// A wedge of steps: column `c` crosses `2 (c + 1)` mm of a material of density
/// `rho`, as exact projections of boxes (g/cm^3 mm).
fn wedge(cols: usize, rho: f64) -> (ProjectionGeometry, Array3<f32>) {
    let geometry = parallel(1, cols);
    let half = cols as f64 / 2.0;
    let solids = (0..cols)
        .map(|c| {
            let x = c as f64 - half;
            Solid::Cuboid(Cuboid {
                min: [x, -(c as f64 + 1.0), -1.0],
                max: [x + 1.0, c as f64 + 1.0, 1.0],
                mu: rho,
            })
        })
        .collect();
    let p = Phantom { solids }.project(&geometry).unwrap();
    (geometry, p)
}

#[test]
fn the_monochromatic_limit_is_beer_lamberts_law_bit_for_bit() {
    let (geometry, p) = wedge(16, 0.02);
    let i0 = 12345.678;
    let model = RadiographModel::new(
        &Spectrum::monochromatic(70.0, i0).unwrap(),
        vec![Absorber::Attenuation],
        Detector::ideal(),
        Exposure::PerPixel,
    )
    .unwrap();
    let ours = model.expected(&[p.view()], &geometry).unwrap();
    let reference = beer_lambert(&p, i0).unwrap();
    assert!(ours
        .iter()
        .zip(&reference)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    // With water's density map at one energy: Beer-Lambert with water's mu, to rounding.
    let water = RadiographModel::new(
        &Spectrum::monochromatic(70.0, i0).unwrap(),
        vec![Absorber::Material(Material::Water)],
        Detector::ideal(),
        Exposure::PerPixel,
    )
    .unwrap();
    let mu = Material::Water.mass_attenuation(70.0, true).unwrap() / 10.0;
    let ours = water.expected(&[p.view()], &geometry).unwrap();
    for (got, thickness) in ours.iter().zip(&p) {
        let want = i0 * (-mu * f64::from(*thickness)).exp();
        assert!((f64::from(*got) / want - 1.0).abs() < 1e-6);
    }
}

#[test]
fn beam_hardening_through_water_and_aluminium_wedges_is_the_direct_energy_integral() {
    for (material, steps) in [(Material::Water, 40), (Material::Aluminium, 12)] {
        let rho = material.density();
        let (geometry, p) = wedge(steps, rho);
        let spectrum = Spectrum::tube(80.0, 12.0)
            .unwrap()
            .filtered(Material::Aluminium, 2.5)
            .unwrap();
        let detector = Detector::flat_panel(Scintillator::csi());
        let model = RadiographModel::new(
            &spectrum,
            vec![Absorber::Material(material)],
            detector,
            Exposure::PerPixel,
        )
        .unwrap();
        let signal = model.expected(&[p.view()], &geometry).unwrap();
        let flat = model.flat_field(&geometry).unwrap();
        let mut previous_mu = f64::INFINITY;
        for c in 0..steps {
            let thickness_cm = 2.0 * (c as f64 + 1.0) / 10.0;
            // The energy integral, bin by bin from the tables.
            let direct: f64 = spectrum
                .lines()
                .iter()
                .map(|l| {
                    let mu = material.mass_attenuation(l.energy_kev, true).unwrap() * rho;
                    let eta = Scintillator::csi().efficiency(l.energy_kev).unwrap();
                    l.photons * eta * l.energy_kev * (-mu * thickness_cm).exp()
                })
                .sum();
            let got = f64::from(signal[[0, 0, c]]);
            assert!((got / direct - 1.0).abs() < 1e-5, "{material} step {c}");
            // Beam hardening: the effective attenuation falls with thickness.
            let effective = -(got / f64::from(flat[[0, 0, c]])).ln() / thickness_cm;
            assert!(
                effective < previous_mu,
                "{material}: {effective} at step {c}"
            );
            previous_mu = effective;
        }
    }
}

#[test]
fn noise_has_the_models_mean_and_variance_and_does_not_depend_on_threads() {
    let (geometry, p) = wedge(4, 1.0);
    let spectrum = Spectrum::tube(70.0, 12.0)
        .unwrap()
        .filtered(Material::Aluminium, 2.5)
        .unwrap();
    let scale = 50.0 / spectrum.photons();
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
    for response in [Response::PhotonCounting, Response::EnergyIntegrating] {
        let detector = Detector {
            response,
            electronic_noise: 3.0,
            ..Detector::ideal()
        };
        let model = RadiographModel::new(
            &spectrum,
            vec![Absorber::Material(Material::Water)],
            detector,
            Exposure::PerPixel,
        )
        .unwrap();
        let mean = model.expected(&[p.view()], &geometry).unwrap();
        let n = 4000;
        let mut sums = [0.0f64; 4];
        let mut squares = [0.0f64; 4];
        for seed in 0..n {
            let s = model.sample(&[p.view()], &geometry, seed).unwrap();
            for c in 0..4 {
                let v = f64::from(s[[0, 0, c]]);
                sums[c] += v;
                squares[c] += v * v;
            }
        }
        for c in 0..4 {
            let thickness_cm = 2.0 * (c as f64 + 1.0) / 10.0;
            // Compound Poisson: the variance is sum over energies of mean count x w^2.
            let variance: f64 = spectrum
                .lines()
                .iter()
                .map(|l| {
                    let mu = Material::Water
                        .mass_attenuation(l.energy_kev, true)
                        .unwrap();
                    let w = match response {
                        Response::EnergyIntegrating => l.energy_kev,
                        Response::PhotonCounting => 1.0,
                    };
                    l.photons * (-mu * thickness_cm).exp() * w * w
                })
                .sum::<f64>()
                + 9.0;
            let sample_mean = sums[c] / n as f64;
            let sample_variance = squares[c] / n as f64 - sample_mean * sample_mean;
            let expected = f64::from(mean[[0, 0, c]]);
            let tolerance = 5.0 * (variance / n as f64).sqrt();
            assert!(
                (sample_mean - expected).abs() < tolerance,
                "{response:?} mean at {c}"
            );
            // The sample variance's relative standard error is about sqrt(2 / n) = 2.2%.
            assert!(
                (sample_variance / variance - 1.0).abs() < 0.12,
                "{response:?} variance at {c}: {sample_variance} against {variance}"
            );
        }
        // The same bits on one thread and on two.
        let (a, b) = on_one_and_two_threads(|| model.sample(&[p.view()], &geometry, 7).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, model.sample(&[p.view()], &geometry, 8).unwrap());
    }
}

#[test]
fn a_pixels_photons_follow_mas_area_inverse_square_and_obliquity() {
    let geometry = CircularScan::new(1000.0, 1500.0, 1, [5, 5], 40.0)
        .geometry()
        .unwrap();
    let spectrum = Spectrum::monochromatic(60.0, 1e6).unwrap();
    let per_mas = |mas| {
        RadiographModel::new(
            &spectrum,
            vec![Absorber::Attenuation],
            Detector::ideal(),
            Exposure::TubeCurrent { mas },
        )
        .unwrap()
        .flat_field(&geometry)
        .unwrap()
    };
    let flat = per_mas(2.0);
    // Centre: 1e6 per cm^2 at 1 m, x 2 mAs x 16 cm^2 x (1000/1500)^2.
    let centre = 1e6 * 2.0 * 16.0 * (1000.0f64 / 1500.0).powi(2);
    assert!((f64::from(flat[[0, 2, 2]]) / centre - 1.0).abs() < 1e-6);
    // A corner, 80 mm off in both directions: cos^3 of its angle.
    let r = (1500.0f64.powi(2) + 2.0 * 80.0f64.powi(2)).sqrt();
    let corner = centre * (1500.0 / r).powi(3);
    assert!((f64::from(flat[[0, 0, 0]]) / corner - 1.0).abs() < 1e-6);
    assert_eq!(per_mas(4.0)[[0, 2, 2]], 2.0 * flat[[0, 2, 2]]);
}

#[test]
fn the_gradient_with_respect_to_the_maps_matches_finite_differences() {
    let grid = crate::VolumeGeometry::centered([6, 6, 6], [4.0; 3]);
    let geometry = CircularScan::new(200.0, 400.0, 2, [8, 8], 5.0)
        .geometry()
        .unwrap();
    let projector = Projector::new(Backend::Cpu).unwrap();
    let maps: Vec<Array3<f32>> = [1.0f32, 0.3]
        .iter()
        .map(|&base| {
            Array3::from_shape_fn((6, 6, 6), |(z, y, x)| {
                base + 0.05 * ((z + 2 * y + 3 * x) % 5) as f32
            })
        })
        .collect();
    let direction: Vec<Array3<f32>> = (0..2)
        .map(|m| {
            Array3::from_shape_fn((6, 6, 6), |(z, y, x)| {
                (((z * 7 + y * 3 + x + m) % 9) as f32 - 4.0) / 4.0
            })
        })
        .collect();
    let detector = Detector {
        blur_pixels: 0.8,
        gain: 0.5,
        offset: 10.0,
        ..Detector::flat_panel(Scintillator::gos())
    };
    let model = RadiographModel::new(
        &Spectrum::tube(90.0, 12.0)
            .unwrap()
            .filtered(Material::Aluminium, 3.0)
            .unwrap(),
        vec![
            Absorber::Material(Material::SoftTissue),
            Absorber::Material(Material::Bone),
        ],
        detector,
        Exposure::TubeCurrent { mas: 1.0 },
    )
    .unwrap();
    let upstream = Array3::from_shape_fn(geometry.shape(), |(v, r, c)| {
        ((v + 2 * r + 5 * c) % 7) as f32 / 7.0
    });
    let loss = |maps: &[Array3<f32>]| -> f64 {
        let p = project_maps(&projector, maps, &grid, &geometry, Method::Joseph).unwrap();
        let views: Vec<ArrayView3<f32>> = p.iter().map(|a| a.view()).collect();
        let s = model.expected(&views, &geometry).unwrap();
        s.iter()
            .zip(&upstream)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum()
    };
    let p = project_maps(&projector, &maps, &grid, &geometry, Method::Joseph).unwrap();
    let gradients = map_gradients(
        &projector,
        &model,
        &p,
        &geometry,
        &grid,
        Method::Joseph,
        upstream.view(),
    )
    .unwrap();
    let analytic: f64 = gradients
        .iter()
        .zip(&direction)
        .flat_map(|(g, d)| g.iter().zip(d).map(|(a, b)| f64::from(*a) * f64::from(*b)))
        .sum();
    let eps = 1e-2f32;
    let shifted = |sign: f32| -> Vec<Array3<f32>> {
        maps.iter()
            .zip(&direction)
            .map(|(m, d)| m + &(d * (sign * eps)))
            .collect()
    };
    let numeric = (loss(&shifted(1.0)) - loss(&shifted(-1.0))) / (2.0 * f64::from(eps));
    assert!(
        (analytic / numeric - 1.0).abs() < 2e-3,
        "analytic {analytic} against finite differences {numeric}"
    );
}

#[test]
fn projections_that_do_not_fit_the_model_are_refused() {
    let (geometry, p) = wedge(4, 1.0);
    let model = RadiographModel::new(
        &Spectrum::tube(80.0, 12.0).unwrap(),
        vec![
            Absorber::Material(Material::Water),
            Absorber::Material(Material::Bone),
        ],
        Detector::ideal(),
        Exposure::PerPixel,
    )
    .unwrap();
    assert!(model.expected(&[p.view()], &geometry).is_err());
    let mut bad = p.clone();
    bad[[0, 0, 1]] = f32::NAN;
    assert!(model.expected(&[p.view(), bad.view()], &geometry).is_err());
    let wrong = Array3::<f32>::zeros((1, 2, 4));
    assert!(model
        .expected(&[p.view(), wrong.view()], &geometry)
        .is_err());
    assert!(model
        .vjp(&[p.view(), p.view()], &geometry, wrong.view())
        .is_err());
    for mas in [0.0, -1.0, f64::NAN] {
        assert!(RadiographModel::new(
            &Spectrum::tube(80.0, 12.0).unwrap(),
            vec![Absorber::Attenuation],
            Detector::ideal(),
            Exposure::TubeCurrent { mas },
        )
        .is_err());
    }
    assert!(RadiographModel::new(
        &Spectrum::tube(80.0, 12.0).unwrap(),
        vec![],
        Detector::ideal(),
        Exposure::PerPixel
    )
    .is_err());
}

/// What `run` returns in a rayon pool of one thread and in one of two (the physics
/// tests check that a result does not depend on the thread count).
pub(super) fn on_one_and_two_threads<T: Send>(run: impl Fn() -> T + Sync) -> (T, T) {
    let pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    };
    (pool(1).install(&run), pool(2).install(&run))
}
