//! Material density maps from a CT (Hounsfield units) or from a label map.
//!
//! From CT numbers, in the spirit of DeepDRR's segmentation but with smooth
//! transitions: a voxel's mass density follows the CT number piecewise linearly
//! (air 0.0012 g/cm^3 at -1000 HU, water 1 at 0 HU, 1.62 at 1000 HU: Schneider et al.'s
//! soft-tissue and bone lines, Phys. Med. Biol. 41 (1996) 111, simplified), and the
//! density is shared between air, lung, adipose, soft tissue and bone by weights that
//! ramp linearly across each transition and always add up to 1:
//!
//! ```text
//!  HU     -1000   -950  -850      -400  -200   -60  -10    150  300
//!         air ====\_____/ lung ==== \___/ adipose \__/ soft ===\__/ bone ===
//! ```

use ndarray::{Array3, ArrayView3, Zip};

use super::material::Material;
use crate::error::{Error, Result};

/// The materials of [`from_hu`]'s maps, in order.
pub const CT_MATERIALS: [Material; 5] = [
    Material::Air,
    Material::Lung,
    Material::Adipose,
    Material::SoftTissue,
    Material::Bone,
];

/// The HU range of each transition between consecutive [`CT_MATERIALS`].
pub const CT_TRANSITIONS: [[f64; 2]; 4] = [
    [-950.0, -850.0],
    [-400.0, -200.0],
    [-60.0, -10.0],
    [150.0, 300.0],
];

/// Mass density (g/cm^3) of a voxel of `hu` CT number: `1 + HU/1000` up to water
/// (at least air's 0.0012), `1 + 0.00062 HU` above.
pub fn density_from_hu(hu: f64) -> f64 {
    let density = if hu <= 0.0 {
        1.0 + hu / 1000.0
    } else {
        1.0 + 0.00062 * hu
    };
    density.max(Material::Air.density())
}

/// The share of each of [`CT_MATERIALS`] in a voxel of `hu`: non-negative, adding up
/// to 1, continuous in `hu`.
pub fn material_weights(hu: f64) -> [f64; 5] {
    let rise = |k: usize| {
        let [a, b] = CT_TRANSITIONS[k];
        ((hu - a) / (b - a)).clamp(0.0, 1.0)
    };
    std::array::from_fn(|i| {
        let below = if i == 0 { 1.0 } else { rise(i - 1) };
        let above = if i == CT_TRANSITIONS.len() {
            0.0
        } else {
            rise(i)
        };
        below - above
    })
}

/// One density map (g/cm^3) per material of [`CT_MATERIALS`] from a CT in Hounsfield
/// units.
///
/// # Errors
/// [`Error::NonFiniteVolume`] for a NaN or infinite CT number,
/// [`Error::Allocation`].
pub fn from_hu(hu: ArrayView3<f32>) -> Result<Vec<Array3<f32>>> {
    if let Some((index, value)) = hu.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFiniteVolume {
            value: *value,
            index: [index.0, index.1, index.2],
        });
    }
    let mut maps = Vec::with_capacity(CT_MATERIALS.len());
    for m in 0..CT_MATERIALS.len() {
        let mut map = crate::alloc::zeroed_array(shape_of(&hu), "a material density map")?;
        Zip::from(&mut map).and(&hu).par_for_each(|out, &h| {
            let h = f64::from(h);
            *out = (material_weights(h)[m] * density_from_hu(h)) as f32;
        });
        maps.push(map);
    }
    Ok(maps)
}

/// The shape of a volume as the allocator takes it.
fn shape_of(volume: &ArrayView3<f32>) -> [usize; 3] {
    let (z, y, x) = volume.dim();
    [z, y, x]
}

/// The largest label a float32 label map holds exactly (2^24).
pub const MAX_LABEL: u32 = 1 << 24;

/// One label's material and density.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LabelMaterial {
    /// The label's value in the map.
    pub label: u32,
    /// Its material.
    pub material: Material,
    /// Its density, g/cm^3.
    pub density: f64,
}

