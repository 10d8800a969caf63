//! [`VolumeGeometry`]: the voxel grid in world coordinates.

use xray_kernels::GridParams;

use super::check::{count, dot, finite3, norm, positive, product3, scale, sub};
use crate::error::{Error, GeometryError, Result};

/// Where a volume's voxels are in the world.
///
/// The array is `[z, y, x]` (x fastest) with `shape = [nz, ny, nx]`; `spacing` is
/// `[sx, sy, sz]` in mm (note the order: per world axis, not per array axis); `origin`
/// is the world position of the grid's *minimum corner* (not of the first voxel's
/// centre). The columns of `direction` are the world directions of the x, y and z index
/// axes (identity for an axis-aligned grid); a world point is
/// `origin + direction * diag(spacing) * index`, with voxel `(ix, iy, iz)` covering
/// `[ix, ix+1) x [iy, iy+1) x [iz, iz+1)` in index space.
///
/// # Examples
/// ```
/// use xray_projector::VolumeGeometry;
/// let g = VolumeGeometry::centered([133, 512, 512], [0.703125, 0.703125, 2.5]);
/// assert_eq!(g.origin, [-180.0, -180.0, -166.25]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeGeometry {
    /// Voxel counts `[nz, ny, nx]`, the array's shape.
    pub shape: [usize; 3],
    /// Voxel size `[sx, sy, sz]` in mm.
    pub spacing: [f64; 3],
    /// World position (mm) of the grid's minimum corner.
    pub origin: [f64; 3],
    /// Orthonormal matrix whose columns are the world directions of the x, y, z index
    /// axes; row-major, `direction[row][col]`.
    pub direction: [[f64; 3]; 3],
}

const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

impl VolumeGeometry {
    /// An axis-aligned grid with its minimum corner at `origin`.
    pub fn new(shape: [usize; 3], spacing: [f64; 3], origin: [f64; 3]) -> Self {
        VolumeGeometry {
            shape,
            spacing,
            origin,
            direction: IDENTITY,
        }
    }

    /// An axis-aligned grid centred on the world origin.
    pub fn centered(shape: [usize; 3], spacing: [f64; 3]) -> Self {
        let [nz, ny, nx] = shape;
        let origin = [
            -0.5 * nx as f64 * spacing[0],
            -0.5 * ny as f64 * spacing[1],
            -0.5 * nz as f64 * spacing[2],
        ];
        VolumeGeometry::new(shape, spacing, origin)
    }

    /// The same grid with another orientation (columns: world directions of x, y, z).
    pub fn with_direction(mut self, direction: [[f64; 3]; 3]) -> Self {
        self.direction = direction;
        self
    }

    /// Number of voxels, `nz * ny * nx`.
    ///
    /// # Errors
    /// [`GeometryError::TooLarge`] if the product overflows `usize`.
    pub fn voxel_count(&self) -> Result<usize> {
        Ok(product3("volume voxel count", self.shape)?)
    }

    /// Checks every field; the projector calls it before any work.
    ///
    /// # Errors
    /// A [`GeometryError`] naming the field: a zero dimension or one above
    /// [`MAX_AXIS_LEN`](crate::geometry::MAX_AXIS_LEN) (2^30, where the kernels' `i32`
    /// per-axis indices would overflow), a spacing that is not finite and positive, a
    /// non-finite origin, a direction matrix that is not orthonormal.
    pub fn validate(&self) -> Result<()> {
        const AXES: [&str; 3] = ["nz", "ny", "nx"];
        for (i, &n) in self.shape.iter().enumerate() {
            count(|| format!("volume shape[{i}] ({})", AXES[i]), n)?;
        }
        self.voxel_count()?;
        const SPACING: [&str; 3] = ["sx", "sy", "sz"];
        for (i, &s) in self.spacing.iter().enumerate() {
            positive(|| format!("volume spacing[{i}] ({})", SPACING[i]), s)?;
        }
        finite3("volume origin", self.origin)?;
        for (r, row) in self.direction.iter().enumerate() {
            finite3(&format!("volume direction row {r}"), *row)?;
        }
        let error = orthonormality_error(&self.direction);
        if error > 1e-6 {
            return Err(GeometryError::DirectionNotOrthonormal { error }.into());
        }
        Ok(())
    }

