//! Joseph's method for a vector's lanes of rays at once (8 with AVX2, 16 with AVX-512;
//! the transpose 8 on both, see [`JosephAdjointLanes::new`]): the CPU's fast path for
//! Joseph's forward projection and its transpose on x86-64.
//!
//! Neighbouring rays almost always share their dominant axis, so the lanes' rays sample
//! the same slice at each step: one vector computes their sample positions, bilinear
//! weights and tap indices, and four gathers read their taps (the instruction or scalar
//! loads, as `Gather::in_use` says for this CPU; taps outside the grid read as 0). A
//! group whose rays do not share a dominant axis is sampled one ray at a time by the
//! scalar kernel.
//!
//! The sampling is written once, over [`Simd`]; [`JosephLanes::trace`] runs it compiled
//! for the chosen [`LanePath`]. Every lane starts from
//! `xray_kernels::joseph::joseph_start` and does the same `f32` operations in the same
//! order as `xray_kernels::joseph::joseph`, so the line integrals are bit for bit the
//! scalar kernel's on every path. The transpose adds each ray's terms exactly as
//! `joseph_adjoint` does, the rays of a group interleaved (so a voxel two of them touch
//! sums their terms in another order than one ray at a time). The unit tests below, and
//! those of [`super::cpu`], check both.

use xray_kernels::joseph::{joseph, joseph_adjoint, joseph_start, JosephStart};
use xray_kernels::ray::Ray;
use xray_kernels::GridParams;

use super::lanes::{gather, Gather, LanePath, Simd, MAX_LANES};
#[cfg(target_arch = "x86_64")]
use super::lanes::{prefetch, scatter_add, SpanLanes};
use super::span::Span;

/// The lockstep sampler for one volume: it exists only when the lane path is a vector
/// one and the volume's linear indices fit in the `i32` lanes.
#[derive(Clone, Copy)]
pub(crate) struct JosephLanes<'a> {
    volume: &'a [f32],
    grid: &'a GridParams,
    path: LanePath,
    /// How the lanes read their taps.
    gather: Gather,
}

/// Whether `grid` (of `voxels` voxels) can be walked in the lanes of `path`: a whole
/// grid (a slab goes one ray at a time), at least one voxel and fewer than `2^31`, on a
/// vector path this CPU runs.
fn lanes_fit(grid: &GridParams, voxels: usize, path: LanePath) -> bool {
    grid.is_whole()
        && voxels == grid.voxel_count()
        && voxels > 0
        && voxels <= i32::MAX as usize
        && path != LanePath::Scalar
        && path.is_supported()
}

impl<'a> JosephLanes<'a> {
    /// The sampler for `volume` on `grid` on `path`, or `None` when `path` is scalar or
    /// this CPU does not run it, the volume has `2^31` voxels or more or none, or
    /// `volume` does not hold exactly the whole grid's voxels (a slab of it goes one ray
    /// at a time).
    pub(crate) fn new(volume: &'a [f32], grid: &'a GridParams, path: LanePath) -> Option<Self> {
        lanes_fit(grid, volume.len(), path).then_some(JosephLanes {
            volume,
            grid,
            path,
            gather: Gather::in_use(),
        })
    }

    /// The same sampler reading its taps the way `gather` says (the tests run both).
    #[cfg(test)]
    fn with_gather(self, gather: Gather) -> Self {
        JosephLanes { gather, ..self }
    }

    /// Rays per call of [`JosephLanes::trace`].
    pub(crate) fn lanes(&self) -> usize {
        self.path.lanes()
    }

    /// Writes the Joseph line integral of `rays[i]` to `out[i]`, for up to
    /// [`JosephLanes::lanes`] rays: exactly what `xray_kernels::joseph::joseph` gives
    /// for each.
    pub(crate) fn trace(&self, rays: &[Ray], out: &mut [f32]) {
        debug_assert_eq!(rays.len(), out.len());
        if rays.len() > self.lanes() {
            for (rays, out) in rays.chunks(self.lanes()).zip(out.chunks_mut(self.lanes())) {
                self.trace(rays, out);
            }
            return;
        }
        let starts = starts(self.grid, rays);
        #[cfg(target_arch = "x86_64")]
        if share_a_frame(&starts) {
            // SAFETY: `new` checked that the CPU runs `path` (a vector path), that
            // `volume` holds exactly the grid's voxels (at least one), and that their
            // count fits in `i32`; all started lanes share one frame, and lanes past
            // `rays.len()` are `None`.
            unsafe {
                match self.path {
                    LanePath::Avx512 => integrate_avx512(self.volume, self.gather, &starts, out),
                    _ => integrate_avx2(self.volume, self.gather, &starts, out),
                }
            }
            return;
        }
        for (ray, value) in rays.iter().zip(out) {
            *value = joseph(self.volume, self.grid, ray);
        }
    }
}

