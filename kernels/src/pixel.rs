//! One detector pixel's line integral: the single function both backends call per ray.

use crate::joseph::joseph;
use crate::params::{DetectorParams, GridParams, ViewParams};
use crate::ray::Ray;
use crate::siddon::siddon;
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
