//! Huge grids without the memory: no 32-bit overflow, and no index outside the buffer.
//!
//! ASTRA's CUDA projectors have failed on sizes like these: 3D forward projections of
//! volumes from 2049^3 voxels on were corrupted, presumably by an offset overflowing
//! (astra-toolbox issue #534), and more than 2^14 projection angles failed outright
//! (issue #278). Our kernels keep per-axis indices in `i32` and compute linear indices in
//! `usize`; these tests trace single rays through grids far past `u32` without allocating
//! a voxel: a [`Recording`] volume answers 1.0 for every index, checks the index against
//! the buffer's voxel count and remembers the range of indices read. The grids:
//!
//! * 4096^3 = 2^36 voxels, unit spacing: space diagonals, rays along each axis on the far
//!   faces and edges, rays grazing the top face, rays from sources inside the grid;
//! * slabs of it (slices 4000..4096 and 0..4000), whose buffers are indexed from their
//!   first slice, and whose projections add up to the whole grid's;
//! * 1 x 1 x 2^30 (the host's limit on one axis) and 65536 x 65536 x 1 = 2^32 voxels.
//!
//! For every ray and both methods, [`trace`] checks that every index the forward
//! projection (`line_integral`) reads and every index the adjoint (`backproject_pixel`)
//! adds to is below `grid.voxel_count()`, that the forward value is finite and
//! non-negative, and that the adjoint's weights sum to it times the backprojected value
//! (the adjoint identity for one ray on an all-ones volume, to 1e-5). [`both`] adds the
//! values: Siddon's is the chord through the buffer's box, clipped analytically in f64,
//! to 1e-3 (the walk accumulates f32 rounding over thousands of steps); Joseph's is the
//! chord only where its docs promise it, for rays that cross every slice of their
//! dominant axis with every sample in the uniform grid. The tests then check the highest
//! index reached: the last voxel 2^36 - 1, or the last slice from 2^36 - 2^24 on, which
//! an index truncated to 32 bits could not reach.
//!
//! No ray takes more than about 12,000 steps (the 4096^3 diagonals), so the tests are fast
//! even unoptimised.
#![cfg(target_pointer_width = "64")]

use std::cell::Cell;

use xray_kernels::ray::Ray;
use xray_kernels::{
    backproject_pixel, line_integral, Beam, DetectorParams, GridParams, Method, ViewParams, Voxels,
};

/// Unit voxels along the axes: index space is world space (mm).
const UNIT: [f32; 9] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];

/// Voxels per axis of the big cube.
const N: u32 = 4096;

/// Voxels of the big cube, 4096^3 = 2^36: past `u32` and `i32`.
const CUBE_VOXELS: usize = 1 << 36;

/// Voxels per slice of the big cube, 2^24.
const SLICE: usize = N as usize * N as usize;

/// Buffer index of the first voxel of the cube's last slice (z = 4095), 2^36 - 2^24.
const LAST_SLICE: usize = (N as usize - 1) * SLICE;

/// The value the adjoints backproject (exact in binary, and not 1).
const VALUE: f32 = 1.5;

/// Relative tolerance of the chords: Siddon's walk accumulates f32 rounding in its ray
/// parameter over thousands of steps, Joseph's sample positions theirs.
const CHORD_TOLERANCE: f64 = 1e-3;

/// Relative tolerance of the one-ray adjoint identity.
const ADJOINT_TOLERANCE: f64 = 1e-5;

/// An all-ones volume of `count` voxels that holds none: every read returns 1.0, is
/// counted, and widens the range of indices seen; an index `>= count` panics.
struct Recording {
    /// Voxels of the buffer this volume stands for.
    count: usize,
    /// Reads so far.
    reads: Cell<usize>,
    /// Lowest and highest index read so far (`None` before the first read).
    range: Cell<Option<(usize, usize)>>,
}

