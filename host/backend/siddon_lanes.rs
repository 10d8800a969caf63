//! Siddon's walk for a vector's lanes of rays at once (8 with AVX2, 16 with AVX-512):
//! the CPU's fast path for Siddon's forward projection and its transpose on x86-64.
//!
//! One ray's walk is a chain of dependent steps with an unpredictable branch (which axis
//! the ray crosses next), so a scalar core spends most of its time waiting on that chain
//! and on mispredicted branches. Here neighbouring rays walk in lockstep: each step
//! picks every lane's next axis with compare masks instead of branches, and reads the
//! lanes' voxels with one gather (the instruction or scalar loads, as
//! [`Gather::in_use`] says for this CPU). A lane that leaves the grid stops
//! contributing; the loop ends when all have. For volumes larger than a cache, each lane
//! also prefetches the voxel it will reach a few dozen steps later.
//!
//! The walk is written once, over [`Simd`]; [`SiddonLanes::trace`] runs it compiled for
//! the chosen [`LanePath`]. Every lane starts from `xray_kernels::siddon::walk_start`
//! and does the same `f32` operations in the same order as
//! `xray_kernels::siddon::siddon` (the function the GPU kernel runs), so the line
//! integrals are bit for bit the scalar kernel's on every path. The transpose adds each
//! ray's terms exactly as `siddon_adjoint` does, the rays of a group interleaved step by
//! step (so a voxel two of them cross sums their terms in another order than one ray at
//! a time). The unit tests below, and those of [`super::cpu`], check both.

use xray_kernels::ray::Ray;
use xray_kernels::siddon::{siddon_adjoint, walk_start, Axis};
use xray_kernels::GridParams;

#[cfg(target_arch = "x86_64")]
use super::lanes::{gather, scatter_add, SpanLanes};
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
        let (volume, grid, how) = (self.volume, self.grid, self.gather);
        // SAFETY: `new` checked that the CPU runs `path` (a vector path), that `volume`
        // holds exactly the grid's voxels (at least one), and that their count fits in
        // `i32`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match (self.path, self.prefetch) {
                (LanePath::Avx512, true) => integrate_avx512::<true>(volume, grid, how, rays, out),
                (LanePath::Avx512, false) => {
                    integrate_avx512::<false>(volume, grid, how, rays, out)
                }
                (_, true) => integrate_avx2::<true>(volume, grid, how, rays, out),
                (_, false) => integrate_avx2::<false>(volume, grid, how, rays, out),
            }
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
    /// voxels), for up to [`SiddonAdjointLanes::lanes`] rays: each ray adds exactly the
    /// terms `xray_kernels::siddon::siddon_adjoint` adds, the rays' terms interleaved
    /// step by step, lane by lane (so a voxel two rays cross sums their terms in that
    /// order).
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

/// The forward walk: sums `mu * length` per lane.
#[cfg(target_arch = "x86_64")]
struct Integrate<'a, S: Simd> {
    volume: &'a [f32],
    /// How the voxels are read.
    how: Gather,
    sum: S::F,
}

#[cfg(target_arch = "x86_64")]
impl<S: Simd> Visit<S> for Integrate<'_, S> {
    #[inline(always)]
    fn voxels(&self) -> *const f32 {
        self.volume.as_ptr()
    }

    #[inline(always)]
    unsafe fn visit(&mut self, active: S::M, linear: S::I, length: S::F) {
        // Done lanes read voxel 0 and add +0.0, which leaves any sum unchanged bit for
        // bit (a sum that starts at +0.0 is never -0.0).
        let mu = gather::<S>(self.how, self.volume, S::keep_i(active, linear));
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
        scatter_add::<S>(self.target, linear, active, S::mul_f(self.weight, length));
        self.written.include(active, linear);
    }
}

