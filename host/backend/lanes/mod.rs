//! What the CPU's SIMD code ([`super::siddon_lanes`], [`super::joseph_lanes`],
//! [`super::fdk_lanes`]) shares: which vector instruction set runs ([`LanePath`], chosen
//! at run time), and the small set of vector operations ([`Simd`]) that the walkers are
//! written in once, with one implementation per instruction set: [`avx2`] (8 lanes) and
//! [`avx512`] (16 lanes).
//!
//! Every operation of [`Simd`] is the IEEE `f32` or two's-complement `i32` operation of
//! the scalar kernels, lane by lane (no fused multiply-add, no approximate reciprocal),
//! so code written in it gives the scalar kernels' results bit for bit on either set.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(test)]
pub(crate) mod test_support;

use std::sync::OnceLock;

use super::span::Span;

/// The most lanes any instruction set has: per-lane start state is kept in arrays of
/// this length, of which a set uses its first [`Simd::LANES`].
pub(crate) const MAX_LANES: usize = 16;

/// Environment variable that caps the CPU's vector path (`avx512`, `avx2` or `scalar`),
/// to compare the paths on one machine. Forward projections and FDK are the same, bit
/// for bit, on every path; a backprojection adds the same terms, in an order that
/// depends on the path's lane count (so its results may differ by a rounding).
pub const CPU_LANES_VARIABLE: &str = "XRAY_CPU_LANES";

/// Environment variable that chooses how the CPU's lanes read values at scattered
/// indices: `instruction` (the vector gather instruction) or `loads` (one scalar load
/// per lane). Both read the same values, so no result depends on it.
pub const CPU_GATHER_VARIABLE: &str = "XRAY_CPU_GATHER";

/// How the lanes read a vector of values at scattered indices (the voxels of Siddon's
/// and Joseph's forward walks, the detector pixels of FDK's backprojection). Both ways
/// read the same values; only their speed differs, by CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gather {
    /// One scalar load per lane, inserted into the vector. Faster on the AMD cores
    /// measured (Zen 3, Zen 4: `vgatherdps` made Joseph 10-25% slower on Zen 4).
    Loads,
    /// The gather instruction (`vgatherdps`). Faster on the Intel Xeon measured (family 6
    /// model 207, an Emerald Rapids-class core with AVX-512: Joseph 1.6x, FDK 1.2-1.4x,
    /// Siddon the same), the only Intel core measured.
    Instruction,
}

impl Gather {
    /// Both ways.
    pub const ALL: [Gather; 2] = [Gather::Loads, Gather::Instruction];

    /// The name [`CPU_GATHER_VARIABLE`] takes and `xray info` prints.
    pub fn name(self) -> &'static str {
        match self {
            Gather::Loads => "loads",
            Gather::Instruction => "instruction",
        }
    }

    /// The faster way on this CPU, as measured: the gather instruction on Intel CPUs with
    /// AVX-512 that Linux reports not affected by Gather Data Sampling ("Downfall", whose
    /// microcode fix slows the instruction several times on the Skylake to Ice Lake and
    /// Tiger Lake cores that have it), scalar loads everywhere else (AMD's gathers were
    /// slower on every core measured; older Intel cores' gathers are slow too).
    pub fn preferred() -> Gather {
        if cpu_vendor_is_intel()
            && LanePath::Avx512.is_supported()
            && linux_reports_no_gather_data_sampling()
        {
            Gather::Instruction
        } else {
            Gather::Loads
        }
    }

    /// The way the CPU backend uses: [`Gather::preferred`], or the one
    /// [`CPU_GATHER_VARIABLE`] names (an unknown value is ignored with a warning).
    /// Decided once per process.
    pub fn in_use() -> Gather {
        static CHOSEN: OnceLock<Gather> = OnceLock::new();
        *CHOSEN.get_or_init(|| match std::env::var(CPU_GATHER_VARIABLE) {
            Ok(value) => match Gather::ALL.into_iter().find(|g| g.name() == value) {
                Some(chosen) => chosen,
                None => {
                    log::warn!(
                        "{CPU_GATHER_VARIABLE}={value:?} is not one of loads, instruction: \
                         ignored"
                    );
                    Gather::preferred()
                }
            },
            Err(_) => Gather::preferred(),
        })
    }
}

