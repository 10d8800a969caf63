//! The Joseph transpose's fast slice step on AVX-512: a group's 64 tap terms of one
//! slice summed into dense rows of voxels in registers, then added to the volume with
//! a few masked vector read-modify-writes (or one scalar add per voxel).
//!
//! The rays of a detector row cross a slice side by side: their taps lie in two rows of
//! voxels (`ic` and `ic + 1`), and lane `i`'s upper tap is mostly lane `i + 1`'s lower
//! one. Adding the 64 terms one at a time was about half the backprojection's time (64
//! scalar loads, adds and stores a slice step). Here the active lanes are moved to the
//! front (`vcompressps`), each row's terms placed in 32 slots of two vectors with
//! `vexpandps` (lane order is slot order) and summed there, so each voxel gets one add
//! per slice step. Where the row is contiguous in memory (the frame's `b` axis is x),
//! each row is added with two masked vector read-modify-writes; otherwise with one
//! scalar add per voxel written.
//!
//! A slice step takes this path when its active lanes' `ic` take at most two
//! neighbouring values (two or three rows), their `ib` are monotone across the lanes
//! (rising or falling) and span at most 31 voxels, and no three neighbouring lanes share
//! an `ib`; otherwise [`super::joseph_lanes`] adds its terms lane by lane. Each voxel
//! gets the same terms as from the lane-by-lane path, in another fixed order (a group's
//! terms summed in registers, then added): the result depends only on the group's rays,
//! never on the thread count, and a ray alone adds exactly the scalar kernel's terms.

use std::arch::x86_64::*;

use super::span::Span;

/// Every lane of a mask.
const ALL_LANES: __mmask16 = 0xffff;

/// The largest slot a lane's lower tap may take: its upper tap is the next slot, and
/// there are 32.
const LAST_LOWER_SLOT: i32 = 30;

/// The frame's `b` and `c` axes, as the slice step needs them.
#[derive(Clone, Copy)]
pub(crate) struct RowAxes {
    /// Voxels from one `b` (or `c`) index to the next.
    pub(crate) stride_b: isize,
    pub(crate) stride_c: isize,
    /// Voxels along `b` and `c`.
    pub(crate) count_b: i32,
    pub(crate) count_c: i32,
}

/// One slice step of a group, as the lane walker computed it.
pub(crate) struct SliceStep {
    /// Lanes whose ray samples the slice.
    pub(crate) active: __mmask16,
    /// The linear index of the slice's voxel (0, 0).
    pub(crate) slice_start: isize,
    /// Tap (0, 0)'s voxel indices along `b` and `c`.
    pub(crate) ib: __m512i,
    pub(crate) ic: __m512i,
    /// The terms of taps (0, 0), (1, 0), (0, 1), (1, 1): the ray's value times the
    /// length per slice times the tap's bilinear weight.
    pub(crate) terms: [__m512; 4],
}

/// Where a slice step's rows go: what every row shares.
struct RowPlan {
    /// Live lanes whose first term starts a slot (the other live lanes' terms were
    /// added to the next lane's).
    kept: __mmask16,
    /// Live lanes that share their slot with the previous lane.
    shared: __mmask16,
    /// Slots taken by first and by second terms, in slot order.
    firsts: u32,
    seconds: u32,
    /// Whether slots run against memory (falling `ib`).
    reversed: bool,
    /// Memory slots (in rising `ib`) written and inside the grid along `b`.
    inside: u32,
    /// `b` index of memory slot 0 and `c` index of row 0.
    ib_first: isize,
    ic_first: isize,
    /// Voxels from memory slot 0 to the first and to the last slot written.
    lowest: isize,
    highest: isize,
}

