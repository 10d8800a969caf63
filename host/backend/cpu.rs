//! The CPU backend: rayon over bands of detector pixels, each pixel's line integral (or
//! its transpose) computed by the `xray-kernels` function the GPU runs, or by SIMD
//! lanes that do its operations.
//!
//! The projections run 16 rays at once in SIMD lanes where the CPU has AVX-512, 8 where
//! it has AVX2 ([`super::siddon_lanes`], [`super::joseph_lanes`]; Joseph's transpose 8
//! on both, which measured faster), and FDK's backprojection as many voxels
//! ([`super::fdk_lanes`]). Forward projections and FDK are bit for bit the scalar
//! kernels'; a backprojection adds the same terms, a group's in lane order.
//!
//! Work is split into bands of [`TILE_ROWS`] rows of one view, walked in tiles of
//! [`TILE_COLS`] columns (scalar kernels) or in square blocks of a vector's lanes of
//! pixels (lane walkers): neighbouring rays cross neighbouring voxels, so a tile reuses
//! the cache lines its first rays brought in. The bands of several views run band by
//! band, so that views share the slab of the volume they read (see
//! [`VIEWS_PER_PASS`]). Bands are independent (each writes only its own pixels), so
//! there are no races and the result does not depend on the number of threads.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use xray_kernels::ray::Ray;
use xray_kernels::{
    backproject_pixel, line_integral, DetectorParams, GridParams, Method, ViewParams,
};

use super::fdk_lanes::FdkRows;
use super::joseph_lanes::{JosephAdjointLanes, JosephLanes};
use super::lanes::{LanePath, MAX_LANES};
use super::siddon_lanes::{SiddonAdjointLanes, SiddonLanes};
use super::span::Span;
use crate::alloc::zeroed;
use crate::error::Result;
use crate::executor::FdkTask;

/// Detector rows per tile.
const TILE_ROWS: usize = 8;
/// Detector columns per tile.
const TILE_COLS: usize = 16;

/// Views projected together, band by band: in a circular scan, band `b` of every view
/// crosses about the same slab of the volume, so running the views' band `b` together
/// reads that slab from the cache instead of memory. Progress is reported once per
/// pass.
const VIEWS_PER_PASS: usize = 16;

/// Work units (one band of one view) per thread in each parallel step of a pass: enough
/// to balance the threads, few enough that the step's bands stay one slab.
const UNITS_PER_THREAD: usize = 4;

/// What a caller of [`forward`] watches and controls while it runs.
pub(crate) struct Watch<'a> {
    /// Called once per finished view (from any thread).
    pub view_done: &'a (dyn Fn() + Sync),
    /// Once set, the projection stops between two parallel steps, `out` partly written.
    pub stop: &'a AtomicBool,
}

/// Forward-projects `volume` for every view into `out` (`[views, rows, cols]`, already
/// sized by the caller), reporting and stopping as `watch` says.
///
/// Views go in passes of [`VIEWS_PER_PASS`]. A pass's work units (one band of
/// [`TILE_ROWS`] rows of one view) run band-major, in parallel steps of a few bands
/// (about [`UNITS_PER_THREAD`] units per thread), so the units running at a time read
/// the same slab of the volume. The order of the work does not change any result.
pub(crate) fn forward(
    volume: &[f32],
    grid: &GridParams,
    views: &[ViewParams],
    detector: &DetectorParams,
    method: Method,
    out: &mut [f32],
    watch: &Watch<'_>,
) {
    let path = LanePath::in_use();
    forward_on(path, volume, grid, views, detector, method, out, watch)
}