impl Recording {
    /// A recording volume for the buffer of `grid` (`grid.voxel_count()` voxels).
    fn for_grid(grid: &GridParams) -> Recording {
        Recording {
            count: grid.voxel_count(),
            reads: Cell::new(0),
            range: Cell::new(None),
        }
    }
}

impl Voxels for Recording {
    fn voxel(&self, index: usize) -> f32 {
        assert!(
            index < self.count,
            "the forward projection read voxel index {index}, past the end of a buffer of \
             {} voxels",
            self.count
        );
        self.reads.set(self.reads.get() + 1);
        self.range.set(Some(widen(self.range.get(), index)));
        1.0
    }
}

/// `range` widened to hold `index`.
fn widen(range: Option<(usize, usize)>, index: usize) -> (usize, usize) {
    match range {
        Some((low, high)) => (low.min(index), high.max(index)),
        None => (index, index),
    }
}

/// A view with a one-pixel detector, whose only ray (row 0, column 0) is the ray a test
/// traces, in voxel-index space.
#[derive(Clone, Copy, Debug)]
struct Pixel {
    view: ViewParams,
    detector: DetectorParams,
}

impl Pixel {
    /// The cone-beam segment from `source` to the pixel centre `target`.
    fn segment(source: [f32; 3], target: [f32; 3]) -> Pixel {
        Pixel::new(source, target, Beam::Cone)
    }

    /// The parallel-beam line through `point` along `direction` (any length).
    fn line(point: [f32; 3], direction: [f32; 3]) -> Pixel {
        Pixel::new(direction, point, Beam::Parallel)
    }

    /// The one-pixel view with the given `ViewParams::source` and detector centre.
    fn new(source: [f32; 3], detector_centre: [f32; 3], beam: Beam) -> Pixel {
        Pixel {
            view: ViewParams {
                source,
                detector_centre,
                // A one-pixel detector's pixel centre is its centre: u and v do not count.
                u: [1.0, 0.0, 0.0],
                v: [0.0, 1.0, 0.0],
            },
            detector: DetectorParams {
                rows: 1,
                cols: 1,
                beam,
            },
        }
    }

    /// The ray the kernels trace for this pixel.
    fn ray(&self) -> Ray {
        Ray::through_pixel(&self.view, &self.detector, 0, 0)
    }
}

/// What one method did with one pixel's ray on an all-ones volume.
#[derive(Debug)]
struct Traced {
    /// The method traced.
    method: Method,
    /// The forward line integral of the all-ones volume.
    forward: f32,
    /// Voxel reads of the forward projection.
    reads: usize,
    /// Lowest and highest buffer index the forward projection read (`None`: no read).
    read_range: Option<(usize, usize)>,
    /// Calls of the adjoint's `add`.
    adds: usize,
    /// Lowest and highest buffer index the adjoint added to (`None`: no call).
    add_range: Option<(usize, usize)>,
}

/// `|measured - expected| / |expected|`, or `|measured|` when `expected` is 0.
fn relative_error(measured: f64, expected: f64) -> f64 {
    if expected == 0.0 {
        measured.abs()
    } else {
        (measured - expected).abs() / expected.abs()
    }
}

