//! Siddon's walk for a vector's lanes of rays at once (8 with AVX2, 16 with AVX-512):
//! the CPU's fast path for Siddon's forward projection and its transpose on x86-64.
//!
//! One ray's walk is a chain of dependent steps with an unpredictable branch (which axis
//! the ray crosses next), so a scalar core spends most of its time waiting on that chain
//! and on mispredicted branches. Here neighbouring rays walk in lockstep: each step
//! picks every lane's next axis with compare masks instead of branches, and reads the
//! lanes' voxels with one gather (the instruction or scalar loads, as
//! [`Gather::in_use`] says for this CPU). Each lane stops at the first crossing that
//! reaches its exit or would take it out of the grid (one compare a step, against a
//! bound worked out before the walk); the loop ends when all have. For volumes larger
//! than a cache, each lane also prefetches about the voxel it will reach a few dozen
//! steps later.
//!
//! The walk is written once, over [`Simd`]; [`SiddonLanes::trace`] runs it compiled for
//! the chosen [`LanePath`]. Every lane starts where `xray_kernels::siddon::walk_start`
//! says (computed in the lanes with its operations, in its order) and does the same
//! `f32` operations in the same order as
//! `xray_kernels::siddon::siddon` (the function the GPU kernel runs), only leaving out
//! the zero-length steps the scalar kernel may take after a crossing tied with the one
//! that leaves the grid (terms `mu * 0`, which change no sum), so the line integrals
//! are bit for bit the scalar kernel's on every path. The transpose adds each ray's
//! terms as `siddon_adjoint` does (less those zero terms), the rays of a group
//! interleaved step by step (so a voxel two of them cross sums their terms in another
//! order than one ray at a time). Rays so close to an axis that their first crossing on
//! it is not a finite number go to the scalar kernels. The unit tests below, and those
//! of [`super::cpu`], check all of this.

use xray_kernels::ray::Ray;
use xray_kernels::siddon::siddon_adjoint;
#[cfg(all(test, target_arch = "x86_64"))]
use xray_kernels::siddon::WalkStart;
use xray_kernels::GridParams;

#[cfg(target_arch = "x86_64")]
use super::lanes::{gather, prefetch, scatter_add, SpanLanes};
use super::lanes::{Gather, LanePath, Simd, MAX_LANES};
use super::span::Span;
#[cfg(target_arch = "x86_64")]
use std::sync::OnceLock;

/// The lockstep walker for one volume: it exists only when the lane path is a vector
/// one, the volume's linear indices fit in the `i32` lanes and its sides are under
/// 2^24 voxels.
#[derive(Clone, Copy)]
pub(crate) struct SiddonLanes<'a> {
    volume: &'a [f32],
    grid: &'a GridParams,
    path: LanePath,
    /// Whether to prefetch ahead of each lane: only for volumes larger than
    /// [`PREFETCH_ABOVE_BYTES`], which a cache does not hold.
    prefetch: bool,
    /// How the lanes read their voxels.
    gather: Gather,
}

/// Whether every side of `grid` is under 2^24 voxels, so that the walk's per-axis
/// crossing counts, kept as `f32`, are exact whole numbers.
fn sides_fit(grid: &GridParams) -> bool {
    grid.nx.max(grid.ny).max(grid.nz) < 1 << 24
}

/// Volumes larger than this (bytes) are walked with software prefetching. Smaller ones
/// stay in the last-level cache, where the prefetches cost more than they save.
const PREFETCH_ABOVE_BYTES: usize = 32 << 20;

impl<'a> SiddonLanes<'a> {
    /// The walker for `volume` on `grid` on `path`, or `None` when `path` is scalar or
    /// this CPU does not run it, the volume has `2^31` voxels or more or none, or a side
    /// of `2^24` voxels or more, or `volume` does not hold exactly the whole grid's
    /// voxels (a slab of it goes one ray at a time).
    pub(crate) fn new(volume: &'a [f32], grid: &'a GridParams, path: LanePath) -> Option<Self> {
        let fits = grid.is_whole()
            && volume.len() == grid.voxel_count()
            && !volume.is_empty()
            && volume.len() <= i32::MAX as usize
            && sides_fit(grid);
        let prefetch = std::mem::size_of_val(volume) > PREFETCH_ABOVE_BYTES;
        let vector = path != LanePath::Scalar && path.is_supported();
        (fits && vector).then_some(SiddonLanes {
            volume,
            grid,
            path,
            prefetch,
            gather: Gather::in_use(),
        })
    }

    /// The same walker with prefetching forced on or off (the tests run both paths).
    #[cfg(test)]
    fn with_prefetch(self, prefetch: bool) -> Self {
        SiddonLanes { prefetch, ..self }
    }

    /// The same walker reading its voxels the way `gather` says (the tests run both).
    #[cfg(test)]
    fn with_gather(self, gather: Gather) -> Self {
        SiddonLanes { gather, ..self }
    }

    /// Rays per call of [`SiddonLanes::trace`].
    pub(crate) fn lanes(&self) -> usize {
        self.path.lanes()
    }

    /// Writes the line integral of `rays[i]` to `out[i]`, for up to
    /// [`SiddonLanes::lanes`] rays: exactly what `xray_kernels::siddon::siddon` gives
    /// for each.
    pub(crate) fn trace(&self, rays: &[Ray], out: &mut [f32]) {
        debug_assert_eq!(rays.len(), out.len());
        if rays.len() > self.lanes() {
            for (rays, out) in rays.chunks(self.lanes()).zip(out.chunks_mut(self.lanes())) {
                self.trace(rays, out);
            }
            return;
        }
        let (volume, grid) = (self.volume, self.grid);
        // The way of reading is a constant of each compiled walk, not a branch per step
        // (which cost 2-3 % on the Zen 4 measured).
        let loads = self.gather == Gather::Loads;
        // SAFETY: `new` checked that the CPU runs `path` (a vector path), that `volume`
        // holds exactly the grid's voxels (at least one), and that their count fits in
        // `i32`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            let walk = match (self.path, self.prefetch, loads) {
                (LanePath::Avx512, true, true) => integrate_avx512::<true, true>,
                (LanePath::Avx512, true, false) => integrate_avx512::<true, false>,
                (LanePath::Avx512, false, true) => integrate_avx512::<false, true>,
                (LanePath::Avx512, false, false) => integrate_avx512::<false, false>,
                (_, true, true) => integrate_avx2::<true, true>,
                (_, true, false) => integrate_avx2::<true, false>,
                (_, false, true) => integrate_avx2::<false, true>,
                (_, false, false) => integrate_avx2::<false, false>,
            };
            walk(volume, grid, rays, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        for (ray, value) in rays.iter().zip(out) {
            *value = xray_kernels::siddon::siddon(volume, grid, ray);
        }
    }
}