/// The forward walk of `rays` into `out`; see [`walk`].
///
/// # Safety
/// As [`walk`], with `volume` holding the grid's voxels.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn integrate<S: Simd, const PREFETCH: bool>(
    volume: &[f32],
    grid: &GridParams,
    how: Gather,
    rays: &[Ray],
    out: &mut [f32],
) {
    let mut sink = Integrate::<S> {
        volume,
        how,
        sum: S::splat_f(0.0),
    };
    walk::<S, _, PREFETCH>(grid, rays, &mut sink);
    let sums = S::to_array(sink.sum);
    for ((value, ray), lane_sum) in out.iter_mut().zip(rays).zip(sums) {
        *value = lane_sum * grid.world_length(ray.direction);
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
    // The scalar kernel's `value * grid.world_length(ray.direction)` per ray.
    let mut weights = [0.0f32; MAX_LANES];
    for ((weight, ray), value) in weights.iter_mut().zip(rays).zip(values) {
        *weight = value * grid.world_length(ray.direction);
    }
    let mut sink = Scatter::<S> {
        target,
        weight: S::load_f(&weights),
        written: SpanLanes::new(),
    };
    walk::<S, _, PREFETCH>(grid, rays, &mut sink);
    *span = span.union(sink.written.span());
}

/// Compiles `$generic::<S, PREFETCH>` for AVX2 (as `$avx2`) and AVX-512 (as `$avx512`),
/// with the arguments `$arg: $type`.
macro_rules! compiled_for_each_set {
    ($generic:ident, $avx2:ident, $avx512:ident, ($($arg:ident: $type:ty),*)) => {
        /// The generic walk compiled for AVX2.
        ///
        /// # Safety
        /// As the generic walk's, on a CPU with AVX2.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2<const PREFETCH: bool>($($arg: $type),*) {
            $generic::<super::lanes::avx2::Avx2, PREFETCH>($($arg),*)
        }

        /// The generic walk compiled for AVX-512.
        ///
        /// # Safety
        /// As the generic walk's, on a CPU with AVX-512 F, BW, DQ and VL.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn $avx512<const PREFETCH: bool>($($arg: $type),*) {
            $generic::<super::lanes::avx512::Avx512, PREFETCH>($($arg),*)
        }
    };
}