/// [`forward`] with the lanes of `path` (the scalar kernels where `path` is scalar or
/// the CPU does not run it).
#[allow(clippy::too_many_arguments)]
fn forward_on(
    path: LanePath,
    volume: &[f32],
    grid: &GridParams,
    views: &[ViewParams],
    detector: &DetectorParams,
    method: Method,
    out: &mut [f32],
    watch: &Watch<'_>,
) {
    let Watch { view_done, stop } = *watch;
    debug_assert_eq!(volume.len(), grid.voxel_count());
    let rows = detector.rows as usize;
    let cols = detector.cols as usize;
    debug_assert_eq!(out.len(), views.len() * rows * cols);
    if rows == 0 || cols == 0 {
        views.iter().for_each(|_| view_done());
        return;
    }
    let tracer = BandTracer {
        // A vector's lanes of rays at a time where the CPU allows (same numbers as one
        // at a time).
        lanes: match method {
            Method::Siddon => SiddonLanes::new(volume, grid, path).map(Lanes::Siddon),
            Method::Joseph => JosephLanes::new(volume, grid, path).map(Lanes::Joseph),
        },
        method,
        volume,
        grid,
        detector,
    };
    let bands_per_view = rows.div_ceil(TILE_ROWS);
    for (images, pass_views) in out
        .chunks_mut(VIEWS_PER_PASS * rows * cols)
        .zip(views.chunks(VIEWS_PER_PASS))
    {
        let mut bands_of_each_view: Vec<_> = images
            .chunks_mut(rows * cols)
            .map(|image| image.chunks_mut(TILE_ROWS * cols))
            .collect();
        let mut units = Vec::with_capacity(bands_per_view * pass_views.len());
        for band in 0..bands_per_view {
            for (view, bands) in pass_views.iter().zip(&mut bands_of_each_view) {
                if let Some(pixels) = bands.next() {
                    units.push((band * TILE_ROWS, view, pixels));
                }
            }
        }
        // All threads work on the same few bands at a time, so that they share one
        // slab of the volume in the cache instead of each streaming its own.
        let bands_per_step = (UNITS_PER_THREAD * rayon::current_num_threads())
            .div_ceil(pass_views.len())
            .max(1);
        for step_units in units.chunks_mut(bands_per_step * pass_views.len()) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            step_units
                .par_iter_mut()
                .for_each(|(first_row, view, pixels)| tracer.band(view, *first_row, pixels));
        }
        for _ in pass_views {
            view_done();
        }
    }
}

/// What every work unit of [`forward`] shares: the volume, and the lane walker when
/// the CPU has one.
struct BandTracer<'a> {
    lanes: Option<Lanes<'a>>,
    method: Method,
    volume: &'a [f32],
    grid: &'a GridParams,
    detector: &'a DetectorParams,
}

impl BandTracer<'_> {
    /// Line integrals of the detector rows `first_row..` of `view` into `pixels` (whole
    /// rows): in square blocks ([`block_rows`]) for the lane walkers, tile by tile
    /// for the scalar kernels.
    fn band(&self, view: &ViewParams, first_row: usize, pixels: &mut [f32]) {
        if let Some(lanes) = &self.lanes {
            return trace_in_blocks(lanes, view, self.detector, first_row, pixels);
        }
        let cols = self.detector.cols as usize;
        let band_rows = pixels.len() / cols;
        for first_col in (0..cols).step_by(TILE_COLS) {
            let last_col = (first_col + TILE_COLS).min(cols);
            for r in 0..band_rows {
                let row = (first_row + r) as u32;
                for col in first_col..last_col {
                    pixels[r * cols + col] = line_integral(
                        self.method,
                        self.volume,
                        self.grid,
                        view,
                        self.detector,
                        row,
                        col as u32,
                    );
                }
            }
        }
    }
}