/// The lockstep walker of the transpose (backprojection) on one grid: it exists only
/// when the lane path is a vector one, the grid's linear indices fit in the `i32` lanes
/// and its sides are under 2^24 voxels.
#[derive(Clone, Copy)]
pub(crate) struct SiddonAdjointLanes<'a> {
    grid: &'a GridParams,
    path: LanePath,
    /// As [`SiddonLanes`]'s, for the volume written.
    prefetch: bool,
}

impl<'a> SiddonAdjointLanes<'a> {
    /// The walker for volumes of the whole `grid` on `path`, or `None` when `path` is
    /// scalar or this CPU does not run it, or the grid is a slab, empty, or has `2^31`
    /// voxels or more or a side of `2^24` voxels or more.
    pub(crate) fn new(grid: &'a GridParams, path: LanePath) -> Option<Self> {
        let voxels = grid.voxel_count();
        let fits = grid.is_whole() && voxels > 0 && voxels <= i32::MAX as usize && sides_fit(grid);
        let vector = path != LanePath::Scalar && path.is_supported();
        let prefetch = voxels.saturating_mul(std::mem::size_of::<f32>()) > PREFETCH_ABOVE_BYTES;
        (fits && vector).then_some(SiddonAdjointLanes {
            grid,
            path,
            prefetch,
        })
    }

    /// The same walker with prefetching forced on or off (the tests run both paths).
    #[cfg(test)]
    fn with_prefetch(self, prefetch: bool) -> Self {
        SiddonAdjointLanes { prefetch, ..self }
    }

    /// Rays per call of [`SiddonAdjointLanes::scatter`].
    pub(crate) fn lanes(&self) -> usize {
        self.path.lanes()
    }

    /// Adds `values[i]` times ray `i`'s Siddon weights into `target` (the whole grid's
    /// voxels), for up to [`SiddonAdjointLanes::lanes`] rays: each ray adds the terms
    /// `xray_kernels::siddon::siddon_adjoint` adds (less zero terms of zero-length
    /// steps, see the module docs), the rays' terms interleaved step by step, lane by
    /// lane (so a voxel two rays cross sums their terms in that order); a ray left to
    /// the scalar kernel adds its terms after the others.
    ///
    /// Returns the span of voxels written.
    pub(crate) fn scatter(&self, rays: &[Ray], values: &[f32], target: &mut [f32]) -> Span {
        debug_assert_eq!(rays.len(), values.len());
        if rays.len() > self.lanes() {
            let width = self.lanes();
            return rays
                .chunks(width)
                .zip(values.chunks(width))
                .fold(Span::EMPTY, |span, (rays, values)| {
                    span.union(self.scatter(rays, values, target))
                });
        }
        let grid = self.grid;
        let mut span = Span::EMPTY;
        debug_assert_eq!(target.len(), grid.voxel_count(), "a backprojection target");
        #[cfg(target_arch = "x86_64")]
        if target.len() == grid.voxel_count() {
            let span_ref = &mut span;
            // SAFETY: `new` checked that the CPU runs `path` (a vector path) and that the
            // grid's voxel count (at least one) fits in `i32`; `target` holds that many.
            unsafe {
                match (self.path, self.prefetch) {
                    (LanePath::Avx512, true) => {
                        scatter_avx512::<true>(grid, rays, values, target, span_ref)
                    }
                    (LanePath::Avx512, false) => {
                        scatter_avx512::<false>(grid, rays, values, target, span_ref)
                    }
                    (_, true) => scatter_avx2::<true>(grid, rays, values, target, span_ref),
                    (_, false) => scatter_avx2::<false>(grid, rays, values, target, span_ref),
                }
            }
            return span;
        }
        // The scalar kernel (a target of the wrong length fails on its first write).
        for (ray, &value) in rays.iter().zip(values) {
            siddon_adjoint(grid, ray, value, |i, w| {
                target[i] += w;
                span.include(i);
            });
        }
        span
    }
}

/// What a lockstep walk does at each step with its lanes' voxels.
#[cfg(target_arch = "x86_64")]
trait Visit<S: Simd> {
    /// The voxels the walk reads or writes (for prefetching).
    fn voxels(&self) -> *const f32;

    /// The lanes in `active` are in voxels `linear` for `length` (in units of `t`).
    ///
    /// # Safety
    /// As [`Simd`]'s methods; every active lane's index is a voxel of the grid.
    unsafe fn visit(&mut self, active: S::M, linear: S::I, length: S::F);
}

/// The forward walk: sums `mu * length` per lane, reading the voxels with scalar loads
/// where `LOADS`, else with the gather instruction.
#[cfg(target_arch = "x86_64")]
struct Integrate<'a, S: Simd, const LOADS: bool> {
    volume: &'a [f32],
    sum: S::F,
}

#[cfg(target_arch = "x86_64")]
impl<S: Simd, const LOADS: bool> Visit<S> for Integrate<'_, S, LOADS> {
    #[inline(always)]
    fn voxels(&self) -> *const f32 {
        self.volume.as_ptr()
    }

    #[inline(always)]
    unsafe fn visit(&mut self, active: S::M, linear: S::I, length: S::F) {
        #[cfg(test)]
        assert_inside::<S>(active, linear, self.volume.len());
        // Done lanes read voxel 0 and add +0.0, which leaves any sum unchanged bit for
        // bit (a sum that starts at +0.0 is never -0.0).
        let how = if LOADS {
            Gather::Loads
        } else {
            Gather::Instruction
        };
        let mu = gather::<S>(how, self.volume, S::keep_i(active, linear));
        self.sum = S::add_f(self.sum, S::keep_f(active, S::mul_f(mu, length)));
    }
}

/// The transpose's walk: adds `weight * length` to each active lane's voxel, lane by
/// lane.
#[cfg(target_arch = "x86_64")]
struct Scatter<'a, S: Simd> {
    target: &'a mut [f32],
    weight: S::F,
    /// The voxels written so far.
    written: SpanLanes<S>,
}

#[cfg(target_arch = "x86_64")]
impl<S: Simd> Visit<S> for Scatter<'_, S> {
    #[inline(always)]
    fn voxels(&self) -> *const f32 {
        self.target.as_ptr()
    }

    #[inline(always)]
    unsafe fn visit(&mut self, active: S::M, linear: S::I, length: S::F) {
        #[cfg(test)]
        assert_inside::<S>(active, linear, self.target.len());
        scatter_add::<S>(self.target, linear, active, S::mul_f(self.weight, length));
        self.written.include(active, linear);
    }
}