/// The lockstep sampler of the transpose (backprojection) on one grid: it exists only
/// when the lane path is a vector one and the grid's linear indices fit in the `i32`
/// lanes. It runs 8 rays at a time on AVX2 and on AVX-512 alike: with 16 the
/// backprojection was slower (see [`JosephAdjointLanes::new`]).
#[derive(Clone, Copy)]
pub(crate) struct JosephAdjointLanes<'a> {
    grid: &'a GridParams,
    /// The AVX2 path (every CPU with AVX-512 has AVX2).
    path: LanePath,
}

impl<'a> JosephAdjointLanes<'a> {
    /// The sampler for volumes of the whole `grid` on `path` (AVX2's 8 lanes where
    /// `path` is AVX-512), or `None` when `path` is scalar or this CPU does not run it,
    /// or the grid is a slab, empty, or has `2^31` voxels or more.
    ///
    /// Why 8 lanes on AVX-512: a slice step adds each lane's 4 taps with scalar loads,
    /// adds and stores, and on the Zen 4 measured (fp256, 2 threads, alternated builds)
    /// 16-lane groups backprojected 2.0-2.4 Mray/s against 2.8-3.2 for 8-lane groups.
    /// Summing a group's terms in dense rows first (`vexpandps` into 32 slots for 16
    /// lanes or 16 for 8, then masked vector adds) gave 2.6-2.9 and 2.2-3.1: no faster
    /// than 8 lanes one tap at a time.
    pub(crate) fn new(grid: &'a GridParams, path: LanePath) -> Option<Self> {
        let path = adjoint_path(path);
        lanes_fit(grid, grid.voxel_count(), path).then_some(JosephAdjointLanes { grid, path })
    }

    /// Rays per call of [`JosephAdjointLanes::scatter`].
    pub(crate) fn lanes(&self) -> usize {
        self.path.lanes()
    }

    /// Adds `values[i]` times ray `i`'s Joseph weights into `target` (the whole grid's
    /// voxels), for up to [`JosephAdjointLanes::lanes`] rays: each ray adds exactly the
    /// terms `xray_kernels::joseph::joseph_adjoint` adds, the rays' terms interleaved
    /// slice by slice (within a slice, lane by lane where every active lane's four
    /// taps are inside the grid, else tap by tap). Returns the span of voxels written.
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
        debug_assert_eq!(
            target.len(),
            self.grid.voxel_count(),
            "a backprojection target"
        );
        let mut span = Span::EMPTY;
        let starts = starts(self.grid, rays);
        #[cfg(target_arch = "x86_64")]
        if share_a_frame(&starts) && target.len() == self.grid.voxel_count() {
            // The vector code below is AVX2's, in groups of its 8 lanes.
            debug_assert_eq!(self.path, LanePath::Avx2);
            let mut weights = [0.0f32; MAX_LANES];
            for ((weight, start), value) in weights.iter_mut().zip(&starts).zip(values) {
                // The scalar kernel's `value * start.length_per_slice`.
                *weight = start.map_or(0.0, |s| value * s.length_per_slice);
            }
            let span_ref = &mut span;
            // SAFETY: `new` checked that the CPU runs `path` (AVX2, the only vector path it
            // keeps) and that the grid's voxel count (at least one) fits in `i32`; `target`
            // holds that many; all started lanes share one frame, and lanes past
            // `rays.len()` (at most 8) are `None`.
            unsafe { scatter_avx2(&starts, &weights, target, span_ref) }
            return span;
        }
        // One ray at a time (a target of the wrong length fails on its first write).
        for (ray, &value) in rays.iter().zip(values) {
            joseph_adjoint(self.grid, ray, value, |i, w| {
                target[i] += w;
                span.include(i);
            });
        }
        span
    }
}