/// A lane walker of either method.
enum Lanes<'a> {
    Siddon(SiddonLanes<'a>),
    Joseph(JosephLanes<'a>),
}

/// Detector rows of the pixel blocks the lane walkers take `lanes` rays at a time in:
/// 4 x 4 pixels for 16 lanes, 2 x 4 for 8. Rays of a square block are closer together
/// than those of a row, so their walks end nearer the same step and read nearer voxels:
/// on fp256 (Zen 4, AVX-512) this made Joseph 5-7% and Siddon 2-3% faster than 16
/// pixels of a row.
fn block_rows(lanes: usize) -> usize {
    if lanes >= 16 {
        4
    } else {
        2
    }
}

/// Line integrals of the band `first_row..` of `view` into `pixels` (whole rows), a
/// block of a vector's lanes of pixels at a time.
fn trace_in_blocks(
    lanes: &Lanes,
    view: &ViewParams,
    detector: &DetectorParams,
    first_row: usize,
    pixels: &mut [f32],
) {
    let width = match lanes {
        Lanes::Siddon(siddon) => siddon.lanes(),
        Lanes::Joseph(joseph) => joseph.lanes(),
    };
    let block_rows = block_rows(width);
    let block_cols = width / block_rows;
    let cols = detector.cols as usize;
    let band_rows = pixels.len() / cols;
    let mut rays = [Ray::through_pixel(view, detector, first_row as u32, 0); MAX_LANES];
    let mut at = [0usize; MAX_LANES];
    let mut values = [0.0f32; MAX_LANES];
    for block_row in (0..band_rows).step_by(block_rows) {
        for block_col in (0..cols).step_by(block_cols) {
            let mut count = 0;
            for r in block_row..(block_row + block_rows).min(band_rows) {
                for col in block_col..(block_col + block_cols).min(cols) {
                    let row = (first_row + r) as u32;
                    rays[count] = Ray::through_pixel(view, detector, row, col as u32);
                    at[count] = r * cols + col;
                    count += 1;
                }
            }
            match lanes {
                Lanes::Siddon(siddon) => siddon.trace(&rays[..count], &mut values[..count]),
                Lanes::Joseph(joseph) => joseph.trace(&rays[..count], &mut values[..count]),
            }
            for (&index, &value) in at[..count].iter().zip(&values) {
                pixels[index] = value;
            }
        }
    }
}

/// Most partial volumes a backprojection uses (see [`backward`]).
const MAX_PARTIAL_VOLUMES: usize = 8;

/// Memory the extra partial volumes of a backprojection may take, in bytes.
const PARTIAL_VOLUME_BUDGET: usize = 2 << 30;

/// Backprojects `projections` (`[views, rows, cols]`) into `out` (the zeroed volume,
/// `[nz, ny, nx]`): the exact transpose of [`forward`].
///
/// Rays that cross the same voxel would race, so the work units (one band of
/// [`TILE_ROWS`] detector rows of one view) are dealt to `K` partial volumes, each
/// filled by one task, and the partials are then summed voxel by voxel in a fixed order.
/// Each partial takes a contiguous run of bands (of every view), whose rays cross one
/// slab of the volume: its pages elsewhere stay untouched (lazily zeroed memory) and the
/// sum skips them. `K` depends only on the problem's size (at most 8, and at most 2 GiB
/// of extra partials), never on the thread count, so the result does not depend on it.
/// Rays run a vector's lanes at a time where the CPU allows ([`SiddonAdjointLanes`],
/// [`JosephAdjointLanes`]): each adds the scalar kernel's terms, but a voxel that rays
/// of one group cross sums them in lane order, so the lane path (16, 8 or 1 rays at a
/// time; Joseph's 8 or 1) moves results by a rounding.
///
/// # Errors
/// [`crate::Error::Allocation`] if the partial volumes cannot be allocated.
pub(crate) fn backward(
    projections: &[f32],
    grid: &GridParams,
    views: &[ViewParams],
    detector: &DetectorParams,
    method: Method,
    out: &mut [f32],
    stop: &AtomicBool,
) -> Result<()> {
    let path = LanePath::in_use();
    backward_on(path, projections, grid, views, detector, method, out, stop)
}

/// [`backward`] with the lanes of `path` (the scalar kernels where `path` is scalar or
/// the CPU does not run it).
#[allow(clippy::too_many_arguments)]
fn backward_on(
    path: LanePath,
    projections: &[f32],
    grid: &GridParams,
    views: &[ViewParams],
    detector: &DetectorParams,
    method: Method,
    out: &mut [f32],
    stop: &AtomicBool,
) -> Result<()> {
    let rows = detector.rows as usize;
    let cols = detector.cols as usize;
    debug_assert_eq!(projections.len(), views.len() * rows * cols);
    debug_assert_eq!(out.len(), grid.voxel_count());
    let bands_per_view = rows.div_ceil(TILE_ROWS);
    let units = views.len() * bands_per_view;
    let volume_bytes = out.len().max(1) * std::mem::size_of::<f32>();
    let partial_count = MAX_PARTIAL_VOLUMES
        .min(units)
        .min(1 + PARTIAL_VOLUME_BUDGET / volume_bytes)
        .max(1);
    // A vector's lanes of rays at a time where the CPU allows.
    let adjoint_lanes = match method {
        Method::Siddon => SiddonAdjointLanes::new(grid, path).map(AdjointLanes::Siddon),
        Method::Joseph => JosephAdjointLanes::new(grid, path).map(AdjointLanes::Joseph),
    };
    // Zeroed lazily by the system: a partial's pages outside its rays' slab are never
    // touched.
    let mut extra = (1..partial_count)
        .map(|_| zeroed(out.len(), "backprojection partial volumes"))
        .collect::<Result<Vec<_>>>()?;
    let view_count = views.len();
    let spans: Vec<Span> = {
        let mut targets: Vec<&mut [f32]> = std::iter::once(&mut *out)
            .chain(extra.iter_mut().map(Vec::as_mut_slice))
            .collect();
        targets
            .par_iter_mut()
            .enumerate()
            .map(|(partial, target)| {
                // The units in band-major order (`order = band * views + view`), dealt in
                // contiguous runs: a partial's rays come from neighbouring detector rows,
                // so they cross (and write) one slab of the volume.
                let mut span = Span::EMPTY;
                let first = units * partial / partial_count;
                let last = units * (partial + 1) / partial_count;
                for order in first..last {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (band, view_index) = (order / view_count, order % view_count);
                    let first_row = band * TILE_ROWS;
                    let view = &views[view_index];
                    for row in first_row..(first_row + TILE_ROWS).min(rows) {
                        let line = &projections[(view_index * rows + row) * cols..][..cols];
                        if let Some(lanes) = &adjoint_lanes {
                            let written =
                                scatter_in_lanes(lanes, view, detector, row as u32, line, target);
                            span = span.union(written);
                            continue;
                        }
                        for (col, &value) in line.iter().enumerate() {
                            if value == 0.0 {
                                continue;
                            }
                            backproject_pixel(
                                method,
                                grid,
                                view,
                                detector,
                                row as u32,
                                col as u32,
                                value,
                                |index, weight| {
                                    target[index] += weight;
                                    span.include(index);
                                },
                            );
                        }
                    }
                }
                span
            })
            .collect()
    };
    if !extra.is_empty() {
        // Each voxel adds the partials in their order; a partial's voxels outside its
        // span are +0.0, and adding +0.0 changes no sum (none is -0.0), so they are
        // skipped.
        const CHUNK: usize = 1 << 16;
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(chunk_index, chunk)| {
                let start = chunk_index * CHUNK;
                for (partial, span) in extra.iter().zip(&spans[1..]) {
                    let range = span.clip(start..start + chunk.len());
                    let here = range.start - start..range.end - start;
                    for (o, p) in chunk[here].iter_mut().zip(&partial[range]) {
                        *o += p;
                    }
                }
            });
    }
    Ok(())
}

