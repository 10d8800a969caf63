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
    assert_eq!(resident.device_bytes(), 32 * 40 * 36 * 4 + 56);
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
    // CGLS, resident on the GPU as SIRT: its steps amplify rounding more (each step's
    // length is a ratio of dot products), so the bound is that of the residuals.
    let want = recon::cgls(&cpu, &projections, &geometry, &grid, &options, go_on).unwrap();
    let got = recon::cgls(&cuda, &projections, &geometry, &grid, &options, go_on).unwrap();
    let (difference, _) = max_relative_difference(&got.volume, &want.volume);
    eprintln!("CGLS: max |GPU - CPU| = {difference:.2e}");
    assert!(difference <= 1e-3, "CGLS: {difference:.2e}");
    assert_eq!(got.residuals.len(), want.residuals.len());
    for (g, c) in got.residuals.iter().zip(&want.residuals) {
        assert!((g - c).abs() <= 1e-4 * c, "CGLS residuals: {g} vs {c}");
    }
}

/// Set in the child process of `iterations_run_resident_on_the_gpu`.
const RESIDENT_CHILD: &str = "XRAY_TEST_RESIDENT_CHILD";

/// What `resident_iterations_child` prints when it has run to the end.
const RESIDENT_CHILD_DONE: &str = "resident iterations: the vector kernels ran";

#[test]
fn iterations_run_resident_on_the_gpu() {
    // In a child process that writes the software driver's launch report, to see which
    // kernels SIRT and CGLS launched (on a real GPU the report is not written, and the
    // child checks the results only).
    if gpu("resident iterations").is_none() {
        return;
    }
    let report = tempfile::NamedTempFile::new().unwrap();
    let path = report.path().to_str().unwrap().to_string();
    run_child(
        "resident_iterations_child",
        &[
            (RESIDENT_CHILD, path.as_str()),
            ("XRAY_EMU_PROFILE", path.as_str()),
        ],
        RESIDENT_CHILD_DONE,
    );
}

#[test]
fn resident_iterations_child() {
    let Some(report) = std::env::var_os(RESIDENT_CHILD) else {
        return;
    };
    let Some(gpu) = gpu("resident iterations (child process)") else {
        return;
    };
    let grid = VolumeGeometry::centered([16, 20, 18], [1.5, 1.5, 1.5]);
    let volume = test_volume(&grid, 81);
    let geometry = CircularScan::new(100.0, 180.0, 12, [20, 24], 1.5)
        .geometry()
        .unwrap();
    let projections = cpu_projection(&volume, &grid, &geometry, Method::Joseph);
    let options = recon::IterativeOptions {
        method: Method::Joseph,
        iterations: 3,
        ..Default::default()
    };
    let cuda = Projector::new(Backend::Cuda).unwrap();
    let cpu = Projector::new(Backend::Cpu).unwrap();
    let go_on = |_: &recon::Progress| std::ops::ControlFlow::Continue(());
    let solve = |name: &str, projector: &Projector| match name {
        "SIRT" => recon::sirt(projector, &projections, &geometry, &grid, &options, go_on),
        _ => recon::cgls(projector, &projections, &geometry, &grid, &options, go_on),
    };
    for name in ["SIRT", "CGLS"] {
        std::fs::write(&report, "").unwrap();
        let got = solve(name, &cuda).unwrap();
        let want = solve(name, &cpu).unwrap();
        let (difference, _) = max_relative_difference(&got.volume, &want.volume);
        assert!(difference <= 1e-3, "{name}: {difference:.2e}");
        if !gpu.description().contains("xray-emu") {
            continue;
        }
        let text = std::fs::read_to_string(&report).unwrap();
        let count = |kernel: &str| {
            text.lines()
                .filter(|line| line.contains(&format!("\"kernel\":\"{kernel}\"")))
                .count()
        };
        // Per iteration: one forward and one backprojection, and the vector steps on
        // the GPU (a dot product for each residual), nothing else.
        let forwards = count("xray_forward_joseph");
        let dots = count("xray_vec_dot_partials");
        eprintln!("{name}: {forwards} forward launches, {dots} dot products on the GPU");
        match name {
            "SIRT" => {
                // The row weights, then one per residual (iterations + 1).
                assert_eq!(forwards, 1 + 4, "{name}");
                assert_eq!(dots, 4, "{name}");
                assert_eq!(count("xray_vec_sirt_step"), 3, "{name}");
            }
            _ => {
                assert_eq!(forwards, 3, "{name}");
                assert!(dots >= 6, "{name}: {dots}");
                assert_eq!(count("xray_vec_clip"), 1, "{name}");
            }
        }
    }
    // Below the solver's footprint (the --device-memory limit), the iterations run on
    // host arrays, the projector slabbing the volume on the GPU: no vector kernels.
    let limited = Projector::new(Backend::Cuda)
        .unwrap()
        .with_device_memory((volume.len() * 4) as u64);
    std::fs::write(&report, "").unwrap();
    let got = solve("SIRT", &limited).unwrap();
    let want = solve("SIRT", &cpu).unwrap();
    let (difference, _) = max_relative_difference(&got.volume, &want.volume);
    assert!(difference <= 1e-3, "SIRT on host arrays: {difference:.2e}");
    if gpu.description().contains("xray-emu") {
        let text = std::fs::read_to_string(&report).unwrap();
        assert!(
            !text.contains("xray_vec_"),
            "the limit must keep SIRT off the GPU's vectors"
        );
        assert!(
            text.contains("xray_forward_joseph"),
            "the projections still run on the GPU"
        );
    }
    let _ = writeln!(std::io::stderr(), "{RESIDENT_CHILD_DONE}");
}