/// Panics unless every lane set in `active` indexes one of `voxels` voxels: the unit
/// tests' check of [`walk`]'s safety argument (a lane that visited one voxel too many,
/// with length zero, would not change any sum).
///
/// # Safety
/// As [`Simd`]'s methods.
#[cfg(all(test, target_arch = "x86_64"))]
#[inline(always)]
unsafe fn assert_inside<S: Simd>(active: S::M, at: S::I, voxels: usize) {
    let (at, active) = (S::to_array_i(at), S::bits(active));
    for (lane, &index) in at.iter().enumerate().take(S::LANES) {
        assert!(
            active & (1 << lane) == 0 || (0..voxels as i64).contains(&i64::from(index)),
            "lane {lane} visits voxel {index} of {voxels}"
        );
    }
}

/// The forward walk of `rays` into `out`; see [`walk`].
///
/// # Safety
/// As [`walk`], with `volume` holding the grid's voxels.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn integrate<S: Simd, const PREFETCH: bool, const LOADS: bool>(
    volume: &[f32],
    grid: &GridParams,
    rays: &[Ray],
    out: &mut [f32],
) {
    let starts = LaneStarts::<S>::new(grid, rays);
    let mut sink = Integrate::<S, LOADS> {
        volume,
        sum: S::splat_f(0.0),
    };
    walk::<S, _, PREFETCH>(&starts, &mut sink);
    // The scalar kernel's `sum * grid.world_length(ray.direction)`.
    let sums = S::to_array(S::mul_f(sink.sum, starts.world_length));
    for (lane, ((value, ray), lane_sum)) in out.iter_mut().zip(rays).zip(sums).enumerate() {
        *value = if starts.scalar & (1 << lane) == 0 {
            lane_sum
        } else {
            xray_kernels::siddon::siddon(volume, grid, ray)
        };
    }
}

/// The transpose's walk of `rays`, weighted by `values`, into `target`; see [`walk`].
///
/// # Safety
/// As [`walk`], with `target` holding the grid's voxels.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn scatter<S: Simd, const PREFETCH: bool>(
    grid: &GridParams,
    rays: &[Ray],
    values: &[f32],
    target: &mut [f32],
    span: &mut Span,
) {
    let starts = LaneStarts::<S>::new(grid, rays);
    let mut padded = [0.0f32; MAX_LANES];
    padded[..values.len()].copy_from_slice(values);
    let mut sink = Scatter::<S> {
        target,
        // The scalar kernel's `value * grid.world_length(ray.direction)` per ray.
        weight: S::mul_f(S::load_f(&padded), starts.world_length),
        written: SpanLanes::new(),
    };
    walk::<S, _, PREFETCH>(&starts, &mut sink);
    *span = span.union(sink.written.span());
    for (lane, (ray, &value)) in rays.iter().zip(values).enumerate() {
        if starts.scalar & (1 << lane) != 0 {
            siddon_adjoint(grid, ray, value, |i, w| {
                target[i] += w;
                span.include(i);
            });
        }
    }
}

/// Compiles `$generic::<S, $($flag),*>` for AVX2 (as `$avx2`) and AVX-512 (as
/// `$avx512`), with the `bool` constants `$flag` and the arguments `$arg: $type`.
macro_rules! compiled_for_each_set {
    ($generic:ident, $avx2:ident, $avx512:ident, [$($flag:ident),*], ($($arg:ident: $type:ty),*)) => {
        /// The generic walk compiled for AVX2.
        ///
        /// # Safety
        /// As the generic walk's, on a CPU with AVX2.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2<$(const $flag: bool),*>($($arg: $type),*) {
            $generic::<super::lanes::avx2::Avx2, $($flag),*>($($arg),*)
        }

        /// The generic walk compiled for AVX-512.
        ///
        /// # Safety
        /// As the generic walk's, on a CPU with AVX-512 F, BW, DQ and VL.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn $avx512<$(const $flag: bool),*>($($arg: $type),*) {
            $generic::<super::lanes::avx512::Avx512, $($flag),*>($($arg),*)
        }
    };
}

compiled_for_each_set!(
    integrate,
    integrate_avx2,
    integrate_avx512,
    [PREFETCH, LOADS],
    (
        volume: &[f32],
        grid: &GridParams,
        rays: &[Ray],
        out: &mut [f32]
    )
);
compiled_for_each_set!(
    scatter,
    scatter_avx2,
    scatter_avx512,
    [PREFETCH],
    (
        grid: &GridParams,
        rays: &[Ray],
        values: &[f32],
        target: &mut [f32],
        span: &mut Span
    )
);

/// How far ahead of each lane the prefetch reaches, in voxels along the ray's longest
/// axis: far enough to cover a memory access, near enough to stay on the ray.
const PREFETCH_VOXELS: f32 = 24.0;

/// Prefetch on every this many steps by default: a lane moves at most one voxel per
/// step, so consecutive prefetches mostly name the same cache lines.
const PREFETCH_EVERY: u32 = 4;

/// Environment variable that sets how often the Siddon lanes prefetch for volumes
/// larger than a cache, in steps (a positive whole number; default 4), to tune it on a
/// machine.
pub const CPU_PREFETCH_VARIABLE: &str = "XRAY_CPU_PREFETCH_EVERY";

/// The prefetch interval in steps: [`CPU_PREFETCH_VARIABLE`]'s value where it is a
/// positive whole number (another value is ignored with a warning), else
/// [`PREFETCH_EVERY`]. Read once per process; the walk counts it down (no division
/// per step).
#[cfg(target_arch = "x86_64")]
fn prefetch_interval() -> u32 {
    static EVERY: OnceLock<u32> = OnceLock::new();
    *EVERY.get_or_init(|| match std::env::var(CPU_PREFETCH_VARIABLE) {
        Ok(value) => match value.parse::<u32>() {
            Ok(every) if every > 0 => every,
            _ => {
                log::warn!(
                    "{CPU_PREFETCH_VARIABLE}={value:?} is not a positive whole number: ignored"
                );
                PREFETCH_EVERY
            }
        },
        Err(_) => PREFETCH_EVERY,
    })
}

/// Where a lane's walk stops (see [`walk`]), for one ray: the scalar definition that
/// `LaneStarts::new` computes for all lanes at once (the tests compare the two). It is
/// the smallest of `start.t_exit` and, for
/// each axis the ray moves along, the crossing at which its index would leave
/// `0..counts[a]`, computed as `Axis::advance` computes it (`t_first + n * t_delta`,
/// `t_first` itself for the first). `None` where an axis's first crossing is not a
/// finite number (a direction so close to the axis that it overflows `t_first`): those
/// rays go to the scalar kernel. Otherwise every crossing the walk computes is a number
/// (finite or `+inf`), never NaN.
#[cfg(all(test, target_arch = "x86_64"))]
fn lane_stop(counts: [i32; 3], start: &WalkStart) -> Option<f32> {
    let mut stop = start.t_exit;
    for (a, axis) in [start.x, start.y, start.z].into_iter().enumerate() {
        // Crossing a face moves the index by `step`: the crossings numbered (from 0)
        // below `inside` keep it in `0..count`, crossing `inside` leaves.
        let inside = match axis.step {
            1 => counts[a] - 1 - axis.index,
            -1 => axis.index,
            _ => continue,
        };
        if !axis.t_first.is_finite() {
            return None;
        }
        let leave = if inside == 0 {
            axis.t_first
        } else {
            axis.t_first + inside as f32 * axis.t_delta
        };
        stop = xray_kernels::math::min(leave, stop);
    }
    Some(stop)
}