impl std::fmt::Display for Gather {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether Linux says this CPU is not affected by Gather Data Sampling (false where it
/// cannot tell: another system, an older kernel, or an affected CPU).
fn linux_reports_no_gather_data_sampling() -> bool {
    std::fs::read_to_string("/sys/devices/system/cpu/vulnerabilities/gather_data_sampling")
        .is_ok_and(|state| state.trim() == "Not affected")
}

/// Whether the CPU's vendor string (CPUID leaf 0) is `GenuineIntel`.
fn cpu_vendor_is_intel() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: CPUID leaf 0 exists on every x86-64 CPU.
        #[allow(unused_unsafe)]
        let leaf = unsafe { std::arch::x86_64::__cpuid(0) };
        [leaf.ebx, leaf.edx, leaf.ecx].map(u32::to_le_bytes) == [*b"Genu", *b"ineI", *b"ntel"]
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The vector instruction set the CPU backend's hot loops run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LanePath {
    /// One ray (or voxel) at a time: CPUs without AVX2, and other architectures.
    Scalar,
    /// AVX2: 8 rays or voxels per step.
    Avx2,
    /// AVX-512 (F, BW, DQ, VL): 16 rays or voxels per step.
    Avx512,
}

impl LanePath {
    /// Every path, slowest first.
    pub const ALL: [LanePath; 3] = [LanePath::Scalar, LanePath::Avx2, LanePath::Avx512];

    /// Rays or voxels per step.
    pub fn lanes(self) -> usize {
        match self {
            LanePath::Scalar => 1,
            LanePath::Avx2 => 8,
            LanePath::Avx512 => 16,
        }
    }

    /// The name `XRAY_CPU_LANES` takes and `xray info` prints.
    pub fn name(self) -> &'static str {
        match self {
            LanePath::Scalar => "scalar",
            LanePath::Avx2 => "avx2",
            LanePath::Avx512 => "avx512",
        }
    }

    /// Whether the running CPU executes this path (detected once, then cached by `std`).
    pub fn is_supported(self) -> bool {
        match self {
            LanePath::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            LanePath::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            LanePath::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest path this CPU supports.
    pub fn best_supported() -> LanePath {
        LanePath::ALL
            .into_iter()
            .rev()
            .find(|path| path.is_supported())
            .unwrap_or(LanePath::Scalar)
    }

    /// The path the CPU backend uses: the fastest this CPU supports, capped by
    /// [`CPU_LANES_VARIABLE`] when that is set (an unknown value is ignored with a
    /// warning). Decided once per process.
    pub fn in_use() -> LanePath {
        static CHOSEN: OnceLock<LanePath> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let best = LanePath::best_supported();
            match std::env::var(CPU_LANES_VARIABLE) {
                Ok(value) => match LanePath::ALL.into_iter().find(|p| p.name() == value) {
                    Some(cap) => cap.min(best),
                    None => {
                        log::warn!(
                            "{CPU_LANES_VARIABLE}={value:?} is not one of scalar, avx2, \
                             avx512: ignored"
                        );
                        best
                    }
                },
                Err(_) => best,
            }
        })
    }
}

impl std::fmt::Display for LanePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Vector operations on [`Simd::LANES`] lanes of `f32` ([`Simd::F`]) and `i32`
/// ([`Simd::I`]), with lane masks ([`Simd::M`]). Implemented by zero-sized types, one per
/// instruction set; every method is `#[inline(always)]` and `unsafe` because it runs
/// the set's instructions: call them only from a function compiled for that set (the
/// walkers' `#[target_feature]` entry points), on a CPU that has it.
///
/// The `f32` operations round as the scalar ones do; comparisons are IEEE (ordered
/// unless said otherwise, so a NaN compares false).
#[allow(clippy::missing_safety_doc)]
pub(crate) trait Simd: Copy {
    /// Lanes per vector.
    const LANES: usize;
    /// `f32` lanes.
    type F: Copy;
    /// `i32` lanes.
    type I: Copy;
    /// One bit (or all-ones lane) per lane.
    type M: Copy;

