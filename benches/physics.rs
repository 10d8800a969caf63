//! Criterion benches of the polychromatic radiograph against the monochromatic one,
//! on the built-in head (128^3 material maps, 4 materials) and `xray drr`'s default
//! scanner (one 256 x 256 view): what `xray drr` costs with and without `--kvp`.
//!
//! * `radiograph/monochromatic`: one projection and Beer-Lambert's law.
//! * `radiograph/polychromatic_80kv`: one projection per material and the energy
//!   integral over the 80 kV spectrum (78 energies after 2.5 mm Al) with a CsI detector.
//! * `radiograph/polychromatic_80kv_noisy`: the same with one noisy exposure (a Poisson
//!   sample per energy and pixel).
//! * `radiograph/polychromatic_80kv_scatter`: `polychromatic_80kv` with scatter from
//!   the object (kernel superposition, air gap 372 mm as `xray drr --scatter` sets it).
//! * `radiograph/model_only_80kv`: the energy integral alone, from projections made
//!   once.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{Array3, ArrayView3};
use xray_projector::intensity::beer_lambert;
use xray_projector::phantom::MaterialPhantom;
use xray_projector::physics::{
    project_maps, Detector, Exposure, Material, RadiographModel, Scatter, Scintillator, Spectrum,
};
use xray_projector::{Backend, CircularScan, Method, Projector, VolumeGeometry};

fn radiographs(c: &mut Criterion) {
    let projector = Projector::new(Backend::Cpu).expect("the CPU backend is always there");
    let grid = VolumeGeometry::centered([128; 3], [2.0; 3]);
    let geometry = CircularScan::new(1000.0, 1500.0, 1, [256, 256], 1.6)
        .geometry()
        .expect("the default scanner is valid");
    let head = MaterialPhantom::head();
    let maps = head.voxelize(&grid, 1).expect("the head fits in memory");
    let spectrum = Spectrum::tube(80.0, 12.0)
        .and_then(|s| s.filtered(Material::Aluminium, 2.5))
        .expect("80 kV is in the table");
    let model = RadiographModel::new(
        &spectrum,
        head.absorbers(),
        Detector::flat_panel(Scintillator::csi()),
        Exposure::TubeCurrent { mas: 4.0 },
    )
    .expect("the model is valid");
    // The monochromatic model's input: the head's attenuation at the spectrum's mean
    // energy, one volume.
    let energy = spectrum.mean_energy_kev();
    let mut mu = Array3::<f32>::zeros(maps[0].raw_dim());
    for (map, (material, _)) in maps.iter().zip(&head.parts) {
        let k = material
            .mass_attenuation(energy, true)
            .expect("in the table")
            / 10.0;
        mu.zip_mut_with(map, |m, &d| *m += (k * f64::from(d)) as f32);
    }
    let method = Method::Siddon;
    let mut group = c.benchmark_group("radiograph");
    group.throughput(Throughput::Elements(256 * 256));
    group.sample_size(10);
    group.bench_function("monochromatic", |b| {
        b.iter(|| {
            let p = projector
                .forward(&mu, &grid, &geometry, method)
                .expect("the projection runs");
            beer_lambert(&p, 1e5).expect("positive i0")
        })
    });
    group.bench_function("polychromatic_80kv", |b| {
        b.iter(|| {
            let p = project_maps(&projector, &maps, &grid, &geometry, method)
                .expect("the projections run");
            let views: Vec<ArrayView3<f32>> = p.iter().map(|a| a.view()).collect();
            model.expected(&views, &geometry).expect("the model runs")
        })
    });
    group.bench_function("polychromatic_80kv_noisy", |b| {
        b.iter(|| {
            let p = project_maps(&projector, &maps, &grid, &geometry, method)
                .expect("the projections run");
            let views: Vec<ArrayView3<f32>> = p.iter().map(|a| a.view()).collect();
            model.sample(&views, &geometry, 1).expect("the model runs")
        })
    });
    let scattering = model
        .clone()
        .with_scatter(Scatter::behind(&grid, &geometry))
        .expect("the detector covers the scattered energies");
    group.bench_function("polychromatic_80kv_scatter", |b| {
        b.iter(|| {
            let p = project_maps(&projector, &maps, &grid, &geometry, method)
                .expect("the projections run");
            let views: Vec<ArrayView3<f32>> = p.iter().map(|a| a.view()).collect();
            scattering
                .expected(&views, &geometry)
                .expect("the model runs")
        })
    });
    let p = project_maps(&projector, &maps, &grid, &geometry, method).expect("the projections run");
    let views: Vec<ArrayView3<f32>> = p.iter().map(|a| a.view()).collect();
    group.bench_function("model_only_80kv", |b| {
        b.iter(|| model.expected(&views, &geometry).expect("the model runs"))
    });
    group.finish();
}

criterion_group!(benches, radiographs);
criterion_main!(benches);
