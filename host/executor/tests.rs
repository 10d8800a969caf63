//! The executors' composites on the CPU: a volume run slab by slab, and several
//! executors sharing a call, against the whole volume on one executor.
//!
//! The bound for a projection or backprojection split into slabs: every slab traces
//! the whole grid's rays, clipped to the slab. Siddon's walk starts its crossing
//! parameters afresh at each slab's entry (each crossing is `t_first + k t_delta`, one
//! rounding, so the whole walk has no drift to carry across), so a voxel's path length
//! differs by a rounding or two of the ray parameter `t`, and the partial sums are
//! grouped differently; Joseph's samples are the whole volume's, those on a slab
//! boundary split in two by linearity. A projection stays within
//! `|split - whole| <= 1e-5 max|whole|` (the GPU-CPU parity bound of `tests/gpu.rs`: the
//! same f32 arithmetic in another order), a backprojection, whose voxels add many
//! rays' length errors, within `4e-5 max|whole|`; the tests print the largest
//! difference they see, relative to the largest value (at most 3.9e-6 and 1.9e-5 here).

use std::ops::Range;
use std::sync::Arc;

use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xray_kernels::{Method, VoxelView};

use super::cpu::CpuExecutor;
use super::devices::Devices;
use super::{slabs, BackwardTask, Executor, FdkTask, ForwardTask, Output};
use crate::cancel::Cancel;
use crate::geometry::{CircularScan, DrrPose, ProjectionGeometry, VolumeGeometry};

/// A grid whose slab boundaries at slices 12 and 6 lie in the central plane and below
/// it, with a spacing (0.7 mm) that world coordinates do not hit exactly, so that the
/// central detector row's rays run exactly along the boundary between two slabs.
fn grid() -> VolumeGeometry {
    VolumeGeometry::centered([24, 20, 22], [0.7, 0.7, 0.7])
}

/// A circular scan (odd rows: the central row lies in the plane z = 0), a parallel one,
/// and a tilted pose whose rays cross the slabs obliquely.
fn geometries() -> Vec<(&'static str, ProjectionGeometry)> {
    let pose = DrrPose {
        source: [-60.0, 25.0, 40.0],
        target: [0.0, 0.0, 0.0],
        sdd: 140.0,
        up: [0.3, 0.1, 1.0],
        detector: [21, 25],
        pixel: [1.1, 1.1],
    };
    vec![
        (
            "circular cone",
            CircularScan::new(60.0, 120.0, 5, [17, 23], 1.3)
                .geometry()
                .unwrap(),
        ),
        (
            "circular parallel",
            CircularScan::new(60.0, 120.0, 3, [17, 23], 0.7)
                .parallel_beam()
                .geometry()
                .unwrap(),
        ),
        ("tilted pose", pose.geometry().unwrap()),
    ]
}

fn random_volume(shape: [usize; 3], seed: u64) -> Array3<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array3::from_shape_fn(shape, |_| rng.random_range(0.01..1.0f32))
}

/// Slab splits of 24 slices: at the central plane, uneven, and one slice each.
fn splits() -> Vec<Vec<Range<usize>>> {
    vec![
        vec![0..12, 12..24],
        vec![0..5, 5..6, 6..17, 17..24],
        (0..24).map(|z| z..z + 1).collect(),
    ]
}

fn forward_task<'a>(
    voxels: &'a [f32],
    grid: &'a VolumeGeometry,
    geometry: &'a ProjectionGeometry,
    method: Method,
    cancel: &'a Cancel,
) -> ForwardTask<'a> {
    ForwardTask {
        voxels,
        volume_geometry: grid,
        slices: 0..grid.shape[0],
        geometry,
        method,
        view_done: &|| {},
        cancel,
    }
}

/// The largest `|got - want|` relative to the largest `|want|`, after checking the
/// bound (and that values exactly 0 in `want` are exactly 0 in `got`).
fn check_bound(got: &[f32], want: &[f32], what: &str) -> f64 {
    check_within(got, want, 1e-5, what)
}

/// As [`check_bound`], with the bound `bound * max|want|`.
fn check_within(got: &[f32], want: &[f32], bound: f64, what: &str) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, &w| m.max((w as f64).abs()));
    let mut worst = 0.0f64;
    for (index, (&g, &w)) in got.iter().zip(want).enumerate() {
        let difference = (g as f64 - w as f64).abs();
        assert!(
            difference <= bound * scale && (w != 0.0 || g == 0.0),
            "{what}: value {index} is {g}, the whole volume gives {w} (max {scale})"
        );
        worst = worst.max(difference / scale);
    }
    worst
}