/// The projection kernels' launch grid covers 8 detector rows per block and at most
/// 65,535 blocks along y: the most rows the CUDA backend can project.
const MAX_GPU_ROWS: usize = 8 * 65_535;

/// Asserts that `result` is [`xray_projector::GeometryError::TooLarge`] naming `field`,
/// with the limit `limit`.
#[track_caller]
fn assert_too_large<T>(result: Result<T, Error>, field: &str, limit: usize) {
    match result {
        Err(Error::Geometry(xray_projector::GeometryError::TooLarge {
            field: named,
            limit: got,
            ..
        })) if named.contains(field) && got == limit as u128 => {}
        Ok(_) => panic!("expected TooLarge naming {field} (limit {limit}), got a result"),
        Err(other) => panic!("expected TooLarge naming {field} (limit {limit}), got {other:?}"),
    }
}

#[test]
fn detectors_beyond_the_launch_grid_are_refused_before_allocating() {
    let Some(gpu) = gpu("launch grid limits") else {
        return;
    };
    let grid = VolumeGeometry::centered([8, 8, 8], [1.0, 1.0, 1.0]);
    let volume = Array3::from_elem((8, 8, 8), 0.5f32);
    let resident = gpu.upload(&volume, &grid).unwrap();
    let cuda = Projector::new(Backend::Cuda).unwrap();
    let detector = |rows: usize, cols: usize, pixel: f64| {
        CircularScan::new(100.0, 200.0, 1, [rows, cols], pixel)
            .geometry()
            .unwrap()
    };
    // One row too many (2 MB of projections): only the launch check can refuse it.
    let tall = detector(MAX_GPU_ROWS + 1, 1, 0.001);
    let rows = "detector rows";
    assert_too_large(gpu.allocate_projections(&tall), rows, MAX_GPU_ROWS);
    assert_too_large(
        gpu.forward(&resident, &tall, Method::Siddon),
        rows,
        MAX_GPU_ROWS,
    );
    assert_too_large(
        gpu.forward_to_host(&resident, &tall, Method::Joseph, &|| {}),
        rows,
        MAX_GPU_ROWS,
    );
    assert_too_large(
        cuda.forward(&volume, &grid, &tall, Method::Siddon),
        rows,
        MAX_GPU_ROWS,
    );
    // The Projector checks the launch grid before it uploads the volume: one that the
    // upload would refuse (a NaN) gets the launch grid's error.
    let mut not_uploadable = volume.clone();
    not_uploadable[[0, 0, 0]] = f32::NAN;
    assert_too_large(
        cuda.forward(&not_uploadable, &grid, &tall, Method::Siddon),
        rows,
        MAX_GPU_ROWS,
    );
    let y = Array3::from_elem(tall.shape(), 1.0f32);
    assert_too_large(gpu.upload_projections(&y, &tall), rows, MAX_GPU_ROWS);
    assert_too_large(
        cuda.backward(&y, &tall, &grid, Method::Siddon),
        rows,
        MAX_GPU_ROWS,
    );
    // Too tall and far too big for any GPU or host (2^20 columns: 2.2 TB): the launch
    // check comes first, so the error is the same, not an out-of-memory one.
    let huge = detector(MAX_GPU_ROWS + 1, 1 << 20, 0.001);
    assert_too_large(gpu.allocate_projections(&huge), rows, MAX_GPU_ROWS);
    assert_too_large(
        gpu.forward(&resident, &huge, Method::Siddon),
        rows,
        MAX_GPU_ROWS,
    );
    assert_too_large(
        gpu.forward_to_host(&resident, &huge, Method::Siddon, &|| {}),
        rows,
        MAX_GPU_ROWS,
    );
    assert_too_large(
        cuda.forward(&volume, &grid, &huge, Method::Siddon),
        rows,
        MAX_GPU_ROWS,
    );
    // The limit itself runs (grid y = 65,535 blocks) and equals the CPU; the detector,
    // 21 mm tall, covers the volume's 16 mm shadow.
    let at_limit = detector(MAX_GPU_ROWS, 1, 0.00004);
    let got = gpu
        .forward_to_host(&resident, &at_limit, Method::Siddon, &|| {})
        .unwrap();
    let want = cpu_projection(&volume, &grid, &at_limit, Method::Siddon);
    let (difference, scale) = max_relative_difference(&got, &want);
    eprintln!("{MAX_GPU_ROWS} rows: max |GPU - CPU| = {difference:.2e} of {scale:.3}");
    assert!(scale > 1.0, "the detector must see the volume");
    assert!(difference <= 1e-5, "{difference:.2e}");
    assert_eq!(got[[0, 0, 0]], 0.0, "the first row's ray misses the volume");
}