    /// Checks that `shape` (an array's shape, `[nz, ny, nx]`) is this grid's.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if it is not.
    pub fn check_shape(&self, shape: &[usize]) -> Result<()> {
        if shape == self.shape {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                what: "volume",
                expected: self.shape.to_vec(),
                got: shape.to_vec(),
            })
        }
    }

    /// The linear map from index space to world: `direction * diag(spacing)`.
    pub fn index_to_world(&self) -> [[f64; 3]; 3] {
        let mut m = [[0.0; 3]; 3];
        for (r, row) in m.iter_mut().enumerate() {
            for (c, value) in row.iter_mut().enumerate() {
                *value = self.direction[r][c] * self.spacing[c];
            }
        }
        m
    }

    /// Index-space coordinates of the world point `p` (voxel centres at `i + 0.5`).
    pub fn world_to_index(&self, p: [f64; 3]) -> [f64; 3] {
        let d = [
            p[0] - self.origin[0],
            p[1] - self.origin[1],
            p[2] - self.origin[2],
        ];
        self.world_vector_to_index(d)
    }

    /// Index-space components of the world displacement `v` (no origin shift).
    pub fn world_vector_to_index(&self, v: [f64; 3]) -> [f64; 3] {
        // The inverse of direction * diag(spacing) is diag(1/spacing) * direction^T,
        // because the direction matrix is orthonormal.
        let mut out = [0.0; 3];
        for (c, o) in out.iter_mut().enumerate() {
            let along = (0..3).map(|r| self.direction[r][c] * v[r]).sum::<f64>();
            *o = along / self.spacing[c];
        }
        out
    }

    /// World position of the index-space point `q = [qx, qy, qz]` (voxel `(ix, iy, iz)`
    /// spans `[ix, ix+1)` etc.): `origin + direction * diag(spacing) * q`.
    pub fn index_point_to_world(&self, q: [f64; 3]) -> [f64; 3] {
        let m = self.index_to_world();
        let mut p = self.origin;
        for (r, value) in p.iter_mut().enumerate() {
            *value += m[r][0] * q[0] + m[r][1] * q[1] + m[r][2] * q[2];
        }
        p
    }

    /// World position of the centre of voxel `[iz, iy, ix]`.
    ///
    /// # Examples
    /// ```
    /// use xray_projector::VolumeGeometry;
    /// let g = VolumeGeometry::new([2, 3, 4], [0.5, 1.0, 2.0], [10.0, 20.0, 30.0]);
    /// assert_eq!(g.voxel_centre([1, 2, 3]), [10.0 + 3.5 * 0.5, 20.0 + 2.5, 30.0 + 1.5 * 2.0]);
    /// ```
    pub fn voxel_centre(&self, index: [usize; 3]) -> [f64; 3] {
        self.index_point_to_world([
            index[2] as f64 + 0.5,
            index[1] as f64 + 0.5,
            index[0] as f64 + 0.5,
        ])
    }

    /// A grid from the file formats' form: `affine` maps voxel *centre* indices
    /// `(i, j, k)` (x, y, z index axes) to world mm, as the 3x4 matrix
    /// `[[M | t]]` with `world = M (i, j, k) + t`. This is NIfTI's sform (after the
    /// change of world frame) and what DICOM and MetaImage record as spacing,
    /// direction and the first voxel's position.
    ///
    /// The columns of `M` must be orthogonal: their lengths are the spacing, their
    /// directions the grid's orientation (reflections allowed).
    ///
    /// # Errors
    /// [`GeometryError::NotFinite`] or [`GeometryError::NotPositive`] for a bad entry or
    /// a zero column; [`GeometryError::DirectionNotOrthonormal`] for a sheared affine;
    /// anything [`validate`](Self::validate) rejects.
    ///
    /// # Examples
    /// ```
    /// use xray_projector::VolumeGeometry;
    /// // 2 mm voxels, first voxel centred at (10, 20, 30).
    /// let affine = [[2.0, 0.0, 0.0, 10.0], [0.0, 2.0, 0.0, 20.0], [0.0, 0.0, 2.0, 30.0]];
    /// let g = VolumeGeometry::from_voxel_centre_affine([4, 4, 4], affine).unwrap();
    /// assert_eq!(g.origin, [9.0, 19.0, 29.0]);
    /// assert_eq!(g.voxel_centre([0, 0, 0]), [10.0, 20.0, 30.0]);
    /// ```
    pub fn from_voxel_centre_affine(shape: [usize; 3], affine: [[f64; 4]; 3]) -> Result<Self> {
        for (r, row) in affine.iter().enumerate() {
            for (c, &value) in row.iter().enumerate() {
                if !value.is_finite() {
                    return Err(GeometryError::NotFinite {
                        field: format!("affine[{r}][{c}]"),
                        value,
                    }
                    .into());
                }
            }
        }
        let mut spacing = [0.0; 3];
        let mut direction = [[0.0; 3]; 3];
        for c in 0..3 {
            let length = (0..3)
                .map(|r| affine[r][c] * affine[r][c])
                .sum::<f64>()
                .sqrt();
            positive(
                || format!("length of affine column {c} (the voxel size)"),
                length,
            )?;
            spacing[c] = length;
            for r in 0..3 {
                direction[r][c] = affine[r][c] / length;
            }
        }
        let mut grid = VolumeGeometry::new(shape, spacing, [0.0; 3]).with_direction(direction);
        let error = orthonormality_error(&direction);
        if error > 1e-4 {
            return Err(GeometryError::DirectionNotOrthonormal { error }.into());
        }
        // Re-orthonormalise what passed the loose file tolerance, so that `validate`'s
        // tight one holds.
        grid.direction = orthonormalised(direction);
        let centre_to_corner = grid.index_point_to_world([-0.5; 3]);
        grid.origin = [
            affine[0][3] + centre_to_corner[0],
            affine[1][3] + centre_to_corner[1],
            affine[2][3] + centre_to_corner[2],
        ];
        grid.validate()?;
        Ok(grid)
    }

    /// The inverse of [`from_voxel_centre_affine`](Self::from_voxel_centre_affine):
    /// the 3x4 map from voxel centre indices `(i, j, k)` to world mm.
    pub fn voxel_centre_affine(&self) -> [[f64; 4]; 3] {
        let m = self.index_to_world();
        let t = self.index_point_to_world([0.5; 3]);
        let mut affine = [[0.0; 4]; 3];
        for r in 0..3 {
            affine[r][..3].copy_from_slice(&m[r]);
            affine[r][3] = t[r];
        }
        affine
    }

    /// World position of the grid's centre.
    pub fn centre(&self) -> [f64; 3] {
        let [nz, ny, nx] = self.shape;
        self.index_point_to_world([nx as f64 / 2.0, ny as f64 / 2.0, nz as f64 / 2.0])
    }

    /// The same grid moved so that its centre is at the world origin (orientation
    /// kept): geometry given relative to the volume's centre.
    pub fn recentred(&self) -> Self {
        let c = self.centre();
        let mut grid = self.clone();
        for (o, shift) in grid.origin.iter_mut().zip(c) {
            *o -= shift;
        }
        grid
    }

    /// The grid record the kernels read, for a buffer holding the slices `slices` (a
    /// range within `0..nz`, checked by the caller; `0..nz` for a whole volume).
    pub(crate) fn slab_params(&self, slices: std::ops::Range<usize>) -> GridParams {
        debug_assert!(slices.start < slices.end && slices.end <= self.shape[0]);
        let m = self.index_to_world();
        let mut flat = [0.0f32; 9];
        for r in 0..3 {
            for c in 0..3 {
                flat[3 * r + c] = m[r][c] as f32;
            }
        }
        let [nz, ny, nx] = self.shape;
        GridParams {
            z_first: slices.start as u32,
            z_count: slices.len() as u32,
            ..GridParams::whole(nx as u32, ny as u32, nz as u32, flat)
        }
    }
}

/// The nearest orthonormal matrix by Gram-Schmidt on the columns (keeps a reflection).
fn orthonormalised(d: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let column = |c: usize| [d[0][c], d[1][c], d[2][c]];
    let unit = |v: [f64; 3]| scale(v, 1.0 / norm(v));
    let reject = |a: [f64; 3], b: [f64; 3]| sub(a, scale(b, dot(a, b)));
    let x = unit(column(0));
    let y = unit(reject(column(1), x));
    let z = unit(reject(reject(column(2), x), y));
    let mut out = [[0.0; 3]; 3];
    for (r, row) in out.iter_mut().enumerate() {
        *row = [x[r], y[r], z[r]];
    }
    out
}

/// Largest entry of `|R^T R - I|`.
fn orthonormality_error(r: &[[f64; 3]; 3]) -> f64 {
    let mut worst = 0.0f64;
    for i in 0..3 {
        for j in 0..3 {
            let dot: f64 = (0..3).map(|k| r[k][i] * r[k][j]).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            worst = worst.max((dot - want).abs());
        }
    }
    worst
}