    /// The first [`Simd::LANES`] values of `v`.
    unsafe fn load_f(v: &[f32; MAX_LANES]) -> Self::F;
    /// The first [`Simd::LANES`] values of `v`.
    unsafe fn load_i(v: &[i32; MAX_LANES]) -> Self::I;
    /// The lanes, in the first [`Simd::LANES`] places of an array.
    unsafe fn to_array(v: Self::F) -> [f32; MAX_LANES];
    /// The lanes, in the first [`Simd::LANES`] places of an array.
    unsafe fn to_array_i(v: Self::I) -> [i32; MAX_LANES];
    /// Every lane `x`.
    unsafe fn splat_f(x: f32) -> Self::F;
    /// Every lane `x`.
    unsafe fn splat_i(x: i32) -> Self::I;
    /// Lane `i` holds `i`.
    unsafe fn iota() -> Self::I;

    /// `a + b`.
    unsafe fn add_f(a: Self::F, b: Self::F) -> Self::F;
    /// `a - b`.
    unsafe fn sub_f(a: Self::F, b: Self::F) -> Self::F;
    /// `a * b`.
    unsafe fn mul_f(a: Self::F, b: Self::F) -> Self::F;
    /// `a / b`.
    unsafe fn div_f(a: Self::F, b: Self::F) -> Self::F;
    /// `if a < b { a } else { b }`: `b` on ties and when either is NaN, as
    /// `xray_kernels::math::min`.
    unsafe fn min_f(a: Self::F, b: Self::F) -> Self::F;
    /// The square root, correctly rounded.
    unsafe fn sqrt_f(a: Self::F) -> Self::F;
    /// Rounded towards minus infinity.
    unsafe fn floor_f(a: Self::F) -> Self::F;
    /// `a as f32`.
    unsafe fn to_f(a: Self::I) -> Self::F;
    /// Truncated towards zero (`i32::MIN` where out of range or NaN).
    unsafe fn trunc_i(a: Self::F) -> Self::I;

    /// `a + b`, wrapping.
    unsafe fn add_i(a: Self::I, b: Self::I) -> Self::I;
    /// `a - b`, wrapping.
    unsafe fn sub_i(a: Self::I, b: Self::I) -> Self::I;
    /// `a * b`, wrapping.
    unsafe fn mul_i(a: Self::I, b: Self::I) -> Self::I;
    /// The smaller of `a` and `b`.
    unsafe fn min_i(a: Self::I, b: Self::I) -> Self::I;
    /// The larger of `a` and `b`.
    unsafe fn max_i(a: Self::I, b: Self::I) -> Self::I;

    /// `a == b` (false where either is NaN).
    unsafe fn eq_f(a: Self::F, b: Self::F) -> Self::M;
    /// `a > b` (false where either is NaN).
    unsafe fn gt_f(a: Self::F, b: Self::F) -> Self::M;
    /// `a < b` (false where either is NaN).
    unsafe fn lt_f(a: Self::F, b: Self::F) -> Self::M;
    /// `!(a < b)`: true where `a >= b` or either is NaN.
    unsafe fn not_lt_f(a: Self::F, b: Self::F) -> Self::M;
    /// `a > b`.
    unsafe fn gt_i(a: Self::I, b: Self::I) -> Self::M;
    /// `a < 0`.
    unsafe fn negative_i(a: Self::I) -> Self::M;

    /// `a & b`.
    unsafe fn and_m(a: Self::M, b: Self::M) -> Self::M;
    /// `a | b`.
    unsafe fn or_m(a: Self::M, b: Self::M) -> Self::M;
    /// `!a & b`.
    unsafe fn and_not_m(a: Self::M, b: Self::M) -> Self::M;
    /// `!a`.
    unsafe fn not_m(a: Self::M) -> Self::M;
    /// Whether every lane is set.
    unsafe fn all(m: Self::M) -> bool;
    /// Bit `i` set where lane `i` is.
    unsafe fn bits(m: Self::M) -> u32;