#[test]
fn fdk_grids_beyond_the_launch_grid_are_refused_before_allocating() {
    if gpu("FDK launch grid limits").is_none() {
        return;
    }
    let cuda = Projector::new(Backend::Cuda).unwrap();
    let scan = CircularScan::new(100.0, 200.0, 4, [2, 4], 1.0);
    let projections = Array3::from_elem(scan.geometry().unwrap().shape(), 0.1f32);
    // One thread per voxel: 8 voxel rows per block and at most 65,535 blocks along y,
    // one slice per block along z.
    for (shape, field, limit) in [
        ([1, MAX_GPU_ROWS + 1, 1], "volume ny", MAX_GPU_ROWS),
        ([65_536, 1, 1], "volume nz", 65_535),
    ] {
        let grid = VolumeGeometry::centered(shape, [0.01, 0.01, 0.01]);
        assert_too_large(
            recon::fdk(&cuda, &projections, &scan, &grid, Filter::SheppLogan),
            field,
            limit,
        );
        // Checked before the projections are even read (let alone weighted and
        // filtered): a NaN in them gets the launch grid's error.
        let mut unreadable = projections.clone();
        unreadable[[0, 0, 0]] = f32::NAN;
        assert_too_large(
            recon::fdk(&cuda, &unreadable, &scan, &grid, Filter::SheppLogan),
            field,
            limit,
        );
    }
}

#[test]
fn axis_lengths_beyond_the_kernels_i32_indices_are_refused_on_the_gpu() {
    use xray_projector::geometry::MAX_AXIS_LEN;
    let Some(gpu) = gpu("axis length limit") else {
        return;
    };
    // 2^30 + 1 voxels along x (4 GiB, which a large GPU could hold): refused by the
    // geometry's validation, before anything is allocated.
    let grid = VolumeGeometry::centered([1, 1, MAX_AXIS_LEN + 1], [1.0, 1.0, 1.0]);
    assert_too_large(gpu.allocate_volume(&grid), "nx", MAX_AXIS_LEN);
    let geometry = CircularScan::new(100.0, 200.0, 1, [4, 4], 1.0)
        .geometry()
        .unwrap();
    let y = Array3::from_elem(geometry.shape(), 1.0f32);
    let cuda = Projector::new(Backend::Cuda).unwrap();
    assert_too_large(
        cuda.backward(&y, &geometry, &grid, Method::Siddon),
        "nx",
        MAX_AXIS_LEN,
    );
    let wide = ProjectionGeometry {
        cols: MAX_AXIS_LEN + 1,
        ..geometry
    };
    assert_too_large(
        gpu.allocate_projections(&wide),
        "detector cols",
        MAX_AXIS_LEN,
    );
}

