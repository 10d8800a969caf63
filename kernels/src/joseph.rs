//! Joseph's method ("An improved algorithm for reprojecting rays through pixel images",
//! IEEE TMI 1982), in 3D: the ray is sampled once per slice of its dominant axis (the
//! index axis along which it moves fastest), at the slice's centre plane, with bilinear
//! interpolation in the other two axes and zero outside the grid. Each sample is
//! weighted by the ray's length per slice, `|M d| / |d_main|`.
//!
//! This is the model of ASTRA's GPU projector: smoother than Siddon, and for a ray that
//! crosses the whole grid inside a uniform region it equals `mu * chord` exactly.

use crate::math::{ceil, floor_i32, max, min};
use crate::params::GridParams;
use crate::ray::Ray;
use crate::voxels::Voxels;

/// The grid seen from a ray's dominant axis `a` and its two other axes `b`, `c`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    /// Voxel counts along (a, b, c).
    pub count: [u32; 3],
    /// Linear-index strides along (a, b, c).
    pub stride: [usize; 3],
    /// Ray origin in (a, b, c).
    pub origin: [f32; 3],
    /// Ray direction in (a, b, c); `|direction[0]|` is the largest component.
    pub direction: [f32; 3],
    /// Which of (a, b, c) is the grid's z axis (0 or 2), along which a slab is cut.
    pub z_axis: usize,
}

/// Where a ray's Joseph walk starts: its frame, the slices it samples, and the sample
/// positions in the other two axes.
///
/// [`joseph`] samples slices `k_first..=k_last` of the dominant axis. For slice `k`,
/// with `steps = (k - k_first) as f32`, the sample is at `b = b_first + steps * slope_b`,
/// `c = c_first + steps * slope_c`, interpolated bilinearly with zero outside the grid
/// (the order of operations is that of the private `bilinear`). The samples are summed
/// in slice order and the sum scaled by `length_per_slice`. A host that samples several
/// rays at once (SIMD lanes) must do the same operations to get the same numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JosephStart {
    /// The ray in its dominant-axis frame.
    pub frame: Frame,
    /// First slice sampled.
    pub k_first: i32,
    /// Last slice sampled (`>= k_first`).
    pub k_last: i32,
    /// `b` at slice `k_first`.
    pub b_first: f32,
    /// `c` at slice `k_first`.
    pub c_first: f32,
    /// Change of `b` per slice.
    pub slope_b: f32,
    /// Change of `c` per slice.
    pub slope_c: f32,
    /// The ray's length in mm per slice, `|M d| / |d_main|`.
    pub length_per_slice: f32,
}

#[inline(always)]
fn frame(grid: &GridParams, ray: &Ray) -> Frame {
    let d = ray.direction;
    let o = ray.origin;
    let (ax, ay, az) = (d[0].abs(), d[1].abs(), d[2].abs());
    let (sy, sz) = (grid.nx as usize, grid.nx as usize * grid.ny as usize);
    // Axis order (a, b, c): a is the dominant axis, ties go to the lower axis. Spelled
    // out per case so that nothing is indexed at run time (which would put the arrays
    // in local memory on the GPU).
    if ax >= ay && ax >= az {
        Frame {
            count: [grid.nx, grid.ny, grid.nz],
            stride: [1, sy, sz],
            origin: [o[0], o[1], o[2]],
            direction: [d[0], d[1], d[2]],
            z_axis: 2,
        }
    } else if ay >= az {
        Frame {
            count: [grid.ny, grid.nx, grid.nz],
            stride: [sy, 1, sz],
            origin: [o[1], o[0], o[2]],
            direction: [d[1], d[0], d[2]],
            z_axis: 2,
        }
    } else {
        Frame {
            count: [grid.nz, grid.nx, grid.ny],
            stride: [sz, 1, sy],
            origin: [o[2], o[0], o[1]],
            direction: [d[2], d[0], d[1]],
            z_axis: 0,
        }
    }
}

/// One voxel of a slice, or 0 outside the grid.
#[inline(always)]
fn tap<V: Voxels + ?Sized>(volume: &V, f: &Frame, slice_base: usize, ib: i32, ic: i32) -> f32 {
    if ib >= 0 && (ib as u32) < f.count[1] && ic >= 0 && (ic as u32) < f.count[2] {
        volume.voxel(slice_base + ib as usize * f.stride[1] + ic as usize * f.stride[2])
    } else {
        0.0
    }
}

/// The four bilinear taps around continuous index coordinates `(b, c)` (voxel centres
/// at `i + 0.5`): taps `(ib, ic)` to `(ib + 1, ic + 1)`, fractional weights `wb`, `wc`
/// towards the upper ones. Shared by the forward sample and its transpose so both use
/// the same taps.
struct Taps {
    ib: i32,
    ic: i32,
    wb: f32,
    wc: f32,
}