/// A transpose lane walker of either method.
enum AdjointLanes<'a> {
    Siddon(SiddonAdjointLanes<'a>),
    Joseph(JosephAdjointLanes<'a>),
}

impl AdjointLanes<'_> {
    /// Rays per call of [`AdjointLanes::scatter`].
    fn lanes(&self) -> usize {
        match self {
            AdjointLanes::Siddon(siddon) => siddon.lanes(),
            AdjointLanes::Joseph(joseph) => joseph.lanes(),
        }
    }

    /// Adds `values[i]` times ray `i`'s weights into `target`; returns what it wrote.
    fn scatter(&self, rays: &[Ray], values: &[f32], target: &mut [f32]) -> Span {
        match self {
            AdjointLanes::Siddon(siddon) => siddon.scatter(rays, values, target),
            AdjointLanes::Joseph(joseph) => joseph.scatter(rays, values, target),
        }
    }
}

/// Backprojects the non-zero pixels of detector row `row` of `view` (`line`) into
/// `target`, a vector's lanes of rays at a time.
fn scatter_in_lanes(
    lanes: &AdjointLanes,
    view: &ViewParams,
    detector: &DetectorParams,
    row: u32,
    line: &[f32],
    target: &mut [f32],
) -> Span {
    let mut span = Span::EMPTY;
    let width = lanes.lanes();
    let mut rays = [Ray::through_pixel(view, detector, row, 0); MAX_LANES];
    let mut values = [0.0f32; MAX_LANES];
    let mut filled = 0;
    for (col, &value) in line.iter().enumerate() {
        // A zero pixel adds nothing (as in the one-ray-at-a-time loop).
        if value == 0.0 {
            continue;
        }
        rays[filled] = Ray::through_pixel(view, detector, row, col as u32);
        values[filled] = value;
        filled += 1;
        if filled == width {
            span = span.union(lanes.scatter(&rays[..width], &values[..width], target));
            filled = 0;
        }
    }
    if filled > 0 {
        span = span.union(lanes.scatter(&rays[..filled], &values[..filled], target));
    }
    span
}