/// Every lane's start, for up to `S::LANES` rays: what `walk_start` and [`lane_stop`]
/// give one ray, computed for all lanes at once with the same `f32` operations in the
/// same order, so each lane's numbers are bit for bit the scalar ones (the unit tests
/// check this field by field).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct LaneStarts<S: Simd> {
    /// Lanes with no walk: no ray, a ray that misses the grid, or one left to the
    /// scalar kernel.
    done: S::M,
    /// Lanes left to the scalar kernel (bit `i` for ray `i`): a hit whose first crossing
    /// on an axis it moves along is not a finite number ([`lane_stop`]).
    scalar: u32,
    /// `t_enter`: where the walk starts.
    t_now: S::F,
    /// Where each lane stops ([`lane_stop`]).
    t_stop: S::F,
    /// Per axis: `Axis::t_first` (also `t_next`, where the walk starts), `t_delta`.
    t_first: [S::F; 3],
    t_delta: [S::F; 3],
    /// Per axis: how far the linear index moves when the lane crosses a face.
    stride_step: [S::I; 3],
    /// The linear index of the entry voxel.
    linear: S::I,
    /// About how far on in memory the voxel [`PREFETCH_VOXELS`] further along the
    /// lane's longest axis is (a prefetch need not be exact).
    lead_offset: S::I,
    /// `grid.world_length(ray.direction)`: millimetres per unit of `t`.
    world_length: S::F,
}

#[cfg(target_arch = "x86_64")]
impl<S: Simd> LaneStarts<S> {
    /// The starts of `rays` (at most `S::LANES`) on `grid`.
    ///
    /// # Safety
    /// As [`Simd`]'s methods; `grid` must be a whole grid (no slab: the clip is to
    /// `0..nz`) with sides under 2^24 voxels, as the walkers' constructors check.
    #[inline(always)]
    unsafe fn new(grid: &GridParams, rays: &[Ray]) -> Self {
        debug_assert!(grid.is_whole() && rays.len() <= S::LANES);
        let counts = [grid.nx, grid.ny, grid.nz].map(|n| n as i32);
        let strides = [1, counts[0], counts[0].wrapping_mul(counts[1])];
        let mut present = [0i32; MAX_LANES];
        let mut origin = [[0.0f32; MAX_LANES]; 3];
        let mut direction = [[0.0f32; MAX_LANES]; 3];
        let mut t_min = [0.0f32; MAX_LANES];
        let mut t_max = [0.0f32; MAX_LANES];
        for (lane, ray) in rays.iter().enumerate().take(S::LANES) {
            present[lane] = -1;
            for a in 0..3 {
                origin[a][lane] = ray.origin[a];
                direction[a][lane] = ray.direction[a];
            }
            t_min[lane] = ray.t_min;
            t_max[lane] = ray.t_max;
        }
        // (Plain statements and `#[inline(always)]` functions, not closures or `map`:
        // those would be compiled without the instruction set, and their vector
        // operations would become calls.)
        let origin = [
            S::load_f(&origin[0]),
            S::load_f(&origin[1]),
            S::load_f(&origin[2]),
        ];
        let direction = [
            S::load_f(&direction[0]),
            S::load_f(&direction[1]),
            S::load_f(&direction[2]),
        ];
        let zero = S::splat_f(0.0);
        let one = S::splat_f(1.0);

        // `Ray::clip` against the box `0 <= x < count` (a whole grid's), lane by lane:
        // a lane that misses keeps going with numbers no one reads.
        let mut miss = S::not_m(S::negative_i(S::load_i(&present)));
        let mut t_enter = S::load_f(&t_min);
        let mut t_exit = S::load_f(&t_max);
        for a in 0..3 {
            let (o, d) = (origin[a], direction[a]);
            let (lo, hi) = (zero, S::splat_f(counts[a] as f32));
            miss = S::or_m(miss, S::not_m(S::and_m(finite::<S>(o), finite::<S>(d))));
            let parallel = S::eq_f(d, zero);
            let inside = S::and_m(S::not_lt_f(o, lo), S::lt_f(o, hi));
            miss = S::or_m(miss, S::and_m(parallel, S::not_m(inside)));
            let inverse = S::div_f(one, d);
            let t_lo = S::mul_f(S::sub_f(lo, o), inverse);
            let t_hi = S::mul_f(S::sub_f(hi, o), inverse);
            let ordered = S::lt_f(t_lo, t_hi);
            let near = S::select_f(ordered, t_lo, t_hi);
            let far = S::select_f(ordered, t_hi, t_lo);
            t_enter = S::select_f(parallel, t_enter, larger::<S>(near, t_enter));
            t_exit = S::select_f(parallel, t_exit, S::min_f(far, t_exit));
        }
        let hit = S::and_m(
            S::and_m(S::lt_f(t_enter, t_exit), S::not_m(miss)),
            S::and_m(finite::<S>(t_enter), finite::<S>(t_exit)),
        );

        // `walk_start`'s axes and `lane_stop`.
        let mut t_stop = t_exit;
        let mut overflow = S::not_m(hit);
        let mut linear = S::splat_i(0);
        let mut stride_step = [S::splat_i(0); 3];
        let (mut t_first, mut t_delta) = ([zero; 3], [zero; 3]);
        for a in 0..3 {
            let (o, d) = (origin[a], direction[a]);
            let entry = S::add_f(o, S::mul_f(t_enter, d));
            // `floor_i32`: Rust's saturating `as i32` (the instruction gives i32::MIN
            // above the range too), less one where that is above `entry`. (NaN, which
            // `as i32` makes 0, cannot occur in a lane that hits: `entry` is a finite
            // number plus a product of finite numbers.)
            let truncated = S::select_i(
                S::not_lt_f(entry, S::splat_f(2_147_483_648.0)),
                S::splat_i(i32::MAX),
                S::trunc_i(entry),
            );
            let below = S::and_m(
                S::gt_f(S::to_f(truncated), entry),
                S::gt_i(truncated, S::splat_i(i32::MIN)),
            );
            let floor = S::select_i(below, S::sub_i(truncated, S::splat_i(1)), truncated);
            let last = S::splat_i(counts[a] - 1);
            let index = S::max_i(S::min_i(floor, last), S::splat_i(0));
            let (up, down) = (S::gt_f(d, zero), S::lt_f(d, zero));
            let moving = S::or_m(up, down);
            let face = S::select_i(up, S::add_i(index, S::splat_i(1)), index);
            let first = S::div_f(S::sub_f(S::to_f(face), o), d);
            let infinity = S::splat_f(f32::INFINITY);
            t_first[a] = S::select_f(moving, first, infinity);
            t_delta[a] = S::select_f(
                up,
                S::div_f(one, d),
                S::select_f(down, S::div_f(S::splat_f(-1.0), d), infinity),
            );
            let stride = S::splat_i(strides[a]);
            stride_step[a] = S::select_i(
                up,
                stride,
                S::select_i(down, S::sub_i(S::splat_i(0), stride), S::splat_i(0)),
            );
            linear = S::add_i(linear, S::mul_i(index, stride));
            // The crossing that leaves the grid: number `inside` (from 0).
            let inside = S::select_i(up, S::sub_i(last, index), index);
            let leave = S::select_f(
                S::gt_i(inside, S::splat_i(0)),
                S::add_f(t_first[a], S::mul_f(S::to_f(inside), t_delta[a])),
                t_first[a],
            );
            t_stop = S::select_f(moving, S::min_f(leave, t_stop), t_stop);
            overflow = S::or_m(
                overflow,
                S::and_m(moving, S::not_m(finite::<S>(t_first[a]))),
            );
        }
        let scalar = S::bits(S::and_m(hit, overflow)) & ((1u32 << S::LANES) - 1);

        // About the voxel `PREFETCH_VOXELS` further along the longest axis.
        let mut longest = zero;
        for &d in &direction {
            longest = larger::<S>(larger::<S>(d, S::sub_f(zero, d)), longest);
        }
        let lead = S::div_f(S::splat_f(PREFETCH_VOXELS), longest);
        let mut lead_offset = S::splat_i(0);
        for a in 0..3 {
            let voxels = S::floor_f(S::add_f(S::mul_f(lead, direction[a]), S::splat_f(0.5)));
            lead_offset = S::add_i(
                lead_offset,
                S::mul_i(S::trunc_i(voxels), S::splat_i(strides[a])),
            );
        }

        // `GridParams::world_length`.
        let m = &grid.index_to_world;
        let [dx, dy, dz] = direction;
        let mut w = [zero; 3];
        for r in 0..3 {
            w[r] = S::add_f(
                S::add_f(
                    S::mul_f(S::splat_f(m[3 * r]), dx),
                    S::mul_f(S::splat_f(m[3 * r + 1]), dy),
                ),
                S::mul_f(S::splat_f(m[3 * r + 2]), dz),
            );
        }
        let world_length = S::sqrt_f(S::add_f(
            S::add_f(S::mul_f(w[0], w[0]), S::mul_f(w[1], w[1])),
            S::mul_f(w[2], w[2]),
        ));

        LaneStarts {
            done: S::or_m(S::not_m(hit), overflow),
            scalar,
            t_now: t_enter,
            t_stop,
            t_first,
            t_delta,
            stride_step,
            linear,
            lead_offset,
            world_length,
        }
    }
}