#[test]
fn a_forward_projection_in_slabs_equals_the_whole_volumes() {
    let grid = grid();
    let volume = random_volume(grid.shape, 1);
    let voxels = volume.as_slice().unwrap();
    let cancel = Cancel::new();
    for (name, geometry) in geometries() {
        for method in [Method::Siddon, Method::Joseph] {
            let task = forward_task(voxels, &grid, &geometry, method, &cancel);
            let mut whole = vec![0.0f32; geometry.ray_count().unwrap()];
            CpuExecutor
                .forward(&task, Output::Store, &mut whole)
                .unwrap();
            assert!(whole.iter().filter(|&&p| p > 1.0).count() > whole.len() / 4);
            for split in splits() {
                let mut parts = vec![f32::NAN; whole.len()];
                slabs::forward(&CpuExecutor, &task, Output::Store, &split, &mut parts).unwrap();
                let worst = check_bound(&parts, &whole, &format!("{name} {method:?} {split:?}"));
                eprintln!("{name} {method:?} {} slabs: {worst:.1e}", split.len());
            }
        }
    }
}

#[test]
fn slabs_take_the_rays_along_their_boundary_once() {
    // The central row of the circular scan runs in the plane between slabs 0..12 and
    // 12..24; a volume that is 1 in slice 12 only and 0 elsewhere projects there to the
    // chord through that slice for Siddon (the voxel below the face the ray runs on),
    // half of it for Joseph (which interpolates between slices 11 and 12): once, not 0
    // or twice.
    let grid = grid();
    let mut volume = Array3::<f32>::zeros(grid.shape);
    volume.slice_mut(ndarray::s![12, .., ..]).fill(1.0);
    let geometry = CircularScan::new(60.0, 120.0, 1, [17, 23], 1.3)
        .geometry()
        .unwrap();
    let cancel = Cancel::new();
    let voxels = volume.as_slice().unwrap();
    for method in [Method::Siddon, Method::Joseph] {
        let task = forward_task(voxels, &grid, &geometry, method, &cancel);
        let mut whole = vec![0.0f32; geometry.ray_count().unwrap()];
        CpuExecutor
            .forward(&task, Output::Store, &mut whole)
            .unwrap();
        let mut parts = vec![0.0f32; whole.len()];
        slabs::forward(
            &CpuExecutor,
            &task,
            Output::Store,
            &[0..12, 12..24],
            &mut parts,
        )
        .unwrap();
        // The central column's ray crosses the 22 voxels of 0.7 mm along x.
        let central = 8 * 23 + 11;
        let chord = match method {
            Method::Siddon => 15.4,
            Method::Joseph => 7.7,
        };
        assert!(
            (whole[central] - chord).abs() < 1e-3,
            "{method:?}: {}",
            whole[central]
        );
        check_bound(&parts, &whole, &format!("{method:?} along the boundary"));
    }
}

#[test]
fn a_backprojection_in_slabs_equals_the_whole_volumes() {
    let grid = grid();
    let cancel = Cancel::new();
    for (name, geometry) in geometries() {
        let projections = random_volume(geometry.shape(), 2);
        for method in [Method::Siddon, Method::Joseph] {
            let task = BackwardTask {
                projections: projections.as_slice().unwrap(),
                geometry: &geometry,
                volume_geometry: &grid,
                slices: 0..24,
                method,
                cancel: &cancel,
            };
            let mut whole = vec![0.0f32; grid.voxel_count().unwrap()];
            CpuExecutor.backward(&task, &mut whole).unwrap();
            for split in splits() {
                let mut parts = vec![f32::NAN; whole.len()];
                slabs::backward(&CpuExecutor, &task, &split, &mut parts).unwrap();
                let what = format!("{name} {method:?} {split:?}");
                let worst = check_within(&parts, &whole, 4e-5, &what);
                eprintln!(
                    "backprojection {name} {method:?} {} slabs: {worst:.1e}",
                    split.len()
                );
            }
        }
    }
}

