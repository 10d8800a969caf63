//! Backprojection is the exact transpose of the forward projection:
//! `<A x, y> = <x, A^T y>` for random volumes `x` and random projections `y`, for both
//! methods, on cone, parallel and oblique geometries over anisotropic and rotated grids.
//! The dot products are accumulated in f64; the f32 projector must agree to 1e-4
//! relative.

mod common;

use common::{dot, random_array, random_views, with_threads};
use ndarray::Array3;
use xray_projector::{
    Backend, Beam, CircularScan, DrrPose, Error, Method, ProjectionGeometry, Projector,
    VolumeGeometry,
};

/// Relative mismatch of `<A x, y>` and `<x, A^T y>`.
fn adjoint_mismatch(
    grid: &VolumeGeometry,
    geometry: &ProjectionGeometry,
    method: Method,
    seed: u64,
) -> f64 {
    let projector = Projector::new(Backend::Cpu).unwrap();
    let x = random_array(grid.shape, seed);
    let y = random_array(geometry.shape(), seed + 1000);
    let ax = projector.forward(&x, grid, geometry, method).unwrap();
    let aty = projector.backward(&y, geometry, grid, method).unwrap();
    assert_eq!(aty.shape(), &grid.shape);
    let left = dot(&ax, &y);
    let right = dot(&x, &aty);
    assert!(left > 0.0, "the geometry must see the volume");
    (left - right).abs() / left.abs()
}

fn check(name: &str, grid: &VolumeGeometry, geometry: &ProjectionGeometry, seed: u64) {
    for method in [Method::Siddon, Method::Joseph] {
        let mismatch = adjoint_mismatch(grid, geometry, method, seed);
        eprintln!("{name} {method:?}: |<Ax,y> - <x,A^T y>| / |<Ax,y>| = {mismatch:.2e}");
        assert!(
            mismatch < 1e-4,
            "{name} {method:?}: adjoint mismatch {mismatch:.2e}"
        );
    }
}

#[test]
fn adjoint_identity_circular_cone_beam() {
    let grid = VolumeGeometry::centered([24, 28, 32], [1.0, 1.0, 1.0]);
    let geometry = CircularScan::new(200.0, 350.0, 7, [30, 36], 1.4)
        .geometry()
        .unwrap();
    check("cone", &grid, &geometry, 1);
}

#[test]
fn adjoint_identity_parallel_beam_anisotropic_voxels() {
    let grid = VolumeGeometry::centered([20, 30, 26], [0.8, 1.3, 2.2]);
    let geometry = CircularScan::new(200.0, 350.0, 6, [28, 40], 1.5)
        .parallel_beam()
        .geometry()
        .unwrap();
    check("parallel", &grid, &geometry, 2);
}

#[test]
fn adjoint_identity_oblique_views_rotated_grid() {
    let angle: f64 = -0.7;
    let (c, s) = (angle.cos(), angle.sin());
    let grid = VolumeGeometry::new([18, 26, 30], [1.1, 0.7, 1.6], [-14.0, -10.0, -12.0])
        .with_direction([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]);
    for (beam, seed) in [(Beam::Cone, 3), (Beam::Parallel, 4)] {
        let geometry = random_views(seed, beam, 6, [0.0, 0.0, 0.0], 150.0, [32, 28], 1.2);
        check(&format!("oblique {beam:?}"), &grid, &geometry, seed);
    }
}

#[test]
fn adjoint_identity_single_drr() {
    let grid = VolumeGeometry::centered([16, 40, 40], [0.9, 0.9, 2.5]);
    let geometry = DrrPose {
        source: [-300.0, 80.0, 40.0],
        target: [0.0, 0.0, 0.0],
        sdd: 500.0,
        up: [0.0, 0.0, 1.0],
        detector: [50, 60],
        pixel: [1.0, 1.0],
    }
    .geometry()
    .unwrap();
    check("drr", &grid, &geometry, 5);
}

#[test]
fn backprojection_does_not_depend_on_the_thread_count() {
    let grid = VolumeGeometry::centered([20, 20, 20], [1.0, 1.0, 1.0]);
    let geometry = CircularScan::new(150.0, 300.0, 5, [24, 24], 1.3)
        .geometry()
        .unwrap();
    let y = random_array(geometry.shape(), 6);
    for method in [Method::Siddon, Method::Joseph] {
        let run = |threads| {
            with_threads(threads, || {
                Projector::new(Backend::Cpu)
                    .unwrap()
                    .backward(&y, &geometry, &grid, method)
                    .unwrap()
            })
        };
        assert_eq!(
            run(1),
            run(3),
            "{method:?}: bitwise equal for 1 and 3 threads"
        );
    }
}

#[test]
fn one_ray_backprojects_its_path_lengths() {
    // A parallel ray along +x through the centre of voxel row (z, y) = (1, 2) of a
    // 4 x 5 x 6 grid with 1.5 mm voxels: each voxel of that row gets 1.5 * value, and
    // nothing else gets anything (Siddon).
    let grid = VolumeGeometry::new([4, 5, 6], [1.5, 1.5, 1.5], [0.0, 0.0, 0.0]);
    let geometry = ProjectionGeometry {
        beam: xray_projector::Beam::Parallel,
        rows: 1,
        cols: 1,
        views: vec![xray_projector::View {
            source: [1.0, 0.0, 0.0],
            detector: [20.0, 2.5 * 1.5, 1.5 * 1.5],
            u: [0.0, 1.0, 0.0],
            v: [0.0, 0.0, 1.0],
        }],
    };
    let y = Array3::from_elem((1, 1, 1), 2.0f32);
    let aty = Projector::new(Backend::Cpu)
        .unwrap()
        .backward(&y, &geometry, &grid, Method::Siddon)
        .unwrap();
    for ((z, yy, x), value) in aty.indexed_iter() {
        let want = if (z, yy) == (1, 2) { 3.0 } else { 0.0 };
        assert!(
            (value - want).abs() < 1e-5,
            "voxel [{z}, {yy}, {x}] = {value}, want {want}"
        );
    }
}

#[test]
fn bad_projections_are_refused() {
    let grid = VolumeGeometry::centered([8, 8, 8], [1.0, 1.0, 1.0]);
    let geometry = CircularScan::new(100.0, 200.0, 2, [4, 4], 1.0)
        .geometry()
        .unwrap();
    let projector = Projector::new(Backend::Cpu).unwrap();
    let wrong = Array3::<f32>::zeros((3, 4, 4));
    assert!(matches!(
        projector.backward(&wrong, &geometry, &grid, Method::Siddon),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut nan = Array3::<f32>::zeros((2, 4, 4));
    nan[[1, 2, 3]] = f32::NAN;
    match projector.backward(&nan, &geometry, &grid, Method::Joseph) {
        Err(Error::InvalidParameter { reason, .. }) => {
            assert!(reason.contains("[1, 2, 3]"), "{reason}")
        }
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}
