//! How much of a problem a device takes at a time: the volume split into slabs along z
//! and the projections into batches of views, so that one slab and one batch fit in a
//! memory budget together. Pure arithmetic in `u64`/`u128` on sizes, so that it is
//! tested on 4096^3 volumes and 100,000 views without allocating them.

use std::ops::Range;

use crate::error::{Error, Result};

/// What a device must hold for one call: the volume (`slices` slices of `slice_bytes`),
/// the projections (`views` views of `view_bytes`, their records included) and
/// `fixed_bytes` that do not depend on the split (FDK's matrices of all views, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Footprint {
    /// Slices of the volume (its `nz`).
    pub slices: usize,
    /// Bytes of one slice, `nx * ny * 4`.
    pub slice_bytes: u64,
    /// Views of the projections.
    pub views: usize,
    /// Bytes of one view's projection and its record.
    pub view_bytes: u64,
    /// Bytes needed whatever the split.
    pub fixed_bytes: u64,
}

/// How to split one call: slabs of at most `slab_slices` slices, batches of at most
/// `view_batch` views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Most slices per slab (all of them when the volume fits).
    pub slab_slices: usize,
    /// Most views per batch (all of them when they fit beside the slab).
    pub view_batch: usize,
}

impl Plan {
    /// The slabs of `slices` slices this plan makes: as few as `slab_slices` allows,
    /// balanced (their sizes differ by at most one slice).
    pub(crate) fn slabs(&self, slices: usize) -> Vec<Range<usize>> {
        balanced(slices, slices.div_ceil(self.slab_slices.max(1)))
    }
}

/// The split of `footprint` into slabs and batches that fits in `budget` bytes.
///
/// The whole volume with all views when they fit; else the whole volume with as many
/// views as fit beside it, if that is at least a quarter of the budget's worth of views
/// (or all of them); else slabs, the projections keeping that quarter (at least one
/// view) and the slab taking the rest. Fewer, larger slabs are preferred because every
/// slab runs every view again (the rays' work is the same, the launches and transfers
/// are not).
///
/// # Errors
/// [`Error::DeviceOutOfMemory`] when not even one slice and one view fit.
pub(crate) fn plan(footprint: &Footprint, budget: u64) -> Result<Plan> {
    let Footprint {
        slices,
        slice_bytes,
        views,
        view_bytes,
        fixed_bytes,
    } = *footprint;
    let (slice_bytes, view_bytes) = (slice_bytes.max(1) as u128, view_bytes.max(1) as u128);
    let usable = budget.saturating_sub(fixed_bytes) as u128;
    let volume = slices as u128 * slice_bytes;
    let all_views = views as u128 * view_bytes;
    let at_most_views = |bytes: u128| (bytes / view_bytes).min(views as u128) as usize;
    let at_most_slices = |bytes: u128| (bytes / slice_bytes).min(slices as u128) as usize;
    if volume + all_views <= usable {
        return Ok(Plan {
            slab_slices: slices,
            view_batch: views,
        });
    }
    let quarter = at_most_views(usable / 4).max(1);
    if volume + quarter as u128 * view_bytes <= usable {
        return Ok(Plan {
            slab_slices: slices,
            view_batch: at_most_views(usable - volume),
        });
    }
    for batch in [quarter, 1] {
        let room = usable.saturating_sub(batch as u128 * view_bytes);
        let slab = at_most_slices(room);
        if slab >= 1 {
            return Ok(Plan {
                slab_slices: slab,
                view_batch: batch,
            });
        }
    }
    Err(Error::DeviceOutOfMemory {
        what: "one slice of the volume and the projections of one view",
        bytes: fixed_bytes as u128 + slice_bytes + view_bytes,
        free: budget as u128,
    })
}