#[test]
fn a_rejected_ptx_reports_the_jits_error_log() {
    let Some(gpu) = gpu("rejected PTX") else {
        return;
    };
    let ptx = xray_projector::kernels_ptx();
    gpu.check_ptx(ptx).unwrap();
    // An unknown instruction before the first `ret;`: the reason must carry the JIT's
    // error log, which names that line (1-based, as ptxas counts).
    let mut lines: Vec<&str> = ptx.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "ret;")
        .expect("the PTX has a ret");
    lines.insert(at, "\tnot_an_instruction;");
    let broken = lines.join("\n");
    let line = at + 1;
    match gpu.check_ptx(&broken) {
        Err(Error::CudaUnavailable { reason }) => {
            eprintln!("the broken PTX: {reason}");
            assert!(reason.contains("the JIT's error log"), "{reason}");
            assert!(
                reason.contains(&format!("line {line}")),
                "the log must name line {line}: {reason}"
            );
        }
        other => panic!("expected CudaUnavailable, got {other:?}"),
    }
    match gpu.check_ptx("not PTX\0at all") {
        Err(Error::CudaUnavailable { reason }) => assert!(reason.contains("NUL"), "{reason}"),
        other => panic!("expected CudaUnavailable, got {other:?}"),
    }
    // A rejected module leaves the context as it was.
    gpu.check_ptx(ptx).unwrap();
    let grid = VolumeGeometry::centered([8, 8, 8], [1.0, 1.0, 1.0]);
    let volume = Array3::from_elem((8, 8, 8), 0.5f32);
    let small = CircularScan::new(100.0, 200.0, 1, [1, 1], 1.0)
        .geometry()
        .unwrap();
    let p = gpu
        .forward(&gpu.upload(&volume, &grid).unwrap(), &small, Method::Siddon)
        .unwrap()
        .to_host()
        .unwrap();
    assert!((p[[0, 0, 0]] - 4.0).abs() < 1e-5, "{}", p[[0, 0, 0]]);
}

/// Set to 1 in the child process that `a_faulted_context_is_reset_and_reopened` starts
/// to run `faulted_context_child`.
const FAULT_CHILD: &str = "XRAY_TEST_FAULT_CHILD";

/// How long `a_faulted_context_is_reset_and_reopened` lets its child run before it kills
/// it (a few seconds on the software driver; a hang must not stall the test run).
const FAULT_CHILD_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What `faulted_context_child` prints when it has run to the end.
const FAULT_CHILD_DONE: &str = "faulted context: recovered, and equal to the CPU";

#[test]
fn a_faulted_context_is_reset_and_reopened() {
    // A fault poisons the device's primary context for the whole process, and the other
    // tests share it while they run in parallel: so the fault is provoked in a child
    // process that runs this binary's `faulted_context_child` alone.
    if gpu("faulted context").is_none() {
        return;
    }
    run_child(
        "faulted_context_child",
        &[(FAULT_CHILD, "1")],
        FAULT_CHILD_DONE,
    );
}

/// Runs this test binary's test `name` alone in a child process with `env` set, under
/// a watchdog of [`FAULT_CHILD_LIMIT`], and checks that it passed and printed `done`
/// (so that a child which returned early, skipping its work, cannot pass).
fn run_child(name: &str, env: &[(&str, &str)], done: &str) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args([name, "--exact", "--nocapture", "--test-threads=1"]);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes while the child runs, so that it never blocks on a full one.
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + FAULT_CHILD_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let _ = writeln!(
        std::io::stderr(),
        "the child's output ({name}):\n{stdout}\n{stderr}"
    );
    let Some(status) = status else {
        panic!(
            "the child {name} ran past {} s and was killed:\n{stdout}\n{stderr}",
            FAULT_CHILD_LIMIT.as_secs()
        );
    };
    assert!(
        status.success(),
        "the child {name} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(done),
        "the child {name} did not run to the end:\n{stdout}\n{stderr}"
    );
}