impl Taps {
    #[inline(always)]
    fn at(b: f32, c: f32) -> Taps {
        let fb = b - 0.5;
        let fc = c - 0.5;
        let ib = floor_i32(fb);
        let ic = floor_i32(fc);
        Taps {
            ib,
            ic,
            wb: fb - ib as f32,
            wc: fc - ic as f32,
        }
    }
}

/// Bilinear interpolation of the slice at `slice_base`, at continuous index-space
/// coordinates `(b, c)` (voxel centres at `i + 0.5`), zero outside the grid.
#[inline(always)]
fn bilinear<V: Voxels + ?Sized>(volume: &V, f: &Frame, slice_base: usize, b: f32, c: f32) -> f32 {
    let Taps { ib, ic, wb, wc } = Taps::at(b, c);
    // `wrapping_add`: far-off coordinates floor to i32::MAX, whose upper tap wraps to a
    // negative index, which the bounds checks refuse (a plain `+ 1` would overflow).
    let (ib1, ic1) = (ib.wrapping_add(1), ic.wrapping_add(1));
    let inside = ib >= 0 && (ib1 as u32) < f.count[1] && ic >= 0 && (ic1 as u32) < f.count[2];
    let (v00, v10, v01, v11) = if inside {
        let base = slice_base + ib as usize * f.stride[1] + ic as usize * f.stride[2];
        (
            volume.voxel(base),
            volume.voxel(base + f.stride[1]),
            volume.voxel(base + f.stride[2]),
            volume.voxel(base + f.stride[1] + f.stride[2]),
        )
    } else {
        (
            tap(volume, f, slice_base, ib, ic),
            tap(volume, f, slice_base, ib1, ic),
            tap(volume, f, slice_base, ib, ic1),
            tap(volume, f, slice_base, ib1, ic1),
        )
    };
    let low = v00 + wb * (v10 - v00);
    let high = v01 + wb * (v11 - v01);
    low + wc * (high - low)
}

/// The line integral of `ray` through the trilinearly-sampled volume, with Joseph's
/// one-sample-per-slice rule. Rays that miss the grid (and its half-voxel interpolation
/// margin) give exactly 0.
#[inline(always)]
pub fn joseph<V: Voxels + ?Sized>(volume: &V, grid: &GridParams, ray: &Ray) -> f32 {
    let Some(start) = joseph_start(grid, ray) else {
        return 0.0;
    };
    let slab = Slab { volume, grid };
    let mut sum = 0.0f32;
    joseph_walk(&start, |f, slice_base, b, c| {
        sum += bilinear(&slab, f, slice_base, b, c)
    });
    sum * start.length_per_slice
}

/// The grid's buffer seen by the whole grid's linear index: voxels outside the slab it
/// holds read as 0, so a slab's samples are the whole volume's with the other slabs'
/// voxels zeroed (and the slabs' projections add up to the whole one's).
struct Slab<'a, V: ?Sized> {
    volume: &'a V,
    grid: &'a GridParams,
}

impl<V: Voxels + ?Sized> Voxels for Slab<'_, V> {
    #[inline(always)]
    fn voxel(&self, index: usize) -> f32 {
        match self.grid.slab_index(index) {
            Some(inside) => self.volume.voxel(inside),
            None => 0.0,
        }
    }
}

/// The transpose of [`joseph`] for one ray: spreads `value` times the ray's length per
/// slice over each sample's four bilinear taps, calling `add(index, weight)` for every
/// tap inside the grid's slab (`add` gets the index in the slab's buffer). Summed over
/// rays, this is the exact adjoint (backprojection) of the forward projection.
#[inline(always)]
pub fn joseph_adjoint<A: FnMut(usize, f32)>(grid: &GridParams, ray: &Ray, value: f32, mut add: A) {
    let Some(start) = joseph_start(grid, ray) else {
        return;
    };
    let weight = value * start.length_per_slice;
    joseph_walk(&start, |f, slice_base, b, c| {
        let Taps { ib, ic, wb, wc } = Taps::at(b, c);
        let mut tap = |db: i32, dc: i32, w: f32| {
            let (jb, jc) = (ib.wrapping_add(db), ic.wrapping_add(dc));
            if jb >= 0 && (jb as u32) < f.count[1] && jc >= 0 && (jc as u32) < f.count[2] {
                let index = slice_base + jb as usize * f.stride[1] + jc as usize * f.stride[2];
                // Only the taps in the slab the buffer holds (all, for a whole volume).
                if let Some(inside) = grid.slab_index(index) {
                    add(inside, weight * w);
                }
            }
        };
        tap(0, 0, (1.0 - wb) * (1.0 - wc));
        tap(1, 0, wb * (1.0 - wc));
        tap(0, 1, (1.0 - wb) * wc);
        tap(1, 1, wb * wc);
    });
}

