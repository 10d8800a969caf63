//! [`FixedPointSum`]: sums of f32 arrays that are the same bits in any order.

use rayon::prelude::*;

use super::Communicator;
use crate::error::{Error, Result};

/// Headroom bits: every sum the accumulator holds stays below `2^SUM_BITS` quanta.
const SUM_BITS: i32 = 61;

/// Elements per parallel task when adding or rounding.
const CHUNK: usize = 1 << 16;

/// An element-wise sum of f32 arrays kept in fixed point, so that the order of the
/// additions (which rank, which unit first) cannot change a bit of the result.
///
/// Each added value is rounded to a multiple of the quantum `2^e`, chosen from a
/// `bound` on the magnitude of any sum so that `bound < 2^61` quanta: the i64 sums
/// cannot overflow, and integer addition is exact and associative, so the ranks'
/// accumulators can be summed in any order ([`FixedPointSum::reduce`]). The total is
/// rounded to f32 once, at the end.
///
/// Error: each added array moves each element by at most half a quantum, so after `n`
/// additions the result differs from the exact sum of the added f32 values by at most
/// `n 2^(e-1)` plus the final rounding to f32 (half an f32 ulp). With `bound` within a
/// factor `F` of the largest true value `M`, the first part is at most `n F M 2^-61`:
/// below `1e-12 M` for `n F < 2^20`, far under f32's own `6e-8 M`.
#[derive(Clone, Debug)]
pub struct FixedPointSum {
    exponent: i32,
    values: Vec<i64>,
}

impl FixedPointSum {
    /// A zero sum of `len` elements whose every partial sum stays below `bound` in
    /// magnitude.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a negative or non-finite `bound`,
    /// [`Error::Allocation`] if the accumulator cannot be allocated.
    pub fn new(len: usize, bound: f64) -> Result<FixedPointSum> {
        if !(bound.is_finite() && bound >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "bound",
                reason: format!("must be finite and at least 0, got {bound}"),
            });
        }
        let mut values = crate::alloc::reserved(len, "a fixed-point accumulator")?;
        values.resize(len, 0);
        Ok(FixedPointSum {
            exponent: quantum_exponent(bound),
            values,
        })
    }

    /// The quantum's exponent `e`: values are held as integer multiples of `2^e`.
    pub fn exponent(&self) -> i32 {
        self.exponent
    }

    /// How many elements the sum has.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the sum has no elements.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Adds `part` (its length is the sum's) element by element.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `part` has another length.
    pub fn add(&mut self, part: &[f32]) -> Result<()> {
        if part.len() != self.values.len() {
            return Err(Error::ShapeMismatch {
                what: "an added array",
                expected: vec![self.values.len()],
                got: vec![part.len()],
            });
        }
        let scale = pow2(-self.exponent);
        self.values
            .par_chunks_mut(CHUNK)
            .zip(part.par_chunks(CHUNK))
            .for_each(|(sums, values)| {
                for (sum, &value) in sums.iter_mut().zip(values) {
                    // Exact up to the rounding: f32 to f64 and the power of two are exact.
                    *sum += (value as f64 * scale).round_ties_even() as i64;
                }
            });
        Ok(())
    }

    /// Sums the accumulators of every rank of `comm`, in place on each (all ranks call
    /// it, with sums of the same length and bound).
    ///
    /// # Errors
    /// As [`Communicator::sum_i64`].
    pub fn reduce(&mut self, comm: &(impl Communicator + ?Sized)) -> Result<()> {
        comm.sum_i64(&mut self.values)
    }

    /// The sum rounded to f32, into `out` (its length is the sum's).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `out` has another length.
    pub fn write_f32(&self, out: &mut [f32]) -> Result<()> {
        if out.len() != self.values.len() {
            return Err(Error::ShapeMismatch {
                what: "the output of a fixed-point sum",
                expected: vec![self.values.len()],
                got: vec![out.len()],
            });
        }
        let quantum = pow2(self.exponent);
        out.par_chunks_mut(CHUNK)
            .zip(self.values.par_chunks(CHUNK))
            .for_each(|(out, sums)| {
                for (o, &sum) in out.iter_mut().zip(sums) {
                    *o = (sum as f64 * quantum) as f32;
                }
            });
        Ok(())
    }
}

/// The exponent `e` with `bound < 2^(e + 61)`, kept where `2^e` and `2^-e` are normal
/// f64 values.
fn quantum_exponent(bound: f64) -> i32 {
    // The smallest e with bound / 2^e < 2^61; bound = 0 or subnormal takes the floor.
    let top = if bound > 0.0 {
        bound.log2().floor() as i32 + 1
    } else {
        -1000
    };
    (top - SUM_BITS).clamp(-1000, 1000)
}