/// Makes a kernel fault in device 0's primary context, which the backend shares: the
/// project's own Siddon kernel, launched through cust directly with every pointer bogus
/// (0x10, never a device address). Returns the driver's error.
fn provoke_fault() -> cust::error::CudaError {
    use cust::function::{BlockSize, GridSize};
    use cust::memory::DevicePointer;
    let device = cust::device::Device::get_device(0).unwrap();
    // Retains the device's primary context (the backend's) and makes it current.
    let context = cust::context::Context::new(device).unwrap();
    let module = cust::module::Module::from_ptx(xray_projector::kernels_ptx(), &[]).unwrap();
    let stream = cust::stream::Stream::new(cust::stream::StreamFlags::DEFAULT, None).unwrap();
    let result = {
        let function = module
            .get_function(xray_kernels::names::FORWARD_SIDDON)
            .unwrap();
        let volume = DevicePointer::<f32>::from_raw(0x10);
        let record = DevicePointer::<u8>::from_raw(0x10);
        let (one, cone) = (1u32, 0u32);
        // SAFETY: deliberately broken: the kernel reads its view record from address
        // 0x10 on the device, which faults there. No host memory is involved.
        unsafe {
            cust::launch!(function<<<GridSize::x(1), BlockSize::x(1), 0, stream>>>(
                volume, record, record, one, one, one, cone, volume
            ))
        }
        .and_then(|()| stream.synchronize())
    };
    // The test's own handles go first, before the backend resets the context.
    drop(stream);
    drop(module);
    drop(context);
    result.expect_err("a kernel that reads address 0x10 must fault")
}

/// Asserts that `result` is [`Error::CudaFaulted`].
#[track_caller]
fn assert_faulted<T>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::CudaFaulted { ordinal: 0, reason }) => {
            eprintln!("faulted context: {what}: {reason}");
        }
        Ok(_) => panic!("{what}: expected CudaFaulted, got a result"),
        Err(other) => panic!("{what}: expected CudaFaulted, got {other:?}"),
    }
}

#[test]
fn faulted_context_child() {
    // Only in the child process of `a_faulted_context_is_reset_and_reopened`: in the
    // test run itself this returns at once (that test checks that the child ran).
    if std::env::var_os(FAULT_CHILD).is_none() {
        return;
    }
    let Some(gpu) = gpu("faulted context (child process)") else {
        return;
    };
    let grid = VolumeGeometry::centered([16, 16, 16], [1.0, 1.0, 1.0]);
    let volume = test_volume(&grid, 41);
    let geometry = CircularScan::new(100.0, 200.0, 3, [12, 16], 1.5)
        .geometry()
        .unwrap();
    let want = cpu_projection(&volume, &grid, &geometry, Method::Siddon);
    let resident = gpu.upload(&volume, &grid).unwrap();
    let before = gpu.forward(&resident, &geometry, Method::Siddon).unwrap();
    assert!(max_relative_difference(&before.to_host().unwrap(), &want).0 <= 1e-5);
    // A Projector made before the fault, holding the old backend.
    let long_lived = Projector::new(Backend::Cuda).unwrap();

    // A call that is in its progress callback when the fault comes: the callback runs
    // outside the driver calls, so it must not keep on_device from resetting the context.
    let (entered, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    let first_view = std::sync::atomic::AtomicBool::new(true);
    let fresh = std::thread::scope(|scope| {
        let in_callback = scope.spawn(|| {
            gpu.forward_to_host(&resident, &geometry, Method::Siddon, &|| {
                if first_view.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    entered.wait();
                    release.wait();
                }
            })
        });
        entered.wait();

        let error = provoke_fault();
        eprintln!("faulted context: the bogus kernel failed with {error:?}: {error}");
        // The fault happened outside the backend, so the backend meets it at its next
        // driver call: that call fails with CudaFaulted (the one failure the contract
        // allows), and so does everything on the old backend from then on.
        assert_faulted(
            gpu.forward(&resident, &geometry, Method::Siddon),
            "the first call after the fault",
        );
        assert!(gpu.is_faulted());
        assert_faulted(resident.to_host(), "the old resident volume");
        assert_faulted(before.to_host(), "the old projections");
        assert_faulted(gpu.upload(&volume, &grid), "the old backend");
        // The next backend is a fresh one, on a reset context, while the other call is
        // still in its callback.
        let fresh = CudaBackend::on_device(0);
        release.wait();
        // That call had all its views before the fault: they are right.
        let got = in_callback.join().unwrap().unwrap();
        assert!(max_relative_difference(&got, &want).0 <= 1e-5);
        fresh.expect("on_device resets the context while no driver call runs on it")
    });
    assert!(
        !Arc::ptr_eq(&fresh, &gpu),
        "on_device must replace a faulted backend"
    );
    assert!(!fresh.is_faulted());
    assert!(Arc::ptr_eq(&gpu.healthy().unwrap(), &fresh));
    assert!(Arc::ptr_eq(&fresh.healthy().unwrap(), &fresh));
    // Old data stays refused on the fresh backend: its memory is gone.
    let mut out = fresh.allocate_projections(&geometry).unwrap();
    assert_faulted(
        fresh.forward_into(&resident, &geometry, Method::Siddon, &mut out),
        "the old volume on the fresh backend",
    );
    // New work equals the CPU, through the backend and through a new Projector.
    let resident_again = fresh.upload(&volume, &grid).unwrap();
    fresh
        .forward_into(&resident_again, &geometry, Method::Siddon, &mut out)
        .unwrap();
    let got = out.to_host().unwrap();
    assert!(max_relative_difference(&got, &want).0 <= 1e-5);
    // The long-lived Projector moves to the reopened backend by itself.
    let siddon = long_lived
        .forward(&volume, &grid, &geometry, Method::Siddon)
        .unwrap();
    assert!(max_relative_difference(&siddon, &want).0 <= 1e-5);
    let cuda = Projector::new(Backend::Cuda).unwrap();
    let joseph = cuda
        .forward(&volume, &grid, &geometry, Method::Joseph)
        .unwrap();
    let want_joseph = cpu_projection(&volume, &grid, &geometry, Method::Joseph);
    assert!(max_relative_difference(&joseph, &want_joseph).0 <= 1e-5);
    // Dropping the old backend and its data frees nothing of the fresh context.
    drop(before);
    drop(resident);
    drop(gpu);
    let again = fresh
        .forward(&resident_again, &geometry, Method::Siddon)
        .unwrap()
        .to_host()
        .unwrap();
    assert_eq!(again, got);
    let _ = writeln!(std::io::stderr(), "{FAULT_CHILD_DONE}");
}