/// The path Joseph's transpose runs where the projections run `path`: AVX2's 8 lanes
/// where `path` is AVX-512 (see [`JosephAdjointLanes::new`]), else `path`.
pub(crate) fn adjoint_path(path: LanePath) -> LanePath {
    match path {
        LanePath::Avx512 => LanePath::Avx2,
        other => other,
    }
}

/// Per-lane start state, `None` for a lane without a ray or whose ray samples nothing.
type Starts = [Option<JosephStart>; MAX_LANES];

/// The start of each ray's walk, `None` past `rays.len()`.
fn starts(grid: &GridParams, rays: &[Ray]) -> Starts {
    let mut starts = [None; MAX_LANES];
    for (start, ray) in starts.iter_mut().zip(rays) {
        *start = joseph_start(grid, ray);
    }
    starts
}

/// Whether all started lanes have the same frame axes: the same strides *and* voxel
/// counts (strides alone can coincide across dominant axes on a grid one voxel wide,
/// whose counts then differ), so that one set of bounds checks fits every lane.
#[cfg(target_arch = "x86_64")]
fn share_a_frame(starts: &Starts) -> bool {
    let mut axes = starts
        .iter()
        .flatten()
        .map(|s| (s.frame.stride, s.frame.count));
    let first = axes.next();
    axes.all(|frame| Some(frame) == first)
}

/// [`integrate`] compiled for AVX2.
///
/// # Safety
/// As [`integrate`], on a CPU with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn integrate_avx2(volume: &[f32], how: Gather, starts: &Starts, out: &mut [f32]) {
    integrate::<super::lanes::avx2::Avx2>(volume, how, starts, out)
}

/// [`integrate`] compiled for AVX-512.
///
/// # Safety
/// As [`integrate`], on a CPU with AVX-512 F, BW, DQ and VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn integrate_avx512(volume: &[f32], how: Gather, starts: &Starts, out: &mut [f32]) {
    integrate::<super::lanes::avx512::Avx512>(volume, how, starts, out)
}

/// [`scatter`] compiled for AVX2.
///
/// # Safety
/// As [`scatter`], on a CPU with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scatter_avx2(
    starts: &Starts,
    weights: &[f32; MAX_LANES],
    target: &mut [f32],
    span: &mut Span,
) {
    scatter::<super::lanes::avx2::Avx2>(starts, weights, target, span)
}

/// The lanes' rays stepped slice by slice together: what the forward sampling and its
/// transpose share.
#[cfg(target_arch = "x86_64")]
struct Lockstep<S: Simd> {
    k_first: S::I,
    k_last: S::I,
    b_first: S::F,
    c_first: S::F,
    slope_b: S::F,
    slope_c: S::F,
    count_b: S::I,
    count_c: S::I,
    stride_b: S::I,
    stride_c: S::I,
    /// Voxels from one slice to the next.
    stride_k: usize,
    /// Taps (0, 0), (1, 0), (0, 1), (1, 1) as offsets from tap (0, 0), in voxels.
    tap_offsets: [usize; 4],
    /// The first and last slice any lane samples.
    first: i32,
    last: i32,
}

/// The taps of one slice in every lane.
#[cfg(target_arch = "x86_64")]
struct SliceTaps<S: Simd> {
    /// Lanes whose ray samples this slice.
    active: S::M,
    /// The linear index of tap (0, 0).
    base: S::I,
    /// Bilinear weights along the frame's `b` and `c` axes.
    wb: S::F,
    wc: S::F,
    /// Taps (0, 0), (1, 0), (0, 1), (1, 1): offsets from `base`, and whether each is
    /// inside the grid.
    offset: [S::I; 4],
    inside: [S::M; 4],
}

