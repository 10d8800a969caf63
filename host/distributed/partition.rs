//! [`Partition`]: which views and slices each rank computes.

use std::ops::Range;

/// Most units the views are cut into: the largest rank count that gets work for all.
pub const MAX_UNITS: usize = 256;
/// Fewest views in a unit (unless the scan has fewer): each unit costs one pass over the
/// volume in [`super::backward`], which a unit this size outweighs many times.
pub const MIN_UNIT_VIEWS: usize = 8;

/// How the views of a scan (and the slices of a volume) are dealt to `ranks`
/// processes.
///
/// The views are cut into units of `unit_views` consecutive views, a number that
/// depends on the view count alone (at least [`MIN_UNIT_VIEWS`], and at most
/// [`MAX_UNITS`] units); each rank gets a contiguous run of units, the runs' lengths
/// differing by at most one. Results that are sums over units are then combined unit
/// by unit and do not depend on the rank count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    views: usize,
    unit_views: usize,
    rank: usize,
    ranks: usize,
}

impl Partition {
    /// The partition of `views` views for `rank` of `ranks` (`rank < ranks`, both from
    /// a [`super::Communicator`]).
    pub fn new(views: usize, rank: usize, ranks: usize) -> Partition {
        let ranks = ranks.max(1);
        Partition {
            views,
            unit_views: views.div_ceil(MAX_UNITS).max(MIN_UNIT_VIEWS),
            rank: rank.min(ranks - 1),
            ranks,
        }
    }

    /// The partition for `comm`'s rank.
    pub fn of(views: usize, comm: &(impl super::Communicator + ?Sized)) -> Partition {
        Partition::new(views, comm.rank(), comm.size())
    }

    /// How many units the views make.
    pub fn units(&self) -> usize {
        self.views.div_ceil(self.unit_views)
    }

    /// The views of unit `unit`.
    pub fn unit_views(&self, unit: usize) -> Range<usize> {
        let start = (unit * self.unit_views).min(self.views);
        start..(start + self.unit_views).min(self.views)
    }

    /// The units of rank `rank`.
    pub fn rank_units(&self, rank: usize) -> Range<usize> {
        balanced(self.units(), rank, self.ranks)
    }

    /// This rank's units.
    pub fn local_units(&self) -> Range<usize> {
        self.rank_units(self.rank)
    }

    /// The views of rank `rank`'s units.
    pub fn rank_views(&self, rank: usize) -> Range<usize> {
        let units = self.rank_units(rank);
        if units.is_empty() {
            let at = self.unit_views(units.start).start;
            return at..at;
        }
        self.unit_views(units.start).start..self.unit_views(units.end - 1).end
    }

    /// This rank's views: the projections it holds.
    pub fn local_views(&self) -> Range<usize> {
        self.rank_views(self.rank)
    }

    /// This rank's slices of a volume of `slices` slices (for FDK): contiguous, their
    /// counts differing by at most one.
    pub fn local_slices(&self, slices: usize) -> Range<usize> {
        balanced(slices, self.rank, self.ranks)
    }
}

/// Part `part` of `parts` of `0..items`, in order, the lengths differing by at most one.
fn balanced(items: usize, part: usize, parts: usize) -> Range<usize> {
    let at = |k: usize| (items as u128 * k as u128 / parts as u128) as usize;
    at(part)..at(part + 1)
}