    /// `if m { a } else { b }`, lane by lane.
    unsafe fn select_f(m: Self::M, a: Self::F, b: Self::F) -> Self::F;
    /// `if m { a } else { b }`, lane by lane.
    unsafe fn select_i(m: Self::M, a: Self::I, b: Self::I) -> Self::I;
    /// `if m { a } else { +0.0 }`.
    unsafe fn keep_f(m: Self::M, a: Self::F) -> Self::F;
    /// `if m { a } else { 0 }`.
    unsafe fn keep_i(m: Self::M, a: Self::I) -> Self::I;

    /// Calls `f` with each lane of `v`, in lane order.
    unsafe fn for_each_lane(v: Self::I, f: impl FnMut(i32));
    /// `values[at[i]]` in lane `i`, read with one scalar load per lane.
    ///
    /// # Safety
    /// Every lane of `at` must be a valid index into `values` (a non-negative `i32`).
    unsafe fn gather_loads(values: &[f32], at: Self::I) -> Self::F;
    /// `(values[at[i]], values[at[i] + 1])` in lane `i`: two neighbouring values read
    /// with one 8-byte load per lane, split into two vectors.
    ///
    /// # Safety
    /// `at[i]` and `at[i] + 1` must be valid indices into `values` in every lane.
    unsafe fn gather_pairs(values: &[f32], at: Self::I) -> (Self::F, Self::F);
    /// `values[at[i]]` in lane `i`, read with the gather instruction.
    ///
    /// # Safety
    /// As [`Simd::gather_loads`].
    unsafe fn gather_instruction(values: &[f32], at: Self::I) -> Self::F;
}

/// `values[at[i]]` in lane `i`, read the way `how` says.
///
/// # Safety
/// As [`Simd`]'s methods; every lane of `at` must be a valid index into `values` (a
/// non-negative `i32`).
#[inline(always)]
pub(crate) unsafe fn gather<S: Simd>(how: Gather, values: &[f32], at: S::I) -> S::F {
    match how {
        Gather::Loads => S::gather_loads(values, at),
        Gather::Instruction => S::gather_instruction(values, at),
    }
}

/// The 8 bytes of `values[at[i]]` and `values[at[i] + 1]` of each lane `i`, as one
/// `i64` each, in the first [`Simd::LANES`] places: what [`Simd::gather_pairs`] shuffles.
///
/// # Safety
/// As [`Simd`]'s methods; `at[i]` and `at[i] + 1` must be valid indices into `values`
/// in every lane (checked in debug builds).
#[inline(always)]
pub(crate) unsafe fn lane_pairs<S: Simd>(values: &[f32], at: S::I) -> [i64; MAX_LANES] {
    let mut pairs = [0i64; MAX_LANES];
    let mut lane = 0;
    S::for_each_lane(at, |i| {
        debug_assert!(i >= 0 && (i as usize) + 1 < values.len(), "pair at {i}");
        pairs[lane] = values
            .as_ptr()
            .add(i as u32 as usize)
            .cast::<i64>()
            .read_unaligned();
        lane += 1;
    });
    pairs
}

/// Asks for the cache line at `p` (any address: a prefetch never faults); the walkers'
/// prefetches.
#[inline(always)]
pub(crate) fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Adds `terms` to `target[at]` in the lanes set in `active`, lane by lane in order, with
/// scalar loads and stores. (On the Intel Xeon measured, AVX-512's gather, add and
/// `vpscatterdps`, in rounds that `vpconflictd` orders where lanes share a voxel, made
/// both backprojections 1.5-2x slower.)
///
/// # Safety
/// As [`Simd`]'s methods; every active lane of `at` must index `target` (a non-negative
/// `i32` below its length).
#[inline(always)]
pub(crate) unsafe fn scatter_add<S: Simd>(target: &mut [f32], at: S::I, active: S::M, terms: S::F) {
    let terms = S::to_array(terms);
    let active = S::bits(active);
    let target = target.as_mut_ptr();
    let mut lane = 0;
    S::for_each_lane(at, |i| {
        if active & (1 << lane) != 0 {
            *target.add(i as u32 as usize) += terms[lane];
        }
        lane += 1;
    });
}

/// The smallest and largest index a walk's lanes wrote, kept in vectors during the walk
/// (two operations a step instead of two per lane) and turned into a [`Span`] at its end.
#[derive(Clone, Copy)]
pub(crate) struct SpanLanes<S: Simd> {
    lo: S::I,
    hi: S::I,
}

