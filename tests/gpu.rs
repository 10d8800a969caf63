//! The CUDA backend against the CPU backend (built only with feature `cuda`).
//!
//! Both run the same per-ray code from `xray-kernels`, so they must agree to f32
//! rounding: max |GPU - CPU| <= 1e-5 of the largest value, on cone, parallel, oblique,
//! anisotropic and rotated grids, and on detectors larger than the volume's shadow.
//!
//! Without a usable GPU each test writes `SKIPPED: <reason>` to stderr (uncaptured, so it
//! shows in `cargo test` output) and returns. Set `XRAY_REQUIRE_GPU=1` to make a missing
//! GPU a failure instead: the GPU machine's job does, so that a skip cannot pass for a
//! pass there.

mod common;

use std::io::Write;
use std::sync::Arc;

use common::{dot, random_array, random_views};
use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xray_projector::cuda::CudaBackend;
use xray_projector::recon::{self, Filter};
use xray_projector::{
    Backend, BackendKind, Beam, CircularScan, DrrPose, Error, Method, Phantom, ProjectionGeometry,
    Projector, VolumeGeometry,
};

/// The GPU, or `None` after reporting why the test is skipped.
fn gpu(test: &str) -> Option<Arc<CudaBackend>> {
    match CudaBackend::on_device(0) {
        Ok(gpu) => Some(gpu),
        Err(error) => {
            if std::env::var_os("XRAY_REQUIRE_GPU").is_some_and(|v| v == "1") {
                panic!("XRAY_REQUIRE_GPU=1 but the GPU is unusable: {error}");
            }
            // Straight to the stream: the test harness captures only `eprintln!`.
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {error}");
            None
        }
    }
}

/// Shepp-Logan plus seeded noise, so that every voxel matters.
fn test_volume(grid: &VolumeGeometry, seed: u64) -> Array3<f32> {
    let extent = grid.spacing[0] * grid.shape[2] as f64 * 0.45;
    let mut volume = Phantom::shepp_logan(extent).voxelize(grid, 1).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    volume.mapv_inplace(|v| v + rng.random_range(0.0..0.005f32));
    volume
}

fn cpu_projection(
    volume: &Array3<f32>,
    grid: &VolumeGeometry,
    geometry: &ProjectionGeometry,
    method: Method,
) -> Array3<f32> {
    Projector::new(Backend::Cpu)
        .unwrap()
        .forward(volume, grid, geometry, method)
        .unwrap()
}

/// Max |a - b| relative to the largest |b|; and the largest |b| itself.
fn max_relative_difference(a: &Array3<f32>, b: &Array3<f32>) -> (f64, f64) {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let worst = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs() as f64));
    (worst / scale.max(f64::MIN_POSITIVE), scale)
}

fn check_parity(test: &str, grid: &VolumeGeometry, geometry: &ProjectionGeometry, seed: u64) {
    let Some(gpu) = gpu(test) else { return };
    let volume = test_volume(grid, seed);
    let resident = gpu.upload(&volume, grid).unwrap();
    for method in [Method::Siddon, Method::Joseph] {
        let want = cpu_projection(&volume, grid, geometry, method);
        let got = gpu
            .forward_to_host(&resident, geometry, method, &|| {})
            .unwrap();
        let (difference, scale) = max_relative_difference(&got, &want);
        eprintln!("{test} {method:?}: max |GPU - CPU| = {difference:.2e} of {scale:.3}");
        assert!(scale > 0.1, "the geometry must see the volume");
        assert!(
            difference <= 1e-5,
            "{test} {method:?}: GPU and CPU differ by {difference:.2e} of the max"
        );
        // Pixels whose rays miss the grid must be exactly 0 on both.
        for (g, c) in got.iter().zip(&want) {
            if *c == 0.0 {
                assert_eq!(
                    *g, 0.0,
                    "{test} {method:?}: a missing ray is not 0 on the GPU"
                );
            }
        }
    }
}

#[test]
fn gpu_equals_cpu_circular_cone_beam() {
    let grid = VolumeGeometry::centered([48, 48, 48], [1.0, 1.0, 1.0]);
    let geometry = CircularScan::new(300.0, 500.0, 12, [40, 56], 1.5)
        .geometry()
        .unwrap();
    check_parity("circular cone beam", &grid, &geometry, 1);
}

#[test]
fn gpu_equals_cpu_parallel_beam() {
    let grid = VolumeGeometry::centered([40, 48, 56], [1.0, 1.0, 1.0]);
    let geometry = CircularScan::new(300.0, 500.0, 9, [44, 64], 1.0)
        .parallel_beam()
        .geometry()
        .unwrap();
    check_parity("parallel beam", &grid, &geometry, 2);
}