/// Adds `step`'s terms to `target` as dense rows and widens `span` to hold what it
/// wrote; returns `false`, having written nothing, when the step does not have the
/// shape this path needs (see the module docs).
///
/// # Safety
/// Must run compiled for AVX-512 F, BW, DQ and VL, on a CPU that has them. `axes` must
/// be the frame of the lanes' rays on a grid whose voxels `target` holds exactly, and
/// `step` must come from that frame's lane walker: then every voxel written is inside
/// the grid (its `b` and `c` indices are checked against the counts).
#[inline(always)]
pub(crate) unsafe fn add_rows(
    step: &SliceStep,
    axes: &RowAxes,
    target: &mut [f32],
    span: &mut Span,
) -> bool {
    // The live lanes first: all lanes, or the active ones moved to the front.
    let (live, ib, ic, terms) = if step.active == ALL_LANES {
        (ALL_LANES, step.ib, step.ic, step.terms)
    } else {
        let count = step.active.count_ones();
        if count == 0 {
            return true;
        }
        let active = step.active;
        (
            ((1u32 << count) - 1) as __mmask16,
            _mm512_maskz_compress_epi32(active, step.ib),
            _mm512_maskz_compress_epi32(active, step.ic),
            [
                _mm512_maskz_compress_ps(active, step.terms[0]),
                _mm512_maskz_compress_ps(active, step.terms[1]),
                _mm512_maskz_compress_ps(active, step.terms[2]),
                _mm512_maskz_compress_ps(active, step.terms[3]),
            ],
        )
    };
    let zero = _mm512_setzero_si512();
    let one = _mm512_set1_epi32(1);
    // Rows: lanes at `ic0` and at most one other `ic`, one above or one below.
    let ic0 = first_lane(ic);
    let above = _mm512_mask_cmpgt_epi32_mask(live, ic, ic0);
    let below = _mm512_mask_cmplt_epi32_mask(live, ic, ic0);
    let near = _mm512_mask_cmple_epi32_mask(live, ic, _mm512_add_epi32(ic0, one))
        & _mm512_mask_cmpge_epi32_mask(live, ic, _mm512_sub_epi32(ic0, one));
    if near != live || (above != 0 && below != 0) {
        return declined();
    }
    // Lanes whose taps are one row up from the lowest row.
    let (upper, ic_low) = if below != 0 {
        (live & !below, _mm512_sub_epi32(ic0, one))
    } else {
        (above, ic0)
    };
    let ib0 = first_lane(ib);
    let offset = _mm512_sub_epi32(ib, ib0);
    // Lane i's offset less lane i - 1's (lane 0's less 0).
    let rise = _mm512_sub_epi32(offset, _mm512_alignr_epi32::<15>(offset, zero));
    // `slot`: where each lane's first term goes, rising from 0 along the lanes. Rising
    // `ib`: the lower tap at slot `ib - ib0`, the upper at the next. Falling `ib`: slots
    // count down from `ib0 + 1`, so the upper tap is at `ib0 - ib` and the lower next.
    let rising = _mm512_mask_cmpge_epi32_mask(live, rise, zero) == live;
    let slot = if rising {
        offset
    } else if _mm512_mask_cmple_epi32_mask(live, rise, zero) == live {
        _mm512_sub_epi32(zero, offset)
    } else {
        return declined();
    };
    if _mm512_mask_cmple_epi32_mask(live, slot, _mm512_set1_epi32(LAST_LOWER_SLOT)) != live {
        return declined();
    }
    // Lanes sharing their slot with the previous lane (lane 0 has none); three in one
    // slot go lane by lane.
    let shared = _mm512_mask_cmpeq_epi32_mask(live, rise, zero) & !1;
    if shared & (shared << 1) != 0 {
        return declined();
    }
    let kept = live & !(shared >> 1);
    // The slots taken by the first terms (one bit per kept lane, in lane order).
    let firsts = _mm512_mask_reduce_or_epi32(kept, _mm512_sllv_epi32(one, slot)) as u32;
    let written = firsts | (firsts << 1);
    let (written, ib_first) = if rising {
        (written, lane_zero(ib0))
    } else {
        (
            written.reverse_bits(),
            lane_zero(ib0) - LAST_LOWER_SLOT as isize,
        )
    };
    #[cfg(test)]
    shapes::count(|s| {
        s.steps += 1;
        s.falling += u64::from(!rising);
        s.three_rows += u64::from(upper != 0);
        s.shared += u64::from(shared != 0);
        s.partly_live += u64::from(live != ALL_LANES);
        s.strided += u64::from(axes.stride_b != 1);
    });
    let inside = inside_slots(ib_first, axes.count_b) & written;
    if inside == 0 {
        return true;
    }
    let plan = RowPlan {
        kept,
        shared,
        firsts,
        seconds: firsts << 1,
        reversed: !rising,
        inside,
        ib_first,
        ic_first: lane_zero(ic_low),
        lowest: inside.trailing_zeros() as isize * axes.stride_b,
        highest: (31 - inside.leading_zeros()) as isize * axes.stride_b,
    };
    let [t00, t10, t01, t11] = terms;
    // Each row's (first, second) terms: at the lane's slot and at the next.
    let (low, high) = if rising {
        ((t00, t10), (t01, t11))
    } else {
        ((t10, t00), (t11, t01))
    };
    if upper == 0 {
        add_row(&plan, 0, low.0, low.1, step, axes, target, span);
        add_row(&plan, 1, high.0, high.1, step, axes, target, span);
    } else {
        // Lower lanes' taps in rows 0 and 1, upper lanes' in rows 1 and 2.
        let lower = !upper;
        add_row(
            &plan,
            0,
            _mm512_maskz_mov_ps(lower, low.0),
            _mm512_maskz_mov_ps(lower, low.1),
            step,
            axes,
            target,
            span,
        );
        add_row(
            &plan,
            1,
            _mm512_mask_blend_ps(upper, high.0, low.0),
            _mm512_mask_blend_ps(upper, high.1, low.1),
            step,
            axes,
            target,
            span,
        );
        add_row(
            &plan,
            2,
            _mm512_maskz_mov_ps(upper, high.0),
            _mm512_maskz_mov_ps(upper, high.1),
            step,
            axes,
            target,
            span,
        );
    }
    true
}

