//! CT numbers (Hounsfield units) to linear attenuation coefficients.
//!
//! `mu = mu_water * (1 + HU / 1000)`, the definition of the HU scale inverted, with
//! values below 0 (air noise under -1000 HU) clipped to 0. The scale is defined at
//! the scanner's effective energy; to simulate another energy, `bone_scale` stretches
//! the part above water (HU > 0), where bone's attenuation falls faster with energy
//! than water's (a bilinear model; 1 keeps the plain definition).

use ndarray::{ArrayBase, DataMut, Ix3};

use crate::error::{Error, Result};

/// Linear attenuation of water at about 70 keV, the effective energy of a 120 kVp CT
/// beam: 0.1929 cm^2/g (NIST XCOM) times 1 g/cm^3, in 1/mm.
pub const MU_WATER_70KEV: f64 = 0.01929;

/// The HU-to-attenuation map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HuToMu {
    /// Water's attenuation (1/mm) at the simulated energy.
    pub mu_water: f64,
    /// Factor on the HU above 0 (bone, contrast); 1 for the plain definition.
    pub bone_scale: f64,
}

impl Default for HuToMu {
    fn default() -> Self {
        HuToMu {
            mu_water: MU_WATER_70KEV,
            bone_scale: 1.0,
        }
    }
}

impl HuToMu {
    /// Attenuation (1/mm) of a voxel of `hu` Hounsfield units, at least 0. NaN stays
    /// NaN, so that the projector's check reports it rather than hiding it.
    pub fn mu(&self, hu: f32) -> f32 {
        let hu = f64::from(hu);
        let stretched = if hu > 0.0 { hu * self.bone_scale } else { hu };
        let mu = self.mu_water * (1.0 + stretched / 1000.0);
        (if mu < 0.0 { 0.0 } else { mu }) as f32
    }

    /// Checks the map's parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `mu_water` is finite and positive and
    /// `bone_scale` finite and not negative.
    pub fn validate(&self) -> Result<()> {
        if !(self.mu_water.is_finite() && self.mu_water > 0.0) {
            return Err(Error::InvalidParameter {
                name: "mu_water",
                reason: format!("{} is not a positive attenuation (1/mm)", self.mu_water),
            });
        }
        if !(self.bone_scale.is_finite() && self.bone_scale >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "bone_scale",
                reason: format!("{} is not a finite factor >= 0", self.bone_scale),
            });
        }
        Ok(())
    }

    /// Converts a volume of HU to attenuation in place (any layout: an owned array or
    /// a mutable view), in parallel.
    ///
    /// # Errors
    /// As [`HuToMu::validate`]; the volume is then left unchanged.
    pub fn apply<S>(&self, volume: &mut ArrayBase<S, Ix3>) -> Result<()>
    where
        S: DataMut<Elem = f32>,
    {
        self.validate()?;
        volume.par_mapv_inplace(|hu| self.mu(hu));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn fixed_points_of_the_scale() {
        let map = HuToMu::default();
        assert_eq!(map.mu(-1000.0), 0.0);
        assert_eq!(map.mu(-3024.0), 0.0);
        assert!((map.mu(0.0) as f64 - MU_WATER_70KEV).abs() < 1e-9);
        assert!((map.mu(1000.0) as f64 - 2.0 * MU_WATER_70KEV).abs() < 1e-8);
        assert!(map.mu(f32::NAN).is_nan());
        let soft = HuToMu {
            bone_scale: 0.5,
            ..map
        };
        assert!((soft.mu(1000.0) as f64 - 1.5 * MU_WATER_70KEV).abs() < 1e-8);
        assert_eq!(soft.mu(-500.0), map.mu(-500.0));
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut v = Array3::zeros((1, 1, 1));
        for bad in [
            HuToMu {
                mu_water: 0.0,
                bone_scale: 1.0,
            },
            HuToMu {
                mu_water: f64::NAN,
                bone_scale: 1.0,
            },
            HuToMu {
                mu_water: 0.02,
                bone_scale: -1.0,
            },
        ] {
            assert!(bad.apply(&mut v).is_err(), "{bad:?}");
        }
    }
}
