//! Analytic phantoms: sums of simple solids of constant attenuation, each with a
//! closed-form chord, so that every line integral is known exactly. They give the
//! ground truth of the tests and the built-in inputs of the CLI.
//!
//! * [`Phantom::shepp_logan`]: the 3D Shepp-Logan head of Kak and Slaney.
//! * [`Phantom::nested_ellipsoids`] and [`Phantom::body`]: the phantoms of the standard
//!   benchmark cases (`anchors/geometry.py`), voxel for voxel.
//! * [`Phantom::uniform_box`]: one box, whose integrals are `mu` times the chord.
//! * [`MaterialPhantom::head`]: a head of materials (densities per material) for the
//!   polychromatic model of [`crate::physics`].

mod anatomy;
mod solids;

use ndarray::Array3;
use rayon::prelude::*;

pub use anatomy::MaterialPhantom;
pub use solids::{Cuboid, Ellipsoid, EllipticCylinder, Solid};

use crate::alloc::zeroed;
use crate::error::{Error, Result};
use crate::geometry::{Beam, ProjectionGeometry, VolumeGeometry};

/// Attenuation of water used to scale relative densities, 1/mm (about 70 keV).
pub const MU_WATER: f64 = 0.02;

/// A sum of solids: the attenuation at a point is the sum of the `mu` of every solid
/// that contains it.
#[derive(Clone, Debug, PartialEq)]
pub struct Phantom {
    /// The solids.
    pub solids: Vec<Solid>,
}

impl Phantom {
    /// The 3D Shepp-Logan head phantom (Kak and Slaney, *Principles of Computerized
    /// Tomographic Imaging*, 1988, table on p. 102), scaled so that its unit cube spans
    /// `[-half_extent, half_extent]` mm, densities times [`MU_WATER`] (brain about
    /// 1.02 water, skull 2).
    pub fn shepp_logan(half_extent: f64) -> Phantom {
        // a, b, c (semi-axes), x0, y0, z0, rotation about z (degrees), relative density
        const TABLE: [[f64; 8]; 10] = [
            [0.6900, 0.920, 0.900, 0.00, 0.000, 0.000, 0.0, 2.00],
            [0.6624, 0.874, 0.880, 0.00, 0.000, 0.000, 0.0, -0.98],
            [0.4100, 0.160, 0.210, -0.22, 0.000, -0.250, 108.0, -0.02],
            [0.3100, 0.110, 0.220, 0.22, 0.000, -0.250, 72.0, -0.02],
            [0.2100, 0.250, 0.500, 0.00, 0.350, -0.250, 0.0, 0.02],
            [0.0460, 0.046, 0.046, 0.00, 0.100, -0.250, 0.0, 0.02],
            [0.0460, 0.023, 0.020, -0.08, -0.650, -0.250, 0.0, 0.01],
            [0.0460, 0.023, 0.020, 0.06, -0.650, -0.250, 90.0, 0.01],
            [0.0560, 0.040, 0.100, 0.06, -0.105, 0.625, 90.0, 0.02],
            [0.0560, 0.056, 0.100, 0.00, 0.100, 0.625, 0.0, -0.02],
        ];
        let h = half_extent;
        Phantom {
            solids: TABLE
                .iter()
                .map(|e| {
                    Solid::Ellipsoid(Ellipsoid {
                        centre: [e[3] * h, e[4] * h, e[5] * h],
                        semi_axes: [e[0] * h, e[1] * h, e[2] * h],
                        angle_z: e[6].to_radians(),
                        mu: e[7] * MU_WATER,
                    })
                })
                .collect(),
        }
    }

    /// The nested-ellipsoid phantom of the fp256/fp512 cases (`anchors/geometry.py`):
    /// water-like 0.02/mm, an inner 0.04/mm ellipsoid and a 0.06/mm sphere. With
    /// `half_extent = spacing * (n - 1) / 2` its voxelisation at voxel centres equals the
    /// anchors' array (they sample `linspace(-1, 1, n)`).
    pub fn nested_ellipsoids(half_extent: f64) -> Phantom {
        let h = half_extent;
        let ellipsoid = |centre: [f64; 3], axes: [f64; 3], mu| {
            Solid::Ellipsoid(Ellipsoid {
                centre: [centre[0] * h, centre[1] * h, centre[2] * h],
                semi_axes: [axes[0] * h, axes[1] * h, axes[2] * h],
                angle_z: 0.0,
                mu,
            })
        };
        // The anchors overwrite; as a sum, each inner solid adds its difference.
        Phantom {
            solids: vec![
                ellipsoid([0.0, 0.0, 0.0], [0.8, 0.9, 0.85], 0.02),
                ellipsoid([0.0, 0.2, 0.0], [0.3, 0.25, 0.4], 0.04 - 0.02),
                ellipsoid([-0.3, 0.0, 0.0], [0.1, 0.1, 0.1], 0.06 - 0.02),
            ],
        }
    }

