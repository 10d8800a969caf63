//! Helpers shared by the integration tests.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xray_projector::{Beam, ProjectionGeometry, View};

/// Asserts `|got - want| <= abs + rel * |want|` for every element, naming the first
/// failing index and its values.
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f32], abs: f64, rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs();
        assert!(
            err <= abs + rel * (w as f64).abs(),
            "{what}: element {i}: got {g}, want {w} (error {err:.3e} > {abs:.1e} + {rel:.1e} * |want|)"
        );
    }
}

/// Normalised RMS error: `rms(got - want) / rms(want)`.
pub fn nrmse(got: &[f32], want: &[f32]) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum();
    (num / den).sqrt()
}

fn unit(rng: &mut ChaCha8Rng) -> [f64; 3] {
    loop {
        let v: [f64; 3] = [
            rng.random_range(-1.0..1.0),
            rng.random_range(-1.0..1.0),
            rng.random_range(-1.0..1.0),
        ];
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        if n > 0.1 && n <= 1.0 {
            return [v[0] / n, v[1] / n, v[2] / n];
        }
    }
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalise(a: [f64; 3]) -> [f64; 3] {
    let n = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

/// `views` random oblique views looking at `centre` from `distance` mm, with detectors
/// (`rows` x `cols`, square `pixel` mm) tilted at random about the central ray so that
/// rays cross the grid at every angle. Seeded: the same every run.
pub fn random_views(
    seed: u64,
    beam: Beam,
    views: usize,
    centre: [f64; 3],
    distance: f64,
    detector: [usize; 2],
    pixel: f64,
) -> ProjectionGeometry {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let views = (0..views)
        .map(|_| {
            let axis = unit(&mut rng);
            let helper = unit(&mut rng);
            let u = normalise(cross(axis, helper));
            let v = cross(axis, u);
            // Tilt the detector a little off perpendicular, as C-arms do.
            let tilt: f64 = rng.random_range(-0.3..0.3);
            let v = normalise([
                v[0] + tilt * axis[0],
                v[1] + tilt * axis[1],
                v[2] + tilt * axis[2],
            ]);
            let source = [
                centre[0] - distance * axis[0],
                centre[1] - distance * axis[1],
                centre[2] - distance * axis[2],
            ];
            let detector_centre = [
                centre[0] + 0.5 * distance * axis[0],
                centre[1] + 0.5 * distance * axis[1],
                centre[2] + 0.5 * distance * axis[2],
            ];
            View {
                source: match beam {
                    Beam::Cone => source,
                    Beam::Parallel => axis,
                },
                detector: detector_centre,
                u: [u[0] * pixel, u[1] * pixel, u[2] * pixel],
                v: [v[0] * pixel, v[1] * pixel, v[2] * pixel],
            }
        })
        .collect();
    ProjectionGeometry {
        beam,
        rows: detector[0],
        cols: detector[1],
        views,
    }
}

/// `work`'s result when run on a rayon pool of `threads` threads.
pub fn with_threads<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(work)
}

/// A seeded array of values uniform in [0, 1).
pub fn random_array(shape: [usize; 3], seed: u64) -> ndarray::Array3<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ndarray::Array3::from_shape_simple_fn(shape, || rng.random_range(0.0..1.0f32))
}

/// The dot product of two arrays, accumulated in f64.
pub fn dot(a: &ndarray::Array3<f32>, b: &ndarray::Array3<f32>) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}