/// Adds one row of `plan` (`row` above its lowest) to `target`: each kept lane's
/// `first` term at its slot and `second` at the next, summed slot by slot.
///
/// # Safety
/// As [`add_rows`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn add_row(
    plan: &RowPlan,
    row: isize,
    first: __m512,
    second: __m512,
    step: &SliceStep,
    axes: &RowAxes,
    target: &mut [f32],
    span: &mut Span,
) {
    let ic = plan.ic_first + row;
    if ic < 0 || ic >= axes.count_c as isize {
        return;
    }
    let (first, second) = if plan.shared != 0 {
        (combine_shared(plan, first), combine_shared(plan, second))
    } else {
        (first, second)
    };
    let a = expand_to_slots(plan.firsts, first);
    let b = expand_to_slots(plan.seconds, second);
    let (mut low, mut high) = (_mm512_add_ps(a[0], b[0]), _mm512_add_ps(a[1], b[1]));
    if plan.reversed {
        (low, high) = (reverse(high), reverse(low));
    }
    // The linear index of memory slot 0.
    let start = step.slice_start + plan.ib_first * axes.stride_b + ic * axes.stride_c;
    span.include((start + plan.lowest) as usize);
    span.include((start + plan.highest) as usize);
    if axes.stride_b == 1 {
        let at = target.as_mut_ptr().wrapping_offset(start);
        add_masked(at, plan.inside as u16, low);
        add_masked(at.wrapping_add(16), (plan.inside >> 16) as u16, high);
    } else {
        let mut values = [0.0f32; 32];
        _mm512_storeu_ps(values.as_mut_ptr(), low);
        _mm512_storeu_ps(values.as_mut_ptr().add(16), high);
        let mut left = plan.inside;
        while left != 0 {
            let s = left.trailing_zeros() as usize;
            left &= left - 1;
            *target
                .as_mut_ptr()
                .offset(start + s as isize * axes.stride_b) += values[s];
        }
    }
}

