//! The element-wise steps of the iterative reconstructions (SIRT, CGLS), written once
//! for the CPU loops and the GPU's vector kernels so that both compute every element
//! with the same operations, and the compensated sum behind the GPU's deterministic
//! dot products.
//!
//! A GPU dot product is the sum of [`DOT_PARTIALS`] partial sums, thread `t` summing
//! elements `t, t + DOT_PARTIALS, t + 2 DOT_PARTIALS, ...` in that order with
//! [`Compensated`] (Kahan) addition; the host adds the partials in order in f64. The
//! partition is fixed, so the result is the same on every run and every GPU.

/// Partial sums of a GPU dot product: the threads of its launch (64 blocks of 256).
pub const DOT_PARTIALS: usize = 64 * 256;

/// `y + alpha x` (CGLS's updates of `x` and, with `-alpha`, of `r`).
#[inline(always)]
pub fn axpy(alpha: f32, x: f32, y: f32) -> f32 {
    y + alpha * x
}

/// `x + beta y` (CGLS's new search direction `p = s + beta p`).
#[inline(always)]
pub fn xpby(x: f32, beta: f32, y: f32) -> f32 {
    x + beta * y
}

/// `b - ax`: a residual.
#[inline(always)]
pub fn residual(b: f32, ax: f32) -> f32 {
    b - ax
}

/// SIRT's weight from a row or column sum: `scale / sum` as `(1 / sum) * scale`, and 0
/// where the sum is at most `1e-6` (a ray or voxel the projector hardly sees).
#[inline(always)]
pub fn weight(sum: f32, scale: f32) -> f32 {
    let inverse = if sum > 1e-6 { 1.0 / sum } else { 0.0 };
    inverse * scale
}

/// SIRT's update of one voxel: `x + c u`, clipped at 0 when `nonnegative`.
#[inline(always)]
pub fn sirt_step(x: f32, c: f32, u: f32, nonnegative: bool) -> f32 {
    let next = x + c * u;
    if nonnegative && next < 0.0 {
        0.0
    } else {
        next
    }
}

/// `max(x, 0)`, NaN to 0 (the final clip of a non-negative CGLS).
#[inline(always)]
pub fn clip(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// Kahan's compensated sum in f32: the error stays about two roundings of the sum,
/// whatever the number of terms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Compensated {
    sum: f32,
    carry: f32,
}

impl Compensated {
    /// Adds `value`.
    #[inline(always)]
    pub fn add(&mut self, value: f32) {
        let y = value - self.carry;
        let t = self.sum + y;
        self.carry = (t - self.sum) - y;
        self.sum = t;
    }

    /// The sum so far.
    #[inline(always)]
    pub fn value(&self) -> f32 {
        self.sum
    }
}

/// Partial sum `partial` of the dot product of `x` and `y` (see the module docs):
/// what GPU thread `partial` computes, for the host's tests to check against.
#[inline(always)]
pub fn dot_partial(x: &[f32], y: &[f32], partial: usize) -> f32 {
    let mut sum = Compensated::default();
    let mut i = partial;
    while i < x.len() && i < y.len() {
        sum.add(x[i] * y[i]);
        i += DOT_PARTIALS;
    }
    sum.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compensated_sums_keep_the_small_terms() {
        let mut plain = 0.0f32;
        let mut kahan = Compensated::default();
        kahan.add(1.0);
        plain += 1.0;
        for _ in 0..10_000 {
            kahan.add(1e-8);
            plain += 1e-8;
        }
        assert_eq!(plain, 1.0, "plain f32 loses every 1e-8");
        assert!(
            (kahan.value() as f64 - 1.0001).abs() < 1e-7,
            "{}",
            kahan.value()
        );
    }

    #[test]
    fn element_steps() {
        assert_eq!(axpy(2.0, 3.0, 1.0), 7.0);
        assert_eq!(xpby(1.0, 0.5, 4.0), 3.0);
        assert_eq!(residual(5.0, 2.0), 3.0);
        assert_eq!(weight(4.0, 2.0), 0.5);
        assert_eq!(weight(1e-7, 2.0), 0.0);
        assert_eq!(sirt_step(1.0, 2.0, -1.0, true), 0.0);
        assert_eq!(sirt_step(1.0, 2.0, -1.0, false), -1.0);
        assert_eq!(clip(-3.0), 0.0);
        assert_eq!(clip(f32::NAN), 0.0);
        assert_eq!(clip(2.5), 2.5);
    }

    #[test]
    fn dot_partials_cover_every_element_once() {
        let n = 3 * DOT_PARTIALS + 17;
        let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
        let y = vec![1.0f32; n];
        let total: f64 = (0..DOT_PARTIALS)
            .map(|t| dot_partial(&x, &y, t) as f64)
            .sum();
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        assert_eq!(total, want);
    }
}