#[cfg(target_arch = "x86_64")]
impl<S: Simd> Lockstep<S> {
    /// The lockstep state of `starts`, or `None` when no lane has a sample.
    ///
    /// # Safety
    /// As [`Simd`]'s methods; every `Some` in `starts` must have the same frame.
    #[inline(always)]
    unsafe fn new(starts: &Starts) -> Option<Self> {
        let frame = starts.iter().flatten().next().map(|s| s.frame)?;
        let mut k_first = [i32::MAX; MAX_LANES];
        let mut k_last = [i32::MIN; MAX_LANES];
        let mut b_first = [0.0f32; MAX_LANES];
        let mut c_first = [0.0f32; MAX_LANES];
        let mut slope_b = [0.0f32; MAX_LANES];
        let mut slope_c = [0.0f32; MAX_LANES];
        for (lane, start) in starts.iter().enumerate() {
            if let Some(s) = start {
                k_first[lane] = s.k_first;
                k_last[lane] = s.k_last;
                b_first[lane] = s.b_first;
                c_first[lane] = s.c_first;
                slope_b[lane] = s.slope_b;
                slope_c[lane] = s.slope_c;
            }
        }
        Some(Lockstep {
            first: k_first.iter().copied().min().unwrap_or(0),
            last: k_last.iter().copied().max().unwrap_or(-1),
            k_first: S::load_i(&k_first),
            k_last: S::load_i(&k_last),
            b_first: S::load_f(&b_first),
            c_first: S::load_f(&c_first),
            slope_b: S::load_f(&slope_b),
            slope_c: S::load_f(&slope_c),
            count_b: S::splat_i(frame.count[1] as i32),
            count_c: S::splat_i(frame.count[2] as i32),
            stride_b: S::splat_i(frame.stride[1] as i32),
            stride_c: S::splat_i(frame.stride[2] as i32),
            stride_k: frame.stride[0],
            tap_offsets: [
                0,
                frame.stride[1],
                frame.stride[2],
                frame.stride[1] + frame.stride[2],
            ],
        })
    }

    /// The taps of slice `k` (between `first` and `last`), as the scalar kernel's
    /// `Taps::at` computes them, operation for operation.
    ///
    /// # Safety
    /// As [`Simd`]'s methods.
    #[inline(always)]
    unsafe fn taps(&self, k: i32) -> SliceTaps<S> {
        let kv = S::splat_i(k);
        // Lanes whose ray samples slice k: k_first <= k <= k_last.
        let active = S::not_m(S::or_m(S::gt_i(self.k_first, kv), S::gt_i(kv, self.k_last)));
        let steps = S::to_f(S::sub_i(kv, self.k_first));
        let b = S::add_f(self.b_first, S::mul_f(steps, self.slope_b));
        let c = S::add_f(self.c_first, S::mul_f(steps, self.slope_c));
        // The taps around (b, c), voxel centres at i + 0.5.
        let half = S::splat_f(0.5);
        let fb = S::sub_f(b, half);
        let fc = S::sub_f(c, half);
        let flb = S::floor_f(fb);
        let flc = S::floor_f(fc);
        let (ib, ic) = (S::trunc_i(flb), S::trunc_i(flc));
        let one = S::splat_i(1);
        let (ib1, ic1) = (S::add_i(ib, one), S::add_i(ic, one));
        let (b0, b1) = (
            within::<S>(ib, self.count_b),
            within::<S>(ib1, self.count_b),
        );
        let (c0, c1) = (
            within::<S>(ic, self.count_c),
            within::<S>(ic1, self.count_c),
        );
        let base = S::add_i(
            S::splat_i((k as usize * self.stride_k) as i32),
            S::add_i(S::mul_i(ib, self.stride_b), S::mul_i(ic, self.stride_c)),
        );
        SliceTaps {
            active,
            base,
            wb: S::sub_f(fb, flb),
            wc: S::sub_f(fc, flc),
            offset: [
                S::splat_i(0),
                self.stride_b,
                self.stride_c,
                S::add_i(self.stride_b, self.stride_c),
            ],
            inside: [
                S::and_m(b0, c0),
                S::and_m(b1, c0),
                S::and_m(b0, c1),
                S::and_m(b1, c1),
            ],
        }
    }
}