/// `terms` with each shared lane's term added to the previous lane's (previous lane
/// first), the kept lanes moved to the front.
#[inline(always)]
unsafe fn combine_shared(plan: &RowPlan, terms: __m512) -> __m512 {
    let previous = _mm512_castsi512_ps(_mm512_alignr_epi32::<15>(
        _mm512_castps_si512(terms),
        _mm512_setzero_si512(),
    ));
    let summed = _mm512_mask_add_ps(terms, plan.shared, previous, terms);
    _mm512_maskz_compress_ps(plan.kept, summed)
}

/// Lane 0 of `v`.
#[inline(always)]
unsafe fn lane_zero(v: __m512i) -> isize {
    _mm_cvtsi128_si32(_mm512_castsi512_si128(v)) as isize
}

/// `false`: the step goes lane by lane (counted in the unit tests).
#[inline(always)]
fn declined() -> bool {
    #[cfg(test)]
    shapes::count(|s| s.declined += 1);
    false
}

/// Every lane set to lane 0 of `v`.
#[inline(always)]
unsafe fn first_lane(v: __m512i) -> __m512i {
    _mm512_broadcastd_epi32(_mm512_castsi512_si128(v))
}

/// The lanes of `v` in reverse order.
#[inline(always)]
unsafe fn reverse(v: __m512) -> __m512 {
    let backwards = _mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    _mm512_permutexvar_ps(backwards, v)
}

/// The first lanes of `v`, in order, placed in the set bits of `slots` (32 slots in two
/// vectors); the other slots are 0.
#[inline(always)]
unsafe fn expand_to_slots(slots: u32, v: __m512) -> [__m512; 2] {
    let low = slots as u16;
    let used = _mm512_set1_epi32(low.count_ones() as i32);
    let rest = _mm512_permutexvar_ps(_mm512_add_epi32(used, lanes()), v);
    [
        _mm512_maskz_expand_ps(low, v),
        _mm512_maskz_expand_ps((slots >> 16) as u16, rest),
    ]
}

