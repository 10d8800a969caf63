//! What the lane walkers' tests share: small grids, random segments, and the
//! comparisons with a scalar kernel, forward (bit for bit) and transposed.

use rand::Rng;

use super::LanePath;
use crate::backend::span::Span;
use xray_kernels::ray::Ray;
use xray_kernels::GridParams;

/// An axis-aligned grid of `n` voxels with the given spacing.
pub(crate) fn grid(n: [u32; 3], spacing: [f32; 3]) -> GridParams {
    GridParams {
        nx: n[0],
        ny: n[1],
        nz: n[2],
        z_first: 0,
        z_count: n[2],
        index_to_world: [
            spacing[0], 0.0, 0.0, //
            0.0, spacing[1], 0.0, //
            0.0, 0.0, spacing[2],
        ],
    }
}

/// The segment from `origin` to `origin + direction`.
pub(crate) fn segment(origin: [f32; 3], direction: [f32; 3]) -> Ray {
    Ray {
        origin,
        direction,
        t_min: 0.0,
        t_max: 1.0,
    }
}

/// The segment between two points.
pub(crate) fn between(from: [f32; 3], to: [f32; 3]) -> Ray {
    segment(from, [to[0] - from[0], to[1] - from[1], to[2] - from[2]])
}

/// A random point in and around a 13 x 9 x 17 grid, so that segments between such
/// points miss, start or end inside, and run in every direction.
pub(crate) fn point_around_grid(random: &mut impl Rng) -> [f32; 3] {
    [
        random.random_range(-8.0..21.0f32),
        random.random_range(-8.0..17.0f32),
        random.random_range(-8.0..25.0f32),
    ]
}

/// Checks `trace` (up to a vector's lanes of rays at once) against `scalar` (one ray) for every
/// prefix of `rays`, bit for bit.
pub(crate) fn assert_prefixes_match(
    rays: &[Ray],
    trace: impl Fn(&[Ray], &mut [f32]),
    scalar: impl Fn(&Ray) -> f32,
) {
    for count in 1..=rays.len() {
        let mut out = vec![f32::NAN; count];
        trace(&rays[..count], &mut out);
        for (ray, value) in rays[..count].iter().zip(&out) {
            let want = scalar(ray);
            assert_eq!(
                value.to_bits(),
                want.to_bits(),
                "ray {ray:?}: lanes {value}, scalar {want}"
            );
        }
    }
}

/// `count` rays for a lane group: in even rounds from one source to targets `lane *
/// step` apart (neighbouring rays, which share a frame and cross the same voxels), in
/// odd rounds unrelated segments between random points around the test grid.
pub(crate) fn ray_group(
    random: &mut impl Rng,
    count: usize,
    round: usize,
    step: [f32; 3],
) -> Vec<Ray> {
    let (source, target) = (point_around_grid(random), point_around_grid(random));
    (0..count)
        .map(|lane| {
            if round.is_multiple_of(2) {
                let shift = lane as f32;
                between(source, [0, 1, 2].map(|a| target[a] + shift * step[a]))
            } else {
                between(point_around_grid(random), point_around_grid(random))
            }
        })
        .collect()
}

/// The vector paths this CPU runs, each printed so that a test's output says which ran
/// (none where the CPU has no AVX2: the scalar kernels then run everywhere).
pub(crate) fn vector_paths(test: &str) -> Vec<LanePath> {
    let paths: Vec<LanePath> = [LanePath::Avx2, LanePath::Avx512]
        .into_iter()
        .filter(|path| path.is_supported())
        .collect();
    println!("{test}: vector paths run on this CPU: {paths:?}");
    paths
}

/// Checks a lane scatter (the transpose) against one-ray-at-a-time `scalar` adjoint
/// terms on a volume of `voxels` voxels: each ray alone adds exactly the scalar
/// kernel's terms (bit for bit); all the rays together add within the rounding of
/// reordered sums (the terms of a voxel summed in another order: at most
/// `rays * 2^-23` of their absolute sum); the span returned covers every voxel written.
pub(crate) fn assert_scatter_matches(
    voxels: usize,
    rays: &[Ray],
    values: &[f32],
    scatter: impl Fn(&[Ray], &[f32], &mut [f32]) -> Span,
    scalar: impl Fn(&Ray, f32, &mut dyn FnMut(usize, f32)),
) {
    for (ray, &value) in rays.iter().zip(values) {
        let mut want = vec![0.0f32; voxels];
        scalar(ray, value, &mut |i, w| want[i] += w);
        let mut got = vec![0.0f32; voxels];
        let span = scatter(std::slice::from_ref(ray), &[value], &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "ray {ray:?} voxel {i}: lanes {g}, scalar {w}"
            );
            assert!(
                *g == 0.0 || span.clip(i..i + 1) == (i..i + 1),
                "voxel {i} outside {span:?}"
            );
        }
    }
    let mut sum = vec![0.0f64; voxels];
    let mut magnitude = vec![0.0f64; voxels];
    for (ray, &value) in rays.iter().zip(values) {
        scalar(ray, value, &mut |i, w| {
            sum[i] += f64::from(w);
            magnitude[i] += f64::from(w.abs());
        });
    }
    let mut got = vec![0.0f32; voxels];
    let span = scatter(rays, values, &mut got);
    let bound = rays.len() as f64 * f64::from(f32::EPSILON);
    for i in 0..voxels {
        let error = (f64::from(got[i]) - sum[i]).abs();
        assert!(
            error <= bound * magnitude[i],
            "voxel {i}: lanes {}, exact {}, error {error:e}",
            got[i],
            sum[i]
        );
        assert!(
            got[i] == 0.0 || span.clip(i..i + 1) == (i..i + 1),
            "voxel {i} outside {span:?}"
        );
    }
}