/// Lanes where `x` is a finite number (`x - x` is 0 there, NaN elsewhere).
///
/// # Safety
/// As [`Simd`]'s methods.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn finite<S: Simd>(x: S::F) -> S::M {
    S::eq_f(S::sub_f(x, x), S::splat_f(0.0))
}

/// `xray_kernels::math::max`: `a` where `a > b`, else `b`.
///
/// # Safety
/// As [`Simd`]'s methods.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn larger<S: Simd>(a: S::F, b: S::F) -> S::F {
    S::select_f(S::gt_f(a, b), a, b)
}

/// The walk of the lanes of `starts` in lockstep, handing each step's voxels and
/// lengths to `sink`; see the module docs. With `PREFETCH`, every [`prefetch_interval`]
/// steps it also asks for the cache lines the lanes will read about
/// [`PREFETCH_VOXELS`] further on (worth it once the volume does not fit in the cache).
///
/// Each lane stops at the first step whose crossing reaches its `t_stop`: the smallest
/// of its exit parameter and the crossings at which each axis would leave the grid (the
/// crossing after the last one that keeps the index in `0..count`, computed as
/// `Axis::advance` computes it). That is the step where the scalar kernel stops, or an
/// earlier one after which every step it takes has length zero (crossings tied with
/// the leaving one), whose terms `mu * 0` leave a sum bit for bit as it is (the
/// projectors refuse non-finite volumes and projections).
///
/// # Safety
/// Must run compiled for `S`'s instruction set, on a CPU that has it; `starts` must come
/// from [`LaneStarts::new`] on a whole grid with at least one voxel and fewer than
/// `2^31`, and sides under 2^24 voxels (so that the `f32` crossing counts are exact and
/// each leaving crossing is computed bit for bit as `t_stop` has it), and
/// `sink` must accept any of its voxels. Then every voxel visited is in the grid:
/// active lanes start inside it (the entry voxel is clamped), and an index leaves it
/// only at a step where its axis is crossed at its leaving crossing, so `t_cross`
/// equals that crossing and is at least `t_stop`: the lane is done from that step,
/// whose visit comes before the move. Prefetches may point anywhere; they never fault.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn walk<S: Simd, V: Visit<S>, const PREFETCH: bool>(starts: &LaneStarts<S>, sink: &mut V) {
    let LaneStarts {
        mut done,
        t_now: mut t,
        t_stop,
        t_first: [fx, fy, fz],
        t_delta: [dx, dy, dz],
        stride_step: [lx, ly, lz],
        mut linear,
        lead_offset,
        ..
    } = *starts;
    // `Axis::advance`: a crossing is `t_first + crossed * t_delta`. Faces crossed per
    // axis plus one, as `f32` (exact: the walker exists only for grids under 2^24 voxels
    // a side, so an active lane's count stays below 2^24, and `crossed as f32` is the
    // same number). Each axis's next crossing is computed where the step uses it (not
    // kept from the step before), which keeps the loop's vectors in registers.
    let [mut tx, mut ty, mut tz] = [fx, fy, fz];
    let one = S::splat_f(1.0);
    let [mut kx, mut ky, mut kz] = [one; 3];

    let prefetch_every = prefetch_interval();
    let mut until_prefetch = 1u32;
    loop {
        if S::all(done) {
            break;
        }
        if PREFETCH {
            until_prefetch -= 1;
            if until_prefetch == 0 {
                until_prefetch = prefetch_every;
                // About the voxel each lane will reach `PREFETCH_VOXELS` further on.
                let ahead = S::add_i(linear, lead_offset);
                let voxels = sink.voxels();
                S::for_each_lane(ahead, |i| prefetch(voxels.wrapping_add(i as u32 as usize)));
            }
        }
        // The scalar kernel's `min(x, min(y, z))`.
        let t_cross = S::min_f(tx, S::min_f(ty, tz));
        // `t_stop` where `t_cross >= t_stop`, else `t_cross`: the scalar kernel's
        // `t_exit - t` or `t_cross - t` (equal where `t_cross` is a leaving crossing).
        let length = S::sub_f(S::min_f(t_stop, t_cross), t);
        sink.visit(S::not_m(done), linear, length);

        t = t_cross;
        done = S::or_m(done, S::not_lt_f(t_cross, t_stop));
        // The axis crossed: x first, then y, else z, as in the scalar kernel.
        let mx = S::eq_f(t_cross, tx);
        let my = S::and_not_m(mx, S::eq_f(t_cross, ty));
        let mxy = S::or_m(mx, my);
        let mz = S::not_m(mxy);
        tx = S::select_f(mx, next::<S>(fx, kx, dx), tx);
        ty = S::select_f(my, next::<S>(fy, ky, dy), ty);
        tz = S::select_f(mxy, tz, next::<S>(fz, kz, dz));
        kx = S::select_f(mx, S::add_f(kx, one), kx);
        ky = S::select_f(my, S::add_f(ky, one), ky);
        kz = S::select_f(mz, S::add_f(kz, one), kz);
        linear = S::add_i(linear, S::select_i(mx, lx, S::select_i(my, ly, lz)));
    }
}