/// The sampling of up to `S::LANES` rays in lockstep; see the module docs.
///
/// # Safety
/// Must run compiled for `S`'s instruction set, on a CPU that has it. `starts` must
/// come from `joseph_start` on the grid of `volume`, with `None` past the first
/// `S::LANES`; `volume` must hold exactly that grid's voxels (at least one), that count
/// must fit in `i32`, and every `Some` in `starts` must have the same frame axes. Then
/// every tap read is inside `volume`: a tap is read only when its slice, `b` and `c`
/// indices are inside the grid, and other taps read voxel 0 and are masked to 0.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn integrate<S: Simd>(volume: &[f32], how: Gather, starts: &Starts, out: &mut [f32]) {
    let Some(lockstep) = Lockstep::<S>::new(starts) else {
        // No ray has a sample: each gives exactly 0, as in the scalar kernel.
        out.fill(0.0);
        return;
    };
    let mut sum = S::splat_f(0.0);
    for k in lockstep.first..=lockstep.last {
        let t = lockstep.taps(k);
        // (Plain calls, not a closure: a closure would be compiled without the
        // instruction set, and its vector operations would become calls.)
        let v00 = tap::<S>(how, volume, t.base, t.offset[0], t.inside[0], t.active);
        let v10 = tap::<S>(how, volume, t.base, t.offset[1], t.inside[1], t.active);
        let v01 = tap::<S>(how, volume, t.base, t.offset[2], t.inside[2], t.active);
        let v11 = tap::<S>(how, volume, t.base, t.offset[3], t.inside[3], t.active);
        // The kernel's `bilinear`, operation for operation.
        let low = S::add_f(v00, S::mul_f(t.wb, S::sub_f(v10, v00)));
        let high = S::add_f(v01, S::mul_f(t.wb, S::sub_f(v11, v01)));
        let value = S::add_f(low, S::mul_f(t.wc, S::sub_f(high, low)));
        // Lanes not on this slice add +0.0, which leaves the sum unchanged bit for bit
        // (a sum that starts at +0.0 is never -0.0).
        sum = S::add_f(sum, S::keep_f(t.active, value));
    }
    let sums = S::to_array(sum);
    for ((value, start), lane_sum) in out.iter_mut().zip(starts).zip(sums) {
        // A ray without samples gives exactly 0, as in the scalar kernel.
        *value = start.map_or(0.0, |s| lane_sum * s.length_per_slice);
    }
}

/// The transpose of [`integrate`]: adds `weights[lane]` times each tap's bilinear
/// weight to the tap's voxel, slice by slice, as `joseph_adjoint` does for one ray.
/// Within a slice, where every active lane's four taps are inside the grid (almost
/// every step of a ray inside the volume), each lane adds its four taps in turn
/// ([`add_taps_inside`]: one index read out of the vector per lane, not one per tap;
/// on the Zen 4 measured, fp256 with 2 threads, 3.6-3.9 Mray/s against 3.4-3.5 tap by
/// tap); elsewhere each tap is added lane by lane, its lanes outside the grid masked.
///
/// # Safety
/// As [`integrate`], with `target` in place of `volume`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn scatter<S: Simd>(
    starts: &Starts,
    weights: &[f32; MAX_LANES],
    target: &mut [f32],
    span: &mut Span,
) {
    let Some(lockstep) = Lockstep::<S>::new(starts) else {
        return;
    };
    let weight = S::load_f(weights);
    let one = S::splat_f(1.0);
    let mut written = SpanLanes::<S>::new();
    let ahead = RowsAhead::<S>::new(starts);
    for k in lockstep.first..=lockstep.last {
        let t = lockstep.taps(k);
        ahead.prefetch(target.as_ptr(), t.base);
        // The scalar kernel's tap weights: (1 - wb)(1 - wc), wb (1 - wc), (1 - wb) wc,
        // wb wc.
        let (ub, uc) = (S::sub_f(one, t.wb), S::sub_f(one, t.wc));
        let terms = [
            S::mul_f(weight, S::mul_f(ub, uc)),
            S::mul_f(weight, S::mul_f(t.wb, uc)),
            S::mul_f(weight, S::mul_f(ub, t.wc)),
            S::mul_f(weight, S::mul_f(t.wb, t.wc)),
        ];
        let active = S::bits(t.active);
        // Taps (0, 0) and (1, 1) inside the grid: all four are.
        let all_inside = S::bits(S::and_m(t.inside[0], t.inside[3]));
        if active & !all_inside == 0 {
            // SAFETY: every active lane's four taps index `target` (see `integrate`).
            add_taps_inside::<S>(target, t.base, active, &terms, lockstep.tap_offsets);
            written.include_range(t.active, t.base, S::add_i(t.base, t.offset[3]));
        } else {
            for ((inside, offset), term) in t.inside.iter().zip(&t.offset).zip(terms) {
                let valid = S::and_m(*inside, t.active);
                let index = S::keep_i(valid, S::add_i(t.base, *offset));
                scatter_add::<S>(target, index, valid, term);
                written.include(valid, index);
            }
        }
    }
    *span = span.union(written.span());
}