/// Perspective-like projection matrices (w > 0 over the grid) for FDK's sampling.
fn voxel_views() -> Vec<VoxelView> {
    (0..4)
        .map(|k| {
            let a = k as f32 * 0.7;
            VoxelView {
                matrix: [
                    a.cos(),
                    a.sin(),
                    0.1,
                    2.0,
                    0.05,
                    0.1,
                    0.9,
                    1.0,
                    0.002 * a.cos(),
                    0.002 * a.sin(),
                    0.0,
                    1.0,
                ],
                scale: 0.5 + k as f32,
                reserved: [0; 3],
            }
        })
        .collect()
}

#[test]
fn fdk_in_slabs_and_on_several_executors_equals_the_whole_volumes_bit_for_bit() {
    let views = voxel_views();
    let filtered = random_volume([views.len(), 26, 30], 3);
    let cancel = Cancel::new();
    let task = FdkTask {
        filtered: filtered.as_slice().unwrap(),
        rows: 26,
        cols: 30,
        views: &views,
        shape: [24, 20, 22],
        slices: 0..24,
        cancel: &cancel,
    };
    let mut whole = vec![0.0f32; 24 * 20 * 22];
    CpuExecutor.fdk_backproject(&task, &mut whole).unwrap();
    assert!(whole.iter().filter(|&&v| v != 0.0).count() > whole.len() / 2);
    for split in splits() {
        let mut parts = vec![f32::NAN; whole.len()];
        slabs::fdk_backproject(&CpuExecutor, &task, &split, &mut parts).unwrap();
        assert_eq!(parts, whole, "{split:?}");
    }
    let three = devices(3);
    let mut shared = vec![f32::NAN; whole.len()];
    three.fdk_backproject(&task, &mut shared).unwrap();
    assert_eq!(shared, whole);
}

fn devices(n: usize) -> Devices {
    Devices::new(
        (0..n)
            .map(|_| Arc::new(CpuExecutor) as Arc<dyn Executor>)
            .collect(),
    )
}

#[test]
fn several_executors_share_a_call_and_give_one_executors_result() {
    let grid = grid();
    let volume = random_volume(grid.shape, 4);
    let cancel = Cancel::new();
    for (name, geometry) in geometries() {
        for method in [Method::Siddon, Method::Joseph] {
            let views_done = std::sync::atomic::AtomicUsize::new(0);
            let count = || {
                views_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            };
            let task = ForwardTask {
                view_done: &count,
                ..forward_task(
                    volume.as_slice().unwrap(),
                    &grid,
                    &geometry,
                    method,
                    &cancel,
                )
            };
            let mut one = vec![0.0f32; geometry.ray_count().unwrap()];
            CpuExecutor.forward(&task, Output::Store, &mut one).unwrap();
            let projections = Array3::from_shape_vec(geometry.shape(), one.clone()).unwrap();
            let back_task = BackwardTask {
                projections: projections.as_slice().unwrap(),
                geometry: &geometry,
                volume_geometry: &grid,
                slices: 0..24,
                method,
                cancel: &cancel,
            };
            let mut back_one = vec![0.0f32; grid.voxel_count().unwrap()];
            CpuExecutor.backward(&back_task, &mut back_one).unwrap();
            for n in [2, 4, 7] {
                views_done.store(0, std::sync::atomic::Ordering::Relaxed);
                let mut shared = vec![f32::NAN; one.len()];
                devices(n)
                    .forward(&task, Output::Store, &mut shared)
                    .unwrap();
                assert_eq!(
                    shared, one,
                    "{name} {method:?} on {n}: forward, bit for bit"
                );
                assert_eq!(
                    views_done.load(std::sync::atomic::Ordering::Relaxed),
                    geometry.views.len(),
                    "one progress call per view"
                );
                let mut back = vec![f32::NAN; back_one.len()];
                devices(n).backward(&back_task, &mut back).unwrap();
                let what = format!("{name} {method:?} on {n}: backward");
                check_within(&back, &back_one, 4e-5, &what);
            }
        }
    }
}

#[test]
fn a_cancelled_call_on_several_executors_stops_with_cancelled() {
    let grid = grid();
    let volume = random_volume(grid.shape, 5);
    let (_, geometry) = geometries().remove(0);
    let cancel = Cancel::new();
    cancel.cancel();
    let task = forward_task(
        volume.as_slice().unwrap(),
        &grid,
        &geometry,
        Method::Siddon,
        &cancel,
    );
    let mut out = vec![0.0f32; geometry.ray_count().unwrap()];
    let result = devices(3).forward(&task, Output::Store, &mut out);
    assert!(matches!(result, Err(crate::Error::Cancelled)), "{result:?}");
}