/// `Axis::advance`'s crossing: `first + crossed * delta` (`crossed` a whole number).
///
/// # Safety
/// As [`Simd`]'s methods.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn next<S: Simd>(first: S::F, crossed: S::F, delta: S::F) -> S::F {
    S::add_f(first, S::mul_f(crossed, delta))
}

/// A [`LaneStarts`] as plain arrays, for the tests to compare with the scalar
/// `walk_start` and [`lane_stop`] lane by lane.
#[cfg(all(test, target_arch = "x86_64"))]
#[derive(Debug)]
struct StartArrays {
    done: u32,
    scalar: u32,
    t_now: [f32; MAX_LANES],
    t_stop: [f32; MAX_LANES],
    t_first: [[f32; MAX_LANES]; 3],
    t_delta: [[f32; MAX_LANES]; 3],
    stride_step: [[i32; MAX_LANES]; 3],
    linear: [i32; MAX_LANES],
    world_length: [f32; MAX_LANES],
}

#[cfg(all(test, target_arch = "x86_64"))]
impl StartArrays {
    /// The starts of `rays` computed in the lanes of `path` (a vector path this CPU
    /// runs).
    fn of(path: LanePath, grid: &GridParams, rays: &[Ray]) -> StartArrays {
        /// The three axes' lanes, as arrays.
        ///
        /// # Safety
        /// As [`Simd`]'s methods.
        #[inline(always)]
        unsafe fn axes<S: Simd>(v: [S::F; 3]) -> [[f32; MAX_LANES]; 3] {
            [S::to_array(v[0]), S::to_array(v[1]), S::to_array(v[2])]
        }
        /// # Safety
        /// As [`Simd`]'s methods.
        #[inline(always)]
        unsafe fn arrays<S: Simd>(grid: &GridParams, rays: &[Ray]) -> StartArrays {
            let s = LaneStarts::<S>::new(grid, rays);
            StartArrays {
                done: S::bits(s.done) & ((1u32 << S::LANES) - 1),
                scalar: s.scalar,
                t_now: S::to_array(s.t_now),
                t_stop: S::to_array(s.t_stop),
                t_first: axes::<S>(s.t_first),
                t_delta: axes::<S>(s.t_delta),
                stride_step: [
                    S::to_array_i(s.stride_step[0]),
                    S::to_array_i(s.stride_step[1]),
                    S::to_array_i(s.stride_step[2]),
                ],
                linear: S::to_array_i(s.linear),
                world_length: S::to_array(s.world_length),
            }
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(grid: &GridParams, rays: &[Ray]) -> StartArrays {
            arrays::<super::lanes::avx2::Avx2>(grid, rays)
        }
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn avx512(grid: &GridParams, rays: &[Ray]) -> StartArrays {
            arrays::<super::lanes::avx512::Avx512>(grid, rays)
        }
        assert!(path != LanePath::Scalar && path.is_supported() && rays.len() <= path.lanes());
        // SAFETY: the CPU runs `path`.
        unsafe {
            match path {
                LanePath::Avx512 => avx512(grid, rays),
                _ => avx2(grid, rays),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The lanes against the scalar kernel, bit for bit, on random rays and volumes.

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use xray_kernels::ray::Ray;
    #[cfg(target_arch = "x86_64")]
    use xray_kernels::siddon::walk_start;
    use xray_kernels::siddon::{siddon, siddon_adjoint};
    use xray_kernels::GridParams;

    use super::super::lanes::test_support::{
        assert_prefixes_match, assert_scatter_matches, between, grid, point_around_grid, ray_group,
        segment, vector_paths,
    };
    use super::super::lanes::{Gather, LanePath};
    use super::{SiddonAdjointLanes, SiddonLanes};

    /// Checks every prefix of `rays` against the scalar kernel, with and without
    /// prefetching, with either way of reading the voxels.
    fn assert_lanes_equal_scalar(lanes: SiddonLanes, volume: &[f32], g: &GridParams, rays: &[Ray]) {
        for (prefetch, gather) in [false, true]
            .into_iter()
            .flat_map(|p| Gather::ALL.map(|g| (p, g)))
        {
            let lanes = lanes.with_prefetch(prefetch).with_gather(gather);
            assert_prefixes_match(rays, |r, out| lanes.trace(r, out), |r| siddon(volume, g, r));
        }
    }

    #[test]
    fn lanes_equal_the_scalar_kernel_bit_for_bit() {
        let g = grid([13, 9, 17], [0.7, 1.3, 2.1]);
        let mut random = ChaCha8Rng::seed_from_u64(11);
        let volume: Vec<f32> = (0..g.voxel_count())
            .map(|_| random.random_range(0.0..2.0))
            .collect();
        for path in vector_paths("siddon lanes, random rays") {
            let lanes = SiddonLanes::new(&volume, &g, path).expect("a supported path");
            let mut nonzero = 0;
            for _ in 0..1_000 {
                let rays: Vec<Ray> = (0..lanes.lanes())
                    .map(|_| {
                        between(
                            point_around_grid(&mut random),
                            point_around_grid(&mut random),
                        )
                    })
                    .collect();
                assert_lanes_equal_scalar(lanes, &volume, &g, &rays);
                nonzero += rays
                    .iter()
                    .filter(|r| siddon(&volume[..], &g, r) != 0.0)
                    .count();
            }
            assert!(
                nonzero > 500 * lanes.lanes(),
                "{path}: most random rays must hit the grid"
            );
        }
    }

    #[test]
    fn lanes_equal_the_scalar_kernel_on_rays_between_lattice_points() {
        // Endpoints on the voxel lattice (whole and half numbers) in and around the
        // grid: rays through voxel edges and corners, whose crossings tie with each
        // other and with the exit, and leave through edges and corners.
        let g = grid([6, 5, 4], [1.0; 3]);
        let mut random = ChaCha8Rng::seed_from_u64(5);
        let volume: Vec<f32> = (0..g.voxel_count())
            .map(|_| random.random_range(0.0..2.0))
            .collect();
        // From 2 voxels before each side to 2 after it, in steps of half a voxel.
        let lattice_point = |random: &mut ChaCha8Rng| {
            [6, 5, 4].map(|side: i32| random.random_range(-4..=2 * side + 4) as f32 / 2.0)
        };
        for path in vector_paths("siddon lanes, rays between lattice points") {
            let lanes = SiddonLanes::new(&volume, &g, path).expect("a supported path");
            let adjoint = SiddonAdjointLanes::new(&g, path).expect("a supported path");
            for _ in 0..300 {
                let rays: Vec<Ray> = (0..lanes.lanes())
                    .map(|_| between(lattice_point(&mut random), lattice_point(&mut random)))
                    .collect();
                assert_lanes_equal_scalar(lanes, &volume, &g, &rays);
                let values = vec![1.5f32; rays.len()];
                assert_scatter_matches(
                    g.voxel_count(),
                    &rays,
                    &values,
                    |r, v, t| adjoint.scatter(r, v, t),
                    |ray, value, add| siddon_adjoint(&g, ray, value, add),
                );
            }
        }
    }

    /// The grid and volume of [`edge_rays`].
    fn edge_grid() -> (GridParams, Vec<f32>) {
        let g = grid([6, 5, 4], [1.0, 1.0, 1.0]);
        let volume: Vec<f32> = (0..120).map(|i| (i % 7) as f32 + 0.5).collect();
        (g, volume)
    }

    /// Rays along voxel faces, edges and corners of [`edge_grid`] (crossings tied with
    /// each other and with the exit, where a lane stops before the scalar kernel's
    /// zero-length steps), a whole line, a non-finite ray, and rays so close to an
    /// axis that a crossing overflows (one left to the scalar kernel, one walked with
    /// an infinite `t_delta`).
    fn edge_rays() -> Vec<Ray> {
        let mut rays = Vec::new();
        for &(b, c) in &[(0.0f32, 0.0f32), (2.0, 3.0), (2.5, 1.5), (5.0, 3.999)] {
            rays.push(segment([-1.0, b, c], [8.0, 0.0, 0.0]));
            rays.push(segment([b, -1.0, c.min(3.5)], [0.0, 7.0, 0.0]));
            rays.push(segment([b, c.min(4.5), -1.0], [0.0, 0.0, 6.0]));
        }
        rays.push(segment([0.0, 0.0, 0.0], [4.0, 4.0, 4.0]));
        rays.push(segment([-1.0, -1.0, 2.0], [7.0, 7.0, 0.0]));
        rays.push(segment([6.0, 0.0, 0.0], [-5.0, 5.0, 0.0]));
        rays.push(segment([9.0, 9.0, 9.0], [1.0, 1.0, 1.0]));
        rays.push(segment([-1.0, -1.0, -1.0], [8.0, 8.0, 8.0]));
        rays.push(segment([6.0, 5.0, 4.0], [-7.0, -6.0, -5.0]));
        // A whole line (parallel beam), and one with non-finite numbers (a miss).
        rays.push(Ray {
            origin: [3.0, 2.5, 1.5],
            direction: [0.3, -0.2, 0.1],
            t_min: f32::NEG_INFINITY,
            t_max: f32::INFINITY,
        });
        rays.push(segment([f32::NAN, 1.0, 1.0], [1.0, 1.0, 1.0]));
        rays.extend(near_axis_rays());
        rays
    }

    /// Rays nearly along x: the first's y crossing `(3 - 2.5) / 1e-39` overflows (the
    /// scalar kernel walks it); the second's is finite with an infinite `t_delta`.
    fn near_axis_rays() -> [Ray; 2] {
        [
            segment([-1.0, 2.5, 1.5], [8.0, 1e-39, 0.0]),
            segment([-1.0, 2.999_99, 1.5], [8.0, 1e-39, 0.0]),
        ]
    }

    #[test]
    fn lanes_equal_the_scalar_kernel_on_axis_face_and_corner_rays() {
        let (g, volume) = edge_grid();
        let rays = edge_rays();
        for path in vector_paths("siddon lanes, axis, face and corner rays") {
            let lanes = SiddonLanes::new(&volume, &g, path).expect("a supported path");
            for chunk in rays.chunks(lanes.lanes()) {
                assert_lanes_equal_scalar(lanes, &volume, &g, chunk);
            }
            // Every ray in a lane group of its own, too.
            for ray in &rays {
                assert_lanes_equal_scalar(lanes, &volume, &g, std::slice::from_ref(ray));
            }
        }
    }

    #[test]
    fn adjoint_lanes_add_the_scalar_kernels_terms_on_axis_face_and_corner_rays() {
        let (g, _) = edge_grid();
        let rays = edge_rays();
        let values: Vec<f32> = (0..rays.len()).map(|i| 0.25 + i as f32).collect();
        for path in vector_paths("siddon adjoint lanes, axis, face and corner rays") {
            let lanes = SiddonAdjointLanes::new(&g, path).expect("a supported path");
            for (rays, values) in rays.chunks(lanes.lanes()).zip(values.chunks(lanes.lanes())) {
                assert_scatter_matches(
                    g.voxel_count(),
                    rays,
                    values,
                    |r, v, t| lanes.scatter(r, v, t),
                    |ray, value, add| siddon_adjoint(&g, ray, value, add),
                );
            }
        }
    }

    /// Checks the lanes' starts of `rays` against `walk_start` and `lane_stop`, lane by
    /// lane, bit for bit, on every vector path.
    #[cfg(target_arch = "x86_64")]
    fn assert_starts_equal_the_scalar_ones(g: &GridParams, rays: &[Ray]) {
        let counts = [g.nx, g.ny, g.nz].map(|n| n as i32);
        let strides = [1, counts[0], counts[0] * counts[1]];
        for path in vector_paths("siddon lane starts") {
            for group in rays.chunks(path.lanes()) {
                let got = super::StartArrays::of(path, g, group);
                for (lane, ray) in group.iter().enumerate() {
                    let bit = 1 << lane;
                    let context = format!("{path}, ray {ray:?}: {got:?}");
                    let Some(start) = walk_start(g, ray) else {
                        assert!(got.done & bit != 0 && got.scalar & bit == 0, "{context}");
                        continue;
                    };
                    let Some(stop) = super::lane_stop(counts, &start) else {
                        assert!(got.done & bit != 0 && got.scalar & bit != 0, "{context}");
                        continue;
                    };
                    assert!(got.done & bit == 0 && got.scalar & bit == 0, "{context}");
                    assert_eq!(
                        got.t_now[lane].to_bits(),
                        start.t_enter.to_bits(),
                        "{context}"
                    );
                    assert_eq!(got.t_stop[lane].to_bits(), stop.to_bits(), "{context}");
                    let axes = [start.x, start.y, start.z];
                    let mut linear = 0;
                    for (a, axis) in axes.iter().enumerate() {
                        // The walk starts at `t_next`, which `walk_start` sets to `t_first`.
                        assert_eq!(got.t_first[a][lane].to_bits(), axis.t_next.to_bits());
                        assert_eq!(got.t_first[a][lane].to_bits(), axis.t_first.to_bits());
                        assert_eq!(got.t_delta[a][lane].to_bits(), axis.t_delta.to_bits());
                        assert_eq!(got.stride_step[a][lane], axis.step * strides[a]);
                        linear += axis.index * strides[a];
                    }
                    assert_eq!(got.linear[lane], linear, "{context}");
                    let length = g.world_length(ray.direction);
                    assert_eq!(got.world_length[lane].to_bits(), length.to_bits());
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn lane_starts_equal_walk_start_and_lane_stop_bit_for_bit() {
        let (g, _) = edge_grid();
        assert_starts_equal_the_scalar_ones(&g, &edge_rays());
        let g = grid([13, 9, 17], [0.7, 1.3, 2.1]);
        let mut random = ChaCha8Rng::seed_from_u64(29);
        let rays: Vec<Ray> = (0..4_000)
            .map(|i| match i % 4 {
                // Rays from far away (whose entry point carries a large rounding).
                0 => between(
                    point_around_grid(&mut random).map(|x| x * 1e9),
                    point_around_grid(&mut random),
                ),
                1 => {
                    let mut ray = between(
                        point_around_grid(&mut random),
                        point_around_grid(&mut random),
                    );
                    ray.t_min = f32::NEG_INFINITY;
                    ray.t_max = f32::INFINITY;
                    ray
                }
                _ => between(
                    point_around_grid(&mut random),
                    point_around_grid(&mut random),
                ),
            })
            .collect();
        assert_starts_equal_the_scalar_ones(&g, &rays);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_ray_whose_first_crossing_overflows_is_left_to_the_scalar_kernel() {
        let (g, _) = edge_grid();
        let counts = [6, 5, 4];
        let [overflowing, walked] = near_axis_rays();
        let start = walk_start(&g, &overflowing).expect("inside the grid");
        assert_eq!(start.y.t_first, f32::INFINITY);
        assert_eq!(super::lane_stop(counts, &start), None);
        let start = walk_start(&g, &walked).expect("inside the grid");
        assert!(start.y.t_first.is_finite() && start.y.t_delta == f32::INFINITY);
        // It stops where it leaves through x = 6, at t = 7/8.
        assert_eq!(super::lane_stop(counts, &start), Some(start.t_exit));
        assert_eq!(start.t_exit, 7.0 / 8.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_lane_stops_at_the_first_crossing_that_leaves_the_grid() {
        // From voxel (2, 1, 0) towards +x and -y: x leaves after 3 crossings that keep
        // it inside (index 2 to 5, then 6), y after 1 (index 1 to 0, then -1); z does
        // not move. The scalar kernel's own `Axis::advance` gives those crossings.
        let g = grid([6, 5, 4], [1.0; 3]);
        let ray = segment([2.5, 1.5, 0.5], [40.0, -10.0, 0.0]);
        let start = walk_start(&g, &ray).expect("inside the grid");
        let (mut x, mut y) = (start.x, start.y);
        (0..3).for_each(|_| x.advance());
        y.advance();
        assert_eq!((x.index, y.index), (5, 0));
        let stop = super::lane_stop([6, 5, 4], &start).expect("finite crossings");
        assert_eq!(stop, x.t_next.min(y.t_next).min(start.t_exit));
        // In exact numbers the first leaving crossing is the exit (t = 3.5 / 40).
        assert!((stop - 3.5 / 40.0).abs() <= 1e-7, "{stop}");
    }

    #[test]
    fn adjoint_lanes_add_the_scalar_kernels_terms() {
        let g = grid([13, 9, 17], [0.7, 1.3, 2.1]);
        let mut random = ChaCha8Rng::seed_from_u64(23);
        for path in vector_paths("siddon adjoint lanes") {
            let lanes = SiddonAdjointLanes::new(&g, path).expect("a supported path");
            for prefetch in [false, true] {
                let lanes = lanes.with_prefetch(prefetch);
                for round in 0..40 {
                    // Even rounds: rays from one source through nearby points (they
                    // cross the same voxels); odd rounds: unrelated segments.
                    let rays = ray_group(&mut random, lanes.lanes(), round, [0.11, 0.0, -0.11]);
                    let values: Vec<f32> = rays
                        .iter()
                        .map(|_| random.random_range(-2.0..3.0))
                        .collect();
                    assert_scatter_matches(
                        g.voxel_count(),
                        &rays,
                        &values,
                        |r, v, t| lanes.scatter(r, v, t),
                        |ray, value, add| siddon_adjoint(&g, ray, value, add),
                    );
                }
            }
        }
    }

    #[test]
    fn a_volume_of_the_wrong_length_gets_no_lanes() {
        let g = grid([4, 4, 4], [1.0; 3]);
        for path in LanePath::ALL {
            assert!(SiddonLanes::new(&[0.0; 63], &g, path).is_none());
        }
        // The scalar path has no lanes, even for a volume that fits.
        assert!(SiddonLanes::new(&[0.0; 64], &g, LanePath::Scalar).is_none());
    }

    #[test]
    fn a_grid_with_a_side_of_2_to_the_24_voxels_gets_no_lanes() {
        // The walk counts crossings in `f32`, exact only below 2^24.
        assert!(super::sides_fit(&grid([(1 << 24) - 1, 1, 1], [1.0; 3])));
        for n in [
            [1 << 24, 1, 1],
            [1, 1 << 24, 1],
            [1, 1, 1 << 24],
            [1 << 30, 1, 1],
        ] {
            assert!(!super::sides_fit(&grid(n, [1.0; 3])), "{n:?}");
        }
        for path in vector_paths("siddon lanes, long sides") {
            assert!(
                SiddonAdjointLanes::new(&grid([1, 1, (1 << 24) - 1], [1.0; 3]), path).is_some()
            );
            for n in [[1 << 24, 1, 1], [1, 1 << 24, 1], [1, 1, 1 << 24]] {
                assert!(
                    SiddonAdjointLanes::new(&grid(n, [1.0; 3]), path).is_none(),
                    "{n:?}"
                );
            }
        }
    }
}