/// Adds `terms[tap][lane]` to `target[base[lane] + offsets[tap]]` for each lane set in
/// `active`, lane by lane, tap by tap: a slice step whose active lanes have all four taps
/// inside the grid, with one index read out of `base` per lane instead of one per tap.
/// A lane's four taps are four different voxels, so each ray adds exactly the terms
/// `scatter_add` would; only lanes touching the same voxel sum in another order.
///
/// # Safety
/// As [`Simd`]'s methods; `base[lane] + offsets[tap]` must index `target` for every
/// lane set in `active` and every tap.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn add_taps_inside<S: Simd>(
    target: &mut [f32],
    base: S::I,
    active: u32,
    terms: &[S::F; 4],
    offsets: [usize; 4],
) {
    let base = S::to_array_i(base);
    let terms = [
        S::to_array(terms[0]),
        S::to_array(terms[1]),
        S::to_array(terms[2]),
        S::to_array(terms[3]),
    ];
    for lane in 0..S::LANES {
        if active & (1 << lane) != 0 {
            debug_assert!(
                base[lane] >= 0 && base[lane] as usize + offsets[3] < target.len(),
                "lane {lane} taps at {} + {offsets:?} of {}",
                base[lane],
                target.len()
            );
            let voxel = target.as_mut_ptr().add(base[lane] as u32 as usize);
            for (offset, terms) in offsets.iter().zip(&terms) {
                *voxel.add(*offset) += terms[lane];
            }
        }
    }
}

/// How many slices ahead the transpose prefetches the rows it will add to. On the Zen 4
/// measured (fp256, alternated runs of 8-10 rounds), the best round of the
/// backprojection was about 20 % faster with it, with 1 and with 2 threads, and the
/// medians moved within the machine's noise; of 4, 8, 16, 24, 32 and 64 slices (runs
/// of 3-10 rounds, as noisy), 16 had the best rounds. The forward sampling gained
/// nothing from the same prefetch, and has none.
const PREFETCH_SLICES_AHEAD: f32 = 16.0;

/// Where the first and last lanes' taps will be [`PREFETCH_SLICES_AHEAD`] slices on, for
/// the transpose to prefetch: each slice step reads and writes two rows of voxels a
/// `b` or `c` stride apart from the last step's, which the hardware does not foresee.
#[cfg(target_arch = "x86_64")]
struct RowsAhead<S: Simd> {
    /// Voxels from each lane's tap (0, 0) to its estimated tap (0, 0) that many slices
    /// on (any value: it only names an address to prefetch).
    lead: S::I,
    /// Voxels from a row to the next along `c`.
    stride_c: usize,
}

#[cfg(target_arch = "x86_64")]
impl<S: Simd> RowsAhead<S> {
    /// The leads of the lanes of `starts` (0 for lanes without a ray).
    ///
    /// # Safety
    /// As [`Simd`]'s methods.
    #[inline(always)]
    unsafe fn new(starts: &Starts) -> Self {
        let mut lead = [0i32; MAX_LANES];
        let mut stride_c = 0;
        for (lead, start) in lead.iter_mut().zip(starts) {
            if let Some(s) = start {
                let [stride_k, stride_b, c] = s.frame.stride.map(|stride| stride as i64);
                let ahead = PREFETCH_SLICES_AHEAD;
                // Wrapping to i32 is harmless: a wrong lead only prefetches a line in vain.
                *lead = (ahead as i64 * stride_k
                    + (ahead * s.slope_b).round() as i64 * stride_b
                    + (ahead * s.slope_c).round() as i64 * c) as i32;
                stride_c = s.frame.stride[2];
            }
        }
        RowsAhead {
            lead: S::load_i(&lead),
            stride_c,
        }
    }

    /// Prefetches rows `c` and `c + 1` of `values` at the first and last lanes' taps
    /// (0, 0) `base`, moved on by their leads.
    ///
    /// # Safety
    /// As [`Simd`]'s methods (the addresses need not be inside `values`: a prefetch
    /// never faults).
    #[inline(always)]
    unsafe fn prefetch(&self, values: *const f32, base: S::I) {
        let at = S::to_array_i(S::add_i(base, self.lead));
        for lane in [0, S::LANES - 1] {
            let row = values.wrapping_offset(at[lane] as isize);
            prefetch(row);
            prefetch(row.wrapping_add(self.stride_c));
        }
    }
}