/// One density map per entry of `assignments` from a label map (whole numbers; 0 is
/// empty unless assigned): the maps are in the order of `assignments`.
///
/// # Errors
/// [`Error::InvalidParameter`] for a label in the map that is neither 0 nor assigned,
/// a label that is not a whole number, an assigned label twice or above
/// [`MAX_LABEL`], or a density that is not finite and positive; [`Error::Allocation`].
pub fn from_labels(
    labels: ArrayView3<f32>,
    assignments: &[LabelMaterial],
) -> Result<Vec<Array3<f32>>> {
    for (i, a) in assignments.iter().enumerate() {
        if a.label > MAX_LABEL {
            return Err(Error::InvalidParameter {
                name: "label",
                reason: format!(
                    "{} is above {MAX_LABEL}, beyond which float32 maps cannot tell labels apart",
                    a.label
                ),
            });
        }
        if !(a.density.is_finite() && a.density > 0.0) {
            return Err(Error::InvalidParameter {
                name: "label density",
                reason: format!(
                    "label {}: must be finite and positive, got {}",
                    a.label, a.density
                ),
            });
        }
        if assignments[..i].iter().any(|b| b.label == a.label) {
            return Err(Error::InvalidParameter {
                name: "label assignments",
                reason: format!("label {} is assigned twice", a.label),
            });
        }
    }
    if let Some(bad) = labels.iter().find(|&&v| {
        let whole = v.is_finite() && v >= 0.0 && v.fract() == 0.0;
        !(whole && (v == 0.0 || assignments.iter().any(|a| a.label as f32 == v)))
    }) {
        return Err(Error::InvalidParameter {
            name: "label map",
            reason: format!(
                "holds {bad}, which is neither 0 nor an assigned label ({:?})",
                assignments.iter().map(|a| a.label).collect::<Vec<_>>()
            ),
        });
    }
    assignments
        .iter()
        .map(|a| {
            let mut map = crate::alloc::zeroed_array(shape_of(&labels), "a material density map")?;
            Zip::from(&mut map).and(&labels).par_for_each(|out, &l| {
                if l == a.label as f32 {
                    *out = a.density as f32;
                }
            });
            Ok(map)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn weights_are_a_continuous_partition_of_unity_with_the_right_material_at_each_anchor() {
        let mut previous = material_weights(-1100.0);
        let mut hu = -1100.0;
        while hu < 2000.0 {
            let w = material_weights(hu);
            assert!(w.iter().all(|&x| (0.0..=1.0).contains(&x)), "{hu}: {w:?}");
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{hu}");
            for (a, b) in w.iter().zip(&previous) {
                assert!((a - b).abs() <= 0.5 * 0.02 + 1e-12, "jump at {hu}");
            }
            previous = w;
            hu += 0.5;
        }
        // Air, lung, fat, soft tissue and cortical bone at their typical CT numbers.
        for (hu, material) in [
            (-1000.0, 0),
            (-700.0, 1),
            (-100.0, 2),
            (40.0, 3),
            (1200.0, 4),
        ] {
            assert_eq!(material_weights(hu)[material], 1.0, "{hu}");
        }
        assert_eq!(density_from_hu(0.0), 1.0);
        assert_eq!(density_from_hu(-2000.0), Material::Air.density());
        assert!((density_from_hu(1500.0) - 1.93).abs() < 1e-12);
    }

    #[test]
    fn maps_add_up_to_the_density_and_bad_inputs_are_refused() {
        let hu = Array3::from_shape_fn((2, 3, 4), |(z, y, x)| {
            (z * 700 + y * 300 + x * 100) as f32 - 1000.0
        });
        let maps = from_hu(hu.view()).unwrap();
        assert_eq!(maps.len(), 5);
        for ((z, y, x), &h) in hu.indexed_iter() {
            let total: f64 = maps.iter().map(|m| f64::from(m[[z, y, x]])).sum();
            assert!((total - density_from_hu(f64::from(h))).abs() < 1e-5);
        }
        let mut bad = hu.clone();
        bad[[1, 2, 3]] = f32::NAN;
        assert!(from_hu(bad.view()).is_err());
    }

    #[test]
    fn label_maps_become_density_maps_and_unknown_labels_are_named() {
        let labels = Array3::from_shape_fn((1, 2, 3), |(_, y, x)| ((y * 3 + x) % 3) as f32);
        let assignments = [
            LabelMaterial {
                label: 1,
                material: Material::SoftTissue,
                density: 1.05,
            },
            LabelMaterial {
                label: 2,
                material: Material::Bone,
                density: 1.9,
            },
        ];
        let maps = from_labels(labels.view(), &assignments).unwrap();
        assert_eq!(maps[0][[0, 0, 1]], 1.05);
        assert_eq!(maps[0][[0, 0, 2]], 0.0);
        assert_eq!(maps[1][[0, 1, 2]], 1.9);
        assert_eq!(maps[1][[0, 1, 0]], 0.0);
        let error = from_labels(labels.view(), &assignments[..1])
            .unwrap_err()
            .to_string();
        assert!(error.contains("holds 2"), "{error}");
        let huge = [LabelMaterial {
            label: MAX_LABEL + 1,
            ..assignments[0]
        }];
        assert!(from_labels(labels.view(), &huge).is_err());
        let twice = [assignments[0], assignments[0]];
        assert!(from_labels(labels.view(), &twice).is_err());
        let mut half = labels.clone();
        half[[0, 0, 0]] = 1.5;
        assert!(from_labels(half.view(), &assignments).is_err());
    }
}