/// 0, 1, ..., 15.
#[inline(always)]
unsafe fn lanes() -> __m512i {
    _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

/// The slots `s` (0 to 31) for which `first + s` is in `0..count`.
#[inline(always)]
unsafe fn inside_slots(first: isize, count: i32) -> u32 {
    let low = _mm512_add_epi32(_mm512_set1_epi32(first as i32), lanes());
    let high = _mm512_add_epi32(low, _mm512_set1_epi32(16));
    let (minus_one, count) = (_mm512_set1_epi32(-1), _mm512_set1_epi32(count));
    let low = _mm512_cmpgt_epi32_mask(low, minus_one) & _mm512_cmpgt_epi32_mask(count, low);
    let high = _mm512_cmpgt_epi32_mask(high, minus_one) & _mm512_cmpgt_epi32_mask(count, high);
    u32::from(low) | (u32::from(high) << 16)
}

/// Adds `v` to the 16 floats at `at` in the lanes set in `mask` (the others are not
/// read or written).
#[inline(always)]
unsafe fn add_masked(at: *mut f32, mask: __mmask16, v: __m512) {
    let old = _mm512_maskz_loadu_ps(mask, at);
    _mm512_mask_storeu_ps(at, mask, _mm512_add_ps(old, v));
}

/// What the unit tests count: the slice steps this path took, by shape, and those it
/// declined, on the test's own thread.
#[cfg(test)]
pub(crate) mod shapes {
    use std::cell::Cell;

    /// Slice steps by shape (a step can count in several).
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct Shapes {
        pub(crate) steps: u64,
        pub(crate) falling: u64,
        pub(crate) three_rows: u64,
        pub(crate) shared: u64,
        pub(crate) partly_live: u64,
        pub(crate) strided: u64,
        pub(crate) declined: u64,
    }

    thread_local! {
        static SHAPES: Cell<Shapes> = Cell::new(Shapes::default());
    }

    /// Updates this thread's counts.
    pub(crate) fn count(update: impl FnOnce(&mut Shapes)) {
        SHAPES.with(|cell| {
            let mut shapes = cell.get();
            update(&mut shapes);
            cell.set(shapes);
        });
    }

    /// This thread's counts so far.
    pub(crate) fn so_far() -> Shapes {
        SHAPES.with(Cell::get)
    }
}

#[cfg(test)]
mod tests {
    //! Detector-row groups of rays through the AVX-512 transpose against the scalar
    //! kernel: each ray alone bit for bit, the group within the rounding of reordered
    //! sums, every shape of slice step taken (and declined) at least once.

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use xray_kernels::joseph::joseph_adjoint;
    use xray_kernels::ray::Ray;

    use super::super::joseph_lanes::JosephAdjointLanes;
    use super::super::lanes::test_support::{assert_scatter_matches, between, grid};
    use super::super::lanes::LanePath;
    use super::shapes;

    /// 16 rays from `source` to points `step` apart from `first` (a detector row).
    fn detector_row(source: [f32; 3], first: [f32; 3], step: [f32; 3]) -> Vec<Ray> {
        (0..16)
            .map(|lane| {
                let shift = lane as f32;
                between(source, [0, 1, 2].map(|a| first[a] + shift * step[a]))
            })
            .collect()
    }

    #[test]
    fn detector_rows_add_the_scalar_kernels_terms_in_every_shape() {
        if !LanePath::Avx512.is_supported() {
            println!("joseph rows: this CPU has no AVX-512; nothing to test");
            return;
        }
        println!("joseph rows: vector path run on this CPU: avx512");
        let g = grid([24, 20, 12], [1.0, 1.1, 0.9]);
        let lanes = JosephAdjointLanes::new(&g, LanePath::Avx512).expect("AVX-512 runs");
        let mut random = ChaCha8Rng::seed_from_u64(41);
        let before = shapes::so_far();
        for round in 0..400 {
            // Along y (rows contiguous in x) or along x (rows strided), the row's points
            // rising or falling along the row, 0.15 to 2.5 voxels apart (three or more
            // rays a voxel, pairs sharing voxels, one a voxel, wider than 32 voxels),
            // tilted across z so that neighbours' rows differ, and starting inside or
            // beside the grid so that some rays enter late or miss.
            let along_y = round % 2 == 0;
            let sign = if round % 4 < 2 { 1.0 } else { -1.0 };
            let spacing = sign * random.random_range(0.15f32..2.5);
            let tilt = random.random_range(-0.08f32..0.08);
            let (near, far) = (
                random.random_range(-30.0f32..-8.0),
                random.random_range(30.0f32..60.0),
            );
            let along = random.random_range(-6.0f32..30.0);
            let height = random.random_range(-2.0f32..13.0);
            let across = random.random_range(2.0f32..20.0);
            let rays = if along_y {
                detector_row(
                    [across, near, height],
                    [along, far, height],
                    [spacing, 0.0, tilt],
                )
            } else {
                detector_row(
                    [near, across, height],
                    [far, along, height],
                    [0.0, spacing, tilt],
                )
            };
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
        let after = shapes::so_far();
        let taken = |f: fn(&shapes::Shapes) -> u64| f(&after) - f(&before);
        println!("joseph rows: {after:?}");
        assert!(taken(|s| s.steps) > 10_000, "slice steps taken");
        for (shape, count) in [
            ("falling", taken(|s| s.falling)),
            ("three rows", taken(|s| s.three_rows)),
            ("shared slots", taken(|s| s.shared)),
            ("partly live", taken(|s| s.partly_live)),
            ("strided rows", taken(|s| s.strided)),
            ("declined", taken(|s| s.declined)),
        ] {
            assert!(count > 100, "{shape}: {count} slice steps");
        }
    }
}