    /// The body phantom of the DRR cases (`anchors/geometry.py`): a water-like elliptic
    /// body, two air-filled lungs and a bony spine, as cylinders along z spanning
    /// `z_range` (mm).
    pub fn body(z_range: [f64; 2]) -> Phantom {
        let cylinder = |centre: [f64; 2], semi_axes: [f64; 2], mu| {
            Solid::EllipticCylinder(EllipticCylinder {
                centre,
                semi_axes,
                z_range,
                mu,
            })
        };
        Phantom {
            solids: vec![
                cylinder([0.0, 0.0], [160.0, 110.0], 0.02),
                cylinder([-75.0, -5.0], [55.0, 75.0], 0.004 - 0.02),
                cylinder([75.0, -5.0], [55.0, 75.0], 0.004 - 0.02),
                cylinder([0.0, 70.0], [18.0, 18.0], 0.045 - 0.02),
            ],
        }
    }

    /// One axis-aligned box of attenuation `mu` between the corners `min` and `max`.
    pub fn uniform_box(min: [f64; 3], max: [f64; 3], mu: f64) -> Phantom {
        Phantom {
            solids: vec![Solid::Cuboid(Cuboid { min, max, mu })],
        }
    }

    /// Attenuation (1/mm) at world point `p`.
    pub fn mu_at(&self, p: [f64; 3]) -> f64 {
        self.solids
            .iter()
            .filter(|s| s.contains(p))
            .map(Solid::mu)
            .sum()
    }

    /// Exact line integral over the segment from `a` to `b` (`t` in `[t_min, t_max]` of
    /// `a + t (b - a)`; use infinite bounds for a whole line).
    pub fn line_integral(&self, a: [f64; 3], b: [f64; 3], t_min: f64, t_max: f64) -> f64 {
        let d = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        self.solids
            .iter()
            .map(|s| s.mu() * s.chord(a, d, t_min, t_max))
            .sum()
    }

    /// The voxel array of this phantom on `grid`: each voxel is the mean of
    /// `supersample^3` samples spread evenly inside it (1: the value at its centre).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `supersample` 0 or above 16, the grid's
    /// validation errors, [`Error::Allocation`] if the array cannot be allocated.
    pub fn voxelize(&self, grid: &VolumeGeometry, supersample: usize) -> Result<Array3<f32>> {
        if !(1..=16).contains(&supersample) {
            return Err(Error::InvalidParameter {
                name: "supersample",
                reason: format!("must be between 1 and 16, got {supersample}"),
            });
        }
        grid.validate()?;
        let mut data = zeroed(grid.voxel_count()?, "phantom volume")?;
        let [_, ny, nx] = grid.shape;
        let s = supersample as f64;
        data.par_chunks_mut(ny * nx)
            .enumerate()
            .for_each(|(iz, slice)| {
                for (i, value) in slice.iter_mut().enumerate() {
                    let (iy, ix) = (i / nx, i % nx);
                    let mut sum = 0.0;
                    for a in 0..supersample {
                        for b in 0..supersample {
                            for c in 0..supersample {
                                let q = [
                                    ix as f64 + (c as f64 + 0.5) / s,
                                    iy as f64 + (b as f64 + 0.5) / s,
                                    iz as f64 + (a as f64 + 0.5) / s,
                                ];
                                sum += self.mu_at(grid.index_point_to_world(q));
                            }
                        }
                    }
                    *value = (sum / (s * s * s)) as f32;
                }
            });
        Ok(Array3::from_shape_vec(grid.shape, data).expect("the buffer has nz * ny * nx elements"))
    }

    /// Exact line integrals of every pixel of `geometry` (f64 sums rounded to f32): the
    /// reference projections of this phantom.
    ///
    /// # Errors
    /// The geometry's validation errors; [`Error::Allocation`].
    pub fn project(&self, geometry: &ProjectionGeometry) -> Result<Array3<f32>> {
        geometry.validate()?;
        let mut data = zeroed(geometry.ray_count()?, "reference projections")?;
        let (rows, cols) = (geometry.rows, geometry.cols);
        data.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(line, out)| {
                let view = &geometry.views[line / rows];
                let row = line % rows;
                let cv = row as f64 - 0.5 * (rows as f64 - 1.0);
                for (col, value) in out.iter_mut().enumerate() {
                    let cu = col as f64 - 0.5 * (cols as f64 - 1.0);
                    let mut pixel = view.detector;
                    for (a, coord) in pixel.iter_mut().enumerate() {
                        *coord += cu * view.u[a] + cv * view.v[a];
                    }
                    *value = match geometry.beam {
                        Beam::Cone => self.line_integral(view.source, pixel, 0.0, 1.0),
                        Beam::Parallel => {
                            let far = [
                                pixel[0] + view.source[0],
                                pixel[1] + view.source[1],
                                pixel[2] + view.source[2],
                            ];
                            self.line_integral(pixel, far, f64::NEG_INFINITY, f64::INFINITY)
                        }
                    } as f32;
                }
            });
        Ok(Array3::from_shape_vec(geometry.shape(), data)
            .expect("the buffer has views * rows * cols elements"))
    }
}