compiled_for_each_set!(
    integrate,
    integrate_avx2,
    integrate_avx512,
    (
        volume: &[f32],
        grid: &GridParams,
        how: Gather,
        rays: &[Ray],
        out: &mut [f32]
    )
);
compiled_for_each_set!(
    scatter,
    scatter_avx2,
    scatter_avx512,
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
/// [`PREFETCH_EVERY`]. Read once per process.
///
/// The walk reads it at run time, from here, on purpose: with the interval a
/// compile-time constant (or a field, or a `black_box`ed constant) the Siddon walk over
/// fp256 ran 1.5-1.7x slower on the Intel Xeon measured, with the same results. The
/// loops' vector instructions are the same; they differ in register allocation and in
/// the interval test (a bit test for the constant, a division here). The cause of the
/// difference was not found, so it rests on the compiler's choices: re-measure after a
/// toolchain update.
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

/// The walk of up to `S::LANES` rays in lockstep, handing each step's voxels and
/// lengths to `sink`; see the module docs. With `PREFETCH`,
/// every [`prefetch_interval`] steps it also asks for the cache lines the lanes will read
/// [`PREFETCH_VOXELS`] further on (worth it once the volume does not fit in the cache).
/// On a Zen 3 this made fp256 (64 MB) 10-25% faster and a 1 MB volume 15% slower,
/// hence the size threshold.
///
/// # Safety
/// Must run compiled for `S`'s instruction set, on a CPU that has it; `rays` must hold
/// at most `S::LANES` rays; the grid must have at least one voxel and fewer than `2^31`,
/// and `sink` must accept any of its voxels. Then every voxel visited is in the grid:
/// active lanes start inside it (`walk_start` clamps the entry voxel) and are done from
/// the step that would take any of their three indices out of it (the per-axis count of
/// faces left runs out). Prefetches may point anywhere; they never fault.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn walk<S: Simd, V: Visit<S>, const PREFETCH: bool>(
    grid: &GridParams,
    rays: &[Ray],
    sink: &mut V,
) {
    let counts = [grid.nx, grid.ny, grid.nz].map(|n| n as i32);
    let strides = [1, counts[0], counts[0] * counts[1]];

    // Per-lane start state, one array per quantity.
    // Faces each lane may still cross on each axis before it leaves the grid; -1 (done
    // from the start, with a zero sum) for lanes without a ray or whose ray misses.
    let mut remaining = [[-1i32; MAX_LANES]; 3];
    let mut stride_step = [[0i32; MAX_LANES]; 3];
    let mut t_next = [[0.0f32; MAX_LANES]; 3];
    let mut t_delta = [[0.0f32; MAX_LANES]; 3];
    let mut t_first = [[0.0f32; MAX_LANES]; 3];
    let mut origin = [[0.0f32; MAX_LANES]; 3];
    let mut direction = [[0.0f32; MAX_LANES]; 3];
    let mut t_now = [0.0f32; MAX_LANES];
    let mut t_end = [0.0f32; MAX_LANES];
    let mut lead = [0.0f32; MAX_LANES];
    let mut linear_start = [0i32; MAX_LANES];
    for (lane, ray) in rays.iter().enumerate().take(S::LANES) {
        let Some(start) = walk_start(grid, ray) else {
            continue;
        };
        let axes: [Axis; 3] = [start.x, start.y, start.z];
        for a in 0..3 {
            let axis = axes[a];
            // Crossing a face moves the index by `step`; the walk leaves the grid on the
            // crossing after the last one that keeps it in `0..count`.
            remaining[a][lane] = match axis.step {
                1 => counts[a] - 1 - axis.index,
                -1 => axis.index,
                _ => i32::MAX,
            };
            stride_step[a][lane] = axis.step * strides[a];
            t_next[a][lane] = axis.t_next;
            t_delta[a][lane] = axis.t_delta;
            t_first[a][lane] = axis.t_first;
            origin[a][lane] = ray.origin[a];
            direction[a][lane] = ray.direction[a];
            linear_start[lane] += axis.index * strides[a];
        }
        let d = ray.direction.map(f32::abs);
        lead[lane] = PREFETCH_VOXELS / d[0].max(d[1]).max(d[2]);
        t_now[lane] = start.t_enter;
        t_end[lane] = start.t_exit;
    }

    // A lane is done once any of its counts is negative: it left the grid, or it
    // reached its exit (every step at or past the exit sets the x count to -1). A done
    // lane stays done: counts only go down, apart from that reset to -1, and none can
    // wrap, as the loop ends within nx + ny + nz steps.
    // (Plain statements, not closures: a closure would be compiled without the
    // instruction set, and its vector operations would become calls.)
    let [mut rx, mut ry, mut rz] = [
        S::load_i(&remaining[0]),
        S::load_i(&remaining[1]),
        S::load_i(&remaining[2]),
    ];
    let [lx, ly, lz] = [
        S::load_i(&stride_step[0]),
        S::load_i(&stride_step[1]),
        S::load_i(&stride_step[2]),
    ];
    let [mut tx, mut ty, mut tz] = [
        S::load_f(&t_next[0]),
        S::load_f(&t_next[1]),
        S::load_f(&t_next[2]),
    ];
    let [dx, dy, dz] = [
        S::load_f(&t_delta[0]),
        S::load_f(&t_delta[1]),
        S::load_f(&t_delta[2]),
    ];
    let [fx, fy, fz] = [
        S::load_f(&t_first[0]),
        S::load_f(&t_first[1]),
        S::load_f(&t_first[2]),
    ];
    // `Axis::advance`: a crossing is `t_first + crossed * t_delta`. Faces crossed per
    // axis plus one, as `f32` (exact: the walker exists only for grids under 2^24 voxels
    // a side, so an active lane's count stays below 2^24, and `crossed as f32` is the
    // same number), and each axis's crossing after the next one, computed a step ahead
    // so that the walk's chain of dependent instructions stays one blend per step.
    let one = S::splat_f(1.0);
    let [mut kx, mut ky, mut kz] = [one; 3];
    let [mut ux, mut uy, mut uz] = [
        next::<S>(fx, kx, dx),
        next::<S>(fy, ky, dy),
        next::<S>(fz, kz, dz),
    ];
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
    let strides = [
        S::splat_i(strides[0]),
        S::splat_i(strides[1]),
        S::splat_i(strides[2]),
    ];
    let lead = S::load_f(&lead);
    let mut t = S::load_f(&t_now);
    let t_exit = S::load_f(&t_end);
    let mut linear = S::load_i(&linear_start);
    let minus_one = S::splat_i(-1);

    let prefetch_every = prefetch_interval();
    let mut step = 0u32;
    loop {
        let done = S::negative_i(S::or_i(rx, S::or_i(ry, rz)));
        if S::all(done) {
            break;
        }
        step = step.wrapping_add(1);
        if PREFETCH && step.is_multiple_of(prefetch_every) {
            // The voxel each lane will be in `lead` further along its ray.
            let ahead = S::add_f(t, lead);
            let mut at = S::splat_i(0);
            for a in 0..3 {
                let p = S::add_f(origin[a], S::mul_f(ahead, direction[a]));
                at = S::add_i(at, S::mul_i(S::trunc_i(p), strides[a]));
            }
            let voxels = sink.voxels();
            S::for_each_lane(at, |i| prefetch(voxels.wrapping_add(i as u32 as usize)));
        }
        // The scalar kernel's `min(x, min(y, z))`.
        let t_cross = S::min_f(tx, S::min_f(ty, tz));
        // `t_exit` where `t_cross >= t_exit`, else `t_cross` (NaN included), as in the
        // scalar kernel.
        let length = S::sub_f(S::min_f(t_exit, t_cross), t);
        sink.visit(S::not_m(done), linear, length);

        t = t_cross;
        // The walk ends at the exit, or where `t_cross` is NaN (no axis is crossed).
        let stop = S::not_lt_f(t_cross, t_exit);
        // The axis crossed: x first, then y, else z, as in the scalar kernel (a NaN
        // `t_cross` crosses none there; here it moves z but stops the lane).
        let mx = S::eq_f(t_cross, tx);
        let my = S::and_not_m(mx, S::eq_f(t_cross, ty));
        let mxy = S::or_m(mx, my);
        let mz = S::not_m(mxy);
        tx = S::select_f(mx, ux, tx);
        ty = S::select_f(my, uy, ty);
        tz = S::select_f(mxy, tz, uz);
        kx = S::select_f(mx, S::add_f(kx, one), kx);
        ky = S::select_f(my, S::add_f(ky, one), ky);
        kz = S::select_f(mz, S::add_f(kz, one), kz);
        ux = next::<S>(fx, kx, dx);
        uy = next::<S>(fy, ky, dy);
        uz = next::<S>(fz, kz, dz);
        // Counting one crossing off; a stopped lane's x count becomes -1.
        rx = S::select_i(stop, minus_one, S::decrement_where(mx, rx));
        ry = S::decrement_where(my, ry);
        rz = S::decrement_where(mz, rz);
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

/// Asks for the cache line at `p` (any address: a prefetch never faults).
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    //! The lanes against the scalar kernel, bit for bit, on random rays and volumes.

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use xray_kernels::ray::Ray;
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
    fn lanes_equal_the_scalar_kernel_on_axis_face_and_corner_rays() {
        let g = grid([6, 5, 4], [1.0, 1.0, 1.0]);
        let volume: Vec<f32> = (0..120).map(|i| (i % 7) as f32 + 0.5).collect();
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
        // A whole line (parallel beam), and one with non-finite numbers (a miss).
        rays.push(Ray {
            origin: [3.0, 2.5, 1.5],
            direction: [0.3, -0.2, 0.1],
            t_min: f32::NEG_INFINITY,
            t_max: f32::INFINITY,
        });
        rays.push(segment([f32::NAN, 1.0, 1.0], [1.0, 1.0, 1.0]));
        for path in vector_paths("siddon lanes, axis, face and corner rays") {
            let lanes = SiddonLanes::new(&volume, &g, path).expect("a supported path");
            for chunk in rays.chunks(lanes.lanes()) {
                assert_lanes_equal_scalar(lanes, &volume, &g, chunk);
            }
        }
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