/// Traces `pixel`'s ray through `grid` with `method`, forward and adjoint, on an
/// all-ones volume that is never allocated, and checks what holds for every ray: every
/// index inside the buffer, a finite and non-negative forward value, and the adjoint's
/// weights summing to the forward value times [`VALUE`].
fn trace(name: &str, method: Method, grid: &GridParams, pixel: &Pixel) -> Traced {
    let volume = Recording::for_grid(grid);
    let forward = line_integral(method, &volume, grid, &pixel.view, &pixel.detector, 0, 0);
    assert!(
        forward.is_finite() && forward >= 0.0,
        "{name} {method:?}: forward value {forward}"
    );

    let count = grid.voxel_count();
    let mut adds = 0usize;
    let mut add_range = None;
    let mut weights = 0.0f64;
    backproject_pixel(
        method,
        grid,
        &pixel.view,
        &pixel.detector,
        0,
        0,
        VALUE,
        |index, weight| {
            assert!(
                index < count,
                "{name} {method:?}: the adjoint added to voxel index {index}, past the end \
                 of a buffer of {count} voxels"
            );
            assert!(
                weight.is_finite(),
                "{name} {method:?}: weight {weight} for voxel index {index}"
            );
            adds += 1;
            add_range = Some(widen(add_range, index));
            weights += f64::from(weight);
        },
    );
    let expected = f64::from(forward) * f64::from(VALUE);
    let mismatch = relative_error(weights, expected);
    eprintln!(
        "{name} {method:?}: forward {forward} from {} reads in {:?}; adjoint: {adds} adds \
         in {add_range:?}, weights summing to {weights} ({mismatch:.1e} relative from \
         {VALUE} x forward)",
        volume.reads.get(),
        volume.range.get(),
    );
    assert!(
        mismatch <= ADJOINT_TOLERANCE,
        "{name} {method:?}: the adjoint's weights sum to {weights}, but {VALUE} x forward is \
         {expected} ({mismatch:.1e} relative)"
    );
    Traced {
        method,
        forward,
        reads: volume.reads.get(),
        read_range: volume.range.get(),
        adds,
        add_range,
    }
}

/// World length (mm) of the part of `ray` inside the index-space box `lo..hi`, in f64:
/// the segment (or line) clipped against the box analytically, its parameter length
/// scaled by `|M d|`. As in the kernels, a ray parallel to an axis is inside when
/// `lo <= origin < hi` on that axis (the upper faces are outside).
fn chord(grid: &GridParams, ray: &Ray, lo: [f64; 3], hi: [f64; 3]) -> f64 {
    let (mut t_enter, mut t_exit) = (f64::from(ray.t_min), f64::from(ray.t_max));
    for a in 0..3 {
        let o = f64::from(ray.origin[a]);
        let d = f64::from(ray.direction[a]);
        if d == 0.0 {
            if !(lo[a] <= o && o < hi[a]) {
                return 0.0;
            }
        } else {
            let (t_lo, t_hi) = ((lo[a] - o) / d, (hi[a] - o) / d);
            t_enter = t_enter.max(t_lo.min(t_hi));
            t_exit = t_exit.min(t_lo.max(t_hi));
        }
    }
    if t_exit <= t_enter {
        return 0.0;
    }
    let m = grid.index_to_world.map(f64::from);
    let d = ray.direction.map(f64::from);
    let w = [0usize, 1, 2].map(|r| m[3 * r] * d[0] + m[3 * r + 1] * d[1] + m[3 * r + 2] * d[2]);
    (t_exit - t_enter) * (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt()
}

/// The index-space box of the slices `grid`'s buffer holds (the whole grid for a whole
/// volume).
fn buffer_box(grid: &GridParams) -> ([f64; 3], [f64; 3]) {
    (
        [0.0, 0.0, f64::from(grid.z_first)],
        [
            f64::from(grid.nx),
            f64::from(grid.ny),
            f64::from(grid.z_end()),
        ],
    )
}

/// Asserts that `traced`'s forward value is `expected` to [`CHORD_TOLERANCE`] relative,
/// printing the error.
fn assert_chord(name: &str, traced: &Traced, expected: f64) {
    let method = traced.method;
    let error = relative_error(f64::from(traced.forward), expected);
    eprintln!(
        "{name} {method:?}: {} against the chord {expected} (relative error {error:.1e})",
        traced.forward
    );
    assert!(
        error <= CHORD_TOLERANCE,
        "{name} {method:?}: line integral {} of the all-ones volume, but the chord is \
         {expected} (relative error {error:.1e})",
        traced.forward
    );
}

/// What a test may assert of Joseph's value on an all-ones volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JosephValue {
    /// The chord: the ray crosses every slice of its dominant axis and every sample lies
    /// in the uniform grid (at most at the centres of its outer voxels), where the docs
    /// promise `mu * chord`.
    Chord,
    /// Only what [`trace`] checks (rays near the faces, starting inside the grid, or
    /// through a slab, whose bilinear samples also see the zeros around the buffer).
    Sane,
}