/// `2^k`, exactly, for `-1022 <= k <= 1023`.
fn pow2(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((k + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::{pow2, quantum_exponent, FixedPointSum};

    #[test]
    fn powers_of_two_are_exact_and_the_bound_fits_below_the_headroom() {
        assert_eq!(pow2(0), 1.0);
        assert_eq!(pow2(-3), 0.125);
        assert_eq!(pow2(10), 1024.0);
        for bound in [1e-30, 0.7, 1.0, 3.0, 4.0, 1e6, 1e30] {
            let e = quantum_exponent(bound);
            assert!(bound / pow2(e) < pow2(61), "bound {bound}, e {e}");
            assert!(
                bound / pow2(e) >= pow2(59),
                "bound {bound}, e {e}: too coarse"
            );
        }
    }

    #[test]
    fn the_sum_is_the_same_bits_in_any_order_and_within_its_bound_of_the_exact_sum() {
        use rand::{Rng, SeedableRng};
        let mut random = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let len = 1000;
        // Values spanning 12 decades, as partial backprojections near and far from
        // the rays do.
        let parts: Vec<Vec<f32>> = (0..12)
            .map(|_| {
                (0..len)
                    .map(|_| {
                        random.random_range(-1.0f32..1.0) * 10f32.powi(random.random_range(-9..3))
                    })
                    .collect()
            })
            .collect();
        let bound = 12.0 * 1000.0;
        let sum_in = |order: &[usize]| {
            let mut sum = FixedPointSum::new(len, bound).unwrap();
            for &k in order {
                sum.add(&parts[k]).unwrap();
            }
            let mut out = vec![0.0f32; len];
            sum.write_f32(&mut out).unwrap();
            out
        };
        let forward: Vec<usize> = (0..12).collect();
        let backward: Vec<usize> = (0..12).rev().collect();
        let shuffled = [5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6];
        let reference = sum_in(&forward);
        assert_eq!(sum_in(&backward), reference);
        assert_eq!(sum_in(&shuffled), reference);
        // Against the exact sum (f64 holds these twelve f32 values' sum to 1e-16).
        let quantum = pow2(quantum_exponent(bound));
        for (i, &got) in reference.iter().enumerate() {
            let exact: f64 = parts.iter().map(|p| p[i] as f64).sum();
            let allowed =
                12.0 * quantum / 2.0 + (exact.abs() + 12.0 * quantum) * f32::EPSILON as f64;
            assert!(
                (got as f64 - exact).abs() <= allowed + 1e-300,
                "element {i}: {got} against {exact}"
            );
        }
    }

    #[test]
    fn sums_split_over_accumulators_equal_one_accumulator() {
        // What the ranks do: each adds its own parts, then the integers are summed.
        let parts: Vec<Vec<f32>> = (0..6)
            .map(|k| {
                (0..64)
                    .map(|i| ((i * 7 + k * 13) % 17) as f32 * 0.1 - 0.8)
                    .collect()
            })
            .collect();
        let mut one = FixedPointSum::new(64, 100.0).unwrap();
        parts.iter().for_each(|p| one.add(p).unwrap());
        let mut a = FixedPointSum::new(64, 100.0).unwrap();
        let mut b = FixedPointSum::new(64, 100.0).unwrap();
        parts[..4].iter().for_each(|p| a.add(p).unwrap());
        parts[4..].iter().for_each(|p| b.add(p).unwrap());
        let combined: Vec<i64> = a.values.iter().zip(&b.values).map(|(x, y)| x + y).collect();
        assert_eq!(combined, one.values);
    }

    #[test]
    fn bad_bounds_and_lengths_are_errors() {
        assert!(FixedPointSum::new(4, f64::NAN).is_err());
        assert!(FixedPointSum::new(4, -1.0).is_err());
        let mut sum = FixedPointSum::new(4, 1.0).unwrap();
        assert!(sum.add(&[1.0; 3]).is_err());
        assert!(sum.write_f32(&mut [0.0; 5]).is_err());
        // A zero bound is allowed (all-zero projections): the sum stays 0.
        let mut zero = FixedPointSum::new(2, 0.0).unwrap();
        zero.add(&[0.0, 0.0]).unwrap();
        let mut out = [1.0f32; 2];
        zero.write_f32(&mut out).unwrap();
        assert_eq!(out, [0.0, 0.0]);
    }
}