/// Lanes where `0 <= i < n`.
///
/// # Safety
/// As [`Simd`]'s methods.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn within<S: Simd>(i: S::I, n: S::I) -> S::M {
    S::and_m(S::gt_i(i, S::splat_i(-1)), S::gt_i(n, i))
}

/// `values[base + offset]` where `valid` and `active`, +0.0 elsewhere (reading index 0
/// there instead).
///
/// # Safety
/// As [`Simd`]'s methods; `base + offset` must index `values` in every lane where
/// `valid` and `active` are both set.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn tap<S: Simd>(
    how: Gather,
    values: &[f32],
    base: S::I,
    offset: S::I,
    valid: S::M,
    active: S::M,
) -> S::F {
    let valid = S::and_m(valid, active);
    let index = S::keep_i(valid, S::add_i(base, offset));
    S::keep_f(valid, gather::<S>(how, values, index))
}

#[cfg(test)]
mod tests {
    //! The lanes against the scalar kernel, bit for bit, on random rays and volumes.

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use xray_kernels::joseph::{joseph, joseph_adjoint};
    use xray_kernels::ray::Ray;
    use xray_kernels::GridParams;

    use super::super::lanes::test_support::{
        assert_prefixes_match, assert_scatter_matches, between, grid, ray_group, segment,
        vector_paths,
    };
    use super::super::lanes::Gather;
    use super::{JosephAdjointLanes, JosephLanes};

    /// Checks every prefix of `rays` against the scalar kernel, with either way of
    /// reading the taps.
    fn assert_lanes_equal_scalar(
        lanes: &JosephLanes,
        volume: &[f32],
        g: &GridParams,
        rays: &[Ray],
    ) {
        for gather in Gather::ALL {
            let lanes = lanes.with_gather(gather);
            assert_prefixes_match(rays, |r, out| lanes.trace(r, out), |r| joseph(volume, g, r));
        }
    }

    #[test]
    fn lanes_equal_the_scalar_kernel_bit_for_bit() {
        let g = grid([13, 9, 17], [0.7, 1.3, 2.1]);
        let mut random = ChaCha8Rng::seed_from_u64(5);
        let volume: Vec<f32> = (0..g.voxel_count())
            .map(|_| random.random_range(-1.0..2.0))
            .collect();
        for path in vector_paths("joseph lanes, random rays") {
            let lanes = JosephLanes::new(&volume, &g, path).expect("a supported path");
            let mut nonzero = 0;
            for round in 0..1_000 {
                // Even rounds: rays from one source to nearby points, which share a
                // dominant axis (the lane path). Odd rounds: unrelated random segments,
                // which mostly do not (the one-ray-at-a-time path).
                let rays = ray_group(&mut random, lanes.lanes(), round, [0.23, -0.23, 0.0]);
                assert_lanes_equal_scalar(&lanes, &volume, &g, &rays);
                nonzero += rays
                    .iter()
                    .filter(|r| joseph(&volume[..], &g, r) != 0.0)
                    .count();
            }
            assert!(
                nonzero > 500 * lanes.lanes(),
                "{path}: most random rays must hit the grid"
            );
        }
    }

    #[test]
    fn adjoint_lanes_add_the_scalar_kernels_terms() {
        let g = grid([13, 9, 17], [0.7, 1.3, 2.1]);
        let mut random = ChaCha8Rng::seed_from_u64(29);
        for path in vector_paths("joseph adjoint lanes") {
            let lanes = JosephAdjointLanes::new(&g, path).expect("a supported path");
            for round in 0..60 {
                // Even rounds: rays from one source through nearby points (one frame,
                // the lane path, crossing the same voxels); odd rounds: unrelated
                // segments (mostly one ray at a time).
                let rays = ray_group(&mut random, lanes.lanes(), round, [0.13, -0.13, 0.0]);
                let values: Vec<f32> = rays
                    .iter()
                    .map(|_| random.random_range(-2.0..3.0))
                    .collect();
                assert_scatter_matches(
                    g.voxel_count(),
                    &rays,
                    &values,
                    |r, v, t| lanes.scatter(r, v, t),
                    |ray, value, add| joseph_adjoint(&g, ray, value, add),
                );
            }
        }
    }