/// FDK's voxel-driven backprojection of `task` into `out` (its slices, `[slices, ny,
/// nx]`, added to): rayon over rows of voxels, each row summing the views in order
/// ([`FdkRows`], in SIMD lanes where the CPU has them), so each voxel adds the same
/// terms in the same order as on the GPU, whatever slab it is computed in.
pub(crate) fn fdk_backproject(task: &FdkTask<'_>, out: &mut [f32]) {
    let [_, ny, nx] = task.shape;
    debug_assert_eq!(
        task.filtered.len(),
        task.views.len() * task.rows * task.cols
    );
    debug_assert_eq!(out.len(), task.slices.len() * ny * nx);
    let first_slice = task.slices.start;
    let stop = task.cancel.flag();
    let fdk_rows = FdkRows::new(
        task.filtered,
        task.rows,
        task.cols,
        task.views,
        LanePath::in_use(),
    );
    out.par_chunks_mut(nx.max(1))
        .enumerate()
        .for_each(|(line, voxels)| {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let (iy, iz) = ((line % ny) as f32, (first_slice + line / ny) as f32);
            fdk_rows.add_row(iy, iz, voxels);
        });
}

#[cfg(test)]
mod tests {
    //! The tiled, lane-parallel forward projection against the per-pixel kernel.

    use xray_kernels::{line_integral, Beam, DetectorParams, GridParams, Method, ViewParams};

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::super::lanes::LanePath;
    use super::{forward, forward_on, Watch, VIEWS_PER_PASS};