/// The ray's length in mm per unit step of its dominant index axis, `|M d| / |d_main|`
/// (0 for a zero direction).
#[inline(always)]
fn length_per_slice(grid: &GridParams, ray: &Ray) -> f32 {
    let d = ray.direction;
    let main = max(d[0].abs(), max(d[1].abs(), d[2].abs()));
    if main > 0.0 {
        grid.world_length(d) / main
    } else {
        0.0
    }
}

/// The start of `ray`'s Joseph walk, or `None` when no slice has a sample that can be
/// non-zero.
#[inline(always)]
pub fn joseph_start(grid: &GridParams, ray: &Ray) -> Option<JosephStart> {
    let f = frame(grid, ray);
    let da = f.direction[0];
    if da == 0.0 || f.count[0] == 0 {
        return None;
    }
    // Where samples can be non-zero: a in [0, n_a], b and c within half a voxel of the
    // grid (bilinear support). The box is in the frame's (a, b, c) order.
    let local = Ray {
        origin: f.origin,
        direction: f.direction,
        t_min: ray.t_min,
        t_max: ray.t_max,
    };
    let mut lo = [0.0, -0.5, -0.5];
    let mut hi = [
        f.count[0] as f32,
        f.count[1] as f32 + 0.5,
        f.count[2] as f32 + 0.5,
    ];
    // A slab's buffer: along z, only samples within a voxel of its slices can touch
    // them (half a voxel of support, and half a voxel to spare for rounding). For a
    // whole volume this leaves the box as it is.
    let (z_lo, z_hi) = (grid.z_first as f32 - 1.0, grid.z_end() as f32 + 1.0);
    if f.z_axis == 0 {
        lo[0] = max(lo[0], z_lo);
        hi[0] = min(hi[0], z_hi);
    } else {
        lo[2] = max(lo[2], z_lo);
        hi[2] = min(hi[2], z_hi);
    }
    let (t_enter, t_exit) = local.clip(lo, hi)?;
    // Slices k whose centre plane a = k + 0.5 lies within [a(t_enter), a(t_exit)].
    let a_enter = f.origin[0] + t_enter * da;
    let a_exit = f.origin[0] + t_exit * da;
    let (a_lo, a_hi) = if a_enter < a_exit {
        (a_enter, a_exit)
    } else {
        (a_exit, a_enter)
    };
    let k_first = max(ceil(a_lo - 0.5), 0.0) as i32;
    let k_last = floor_i32(a_hi - 0.5).min(f.count[0] as i32 - 1);
    if k_last < k_first {
        return None;
    }
    let t_first = (k_first as f32 + 0.5 - f.origin[0]) / da;
    Some(JosephStart {
        frame: f,
        k_first,
        k_last,
        b_first: f.origin[1] + t_first * f.direction[1],
        c_first: f.origin[2] + t_first * f.direction[2],
        slope_b: f.direction[1] / da,
        slope_c: f.direction[2] / da,
        length_per_slice: length_per_slice(grid, ray),
    })
}

/// Walks a ray from `start` one slice of its dominant axis at a time, calling
/// `sample(frame, slice_base, b, c)` at each slice's centre plane with the continuous
/// index coordinates `(b, c)` of the other two axes.
#[inline(always)]
fn joseph_walk<F: FnMut(&Frame, usize, f32, f32)>(start: &JosephStart, mut sample: F) {
    let f = start.frame;
    for k in start.k_first..=start.k_last {
        let steps = (k - start.k_first) as f32;
        let b = start.b_first + steps * start.slope_b;
        let c = start.c_first + steps * start.slope_c;
        sample(&f, k as usize * f.stride[0], b, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_off_samples_are_zero_and_do_not_overflow_the_tap_indices() {
        // Coordinates whose floor saturates at i32::MAX (or MIN): the upper taps must
        // wrap to a refused index, not overflow (a panic with overflow checks on, as
        // in `cargo test` without --release).
        let volume = [1.0f32; 8];
        let f = Frame {
            count: [2, 2, 2],
            stride: [4, 2, 1],
            origin: [0.0; 3],
            direction: [1.0, 0.0, 0.0],
            z_axis: 2,
        };
        for (b, c) in [(3e9, 1.0), (1.0, 3e9), (3e9, 3e9), (-3e9, 1.0), (1.0, -3e9)] {
            assert_eq!(bilinear(&volume[..], &f, 0, b, c), 0.0, "({b}, {c})");
        }
        // Inside, the sample is the uniform value.
        assert_eq!(bilinear(&volume[..], &f, 0, 1.0, 1.0), 1.0);
    }
}