    #[test]
    fn the_transpose_takes_8_lanes_on_every_vector_path() {
        let g = grid([13, 9, 17], [0.7, 1.3, 2.1]);
        for path in vector_paths("joseph adjoint lanes, lane count") {
            let lanes = JosephAdjointLanes::new(&g, path).expect("a supported path");
            assert_eq!(lanes.lanes(), 8, "{path}");
        }
    }

    #[test]
    fn lanes_stay_in_one_voxel_wide_grids_whose_frames_share_strides() {
        // With nx == 1 (or ny == 1), rays along x and along y (or y and z) have equal
        // strides but different voxel counts: a group mixing them is not one frame.
        let mut random = ChaCha8Rng::seed_from_u64(31);
        for n in [[1u32, 5, 6], [5, 1, 6], [1, 1, 7]] {
            let g = grid(n, [1.0, 1.1, 0.9]);
            let volume: Vec<f32> = (0..g.voxel_count())
                .map(|_| random.random_range(0.5..2.0))
                .collect();
            let extent = [n[0] as f32, n[1] as f32 * 1.1, n[2] as f32 * 0.9];
            let point = |random: &mut ChaCha8Rng, margin: f32| -> [f32; 3] {
                [0, 1, 2].map(|a| random.random_range(-margin..extent[a] + margin))
            };
            for path in vector_paths("joseph lanes, one-voxel-wide grids") {
                let lanes = JosephLanes::new(&volume, &g, path).expect("a supported path");
                let adjoint = JosephAdjointLanes::new(&g, path).expect("a supported path");
                for _ in 0..200 {
                    // Rays through the grid's inside, in all directions: dominant axes mix.
                    let rays: Vec<Ray> = (0..lanes.lanes())
                        .map(|_| {
                            let (inside, direction) =
                                (point(&mut random, 0.0), point(&mut random, 8.0));
                            between([0, 1, 2].map(|a| 2.0 * inside[a] - direction[a]), direction)
                        })
                        .collect();
                    assert_lanes_equal_scalar(&lanes, &volume, &g, &rays);
                    let values: Vec<f32> =
                        rays.iter().map(|_| random.random_range(0.5..2.0)).collect();
                    assert_scatter_matches(
                        g.voxel_count(),
                        &rays,
                        &values,
                        |r, v, t| adjoint.scatter(r, v, t),
                        |ray, value, add| joseph_adjoint(&g, ray, value, add),
                    );
                }
            }
        }
    }

    #[test]
    fn lanes_equal_the_scalar_kernel_on_axis_and_edge_rays() {
        let g = grid([6, 5, 4], [1.0, 1.0, 1.0]);
        let volume: Vec<f32> = (0..120).map(|i| (i % 7) as f32 + 0.5).collect();
        // Rays along x through voxel centres, faces and the half-voxel margin outside.
        let along_x: Vec<Ray> = [(0.5f32, 0.5f32), (2.0, 3.0), (-0.4, 1.5), (4.9, 3.999)]
            .iter()
            .flat_map(|&(b, c)| {
                [
                    segment([-1.0, b, c], [8.0, 0.0, 0.0]),
                    segment([7.0, b, c], [-8.0, 0.1, 0.0]),
                ]
            })
            .collect();
        let others = [
            segment([0.0, 0.0, 0.0], [4.0, 4.0, 4.0]),
            segment([9.0, 9.0, 9.0], [1.0, 1.0, 1.0]),
            segment([3.0, 2.5, 1.5], [0.0, 0.0, 0.0]),
            Ray {
                origin: [3.0, 2.5, 1.5],
                direction: [0.3, -0.2, 0.1],
                t_min: f32::NEG_INFINITY,
                t_max: f32::INFINITY,
            },
            segment([f32::NAN, 1.0, 1.0], [1.0, 1.0, 1.0]),
            segment([2.5, -1.0, 1.5], [0.0, 7.0, 0.0]),
        ];
        for path in vector_paths("joseph lanes, axis and edge rays") {
            let lanes = JosephLanes::new(&volume, &g, path).expect("a supported path");
            let width = lanes.lanes();
            for chunk in along_x.chunks(width).chain(others.chunks(width)) {
                assert_lanes_equal_scalar(&lanes, &volume, &g, chunk);
            }
        }
    }
}
