//! What the lane walkers' tests share: small grids, random segments, and the
//! bit-for-bit comparison with a scalar kernel.

use rand::Rng;

use super::LanePath;
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
