//! PTX entry points (compiled only for `nvptx64-nvidia-cuda`).
//!
//! Launch shape of the projectors: a 3D grid, x over detector columns, y over rows, z
//! over views; one thread computes one pixel. FDK's backprojection: x over voxel
//! columns, y over voxel rows, z over slices; one thread computes one voxel. Arguments are device pointers and plain scalars (no
//! structs by value: rustc's PTX ABI for those is young, rust-lang/rust#117271).
//!
//! Forward kernels write one value per pixel. Backprojection kernels are ray-driven too:
//! each thread walks its pixel's ray and adds `value * weight` into the voxels it
//! crosses with `red.global.add.f32` (atomic, so rays that share voxels do not race; the
//! order of the adds, and so the last bits of the result, can vary between runs).
//!
//! # Safety contract (upheld by the host's launch wrapper)
//!
//! * `volume` points to `grid.voxel_count()` (`nx * ny * z_count`) `f32`s: readable for the forward
//!   kernels, writable (and zeroed by the host) for the backprojection kernels.
//! * `grid` points to one [`GridParams`]; `views` to `n_views` [`ViewParams`].
//! * `out` (forward) points to `n_views * rows * cols` writable `f32`s and
//!   `projections` (backprojection) to as many readable ones, not aliased by the other
//!   buffers.
//! * Vector kernels (1D grid-stride loops over `n` elements, any launch size; the dot
//!   product's launch has exactly `DOT_PARTIALS` threads): every pointer points to `n`
//!   `f32`s (`partials` to `DOT_PARTIALS`), written ones not aliased by read ones.
//! * FDK: `projections` points to `n_views * rows * cols` readable `f32`s, `views` to
//!   `n_views` [`VoxelView`]s, `volume` to `nx * ny * nz` writable `f32`s (added to):
//!   the slab of slices `first_slice..first_slice + nz` of the grid the views were made
//!   for.

use core::arch::nvptx::{
    _block_dim_x, _block_dim_y, _block_idx_x, _block_idx_y, _block_idx_z, _grid_dim_x,
    _thread_idx_x, _thread_idx_y,
};

use crate::fdk::{fdk_voxel, VoxelView};
use crate::params::{Beam, DetectorParams, GridParams, ViewParams};
use crate::pixel::{backproject_pixel, line_integral, Method};
use crate::vector::{self, Compensated};
use crate::voxels::Voxels;

/// A read-only `f32` array in device memory: the volume of the projectors, the filtered
/// projections of FDK. Reads are unchecked: the traversals only pass indices below
/// `voxel_count()` (see [`Voxels`]), FDK only indices inside its view's image, and the
/// host sized the buffers to match.
///
/// Reads go through the read-only (non-coherent) data cache, `ld.global.nc`: the array
/// does not change during a launch, and neighbouring threads of a block read
/// neighbouring elements. rustc cannot prove the pointer read-only and `noalias`, so it would not choose
/// that load by itself.
struct ReadOnly(*const f32);