#[test]
fn gpu_equals_cpu_oblique_views_anisotropic_rotated_grid() {
    let angle: f64 = 0.4;
    let (c, s) = (angle.cos(), angle.sin());
    let grid = VolumeGeometry::new([30, 44, 52], [0.7, 1.1, 1.9], [-20.0, -21.0, -26.0])
        .with_direction([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]);
    for (beam, seed) in [(Beam::Cone, 3), (Beam::Parallel, 4)] {
        let geometry = random_views(seed, beam, 10, [0.0, 0.0, 0.0], 250.0, [48, 40], 1.3);
        check_parity(&format!("oblique {beam:?}"), &grid, &geometry, seed);
    }
}

#[test]
fn gpu_equals_cpu_detector_larger_than_the_shadow() {
    // Most rays miss the 24^3 grid: they must be exactly 0 on both backends.
    let grid = VolumeGeometry::centered([24, 24, 24], [1.0, 1.0, 1.0]);
    let geometry = CircularScan::new(200.0, 400.0, 5, [96, 120], 1.0)
        .geometry()
        .unwrap();
    check_parity("detector larger than the shadow", &grid, &geometry, 5);
}

#[test]
fn gpu_equals_cpu_drr_pose() {
    let grid = VolumeGeometry::centered([40, 64, 64], [0.8, 0.8, 2.0]);
    let geometry = DrrPose {
        source: [-400.0, 150.0, 90.0],
        target: [5.0, -3.0, 4.0],
        sdd: 700.0,
        up: [0.0, 0.2, 1.0],
        detector: [64, 80],
        pixel: [1.2, 1.1],
    }
    .geometry()
    .unwrap();
    check_parity("drr pose", &grid, &geometry, 6);
}