    /// An `n`^3 grid of 1 mm x 1 mm x `z_step` mm voxels.
    fn cube(n: u32, z_step: f32) -> GridParams {
        GridParams {
            nx: n,
            ny: n,
            nz: n,
            z_first: 0,
            z_count: n,
            index_to_world: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, z_step],
        }
    }

    /// A cone-beam view of an `n`-voxel cube from `angle`, in index space.
    fn view(n: f32, angle: f32, pixel: f32) -> ViewParams {
        let (s, c) = angle.sin_cos();
        let centre = [n / 2.0, n / 2.0, n / 2.0];
        ViewParams {
            source: [
                centre[0] - 3.0 * n * c,
                centre[1] - 3.0 * n * s,
                centre[2] + 0.3,
            ],
            detector_centre: [centre[0] + 1.5 * n * c, centre[1] + 1.5 * n * s, centre[2]],
            u: [-s * pixel, c * pixel, 0.0],
            v: [0.0, 0.0, pixel],
        }
    }

    #[test]
    fn forward_equals_the_per_pixel_kernel_bit_for_bit() {
        // 208^3 voxels (36 MB) is above the Siddon prefetch threshold; 37 columns leave
        // a partial group of lanes in every tile row, 11 rows a partial band.
        for (n, method) in [
            (208u32, Method::Siddon),
            (24, Method::Siddon),
            (208, Method::Joseph),
            (24, Method::Joseph),
        ] {
            let grid = cube(n, 1.5);
            let volume: Vec<f32> = (0..grid.voxel_count())
                .map(|i| ((i * 7919) % 1009) as f32 / 1009.0)
                .collect();
            let detector = DetectorParams {
                rows: 11,
                cols: 37,
                beam: Beam::Cone,
            };
            // The small volume gets more views than one pass holds, the last pass partial.
            let view_count = if n > 100 { 4 } else { VIEWS_PER_PASS + 3 };
            let views: Vec<ViewParams> = (0..view_count)
                .map(|k| view(n as f32, 0.7 + 2.3 * k as f32, n as f32 / 30.0))
                .collect();
            for path in LanePath::ALL.into_iter().filter(|p| p.is_supported()) {
                println!("{method:?} n={n}: the {path} path");
                let mut out = vec![f32::NAN; views.len() * 11 * 37];
                let views_done = AtomicUsize::new(0);
                let no_stop = AtomicBool::new(false);
                let count_view = || {
                    views_done.fetch_add(1, Ordering::Relaxed);
                };
                let watch = Watch {
                    view_done: &count_view,
                    stop: &no_stop,
                };
                forward_on(
                    path, &volume, &grid, &views, &detector, method, &mut out, &watch,
                );
                assert_eq!(views_done.into_inner(), views.len());
                let mut hits = 0;
                for (k, view) in views.iter().enumerate() {
                    for row in 0..11 {
                        for col in 0..37 {
                            let want = line_integral(
                                method,
                                &volume[..],
                                &grid,
                                view,
                                &detector,
                                row,
                                col,
                            );
                            let got = out[(k * 11 + row as usize) * 37 + col as usize];
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{method:?} {path} n={n} view {k} ({row}, {col})"
                            );
                            hits += usize::from(want > 0.0);
                        }
                    }
                }
                assert!(
                    hits > views.len() * 11 * 37 / 2,
                    "most rays must cross the volume"
                );
            }
        }
    }

    #[test]
    fn backward_is_the_same_for_any_thread_count_and_within_a_rounding_on_any_path() {
        let n = 40u32;
        let grid = cube(n, 1.2);
        let detector = DetectorParams {
            rows: 21,
            cols: 19,
            beam: Beam::Cone,
        };
        let views: Vec<ViewParams> = (0..5)
            .map(|k| view(n as f32, 0.3 + 1.1 * k as f32, n as f32 / 15.0))
            .collect();
        let projections: Vec<f32> = (0..views.len() * 21 * 19)
            .map(|i| {
                if i % 7 == 0 {
                    0.0
                } else {
                    ((i * 37) % 101) as f32 / 50.0 - 0.5
                }
            })
            .collect();
        let no_stop = AtomicBool::new(false);
        let run = |path: LanePath, method: Method, threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0.0f32; grid.voxel_count()];
            pool.install(|| {
                super::backward_on(
                    path,
                    &projections,
                    &grid,
                    &views,
                    &detector,
                    method,
                    &mut out,
                    &no_stop,
                )
            })
            .unwrap();
            out
        };
        for method in [Method::Siddon, Method::Joseph] {
            let scalar = run(LanePath::Scalar, method, 1);
            let scale = scalar.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.1, "{method:?}: the rays must cross the volume");
            for path in LanePath::ALL.into_iter().filter(|p| p.is_supported()) {
                let one = run(path, method, 1);
                let three = run(path, method, 3);
                assert!(
                    one.iter()
                        .zip(&three)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{method:?} {path}: 1 and 3 threads must agree bit for bit"
                );
                // The same terms summed in another order: within a few roundings of the
                // largest voxel (a voxel sums at most a few hundred terms).
                let worst = one
                    .iter()
                    .zip(&scalar)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                println!("{method:?} {path}: max |lanes - scalar| = {worst:e} of {scale}");
                assert!(
                    worst <= 1e-5 * scale,
                    "{method:?} {path}: {worst:e} of {scale}"
                );
            }
        }
    }

    #[test]
    fn a_set_stop_flag_stops_each_loop_before_its_work() {
        let n = 12u32;
        let grid = cube(n, 1.0);
        let detector = DetectorParams {
            rows: 9,
            cols: 9,
            beam: Beam::Cone,
        };
        let views: Vec<ViewParams> = (0..3).map(|k| view(n as f32, k as f32, 1.5)).collect();
        let volume = vec![1.0f32; (n * n * n) as usize];
        let stopped = AtomicBool::new(true);
        let going = AtomicBool::new(false);
        for method in [Method::Siddon, Method::Joseph] {
            for (stop, expect_work) in [(&stopped, false), (&going, true)] {
                let mut out = vec![0.0f32; views.len() * 81];
                let watch = Watch {
                    view_done: &|| {},
                    stop,
                };
                forward(&volume, &grid, &views, &detector, method, &mut out, &watch);
                assert_eq!(out.iter().any(|&p| p != 0.0), expect_work, "forward");
                let projections = vec![1.0f32; views.len() * 81];
                let mut back = vec![0.0f32; volume.len()];
                super::backward(
                    &projections,
                    &grid,
                    &views,
                    &detector,
                    method,
                    &mut back,
                    stop,
                )
                .expect("small partial volumes");
                assert_eq!(back.iter().any(|&x| x != 0.0), expect_work, "backward");
            }
        }
    }
}
