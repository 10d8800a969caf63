//! [`MaterialPhantom`]: analytic phantoms made of materials, one [`Phantom`] of
//! densities (g/cm^3) per material, so that every material's line integrals stay
//! exact. [`MaterialPhantom::head`] is the default input of `xray drr`.

use ndarray::Array3;

use super::{Ellipsoid, EllipticCylinder, Phantom, Solid};
use crate::error::Result;
use crate::geometry::{ProjectionGeometry, VolumeGeometry};
use crate::physics::{Absorber, Material};

/// One phantom of densities per material; solids of the same material add, and a
/// solid of negative density carves its volume out of another.
#[derive(Clone, Debug, PartialEq)]
pub struct MaterialPhantom {
    /// Each material and its solids, whose `mu` field holds a density in g/cm^3.
    pub parts: Vec<(Material, Phantom)>,
}

/// Bone of the skull and spine, cortical, g/cm^3.
const CORTICAL: f64 = 1.85;
/// The maxilla: thin cortical walls and marrow, as one mean density, g/cm^3.
const MAXILLA: f64 = 1.2;
/// Teeth (dentin and enamel), g/cm^3.
const TOOTH: f64 = 2.2;

fn ellipsoid(centre: [f64; 3], semi_axes: [f64; 3], density: f64) -> Solid {
    Solid::Ellipsoid(Ellipsoid {
        centre,
        semi_axes,
        angle_z: 0.0,
        mu: density,
    })
}

impl MaterialPhantom {
    /// A head of analytic solids, about 156 x 212 x 248 mm, in world mm (x: right to
    /// left, y: front to back, z: feet to head): scalp and face of soft tissue, a
    /// 6 mm skull, brain, the maxilla with its two sinuses and the nasal cavity (air),
    /// two rows of teeth, the pharynx (air) and three cervical vertebrae. The default
    /// circular scan (source on -x) sees it from the side. The solids do not overlap
    /// but where one carves another, so each point holds one material.
    pub fn head() -> MaterialPhantom {
        let head_shape = ([0.0, 0.0, 0.0], [78.0, 106.0, 124.0]);
        let skull = ([0.0, 8.0, 34.0], [68.0, 86.0, 72.0]);
        let brain = ([0.0, 8.0, 34.0], [62.0, 80.0, 66.0]);
        let maxilla = ([0.0, -55.0, -44.0], [38.0, 28.0, 16.0]);
        let sinuses = [
            ([-18.0, -56.0, -44.0], [11.0, 13.0, 10.0]),
            ([18.0, -56.0, -44.0], [11.0, 13.0, 10.0]),
        ];
        let nasal = ([0.0, -64.0, -42.0], [5.0, 10.0, 9.0]);
        let pharynx = EllipticCylinder {
            centre: [0.0, 10.0],
            semi_axes: [8.0, 8.0],
            z_range: [-110.0, -45.0],
            mu: 1.0,
        };
        let vertebrae: Vec<EllipticCylinder> = [[-104.0, -93.0], [-90.0, -79.0], [-76.0, -65.0]]
            .into_iter()
            .map(|z_range| EllipticCylinder {
                centre: [0.0, 28.0],
                semi_axes: [11.0, 9.0],
                z_range,
                mu: CORTICAL,
            })
            .collect();
        // Upper and lower teeth along an arch.
        let teeth: Vec<([f64; 3], [f64; 3])> = [-67.0, -81.0]
            .into_iter()
            .flat_map(|z| {
                (-5..=5).map(move |k| {
                    let phi = f64::from(k) * 15f64.to_radians();
                    (
                        [26.0 * phi.sin(), -30.0 - 28.0 * phi.cos(), z],
                        [3.2, 3.2, 6.5],
                    )
                })
            })
            .collect();

        let mut soft = vec![
            ellipsoid(head_shape.0, head_shape.1, 1.0),
            ellipsoid(skull.0, skull.1, -1.0),
            ellipsoid(maxilla.0, maxilla.1, -1.0),
        ];
        soft.extend(teeth.iter().map(|(c, s)| ellipsoid(*c, *s, -1.0)));
        soft.push(Solid::EllipticCylinder(EllipticCylinder {
            mu: -1.0,
            ..pharynx.clone()
        }));
        soft.extend(vertebrae.iter().map(|v| {
            Solid::EllipticCylinder(EllipticCylinder {
                mu: -1.0,
                ..v.clone()
            })
        }));

        let mut bone = vec![
            ellipsoid(skull.0, skull.1, CORTICAL),
            ellipsoid(brain.0, brain.1, -CORTICAL),
            ellipsoid(maxilla.0, maxilla.1, MAXILLA),
            ellipsoid(nasal.0, nasal.1, -MAXILLA),
        ];
        bone.extend(sinuses.iter().map(|(c, s)| ellipsoid(*c, *s, -MAXILLA)));
        bone.extend(teeth.iter().map(|(c, s)| ellipsoid(*c, *s, TOOTH)));
        bone.extend(vertebrae.into_iter().map(Solid::EllipticCylinder));

        let air_density = Material::Air.density();
        let mut air: Vec<Solid> = sinuses
            .iter()
            .chain([&nasal])
            .map(|(c, s)| ellipsoid(*c, *s, air_density))
            .collect();
        air.push(Solid::EllipticCylinder(EllipticCylinder {
            mu: air_density,
            ..pharynx
        }));

        MaterialPhantom {
            parts: vec![
                (Material::SoftTissue, Phantom { solids: soft }),
                (Material::Bone, Phantom { solids: bone }),
                (
                    Material::Brain,
                    Phantom {
                        solids: vec![ellipsoid(brain.0, brain.1, 1.03)],
                    },
                ),
                (Material::Air, Phantom { solids: air }),
            ],
        }
    }