#[test]
fn projector_on_cuda_matches_the_cpu_and_auto_picks_the_gpu() {
    let Some(_) = gpu("Projector on CUDA") else {
        return;
    };
    let auto = Projector::new(Backend::Auto).unwrap();
    assert_eq!(auto.backend(), BackendKind::Cuda);
    let cuda = Projector::new(Backend::Cuda).unwrap();
    let grid = VolumeGeometry::centered([32, 32, 32], [1.0, 1.0, 1.0]);
    let volume = test_volume(&grid, 7);
    let geometry = CircularScan::new(200.0, 350.0, 4, [40, 40], 1.2)
        .geometry()
        .unwrap();
    let views_done = std::sync::atomic::AtomicUsize::new(0);
    let got = cuda
        .forward_with_progress(&volume, &grid, &geometry, Method::Siddon, &|| {
            views_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
    assert_eq!(views_done.into_inner(), 4, "one progress call per view");
    let want = cpu_projection(&volume, &grid, &geometry, Method::Siddon);
    assert!(max_relative_difference(&got, &want).0 <= 1e-5);
}

#[test]
fn resident_volume_is_reused_updated_and_kept_on_the_device() {
    let Some(gpu) = gpu("resident volume") else {
        return;
    };
    let grid = VolumeGeometry::centered([32, 40, 36], [1.0, 1.0, 1.5]);
    let volume = test_volume(&grid, 8);
    let mut resident = gpu.upload(&volume, &grid).unwrap();
    assert_eq!(resident.device_bytes(), 32 * 40 * 36 * 4 + 52);
    let first = CircularScan::new(250.0, 400.0, 6, [32, 48], 1.3)
        .geometry()
        .unwrap();
    let second = CircularScan::new(250.0, 400.0, 6, [32, 48], 1.3)
        .starting_at(0.3)
        .geometry()
        .unwrap();
    let mut out = gpu.allocate_projections(&first).unwrap();
    for geometry in [&first, &second] {
        let time = gpu
            .forward_into(&resident, geometry, Method::Joseph, &mut out)
            .unwrap();
        assert!(
            time.as_nanos() > 0,
            "the kernel time comes from CUDA events"
        );
        let want = cpu_projection(&volume, &grid, geometry, Method::Joseph);
        assert!(max_relative_difference(&out.to_host().unwrap(), &want).0 <= 1e-5);
    }
    // New values, same buffer: the projection follows (doubling mu doubles p).
    let doubled = volume.mapv(|v| 2.0 * v);
    resident.update(&doubled).unwrap();
    let p2 = gpu.forward(&resident, &first, Method::Siddon).unwrap();
    let want = cpu_projection(&doubled, &grid, &first, Method::Siddon);
    assert!(max_relative_difference(&p2.to_host().unwrap(), &want).0 <= 1e-5);
    // A bad update is refused and leaves the resident values alone.
    let mut bad = doubled.clone();
    bad[[3, 4, 5]] = f32::NAN;
    assert!(matches!(
        resident.update(&bad),
        Err(Error::NonFiniteVolume { .. })
    ));
    let p3 = gpu.forward(&resident, &first, Method::Siddon).unwrap();
    assert_eq!(p3.to_host().unwrap(), p2.to_host().unwrap());
    // Wrong output shape is a typed error, not a write past the buffer.
    let other = CircularScan::new(250.0, 400.0, 7, [32, 48], 1.3)
        .geometry()
        .unwrap();
    assert!(matches!(
        gpu.forward_into(&resident, &other, Method::Siddon, &mut out),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn more_views_than_one_launch_can_hold_are_split() {
    // CUDA's grid z limit is 65535 views per launch; 70000 one-pixel views need two.
    let Some(gpu) = gpu("views beyond one launch") else {
        return;
    };
    let grid = VolumeGeometry::centered([16, 16, 16], [1.0, 1.0, 1.0]);
    let volume = test_volume(&grid, 9);
    let geometry = CircularScan::new(100.0, 200.0, 70_000, [1, 2], 1.0)
        .geometry()
        .unwrap();
    let resident = gpu.upload(&volume, &grid).unwrap();
    let got = gpu
        .forward(&resident, &geometry, Method::Siddon)
        .unwrap()
        .to_host()
        .unwrap();
    let want = cpu_projection(&volume, &grid, &geometry, Method::Siddon);
    assert!(max_relative_difference(&got, &want).0 <= 1e-5);
    assert!(got
        .slice(ndarray::s![65_535.., .., ..])
        .iter()
        .all(|v| *v > 0.0));
}

#[test]
fn impossible_device_allocations_are_typed_errors() {
    let Some(gpu) = gpu("device out of memory") else {
        return;
    };
    // 8 views of 100000^2 pixels: 320 GB, more than any GPU has.
    let geometry = CircularScan::new(1000.0, 1500.0, 8, [100_000, 100_000], 0.01)
        .geometry()
        .unwrap();
    match gpu.allocate_projections(&geometry) {
        Err(Error::DeviceOutOfMemory { bytes, free, .. }) => assert!(bytes > free),
        other => panic!("expected DeviceOutOfMemory, got {other:?}"),
    }
    // And the backend still works afterwards.
    let grid = VolumeGeometry::centered([8, 8, 8], [1.0, 1.0, 1.0]);
    let volume = Array3::from_elem((8, 8, 8), 0.5f32);
    let small = CircularScan::new(100.0, 200.0, 1, [1, 1], 1.0)
        .geometry()
        .unwrap();
    let resident = gpu.upload(&volume, &grid).unwrap();
    let p = gpu
        .forward(&resident, &small, Method::Siddon)
        .unwrap()
        .to_host()
        .unwrap();
    assert!((p[[0, 0, 0]] - 4.0).abs() < 1e-5, "{}", p[[0, 0, 0]]);
}

#[test]
fn volumes_with_nan_are_refused_before_upload() {
    let Some(gpu) = gpu("NaN volume") else {
        return;
    };
    let grid = VolumeGeometry::centered([8, 8, 8], [1.0, 1.0, 1.0]);
    let mut volume = Array3::from_elem((8, 8, 8), 0.5f32);
    volume[[1, 2, 3]] = f32::INFINITY;
    match gpu.upload(&volume, &grid) {
        Err(Error::NonFiniteVolume { index, .. }) => assert_eq!(index, [1, 2, 3]),
        other => panic!("expected NonFiniteVolume, got {other:?}"),
    }
}

#[test]
fn gpu_backprojection_equals_cpu_and_is_the_adjoint() {
    let Some(gpu) = gpu("backprojection") else {
        return;
    };
    let grid = VolumeGeometry::new([26, 30, 34], [0.9, 1.2, 1.7], [-15.0, -16.0, -22.0]);
    let geometries = [
        CircularScan::new(250.0, 400.0, 9, [36, 44], 1.4)
            .geometry()
            .unwrap(),
        random_views(10, Beam::Cone, 7, [0.0, 0.0, 0.0], 200.0, [40, 36], 1.3),
        random_views(11, Beam::Parallel, 7, [0.0, 0.0, 0.0], 200.0, [40, 36], 1.3),
    ];
    let cpu = Projector::new(Backend::Cpu).unwrap();
    let cuda = Projector::new(Backend::Cuda).unwrap();
    let x = test_volume(&grid, 12);
    for (g, geometry) in geometries.iter().enumerate() {
        let y = random_array(geometry.shape(), 13 + g as u64);
        for method in [Method::Siddon, Method::Joseph] {
            let want = cpu.backward(&y, geometry, &grid, method).unwrap();
            let got = cuda.backward(&y, geometry, &grid, method).unwrap();
            let (difference, scale) = max_relative_difference(&got, &want);
            eprintln!(
                "backprojection {g} {method:?}: max |GPU - CPU| = {difference:.2e} of {scale:.3}"
            );
            assert!(difference <= 1e-5, "{g} {method:?}: {difference:.2e}");
            // <A x, y> = <x, A^T y> with both sides from the GPU.
            let resident = gpu.upload(&x, &grid).unwrap();
            let ax = gpu
                .forward(&resident, geometry, method)
                .unwrap()
                .to_host()
                .unwrap();
            let (left, right) = (dot(&ax, &y), dot(&x, &got));
            let mismatch = (left - right).abs() / left.abs();
            assert!(
                mismatch < 1e-4,
                "{g} {method:?}: adjoint mismatch {mismatch:.2e}"
            );
        }
    }
    // The device-resident form: projections uploaded once, the volume overwritten.
    let geometry = &geometries[0];
    let y = Array3::from_elem(geometry.shape(), 0.5f32);
    let uploaded = gpu.upload_projections(&y, geometry).unwrap();
    let mut volume = gpu.allocate_volume(&grid).unwrap();
    for _ in 0..2 {
        let time = gpu
            .backward_into(&uploaded, geometry, Method::Siddon, &mut volume)
            .unwrap();
        assert!(time.as_nanos() > 0);
    }
    let want = cpu.backward(&y, geometry, &grid, Method::Siddon).unwrap();
    let (difference, _) = max_relative_difference(&volume.to_host().unwrap(), &want);
    assert!(
        difference <= 1e-5,
        "backward_into must overwrite, not accumulate: {difference:.2e}"
    );
}

#[test]
fn gpu_fdk_and_iterative_reconstructions_equal_the_cpu() {
    if gpu("reconstruction").is_none() {
        return;
    }
    let cpu = Projector::new(Backend::Cpu).unwrap();
    let cuda = Projector::new(Backend::Cuda).unwrap();
    // A rotated, anisotropic grid and an offset detector exercise every part of the
    // projection matrices; the short scan exercises Parker's weights.
    let grid = VolumeGeometry::new([30, 34, 38], [1.1, 0.9, 1.3], [-17.0, -16.0, -19.0])
        .with_direction({
            let (s, c) = 0.3f64.sin_cos();
            [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
        });
    let mut offset = CircularScan::new(250.0, 400.0, 72, [40, 48], 1.2);
    offset.detector_offset = [9.0, -2.0];
    let short = CircularScan {
        arc: 220f64.to_radians(),
        ..CircularScan::new(250.0, 400.0, 60, [40, 48], 1.2)
    };
    let volume = test_volume(&grid, 21);
    for (name, scan) in [("offset detector", offset), ("short scan", short)] {
        let projections = cpu_projection(&volume, &grid, &scan.geometry().unwrap(), Method::Joseph);
        let want = recon::fdk(&cpu, &projections, &scan, &grid, Filter::SheppLogan).unwrap();
        let got = recon::fdk(&cuda, &projections, &scan, &grid, Filter::SheppLogan).unwrap();
        let (difference, scale) = max_relative_difference(&got, &want);
        eprintln!("FDK {name}: max |GPU - CPU| = {difference:.2e} of {scale:.3}");
        assert!(scale > 0.01, "{name}: the reconstruction must not be empty");
        assert!(difference <= 1e-5, "FDK {name}: {difference:.2e}");
    }
    let geometry = CircularScan::new(250.0, 400.0, 30, [40, 48], 1.2)
        .geometry()
        .unwrap();
    let projections = cpu_projection(&volume, &grid, &geometry, Method::Siddon);
    let options = recon::IterativeOptions {
        iterations: 5,
        ..Default::default()
    };
    let go_on = |_: &recon::Progress| std::ops::ControlFlow::Continue(());
    let want = recon::sirt(&cpu, &projections, &geometry, &grid, &options, go_on).unwrap();
    let got = recon::sirt(&cuda, &projections, &geometry, &grid, &options, go_on).unwrap();
    let (difference, _) = max_relative_difference(&got.volume, &want.volume);
    // Atomic adds in the GPU backprojection reorder sums: allow a little more.
    assert!(difference <= 1e-4, "SIRT: {difference:.2e}");
    for (g, c) in got.residuals.iter().zip(&want.residuals) {
        assert!((g - c).abs() <= 1e-4 * c, "SIRT residuals: {g} vs {c}");
    }
}
