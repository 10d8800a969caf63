//! One detector pixel's line integral and its transpose: the functions both backends call
//! per ray.

use crate::joseph::{joseph, joseph_adjoint};
use crate::params::{DetectorParams, GridParams, ViewParams};
use crate::ray::Ray;
use crate::siddon::{siddon, siddon_adjoint};
use crate::voxels::Voxels;

/// The ray tracer used for a projection.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Exact path lengths through piecewise-constant voxels.
    Siddon = 0,
    /// One bilinear sample per slice of the dominant axis.
    Joseph = 1,
}

/// The line integral seen by pixel (`row`, `col`) of `view`.
#[inline(always)]
pub fn line_integral<V: Voxels + ?Sized>(
    method: Method,
    volume: &V,
    grid: &GridParams,
    view: &ViewParams,
    detector: &DetectorParams,
    row: u32,
    col: u32,
) -> f32 {
    let ray = Ray::through_pixel(view, detector, row, col);
    match method {
        Method::Siddon => siddon(volume, grid, &ray),
        Method::Joseph => joseph(volume, grid, &ray),
    }
}

/// The transpose of [`line_integral`] for pixel (`row`, `col`) of `view`: calls
/// `add(voxel index, value * weight)` for every voxel weight the forward projection of
/// this pixel uses. Backprojection is this, summed over all pixels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn backproject_pixel<A: FnMut(usize, f32)>(
    method: Method,
    grid: &GridParams,
    view: &ViewParams,
    detector: &DetectorParams,
    row: u32,
    col: u32,
    value: f32,
    add: A,
) {
    let ray = Ray::through_pixel(view, detector, row, col);
    match method {
        Method::Siddon => siddon_adjoint(grid, &ray, value, add),
        Method::Joseph => joseph_adjoint(grid, &ray, value, add),
    }
}