/// Traces `pixel` with both methods (see [`trace`]) and checks their values: Siddon's is
/// the chord through the buffer's box, and takes at most `nx + ny + z_count` steps;
/// Joseph's is the chord too where `joseph` says so. Returns (Siddon, Joseph).
fn both(name: &str, grid: &GridParams, pixel: &Pixel, joseph: JosephValue) -> (Traced, Traced) {
    let (lo, hi) = buffer_box(grid);
    let expected = chord(grid, &pixel.ray(), lo, hi);
    let siddon = trace(name, Method::Siddon, grid, pixel);
    assert_chord(name, &siddon, expected);
    // Each pass of the walk moves one index monotonically, or ends the walk.
    let walk_bound = grid.nx as usize + grid.ny as usize + grid.z_count as usize;
    assert!(
        siddon.reads <= walk_bound,
        "{name}: Siddon read {} voxels, more than nx + ny + z_count = {walk_bound}",
        siddon.reads
    );
    let traced = trace(name, Method::Joseph, grid, pixel);
    if joseph == JosephValue::Chord {
        assert_chord(name, &traced, expected);
    }
    (siddon, traced)
}

/// Asserts that the forward projection and the adjoint both reached buffer index
/// `at_least` or beyond.
fn assert_reaches(name: &str, traced: &Traced, at_least: usize) {
    let read = traced.read_range.map(|(_, high)| high);
    let added = traced.add_range.map(|(_, high)| high);
    assert!(
        read >= Some(at_least) && added >= Some(at_least),
        "{name} {:?}: highest index read {read:?}, added to {added:?}; expected at least \
         {at_least}",
        traced.method
    );
}

/// Asserts that the forward projection and the adjoint both touched nothing and gave 0.
fn assert_untouched(name: &str, traced: &Traced) {
    assert_eq!(
        (traced.forward, traced.reads, traced.adds),
        (0.0, 0, 0),
        "{name} {:?}: (forward value, reads, adds)",
        traced.method
    );
}

/// The whole big cube, 4096^3 unit voxels.
fn cube() -> GridParams {
    GridParams::whole(N, N, N, UNIT)
}

/// The cube's top 96 slices, 4000..4096: 4096 * 4096 * 96 voxels in the buffer.
fn top_slab() -> GridParams {
    GridParams {
        z_first: 4000,
        z_count: 96,
        ..cube()
    }
}

/// The cube's other slices, 0..4000: 4000 * 2^24 voxels in the buffer, past `u32`.
fn bottom_slab() -> GridParams {
    GridParams {
        z_first: 0,
        z_count: 4000,
        ..cube()
    }
}

/// The buffer index of voxel `(ix, iy, iz)` of the whole cube.
fn cube_index(voxel: [usize; 3]) -> usize {
    (voxel[2] * N as usize + voxel[1]) * N as usize + voxel[0]
}

/// Corner `i` (bit a set: high on axis a) of the box `[-1, 4097]^3`, one voxel around the
/// cube; corner `7 ^ i` is the opposite one.
fn outer_corner(i: usize) -> [f32; 3] {
    [0usize, 1, 2].map(|a| {
        if (i >> a) & 1 == 1 {
            N as f32 + 1.0
        } else {
            -1.0
        }
    })
}

/// The two axes other than `axis`, in order.
fn other_axes(axis: usize) -> (usize, usize) {
    match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    }
}