impl Voxels for ReadOnly {
    #[inline(always)]
    fn voxel(&self, index: usize) -> f32 {
        let value: f32;
        // SAFETY: index < voxel_count() by the traversal's contract; the buffer holds
        // voxel_count() elements by the launch contract above, and nothing writes it
        // during the launch (`out` does not alias it), as `.nc` requires.
        unsafe {
            core::arch::asm!(
                "ld.global.nc.f32 {value}, [{address}];",
                value = out(reg32) value,
                address = in(reg64) self.0.add(index),
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        value
    }
}

/// The detector pixel of the calling thread (launch shape in the module docs).
struct ThreadPixel {
    view: u32,
    row: u32,
    col: u32,
    /// Index of the pixel in the `[views, rows, cols]` array.
    linear: usize,
}

impl ThreadPixel {
    /// `None` for the threads of edge blocks that lie outside the detector.
    #[inline(always)]
    fn of_this_thread(n_views: u32, rows: u32, cols: u32) -> Option<ThreadPixel> {
        // SAFETY: these read the thread's special registers, valid in any kernel.
        let (col, row, view) = unsafe {
            (
                _block_idx_x() as u32 * _block_dim_x() as u32 + _thread_idx_x() as u32,
                _block_idx_y() as u32 * _block_dim_y() as u32 + _thread_idx_y() as u32,
                _block_idx_z() as u32,
            )
        };
        if col >= cols || row >= rows || view >= n_views {
            return None;
        }
        let linear = (view as usize * rows as usize + row as usize) * cols as usize + col as usize;
        Some(ThreadPixel {
            view,
            row,
            col,
            linear,
        })
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn forward(
    method: Method,
    volume: *const f32,
    grid: *const GridParams,
    views: *const ViewParams,
    n_views: u32,
    rows: u32,
    cols: u32,
    beam: u32,
    out: *mut f32,
) {
    let Some(pixel) = ThreadPixel::of_this_thread(n_views, rows, cols) else {
        return;
    };
    let (view, row, col) = (pixel.view, pixel.row, pixel.col);
    let detector = DetectorParams {
        rows,
        cols,
        beam: Beam::from_u32(beam),
    };
    let grid = &*grid;
    let view_params = &*views.add(view as usize);
    let value = line_integral(
        method,
        &ReadOnly(volume),
        grid,
        view_params,
        &detector,
        row,
        col,
    );
    *out.add(pixel.linear) = value;
}

/// Forward projection, Siddon's method. See the module docs for the launch shape and
/// the safety contract.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_forward_siddon(
    volume: *const f32,
    grid: *const GridParams,
    views: *const ViewParams,
    n_views: u32,
    rows: u32,
    cols: u32,
    beam: u32,
    out: *mut f32,
) {
    forward(
        Method::Siddon,
        volume,
        grid,
        views,
        n_views,
        rows,
        cols,
        beam,
        out,
    )
}

/// Forward projection, Joseph's method. See the module docs for the launch shape and
/// the safety contract.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_forward_joseph(
    volume: *const f32,
    grid: *const GridParams,
    views: *const ViewParams,
    n_views: u32,
    rows: u32,
    cols: u32,
    beam: u32,
    out: *mut f32,
) {
    forward(
        Method::Joseph,
        volume,
        grid,
        views,
        n_views,
        rows,
        cols,
        beam,
        out,
    )
}

/// Adds `value` to the `f32` at `address`, atomically (`red`: no result is returned).
///
/// # Safety
/// `address` must be a valid, aligned global-memory `f32`.
#[inline(always)]
unsafe fn atomic_add(address: *mut f32, value: f32) {
    core::arch::asm!(
        "red.global.add.f32 [{address}], {value};",
        address = in(reg64) address,
        value = in(reg32) value,
        options(nostack, preserves_flags),
    );
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn backward(
    method: Method,
    projections: *const f32,
    grid: *const GridParams,
    views: *const ViewParams,
    n_views: u32,
    rows: u32,
    cols: u32,
    beam: u32,
    volume: *mut f32,
) {
    let Some(pixel) = ThreadPixel::of_this_thread(n_views, rows, cols) else {
        return;
    };
    let (view, row, col) = (pixel.view, pixel.row, pixel.col);
    let value = *projections.add(pixel.linear);
    if value == 0.0 {
        return;
    }
    let detector = DetectorParams {
        rows,
        cols,
        beam: Beam::from_u32(beam),
    };
    backproject_pixel(
        method,
        &*grid,
        &*views.add(view as usize),
        &detector,
        row,
        col,
        value,
        // SAFETY: the traversals pass indices below voxel_count() (see `Voxels`), and
        // the volume holds voxel_count() f32s by the launch contract.
        |index, weight| unsafe { atomic_add(volume.add(index), weight) },
    );
}

/// Backprojection, transpose of Siddon's method. Same launch shape as the forward
/// kernels; `volume` must be zeroed first. See the module docs for the contract.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_backward_siddon(
    projections: *const f32,
    grid: *const GridParams,
    views: *const ViewParams,
    n_views: u32,
    rows: u32,
    cols: u32,
    beam: u32,
    volume: *mut f32,
) {
    backward(
        Method::Siddon,
        projections,
        grid,
        views,
        n_views,
        rows,
        cols,
        beam,
        volume,
    )
}

/// Backprojection, transpose of Joseph's method. Same launch shape as the forward
/// kernels; `volume` must be zeroed first. See the module docs for the contract.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_backward_joseph(
    projections: *const f32,
    grid: *const GridParams,
    views: *const ViewParams,
    n_views: u32,
    rows: u32,
    cols: u32,
    beam: u32,
    volume: *mut f32,
) {
    backward(
        Method::Joseph,
        projections,
        grid,
        views,
        n_views,
        rows,
        cols,
        beam,
        volume,
    )
}

/// FDK's voxel-driven backprojection: each thread adds the weighted, interpolated sum
/// over all views to its voxel (so batches of views can be added in turn). `volume` is
/// the slab of `nz` slices starting at slice `first_slice` of the grid (so that a
/// volume split into slabs gets the same numbers as a whole one). See the module docs
/// for the launch shape and the contract.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "ptx-kernel" fn xray_fdk_backproject(
    projections: *const f32,
    views: *const VoxelView,
    n_views: u32,
    rows: u32,
    cols: u32,
    nx: u32,
    ny: u32,
    nz: u32,
    first_slice: u32,
    volume: *mut f32,
) {
    // SAFETY: these read the thread's special registers, valid in any kernel.
    let (ix, iy, iz) = unsafe {
        (
            _block_idx_x() as u32 * _block_dim_x() as u32 + _thread_idx_x() as u32,
            _block_idx_y() as u32 * _block_dim_y() as u32 + _thread_idx_y() as u32,
            _block_idx_z() as u32,
        )
    };
    if ix >= nx || iy >= ny || iz >= nz {
        return;
    }
    // SAFETY: `views` holds `n_views` records by the launch contract.
    let views = unsafe { core::slice::from_raw_parts(views, n_views as usize) };
    let value = fdk_voxel(
        &ReadOnly(projections),
        rows,
        cols,
        views,
        ix,
        iy,
        first_slice.wrapping_add(iz),
    );
    let index = (iz as usize * ny as usize + iy as usize) * nx as usize + ix as usize;
    // SAFETY: index < nx * ny * nz, the volume's length by the launch contract.
    unsafe { *volume.add(index) += value };
}

