//! [`Span`]: the range of voxel indices a backprojection task wrote, so that summing its
//! partial volume can skip what it never touched.

/// A half-open range `lo..hi` of linear voxel indices, or empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    lo: usize,
    hi: usize,
}

impl Span {
    /// No index.
    pub(crate) const EMPTY: Span = Span {
        lo: usize::MAX,
        hi: 0,
    };

    /// Widens the span to hold `index`.
    #[inline(always)]
    pub(crate) fn include(&mut self, index: usize) {
        self.lo = self.lo.min(index);
        self.hi = self.hi.max(index + 1);
    }

    /// The smallest span holding both.
    pub(crate) fn union(self, other: Span) -> Span {
        Span {
            lo: self.lo.min(other.lo),
            hi: self.hi.max(other.hi),
        }
    }

    /// The indices of `range` inside the span (an empty range at `range.start` when
    /// there are none).
    pub(crate) fn clip(self, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let lo = self.lo.max(range.start);
        let hi = self.hi.min(range.end);
        if lo < hi {
            lo..hi
        } else {
            range.start..range.start
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Span;

    #[test]
    fn spans_grow_merge_and_clip() {
        let mut a = Span::EMPTY;
        assert!(a.clip(0..100).is_empty());
        a.include(40);
        a.include(10);
        assert_eq!(a.clip(0..100), 10..41);
        assert_eq!(a.clip(20..30), 20..30);
        assert_eq!(a.clip(41..50), 41..41);
        assert_eq!(a.clip(0..5), 0..0);
        let mut b = Span::EMPTY;
        b.include(70);
        assert_eq!(a.union(b).clip(0..100), 10..71);
        assert_eq!(a.union(Span::EMPTY), a);
    }
}