/// `0..n` cut into `parts` consecutive ranges whose lengths differ by at most one (the
/// longer ones first); empty ranges are left out, so fewer come back when `n < parts`.
pub(crate) fn balanced(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .filter(|range| !range.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn footprint(n: usize, views: usize, detector: usize) -> Footprint {
        Footprint {
            slices: n,
            slice_bytes: (n * n * 4) as u64,
            views,
            view_bytes: (detector * detector * 4 + 48) as u64,
            fixed_bytes: 0,
        }
    }

    /// The plan fits its budget, covers the problem, and its slabs are what it says.
    fn check(f: &Footprint, budget: u64, plan: &Plan) {
        let bytes = f.fixed_bytes as u128
            + plan.slab_slices as u128 * f.slice_bytes as u128
            + plan.view_batch as u128 * f.view_bytes as u128;
        assert!(
            bytes <= budget as u128,
            "{plan:?} takes {bytes} of {budget}"
        );
        assert!(plan.slab_slices >= 1 && plan.slab_slices <= f.slices);
        assert!(plan.view_batch >= 1 && plan.view_batch <= f.views);
        let slabs = plan.slabs(f.slices);
        assert_eq!(slabs.first().map(|s| s.start), Some(0));
        assert_eq!(slabs.last().map(|s| s.end), Some(f.slices));
        assert!(slabs.windows(2).all(|w| w[0].end == w[1].start));
        assert!(slabs.iter().all(|s| s.len() <= plan.slab_slices));
    }

    #[test]
    fn everything_in_one_piece_when_it_fits() {
        let f = footprint(256, 360, 256);
        let plan = plan(&f, 4 * GIB).unwrap();
        assert_eq!(
            plan,
            Plan {
                slab_slices: 256,
                view_batch: 360
            }
        );
    }

    #[test]
    fn the_whole_volume_with_batches_of_views_before_any_slab() {
        // 64 MiB of volume, 0.25 MiB per view, 96 MiB: 128 views fit beside it.
        let f = footprint(256, 1000, 256);
        let plan = plan(&f, 96 * MIB).unwrap();
        check(&f, 96 * MIB, &plan);
        assert_eq!(plan.slab_slices, 256);
        assert_eq!(plan.view_batch, 127);
    }

    #[test]
    fn slabs_when_the_volume_does_not_fit() {
        let f = footprint(256, 1000, 256);
        let plan = plan(&f, 32 * MIB).unwrap();
        check(&f, 32 * MIB, &plan);
        // A quarter of 32 MiB is 31 views of 0.25 MiB (and a record); 96 slices of
        // 0.25 MiB take the rest.
        assert_eq!((plan.view_batch, plan.slab_slices), (31, 96));
        assert_eq!(plan.slabs(256).len(), 256usize.div_ceil(plan.slab_slices));
    }

    #[test]
    fn one_slice_and_one_view_or_a_clear_error() {
        let f = footprint(64, 10, 64);
        let one = f.slice_bytes + f.view_bytes;
        let plan = plan(&f, one).unwrap();
        assert_eq!(
            plan,
            Plan {
                slab_slices: 1,
                view_batch: 1
            }
        );
        match super::plan(&f, one - 1) {
            Err(Error::DeviceOutOfMemory { bytes, free, .. }) => {
                assert_eq!((bytes, free), (one as u128, one as u128 - 1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sizes_of_4096_cubed_and_100000_views_do_not_overflow() {
        // 256 GiB of volume, 100,000 views of 4096^2 (6.4 TB), on an 80 GiB GPU, on
        // one with room for two slices and a view, and on an unbounded one; and more
        // than 2^31 rays.
        let f = footprint(4096, 100_000, 4096);
        assert!(f.views as u128 * 4096 * 4096 > 1u128 << 31);
        for budget in [80 * GIB, 3 * 64 * MIB + 48, u64::MAX] {
            let plan = plan(&f, budget).unwrap();
            check(&f, budget, &plan);
        }
        let plan = plan(&f, 80 * GIB).unwrap();
        // A quarter of 80 GiB is 319 views of 64 MiB; the slab has the rest, 960
        // slices of 64 MiB: 5 slabs.
        assert_eq!((plan.view_batch, plan.slab_slices), (319, 960));
        assert_eq!(plan.slabs(4096).len(), 5);
        let none = super::plan(&f, 64 * MIB);
        assert!(
            matches!(none, Err(Error::DeviceOutOfMemory { .. })),
            "{none:?}"
        );
    }

    #[test]
    fn balanced_ranges_cover_in_order() {
        assert_eq!(balanced(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(balanced(2, 4), vec![0..1, 1..2]);
        assert_eq!(balanced(5, 1), vec![0..5]);
        assert_eq!(balanced(0, 3), Vec::<Range<usize>>::new());
        let big = balanced(100_000, 7);
        assert_eq!(big.len(), 7);
        assert!(big.iter().all(|r| r.len() == 14_285 || r.len() == 14_286));
    }
}