/// This thread's first element and the grid's stride, for the vector kernels' loops.
#[inline(always)]
fn grid_stride() -> (u64, u64) {
    // SAFETY: these read the thread's special registers, valid in any kernel.
    unsafe {
        let first = _block_idx_x() as u64 * _block_dim_x() as u64 + _thread_idx_x() as u64;
        (first, _grid_dim_x() as u64 * _block_dim_x() as u64)
    }
}

/// Applies `step(i)` to this thread's elements `i < n`.
#[inline(always)]
fn for_each_element(n: u64, mut step: impl FnMut(usize)) {
    let (mut i, stride) = grid_stride();
    while i < n {
        step(i as usize);
        i += stride;
    }
}

/// `x[i] = value`.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_vec_fill(n: u64, value: f32, x: *mut f32) {
    // SAFETY (all vector kernels): i < n, the arrays' length by the launch contract.
    for_each_element(n, |i| unsafe { *x.add(i) = value });
}

/// `y[i] = y[i] + alpha x[i]`.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_vec_axpy(n: u64, alpha: f32, x: *const f32, y: *mut f32) {
    for_each_element(n, |i| unsafe {
        *y.add(i) = vector::axpy(alpha, *x.add(i), *y.add(i))
    });
}

/// `y[i] = x[i] + beta y[i]`.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_vec_xpby(n: u64, x: *const f32, beta: f32, y: *mut f32) {
    for_each_element(n, |i| unsafe {
        *y.add(i) = vector::xpby(*x.add(i), beta, *y.add(i))
    });
}

/// `r[i] = b[i] - r[i]`.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_vec_residual(n: u64, b: *const f32, r: *mut f32) {
    for_each_element(n, |i| unsafe {
        *r.add(i) = vector::residual(*b.add(i), *r.add(i))
    });
}

/// `r[i] = r[i] w[i]`.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_vec_mul(n: u64, w: *const f32, r: *mut f32) {
    for_each_element(n, |i| unsafe { *r.add(i) *= *w.add(i) });
}

/// `s[i] = weight(s[i], scale)`.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_vec_weights(n: u64, scale: f32, s: *mut f32) {
    for_each_element(n, |i| unsafe {
        *s.add(i) = vector::weight(*s.add(i), scale)
    });
}

/// `x[i] = sirt_step(x[i], c[i], u[i], nonnegative != 0)`.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_vec_sirt_step(
    n: u64,
    c: *const f32,
    u: *const f32,
    nonnegative: u32,
    x: *mut f32,
) {
    let nonnegative = nonnegative != 0;
    for_each_element(n, |i| unsafe {
        *x.add(i) = vector::sirt_step(*x.add(i), *c.add(i), *u.add(i), nonnegative)
    });
}

/// `x[i] = max(x[i], 0)`.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_vec_clip(n: u64, x: *mut f32) {
    for_each_element(n, |i| unsafe { *x.add(i) = vector::clip(*x.add(i)) });
}

/// `partials[t]` = the compensated sum of `x[i] y[i]` over this thread's elements
/// (launched with exactly `DOT_PARTIALS` threads, so `t` covers `0..DOT_PARTIALS`).
#[no_mangle]
pub unsafe extern "ptx-kernel" fn xray_vec_dot_partials(
    n: u64,
    x: *const f32,
    y: *const f32,
    partials: *mut f32,
) {
    let (first, _) = grid_stride();
    let mut sum = Compensated::default();
    let mut i = first;
    while i < n {
        // SAFETY: i < n, the arrays' length by the launch contract.
        unsafe { sum.add(*x.add(i as usize) * *y.add(i as usize)) };
        i += vector::DOT_PARTIALS as u64;
    }
    if (first as usize) < vector::DOT_PARTIALS {
        // SAFETY: first < DOT_PARTIALS, the length of `partials`.
        unsafe { *partials.add(first as usize) = sum.value() };
    }
}
