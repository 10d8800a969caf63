//! [`ProjectionGeometry`]: one vector record per view, as in ASTRA's `cone_vec` and
//! `parallel3d_vec`, and its reduction to the kernels' index-space records.

use serde::{Deserialize, Serialize};
use xray_kernels::{DetectorParams, ViewParams};

use super::check::{count, cross, dot, finite3, norm, product3, sub};
use super::VolumeGeometry;
use crate::error::{GeometryError, Result};

/// The beam shape shared by all views of a geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Beam {
    /// Rays from a point source to each pixel centre (CT scanners, C-arms, radiography).
    Cone,
    /// Parallel rays through each pixel centre (synchrotron CT, the far-source limit).
    Parallel,
}

/// One view: the X-ray source (or ray direction) and the detector, in world mm.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// Cone beam: the source position. Parallel beam: the ray direction, pointing from
    /// the source side towards the detector (any length). This is ASTRA's convention.
    pub source: [f64; 3],
    /// Centre of the detector.
    pub detector: [f64; 3],
    /// World step from one detector column to the next (its length is the pixel width).
    pub u: [f64; 3],
    /// World step from one detector row to the next (its length is the pixel height).
    pub v: [f64; 3],
}

/// Where the rays of every view go: the detector size, the beam shape, and one
/// [`View`] per projection.
///
/// Pixel (r, c) of a view is centred at `detector + (c - (cols-1)/2) u + (r - (rows-1)/2) v`;
/// the projections array is `[views, rows, cols]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionGeometry {
    /// Cone or parallel beam.
    pub beam: Beam,
    /// Detector rows (along `v`).
    pub rows: usize,
    /// Detector columns (along `u`).
    pub cols: usize,
    /// One record per projection.
    pub views: Vec<View>,
}

impl ProjectionGeometry {
    /// The shape of the projections array, `[views, rows, cols]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.views.len(), self.rows, self.cols]
    }

    /// The same detector and beam with only the views `views` (in order): the part of
    /// the work one device of several does. `views` lies within `0..self.views.len()`.
    pub(crate) fn view_range(&self, views: std::ops::Range<usize>) -> ProjectionGeometry {
        ProjectionGeometry {
            beam: self.beam,
            rows: self.rows,
            cols: self.cols,
            views: self.views[views].to_vec(),
        }
    }

    /// Number of rays (pixels over all views).
    ///
    /// # Errors
    /// [`GeometryError::TooLarge`] if the count overflows `usize`.
    pub fn ray_count(&self) -> Result<usize> {
        Ok(product3("projection pixel count", self.shape())?)
    }

    /// Checks every view; the projector calls it before any work.
    ///
    /// # Errors
    /// A [`GeometryError`]: zero rows, columns or views, or more than
    /// [`MAX_AXIS_LEN`](crate::geometry::MAX_AXIS_LEN) (2^30); non-finite vectors; u and v
    /// parallel (or zero); a cone source in its detector plane; a parallel direction that
    /// is zero or lies in the detector plane.
    pub fn validate(&self) -> Result<()> {
        count(|| "detector rows".into(), self.rows)?;
        count(|| "detector cols".into(), self.cols)?;
        count(|| "number of views".into(), self.views.len())?;
        self.ray_count()?;
        for (i, view) in self.views.iter().enumerate() {
            finite3(&format!("view {i} source"), view.source)?;
            finite3(&format!("view {i} detector"), view.detector)?;
            finite3(&format!("view {i} u"), view.u)?;
            finite3(&format!("view {i} v"), view.v)?;
            let normal = cross(view.u, view.v);
            let area = norm(normal);
            // Vectors are finite (checked above); zero u or v gives 0 <= 0.
            if area <= 1e-9 * norm(view.u) * norm(view.v) {
                return Err(GeometryError::DetectorAxesParallel { view: i }.into());
            }
            let unit_normal = [normal[0] / area, normal[1] / area, normal[2] / area];
            match self.beam {
                Beam::Cone => {
                    let offset = sub(view.source, view.detector);
                    let scale = norm(offset) + norm(view.u) + norm(view.v);
                    if dot(offset, unit_normal).abs() <= 1e-9 * scale {
                        return Err(GeometryError::SourceOnDetectorPlane { view: i }.into());
                    }
                }
                Beam::Parallel => {
                    let length = norm(view.source);
                    if dot(view.source, unit_normal).abs() <= 1e-9 * length {
                        return Err(GeometryError::RayAlongDetector { view: i }.into());
                    }
                }
            }
        }
        Ok(())
    }

    /// The detector record the kernels read.
    pub(crate) fn detector_params(&self) -> DetectorParams {
        DetectorParams {
            rows: self.rows as u32,
            cols: self.cols as u32,
            beam: match self.beam {
                Beam::Cone => xray_kernels::Beam::Cone,
                Beam::Parallel => xray_kernels::Beam::Parallel,
            },
        }
    }

    /// Every view mapped into the voxel-index space of `volume` (computed in f64,
    /// rounded to f32 once).
    pub(crate) fn view_params(&self, volume: &VolumeGeometry) -> Vec<ViewParams> {
        let f32x3 = |v: [f64; 3]| [v[0] as f32, v[1] as f32, v[2] as f32];
        self.views
            .iter()
            .map(|view| ViewParams {
                source: f32x3(match self.beam {
                    Beam::Cone => volume.world_to_index(view.source),
                    Beam::Parallel => volume.world_vector_to_index(view.source),
                }),
                detector_centre: f32x3(volume.world_to_index(view.detector)),
                u: f32x3(volume.world_vector_to_index(view.u)),
                v: f32x3(volume.world_vector_to_index(view.v)),
            })
            .collect()
    }
}