/// Rays along index axis `axis` of the cube, with the other two coordinates `(p, q)` (in
/// the order of [`other_axes`]): the segments from one voxel before the cube to one past
/// it, both ways, and the whole lines, both ways.
fn along_axis(axis: usize, p: f32, q: f32) -> [(&'static str, Pixel); 4] {
    let (b, c) = other_axes(axis);
    let mut low = [0.0f32; 3];
    low[b] = p;
    low[c] = q;
    let (mut high, mut middle) = (low, low);
    low[axis] = -1.0;
    high[axis] = N as f32 + 1.0;
    middle[axis] = N as f32 / 2.0;
    let (mut up, mut down) = ([0.0f32; 3], [0.0f32; 3]);
    up[axis] = 1.0;
    down[axis] = -1.0;
    [
        ("segment up", Pixel::segment(low, high)),
        ("segment down", Pixel::segment(high, low)),
        ("line up", Pixel::line(middle, up)),
        ("line down", Pixel::line(middle, down)),
    ]
}

#[test]
fn space_diagonals_of_a_4096_cubed_grid_reach_its_last_slice() {
    let grid = cube();
    assert_eq!(grid.voxel_count(), CUBE_VOXELS);
    for corner in 0..8 {
        let (from, to) = (outer_corner(corner), outer_corner(7 ^ corner));
        let name = format!("diagonal {from:?} -> {to:?}");
        let pixel = Pixel::segment(from, to);
        let (siddon, joseph) = both(&name, &grid, &pixel, JosephValue::Chord);
        // Every space diagonal has an end in the last slice.
        assert_reaches(&name, &siddon, LAST_SLICE);
        assert_reaches(&name, &joseph, LAST_SLICE);
        if corner == 0 || corner == 7 {
            // The main diagonal ends (or starts) in the last voxel, 2^36 - 1.
            assert_reaches(&name, &siddon, CUBE_VOXELS - 1);
            assert_reaches(&name, &joseph, CUBE_VOXELS - 1);
        }
    }
}

#[test]
fn rays_along_each_axis_of_a_4096_cubed_grid_cover_its_far_faces_and_edges() {
    // Cross-section positions (p, q) in the order of `other_axes`, and what Joseph gives.
    let positions: [(f32, f32, JosephValue); 7] = [
        // The far edge: the centres of the voxels on both far faces.
        (4095.5, 4095.5, JosephValue::Chord),
        // The other edges of the far faces.
        (0.5, 4095.5, JosephValue::Chord),
        (4095.5, 0.5, JosephValue::Chord),
        // In the middle of a far face's voxel layer, and on the voxel face below it.
        (2048.5, 4095.5, JosephValue::Chord),
        (2048.5, 4095.0, JosephValue::Chord),
        // Just inside both far faces, where Joseph's samples see the zeros outside.
        (4095.999, 4095.999, JosephValue::Sane),
        // On both lower faces, which are inside.
        (0.0, 0.0, JosephValue::Sane),
    ];
    let grid = cube();
    for axis in 0..3 {
        let (b, c) = other_axes(axis);
        for &(p, q, joseph_value) in &positions {
            // The row of voxels the ray runs along, from its first voxel to its last.
            let mut first = [0usize; 3];
            first[b] = p as usize;
            first[c] = q as usize;
            let mut last = first;
            last[axis] = N as usize - 1;
            let row = Some((cube_index(first), cube_index(last)));
            for (kind, pixel) in along_axis(axis, p, q) {
                let name = format!("along axis {axis} at ({p}, {q}), {kind}");
                let (siddon, joseph) = both(&name, &grid, &pixel, joseph_value);
                assert_eq!(siddon.reads, N as usize, "{name}: one voxel per slice");
                assert_eq!(siddon.read_range, row, "{name}: Siddon's forward voxels");
                assert_eq!(siddon.add_range, row, "{name}: Siddon's adjoint voxels");
                // Joseph's taps include the row's last voxel or lie above it.
                assert_reaches(&name, &joseph, cube_index(last));
            }
        }
    }
}

#[test]
fn rays_on_or_past_the_upper_faces_of_a_4096_cubed_grid_touch_nothing_outside_it() {
    let grid = cube();
    let n = N as f32;
    for axis in 0..3 {
        // On the upper faces: outside for Siddon, in Joseph's half-voxel margin.
        for (p, q) in [(n, 2048.5), (2048.5, n), (n, n)] {
            for (kind, pixel) in along_axis(axis, p, q) {
                let name = format!("along axis {axis} at ({p}, {q}), {kind}");
                let (siddon, _) = both(&name, &grid, &pixel, JosephValue::Sane);
                assert_untouched(&name, &siddon);
            }
        }
        // Past Joseph's margin too: nothing for either method.
        for (p, q) in [(n + 0.75, 2048.5), (2048.5, n + 0.75)] {
            for (kind, pixel) in along_axis(axis, p, q) {
                let name = format!("along axis {axis} at ({p}, {q}), {kind}");
                let (siddon, joseph) = both(&name, &grid, &pixel, JosephValue::Sane);
                assert_untouched(&name, &siddon);
                assert_untouched(&name, &joseph);
            }
        }
    }
}

#[test]
fn near_grazing_rays_cross_the_top_face_of_a_4096_cubed_grid() {
    let grid = cube();
    let rays = [
        (
            "into the top face halfway along x",
            Pixel::segment([-1.0, 2048.5, 4096.5], [4097.0, 2048.5, 4095.5]),
        ),
        (
            "into the top face at a slope of 5e-7",
            Pixel::segment([-1.0, 1000.25, 4096.001], [4097.0, 3000.75, 4095.999]),
        ),
        (
            "out through the top face at a slope of 5e-7",
            Pixel::segment([-1.0, 0.5, 4095.999], [4097.0, 4095.5, 4096.001]),
        ),
        (
            "along y, out through the top face",
            Pixel::segment([1234.5, -1.0, 4095.9], [2345.5, 4097.0, 4096.3]),
        ),
        (
            "a line descending from the top face",
            Pixel::line([2048.0, 2048.5, 4096.0], [1024.0, 0.0, -0.001]),
        ),
    ];
    for (name, pixel) in &rays {
        let (siddon, _) = both(name, &grid, pixel, JosephValue::Sane);
        // All of Siddon's voxels lie in the last slice.
        let low = siddon.read_range.map(|(low, _)| low);
        assert!(
            low >= Some(LAST_SLICE),
            "{name}: Siddon read from index {low:?} on, below the last slice ({LAST_SLICE})"
        );
    }
}

#[test]
fn rays_from_sources_inside_a_4096_cubed_grid_integrate_only_their_segment() {
    let grid = cube();
    let rays = [
        (
            "from inside, out through the top face",
            Pixel::segment([2048.3, 1000.7, 3000.2], [5000.5, -300.25, 4700.75]),
        ),
        (
            "wholly inside",
            Pixel::segment([10.25, 20.5, 4090.75], [4000.5, 3900.25, 30.125]),
        ),
        (
            "from the centre, out near the far corner",
            Pixel::segment([2048.0, 2048.0, 2048.0], [8192.5, 8191.5, 8190.25]),
        ),
        (
            "from the last voxel",
            Pixel::segment([4095.75, 4095.25, 4095.5], [-8000.5, 12.25, 300.75]),
        ),
    ];
    let traced: Vec<_> = rays
        .iter()
        .map(|(name, pixel)| both(name, &grid, pixel, JosephValue::Sane))
        .collect();
    for ((name, _), (siddon, joseph)) in rays.iter().zip(&traced) {
        assert!(
            siddon.forward > 0.0 && joseph.forward > 0.0,
            "{name}: misses"
        );
    }
    // The segment wholly inside integrates its whole length.
    let ray = rays[1].1.ray();
    let d = ray.direction.map(f64::from);
    let length = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
    let (lo, hi) = buffer_box(&grid);
    assert!((chord(&grid, &ray, lo, hi) - length).abs() < 1e-9 * length);
    // Those that reach the last slice reach it with 64-bit indices.
    assert_reaches(rays[2].0, &traced[2].0, LAST_SLICE);
    assert_reaches(rays[2].0, &traced[2].1, LAST_SLICE);
    assert_reaches(rays[3].0, &traced[3].0, CUBE_VOXELS - 1);
}

#[test]
fn a_96_slice_slab_of_a_4096_cubed_grid_is_indexed_within_its_buffer() {
    let grid = top_slab();
    let count = grid.voxel_count();
    assert_eq!(count, 4096 * 4096 * 96);
    // The slab's last slice, z = 4095, starts at buffer index 95 * 2^24.
    let last_slice = 95 * SLICE;

    for corner in 0..8 {
        let (from, to) = (outer_corner(corner), outer_corner(7 ^ corner));
        let name = format!("slab, diagonal {from:?} -> {to:?}");
        let pixel = Pixel::segment(from, to);
        let (siddon, joseph) = both(&name, &grid, &pixel, JosephValue::Sane);
        assert_reaches(&name, &siddon, last_slice);
        assert_reaches(&name, &joseph, last_slice);
        if corner == 0 || corner == 7 {
            assert_reaches(&name, &siddon, count - 1);
        }
    }

    // Along x in the slab's last slice, on its first slice's lower face (inside), and
    // just below that face (outside for Siddon, within a voxel for Joseph).
    let rows = [
        ((4095.5, 4095.5), Some((count - 4096, count - 1))),
        ((2048.5, 4000.0), Some((2048 * 4096, 2048 * 4096 + 4095))),
        ((2048.5, 3999.999), None),
    ];
    for ((p, q), range) in rows {
        for (kind, pixel) in along_axis(0, p, q) {
            let name = format!("slab, along x at (y, z) = ({p}, {q}), {kind}");
            let (siddon, joseph) = both(&name, &grid, &pixel, JosephValue::Sane);
            assert_eq!(siddon.read_range, range, "{name}: Siddon's forward voxels");
            assert_eq!(siddon.add_range, range, "{name}: Siddon's adjoint voxels");
            assert!(joseph.forward > 0.0, "{name}: Joseph misses the slab");
        }
    }

    // Along z through the slab's 96 slices, in the far and the near corner columns.
    let columns = [
        ((4095.5, 4095.5), (4095 * 4096 + 4095, count - 1)),
        ((0.5, 0.5), (0, last_slice)),
    ];
    for ((p, q), range) in columns {
        for (kind, pixel) in along_axis(2, p, q) {
            let name = format!("slab, along z at (x, y) = ({p}, {q}), {kind}");
            let (siddon, _) = both(&name, &grid, &pixel, JosephValue::Sane);
            assert_eq!(siddon.reads, 96, "{name}: one voxel per slice of the slab");
            assert_eq!(siddon.read_range, Some(range), "{name}: Siddon's voxels");
        }
    }

    let rays = [
        (
            "slab, oblique across it",
            Pixel::segment([-1.0, 0.5, 3990.0], [4097.0, 4095.5, 4100.0]),
        ),
        (
            "slab, from a source inside it",
            Pixel::segment([100.5, 200.25, 4050.5], [3000.75, 4000.5, 3900.25]),
        ),
    ];
    for (name, pixel) in &rays {
        let (siddon, joseph) = both(name, &grid, pixel, JosephValue::Sane);
        assert!(
            siddon.forward > 0.0 && joseph.forward > 0.0,
            "{name}: misses"
        );
    }

    // Far below the slab: nothing for either method.
    for (kind, pixel) in along_axis(0, 2048.5, 100.5) {
        let name = format!("slab, along x at z = 100.5, {kind}");
        let (siddon, joseph) = both(&name, &grid, &pixel, JosephValue::Sane);
        assert_untouched(&name, &siddon);
        assert_untouched(&name, &joseph);
    }
}

#[test]
fn two_slabs_of_a_4096_cubed_grid_project_to_the_whole_grid() {
    let (whole, top, bottom) = (cube(), top_slab(), bottom_slab());
    assert!(bottom.voxel_count() > u32::MAX as usize);
    let [up, down, ..] = along_axis(2, 4095.5, 4095.5);
    let rays = [
        (
            "main diagonal",
            Pixel::segment(outer_corner(0), outer_corner(7)),
        ),
        (
            "diagonal down from the top",
            Pixel::segment(outer_corner(6), outer_corner(1)),
        ),
        (
            "oblique across the slab boundary",
            Pixel::segment([-1.0, 0.5, 3990.0], [4097.0, 4095.5, 4100.0]),
        ),
        ("the far corner column, up", up.1),
        ("the far corner column, down", down.1),
        (
            "from a source in the top slab",
            Pixel::segment([100.5, 200.25, 4050.5], [3000.75, 4000.5, 3900.25]),
        ),
    ];
    for (name, pixel) in &rays {
        let (whole_siddon, whole_joseph) = both(name, &whole, pixel, JosephValue::Sane);
        let (top_siddon, top_joseph) = both(name, &top, pixel, JosephValue::Sane);
        let (bottom_siddon, bottom_joseph) = both(name, &bottom, pixel, JosephValue::Sane);
        for (all, parts) in [
            (whole_siddon, [top_siddon, bottom_siddon]),
            (whole_joseph, [top_joseph, bottom_joseph]),
        ] {
            let sum = f64::from(parts[0].forward) + f64::from(parts[1].forward);
            let error = relative_error(sum, f64::from(all.forward));
            eprintln!(
                "{name} {:?}: slabs {} + {} = {sum}, whole {} (relative error {error:.1e})",
                all.method, parts[0].forward, parts[1].forward, all.forward
            );
            assert!(
                error <= CHORD_TOLERANCE,
                "{name} {:?}: the slabs' projections add up to {sum}, the whole's is {}",
                all.method,
                all.forward
            );
        }
    }
}

#[test]
fn a_1_by_1_by_2_pow_30_grid_is_walked_to_its_last_voxel() {
    let nz = 1u32 << 30;
    let grid = GridParams::whole(1, 1, nz, UNIT);
    let count = grid.voxel_count();
    let top = nz as f32;
    // Near 2^30, f32 steps by 64 (128 above): every coordinate here is exact.
    let name = "1 x 1 x 2^30, up through the top 4096 voxels";
    let up = Pixel::segment([0.5, 0.5, top - 4096.0], [0.5, 0.5, top + 1024.0]);
    let (siddon, joseph) = both(name, &grid, &up, JosephValue::Sane);
    assert_reaches(name, &siddon, count - 1);
    assert_reaches(name, &joseph, count - 1);
    let low = siddon.read_range.map(|(low, _)| low);
    assert!(
        low >= Some(count - 4096),
        "{name}: Siddon read from index {low:?} on"
    );

    let name = "1 x 1 x 2^30, across voxel 2^30 - 64";
    let across = Pixel::segment([-1.0, 0.5, top - 64.0], [2.0, 0.5, top - 64.0]);
    let (siddon, _) = both(name, &grid, &across, JosephValue::Chord);
    assert_eq!(siddon.read_range, Some((count - 64, count - 64)), "{name}");
}

#[test]
fn a_65536_by_65536_by_1_grid_is_walked_to_its_last_voxel() {
    let grid = GridParams::whole(65536, 65536, 1, UNIT);
    let count = grid.voxel_count();
    assert_eq!(count, 1 << 32);
    let rays = [
        // About 2048 steps each along x and y (the stride of y is 2^16) into the corner.
        (
            "65536 x 65536 x 1, into the far corner",
            Pixel::segment([63488.25, 63488.75, 0.5], [65540.25, 65540.5, 0.5]),
        ),
        // 2048 steps of 2^16 up the last column.
        (
            "65536 x 65536 x 1, up the last column",
            Pixel::segment([65535.5, 63488.0, 0.5], [65535.5, 65540.0, 0.5]),
        ),
    ];
    for (name, pixel) in &rays {
        let (siddon, joseph) = both(name, &grid, pixel, JosephValue::Sane);
        // The last voxel, (65535, 65535, 0), is u32::MAX.
        assert_reaches(name, &siddon, count - 1);
        assert_reaches(name, &joseph, count - 1);
    }
}