impl<S: Simd> SpanLanes<S> {
    /// No index yet.
    ///
    /// # Safety
    /// As [`Simd`]'s methods.
    #[inline(always)]
    pub(crate) unsafe fn new() -> Self {
        SpanLanes {
            lo: S::splat_i(i32::MAX),
            hi: S::splat_i(-1),
        }
    }

    /// Widens the bounds to hold `at` in the lanes set in `active`.
    ///
    /// # Safety
    /// As [`Simd`]'s methods.
    #[inline(always)]
    pub(crate) unsafe fn include(&mut self, active: S::M, at: S::I) {
        self.lo = S::select_i(active, S::min_i(self.lo, at), self.lo);
        self.hi = S::select_i(active, S::max_i(self.hi, at), self.hi);
    }

    /// Widens the bounds to hold `lo..=hi` in the lanes set in `active` (where
    /// `lo <= hi`): one bound each instead of both for two indices.
    ///
    /// # Safety
    /// As [`Simd`]'s methods.
    #[inline(always)]
    pub(crate) unsafe fn include_range(&mut self, active: S::M, lo: S::I, hi: S::I) {
        self.lo = S::select_i(active, S::min_i(self.lo, lo), self.lo);
        self.hi = S::select_i(active, S::max_i(self.hi, hi), self.hi);
    }

    /// The span of every index included (active lanes' indices are non-negative).
    ///
    /// # Safety
    /// As [`Simd`]'s methods.
    #[inline(always)]
    pub(crate) unsafe fn span(self) -> Span {
        let lo = S::to_array_i(self.lo)[..S::LANES].iter().copied().min();
        let hi = S::to_array_i(self.hi)[..S::LANES].iter().copied().max();
        let mut span = Span::EMPTY;
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if hi >= 0 {
                span.include(lo as u32 as usize);
                span.include(hi as u32 as usize);
            }
        }
        span
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    //! The lane operations that are more than one instruction, against plain indexing.

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::test_support::vector_paths;
    use super::{avx2::Avx2, avx512::Avx512, LanePath, Simd, MAX_LANES};

    type Pairs = ([f32; MAX_LANES], [f32; MAX_LANES]);

    /// [`Simd::gather_pairs`] of `at` on `S`, as arrays.
    #[inline(always)]
    unsafe fn pairs<S: Simd>(values: &[f32], at: &[i32; MAX_LANES]) -> Pairs {
        let (first, second) = S::gather_pairs(values, S::load_i(at));
        (S::to_array(first), S::to_array(second))
    }

    #[target_feature(enable = "avx2")]
    unsafe fn pairs_avx2(values: &[f32], at: &[i32; MAX_LANES]) -> Pairs {
        pairs::<Avx2>(values, at)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    unsafe fn pairs_avx512(values: &[f32], at: &[i32; MAX_LANES]) -> Pairs {
        pairs::<Avx512>(values, at)
    }

    #[test]
    fn gathered_pairs_are_each_lanes_value_and_its_neighbour_in_lane_order() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 7.0).collect();
        let mut random = ChaCha8Rng::seed_from_u64(5);
        for path in vector_paths("gather pairs") {
            for round in 0..100 {
                let mut at = [0i32; MAX_LANES];
                for (lane, at) in at.iter_mut().enumerate() {
                    // The first and the last pair in some lanes, anywhere in the others.
                    *at = match (round + lane) % 5 {
                        0 => 0,
                        1 => values.len() as i32 - 2,
                        _ => random.random_range(0..values.len() as i32 - 1),
                    };
                }
                // SAFETY: the CPU runs `path` (`vector_paths`), and every index and the
                // next are inside `values`.
                let (first, second) = unsafe {
                    match path {
                        LanePath::Avx512 => pairs_avx512(&values, &at),
                        _ => pairs_avx2(&values, &at),
                    }
                };
                for lane in 0..path.lanes() {
                    let i = at[lane] as usize;
                    assert_eq!(first[lane], values[i], "{path:?} lane {lane}");
                    assert_eq!(second[lane], values[i + 1], "{path:?} lane {lane}");
                }
            }
        }
    }
}
