//! The CPU backend: rayon over tiles of detector pixels, each pixel's line integral
//! computed by the same `xray-kernels` function the GPU runs.
//!
//! Work is split into tiles of [`TILE_ROWS`] rows x [`TILE_COLS`] columns of one view:
//! neighbouring rays cross neighbouring voxels, so a tile reuses the cache lines its
//! first rays brought in. Tiles are independent (each writes only its own pixels), so
//! there are no races and the result does not depend on the number of threads.

use rayon::prelude::*;
use xray_kernels::{line_integral, DetectorParams, GridParams, Method, ViewParams};

/// Detector rows per tile.
const TILE_ROWS: usize = 8;
/// Detector columns per tile.
const TILE_COLS: usize = 16;

/// Forward-projects `volume` for every view into `out` (`[views, rows, cols]`, already
/// sized by the caller) and calls `view_done` once per finished view.
pub(crate) fn forward(
    volume: &[f32],
    grid: &GridParams,
    views: &[ViewParams],
    detector: &DetectorParams,
    method: Method,
    out: &mut [f32],
    view_done: &(dyn Fn() + Sync),
) {
    debug_assert_eq!(volume.len(), grid.voxel_count());
    let rows = detector.rows as usize;
    let cols = detector.cols as usize;
    debug_assert_eq!(out.len(), views.len() * rows * cols);
    out.par_chunks_mut(rows * cols)
        .zip(views.par_iter())
        .for_each(|(image, view)| {
            image
                .par_chunks_mut(TILE_ROWS * cols)
                .enumerate()
                .for_each(|(band, pixels)| {
                    let first_row = band * TILE_ROWS;
                    let band_rows = pixels.len() / cols;
                    for first_col in (0..cols).step_by(TILE_COLS) {
                        let last_col = (first_col + TILE_COLS).min(cols);
                        for r in 0..band_rows {
                            let row = (first_row + r) as u32;
                            let line = &mut pixels[r * cols..(r + 1) * cols];
                            for (col, value) in
                                line.iter_mut().enumerate().take(last_col).skip(first_col)
                            {
                                *value = line_integral(
                                    method, volume, grid, view, detector, row, col as u32,
                                );
                            }
                        }
                    }
                });
            view_done();
        });
}