/// Set in the child process of `views_are_batched_when_their_projections_do_not_fit`.
const BATCH_CHILD: &str = "XRAY_TEST_BATCH_CHILD";

/// What `batched_projection_child` prints when it has run to the end.
const BATCH_CHILD_DONE: &str = "batched projection: equal to the CPU";

/// Device memory the host leaves free when sizing batches (`FREE_MEMORY_MARGIN` in
/// host/cuda/device.rs).
const FREE_MEMORY_MARGIN: usize = 64 << 20;

#[test]
fn views_are_batched_when_their_projections_do_not_fit() {
    // In a child process whose software GPU has 65 MiB, so that after the 64 MiB
    // margin only some tens of views fit at a time (on a real GPU the variable has no
    // effect: the child then checks the same result from one batch).
    if gpu("batched projection").is_none() {
        return;
    }
    run_child(
        "batched_projection_child",
        &[(BATCH_CHILD, "1"), ("XRAY_EMU_MEMORY", "65M")],
        BATCH_CHILD_DONE,
    );
}

#[test]
fn batched_projection_child() {
    if std::env::var_os(BATCH_CHILD).is_none() {
        return;
    }
    let Some(gpu) = gpu("batched projection (child process)") else {
        return;
    };
    let grid = VolumeGeometry::centered([32, 32, 32], [1.0, 1.0, 1.0]);
    let volume = test_volume(&grid, 51);
    let geometry = CircularScan::new(150.0, 250.0, 200, [64, 64], 1.0)
        .geometry()
        .unwrap();
    let resident = gpu.upload(&volume, &grid).unwrap();
    let (free, total) = gpu.memory_info().unwrap();
    let per_view = 64 * 64 * 4 + std::mem::size_of::<xray_kernels::ViewParams>();
    let fit = free.saturating_sub(FREE_MEMORY_MARGIN) / per_view;
    if gpu.description().contains("xray-emu") {
        // The software GPU must have taken XRAY_EMU_MEMORY, or nothing is batched.
        assert_eq!(total, 65 << 20, "XRAY_EMU_MEMORY=65M was not applied");
        assert!(
            (1..200).contains(&fit),
            "the software GPU must hold some views but not all: {fit} fit"
        );
        eprintln!(
            "batched projection: {fit} views per batch, {} batches",
            200usize.div_ceil(fit)
        );
    }
    let views_done = std::sync::atomic::AtomicUsize::new(0);
    let got = gpu
        .forward_to_host(&resident, &geometry, Method::Joseph, &|| {
            views_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
    assert_eq!(views_done.into_inner(), 200, "one progress call per view");
    let want = cpu_projection(&volume, &grid, &geometry, Method::Joseph);
    let (difference, _) = max_relative_difference(&got, &want);
    assert!(difference <= 1e-5, "batched: {difference:.2e}");
    // Projector::forward batches the same way.
    let cuda = Projector::new(Backend::Cuda).unwrap();
    let siddon = cuda
        .forward(&volume, &grid, &geometry, Method::Siddon)
        .unwrap();
    let want = cpu_projection(&volume, &grid, &geometry, Method::Siddon);
    assert!(max_relative_difference(&siddon, &want).0 <= 1e-5);
    let _ = writeln!(std::io::stderr(), "{BATCH_CHILD_DONE}");
}

#[test]
fn gpu_equals_cpu_on_awkward_geometries() {
    // A source inside the grid (rays start mid-volume).
    let grid = VolumeGeometry::centered([40, 40, 40], [1.0, 1.0, 1.0]);
    let inside = DrrPose {
        source: [3.0, -2.0, 1.5],
        target: [40.0, 10.0, -5.0],
        sdd: 120.0,
        up: [0.0, 0.0, 1.0],
        detector: [48, 56],
        pixel: [2.0, 2.0],
    }
    .geometry()
    .unwrap();
    check_parity("source inside the grid", &grid, &inside, 61);
    // Parallel rays along x through voxel faces and edges: 33 columns and rows of 1 mm
    // put pixel centres on integer coordinates, the faces of a centred 32^3 grid.
    let faces = VolumeGeometry::centered([32, 32, 32], [1.0, 1.0, 1.0]);
    let along_axes = CircularScan::new(300.0, 500.0, 4, [33, 33], 1.0)
        .parallel_beam()
        .geometry()
        .unwrap();
    check_parity("rays along faces", &faces, &along_axes, 62);
    // A volume one voxel thick, and a one-pixel detector.
    let slab = VolumeGeometry::centered([1, 40, 44], [1.0, 1.0, 2.5]);
    let through_slab = CircularScan::new(200.0, 350.0, 6, [3, 64], 1.2)
        .geometry()
        .unwrap();
    check_parity("one-voxel slab", &slab, &through_slab, 63);
    let one_pixel = CircularScan::new(200.0, 350.0, 5, [1, 1], 1.0)
        .geometry()
        .unwrap();
    check_parity("one-pixel detector", &grid, &one_pixel, 64);
}

/// Set in the child process of `slabs_and_several_gpus_give_the_whole_volumes_result`.
const SCALE_CHILD: &str = "XRAY_TEST_SCALE_CHILD";

/// What `scale_child` prints when it has run to the end.
const SCALE_CHILD_DONE: &str = "slabs and several GPUs: equal to one GPU and to the CPU";

#[test]
fn slabs_and_several_gpus_give_the_whole_volumes_result() {
    // In a child process whose software driver has 4 GPUs of 64.5 MiB: after the 64 MiB
    // margin, 512 KiB each, less than the test volume (on a real machine the variables
    // have no effect: the projectors' device memory limit makes the slabs there, on
    // the GPUs there are).
    if gpu("slabs and several GPUs").is_none() {
        return;
    }
    run_child(
        "scale_child",
        &[
            (SCALE_CHILD, "1"),
            ("XRAY_EMU_MEMORY", "66048K"),
            ("XRAY_EMU_DEVICES", "4"),
        ],
        SCALE_CHILD_DONE,
    );
}

#[test]
fn scale_child() {
    if std::env::var_os(SCALE_CHILD).is_none() {
        return;
    }
    let Some(gpu) = gpu("slabs and several GPUs (child process)") else {
        return;
    };
    let emulated = gpu.description().contains("xray-emu");
    // 64 slices of 56 x 56: 784 KiB, with a spacing that puts the slab boundaries
    // off the binary grid.
    let grid = VolumeGeometry::centered([64, 56, 56], [0.7, 0.7, 0.7]);
    let volume = test_volume(&grid, 71);
    let scan = CircularScan::new(80.0, 140.0, 8, [33, 41], 1.1);
    let geometry = scan.geometry().unwrap();
    let (free, total) = gpu.memory_info().unwrap();
    if emulated {
        assert_eq!(total, 66048 << 10, "XRAY_EMU_MEMORY=66048K was not applied");
        assert!(
            volume.len() * 4 > free.saturating_sub(FREE_MEMORY_MARGIN),
            "the volume must not fit: {free} bytes free"
        );
    }
    let cpu = Projector::new(Backend::Cpu).unwrap();
    // Half the volume's bytes per GPU, so that slabs are used on any GPU (the software
    // one has less than that free anyway).
    let limit = (volume.len() * 4 / 2) as u64;
    let one = Projector::on_devices(&[0])
        .unwrap()
        .with_device_memory(limit);
    let several: Vec<Projector> = [&[0, 1][..], &[0, 1, 2, 3][..]]
        .into_iter()
        .filter_map(|ordinals| match Projector::on_devices(ordinals) {
            Ok(projector) => Some(projector.with_device_memory(limit)),
            Err(error) if !emulated => {
                eprintln!("several GPUs: {ordinals:?} not here ({error})");
                None
            }
            Err(error) => panic!("the software driver has 4 GPUs: {error}"),
        })
        .collect();
    for method in [Method::Siddon, Method::Joseph] {
        // Slabs on one GPU against the whole volume on the CPU: the bound of
        // host/executor/tests.rs.
        let want = cpu_projection(&volume, &grid, &geometry, method);
        let got = one.forward(&volume, &grid, &geometry, method).unwrap();
        let (difference, scale) = max_relative_difference(&got, &want);
        eprintln!("slabs {method:?}: forward max |GPU - CPU| = {difference:.2e} of {scale:.3}");
        assert!(
            scale > 0.1 && difference <= 1e-5,
            "{method:?}: {difference:.2e}"
        );
        let back_want = cpu.backward(&want, &geometry, &grid, method).unwrap();
        let back = one.backward(&want, &geometry, &grid, method).unwrap();
        let (difference, _) = max_relative_difference(&back, &back_want);
        eprintln!("slabs {method:?}: backward max |GPU - CPU| = {difference:.2e}");
        assert!(difference <= 4e-5, "{method:?} backward: {difference:.2e}");
        // Several GPUs against one: the views split for the forward projection (bit for
        // bit), the slices for the backprojection.
        for projector in &several {
            let devices = projector.devices();
            let views_done = std::sync::atomic::AtomicUsize::new(0);
            let shared = projector
                .forward_with_progress(&volume, &grid, &geometry, method, &|| {
                    views_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
                .unwrap();
            // Each GPU plans its own slabs for its share of the views: bit for bit one
            // GPU's only where they split alike, always within the slab bound.
            let (difference, _) = max_relative_difference(&shared, &got);
            assert!(
                difference <= 1e-5,
                "{method:?} on {devices:?}: {difference:.2e}"
            );
            assert_eq!(views_done.into_inner(), 8, "one progress call per view");
            let back_shared = projector.backward(&want, &geometry, &grid, method).unwrap();
            let (difference, _) = max_relative_difference(&back_shared, &back);
            eprintln!("{method:?} on {devices:?}: backward max |shared - one| = {difference:.2e}");
            assert!(
                difference <= 4e-5,
                "{method:?} on {devices:?}: {difference:.2e}"
            );
        }
    }
    let projections = cpu_projection(&volume, &grid, &geometry, Method::Joseph);
    let want = recon::fdk(&cpu, &projections, &scan, &grid, Filter::SheppLogan).unwrap();
    let got = recon::fdk(&one, &projections, &scan, &grid, Filter::SheppLogan).unwrap();
    let (difference, scale) = max_relative_difference(&got, &want);
    eprintln!("slabs FDK: max |GPU - CPU| = {difference:.2e} of {scale:.3}");
    assert!(scale > 0.01 && difference <= 1e-5, "FDK: {difference:.2e}");
    for projector in &several {
        let shared = recon::fdk(projector, &projections, &scan, &grid, Filter::SheppLogan).unwrap();
        assert_eq!(shared, got, "FDK on {:?}", projector.devices());
    }
    assert!(matches!(
        Projector::on_devices(&[0, 0]),
        Err(Error::InvalidParameter { .. })
    ));
    let _ = writeln!(std::io::stderr(), "{SCALE_CHILD_DONE}");
}
