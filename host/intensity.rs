//! From line integrals to what a detector counts: Beer-Lambert `I = I0 exp(-p)` and
//! Poisson photon noise, reproducible from a seed.

use ndarray::{Array3, ArrayBase, Axis, Data, DataMut, Ix3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Expected photon counts `I0 * exp(-p)` for line integrals `p` (`[views, rows, cols]`).
///
/// # Errors
/// [`Error::InvalidParameter`] unless `i0` is finite and positive.
pub fn beer_lambert<S>(line_integrals: &ArrayBase<S, Ix3>, i0: f64) -> Result<Array3<f32>>
where
    S: Data<Elem = f32>,
{
    check_i0(i0)?;
    Ok(line_integrals.mapv(|p| (i0 * (-(p as f64)).exp()) as f32))
}

/// Replaces each expected count by a Poisson sample with that mean, in place.
///
/// Row `r` of view `k` draws from its own ChaCha8 stream (`seed`, stream `k * rows + r`),
/// so the result depends on `seed` only, not on the number of threads.
///
/// # Errors
/// [`Error::InvalidParameter`] if a mean is negative or not finite.
pub fn add_poisson_noise<S>(counts: &mut ArrayBase<S, Ix3>, seed: u64) -> Result<()>
where
    S: DataMut<Elem = f32>,
{
    if let Some(bad) = counts.iter().find(|m| !(m.is_finite() && **m >= 0.0)) {
        return Err(Error::InvalidParameter {
            name: "expected photon count",
            reason: format!("must be finite and non-negative, found {bad}"),
        });
    }
    let rows = counts.len_of(Axis(1)) as u64;
    counts
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(view, mut image)| {
            for (row, mut line) in image.axis_iter_mut(Axis(0)).enumerate() {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(view as u64 * rows + row as u64);
                for value in line.iter_mut() {
                    let mean = *value as f64;
                    *value = if mean > 0.0 {
                        // Poisson::new only fails for non-positive or non-finite means,
                        // excluded above.
                        Poisson::new(mean).map_or(0.0, |d| d.sample(&mut rng) as f32)
                    } else {
                        0.0
                    };
                }
            }
        });
    Ok(())
}

fn check_i0(i0: f64) -> Result<()> {
    if i0.is_finite() && i0 > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name: "I0 (photons per pixel)",
            reason: format!("must be finite and positive, got {i0}"),
        })
    }
}