    /// The absorbers of [`crate::physics::RadiographModel`], in the order of the maps.
    pub fn absorbers(&self) -> Vec<Absorber> {
        self.parts
            .iter()
            .map(|(m, _)| Absorber::Material(*m))
            .collect()
    }

    /// Each material's density at world point `p`, g/cm^3.
    pub fn densities_at(&self, p: [f64; 3]) -> Vec<f64> {
        self.parts
            .iter()
            .map(|(_, phantom)| phantom.mu_at(p))
            .collect()
    }

    /// One density map per material on `grid` (see [`Phantom::voxelize`]).
    ///
    /// # Errors
    /// [`Phantom::voxelize`]'s.
    pub fn voxelize(&self, grid: &VolumeGeometry, supersample: usize) -> Result<Vec<Array3<f32>>> {
        self.parts
            .iter()
            .map(|(_, phantom)| phantom.voxelize(grid, supersample))
            .collect()
    }

    /// Exact line integrals (g/cm^3 mm) of every material for every pixel of
    /// `geometry`.
    ///
    /// # Errors
    /// [`Phantom::project`]'s.
    pub fn project(&self, geometry: &ProjectionGeometry) -> Result<Vec<Array3<f32>>> {
        self.parts
            .iter()
            .map(|(_, phantom)| phantom.project(geometry))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_of_the_head_holds_one_material_at_a_non_negative_density() {
        let head = MaterialPhantom::head();
        let mut seen = vec![0usize; head.parts.len()];
        // A 1.5 mm lattice over the head's bounding box, offset from the solids' axes.
        let mut z = -125.2;
        while z < 125.0 {
            let mut y = -107.1;
            while y < 107.0 {
                let mut x = -79.7;
                while x < 79.0 {
                    let d = head.densities_at([x, y, z]);
                    assert!(d.iter().all(|&v| v >= -1e-12), "{d:?} at {x} {y} {z}");
                    let present: Vec<usize> = (0..d.len()).filter(|&i| d[i] > 1e-12).collect();
                    assert!(present.len() <= 1, "{d:?} at {x} {y} {z}");
                    for i in present {
                        seen[i] += 1;
                    }
                    x += 1.5;
                }
                y += 1.5;
            }
            z += 1.5;
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
        // Finer where the upper teeth meet the maxilla and the lower teeth.
        for i in 0..=120 {
            for j in 0..=80 {
                for k in 0..=64 {
                    let p = [
                        -15.0 + 0.25 * f64::from(i),
                        -70.0 + 0.25 * f64::from(j),
                        -76.0 + 0.25 * f64::from(k),
                    ];
                    let d = head.densities_at(p);
                    assert!(d.iter().all(|&v| v >= -1e-12), "{d:?} at {p:?}");
                    assert!(
                        d.iter().filter(|&&v| v > 1e-12).count() <= 1,
                        "{d:?} at {p:?}"
                    );
                }
            }
        }
        // The skull is bone, the brain inside it brain, the sinuses air.
        assert_eq!(head.densities_at([0.0, 8.0, 34.0 + 69.0])[1], CORTICAL);
        assert_eq!(head.densities_at([0.0, 8.0, 34.0])[2], 1.03);
        assert_eq!(
            head.densities_at([18.0, -56.0, -44.0])[3],
            Material::Air.density()
        );
    }

    #[test]
    fn each_materials_projection_is_the_line_integral_of_its_density() {
        let head = MaterialPhantom::head();
        let geometry = crate::CircularScan::new(1000.0, 1500.0, 1, [8, 8], 40.0)
            .geometry()
            .unwrap();
        let p = head.project(&geometry).unwrap();
        assert_eq!(p.len(), 4);
        // Through the middle of the head from the side: soft tissue, skull twice,
        // brain; about 150 mm of tissue in all.
        let grams: f64 = p.iter().map(|m| f64::from(m[[0, 4, 4]])).sum();
        assert!(grams > 140.0 && grams < 200.0, "{grams}");
        assert!(p[1][[0, 4, 4]] > 0.0 && p[2][[0, 4, 4]] > 0.0);
    }
}
