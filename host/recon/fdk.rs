//! FDK (Feldkamp, Davis and Kress, JOSA A 1, 1984): filtered backprojection for circular
//! cone-beam scans, and plain FBP for circular parallel-beam scans.
//!
//! 1. Weight each projection pixel by the cosine of its ray's angle to the principal
//!    ray and by its redundancy weight (1/2 for a full turn, Parker's for a short scan;
//!    see `weights`).
//! 2. Ramp-filter every detector row (`filter`), in mm on the physical detector.
//! 3. Backproject voxel by voxel: each voxel reads every filtered view where its centre
//!    projects (bilinear), weighted by `(sdd / sod) / U^2 * dbeta`, with `U` the voxel's
//!    depth along the principal ray over `sod` (Kak and Slaney, eq. 3.187, with the
//!    filter on the physical rather than the virtual detector, which gives the factor
//!    `sdd / sod`).
//!
//! Steps 1 and 2 run on the CPU (they are a small part of the work); step 3 runs on the
//! projector's backend.

use ndarray::{s, Array3, ArrayBase, ArrayViewMut3, Data, Ix3};
use xray_kernels::VoxelView;

use super::filter::{Filter, RampFilter};
use super::weights::{column_position, cosine_weight, row_position, Redundancy};
use crate::alloc::zeroed_array;
use crate::error::Result;
use crate::geometry::check::{cross, dot, norm, scale, sub};
use crate::geometry::{Beam, CircularScan, ProjectionGeometry, View, VolumeGeometry};
use crate::projector::{check_projections, Projector};

/// Reconstructs the attenuation (1/mm) on `volume_geometry` from the line integrals
/// `projections` (`[views, rows, cols]`) of the circular scan `scan`, with FDK (cone
/// beam) or FBP (parallel beam) and the ramp filter's `window`.
///
/// The scan must cover a full turn, or at least 180 degrees plus the fan angle (a short
/// scan, weighted with Parker's weights). A full turn may have its detector offset
/// sideways to widen the field of view (the rotation axis must stay on the detector);
/// a short scan may not.
///
/// # Examples
/// ```
/// use xray_projector::{recon, Backend, CircularScan, Method, Phantom, Projector, VolumeGeometry};
///
/// let grid = VolumeGeometry::centered([32, 32, 32], [2.0; 3]);
/// let scan = CircularScan::new(400.0, 600.0, 90, [48, 48], 2.5);
/// let projector = Projector::new(Backend::Cpu)?;
/// let phantom = Phantom::uniform_box([-20.0; 3], [20.0; 3], 0.02);
/// let projections = phantom.project(&scan.geometry()?)?;
/// let volume = recon::fdk(&projector, &projections, &scan, &grid, recon::Filter::RamLak)?;
/// // The box's centre comes back at its attenuation, to a few percent.
/// assert!((volume[[16, 16, 16]] - 0.02).abs() < 0.001);
/// # Ok::<(), xray_projector::Error>(())
/// ```
///
/// # Errors
/// [`crate::Error::Geometry`] for an invalid scan or volume geometry (on CUDA also for a
/// grid beyond the GPU's launch grid limits, refused before the projections are
/// filtered),
/// [`crate::Error::ShapeMismatch`] when `projections` is not the scan's shape,
/// [`crate::Error::InvalidParameter`] for non-finite projections or an arc FDK cannot
/// reconstruct, [`crate::Error::Allocation`], and the backend's errors.
pub fn fdk<S>(
    projector: &Projector,
    projections: &ArrayBase<S, Ix3>,
    scan: &CircularScan,
    volume_geometry: &VolumeGeometry,
    window: Filter,
) -> Result<Array3<f32>>
where
    S: Data<Elem = f32>,
{
    fdk_slices(
        projector,
        projections,
        scan,
        volume_geometry,
        window,
        0..volume_geometry.shape[0],
    )
}

/// The slices `slices` (`[slices, ny, nx]`) of [`fdk`]'s reconstruction, bit for bit
/// those of the whole volume (each voxel sums the same views in the same order): for
/// [`crate::distributed`], where each rank reconstructs its own slab. `slices` lies
/// within `0..volume_geometry.shape[0]`.
///
/// # Errors
/// As [`fdk`].
pub(crate) fn fdk_slices<S>(
    projector: &Projector,
    projections: &ArrayBase<S, Ix3>,
    scan: &CircularScan,
    volume_geometry: &VolumeGeometry,
    window: Filter,
    slices: std::ops::Range<usize>,
) -> Result<Array3<f32>>
where
    S: Data<Elem = f32>,
{
    let geometry = scan.geometry()?;
    volume_geometry.validate()?;
    // A grid the GPU cannot be launched over is refused before the filtering's work.
    projector.check_fdk_grid(volume_geometry)?;
    let redundancy = Redundancy::of(scan)?;
    let contiguous = projections.as_standard_layout();
    check_projections(
        contiguous
            .as_slice()
            .expect("as_standard_layout gives a contiguous array"),
        projections.shape(),
        &geometry,
    )?;
    let (wide_scan, first_column) = symmetric_detector(scan);
    let [views, rows, cols] = geometry.shape();
    let wide_cols = wide_scan.detector[1];
    let mut filtered = zeroed_array([views, rows, wide_cols], "FDK's filtered projections")?;
    filtered
        .slice_mut(s![.., .., first_column..first_column + cols])
        .assign(&contiguous);
    weight(
        filtered.slice_mut(s![.., .., first_column..first_column + cols]),
        scan,
        &redundancy,
    );
    RampFilter::new(wide_cols, scan.pixel[0], window)?.apply(
        filtered
            .view_mut()
            .into_shape_with_order((views * rows, wide_cols))
            .expect("a new array is contiguous"),
    )?;
    let voxel_views = voxel_views(&wide_scan.geometry()?, volume_geometry, scan);
    projector.backproject_filtered(&filtered, &voxel_views, volume_geometry, slices)
}

/// The scan with its detector widened by columns of zeros on its narrow side, so that
/// it is symmetric about the principal point, and the index of the first real column.
///
/// The ramp filter spreads each row beyond the detector's edges; for a detector offset
/// sideways, the part that spreads past the narrow edge carries weight that the
/// conjugate rays on the wide side do not (see `weights`), so it must be backprojected
/// too. A centred detector is returned as it is.
fn symmetric_detector(scan: &CircularScan) -> (CircularScan, usize) {
    let offset = scan.detector_offset[0];
    // At most the detector's width: `Redundancy::of` checked that the rotation axis
    // projects onto the detector.
    let extra = (2.0 * offset.abs() / scan.pixel[0]).round() as usize;
    let mut wide = scan.clone();
    wide.detector[1] += extra;
    let shift = extra as f64 * scan.pixel[0] / 2.0;
    if offset > 0.0 {
        wide.detector_offset[0] -= shift;
        (wide, extra)
    } else {
        wide.detector_offset[0] += shift;
        (wide, 0)
    }
}

/// Multiplies every pixel of `projections` (the scan's own columns) by its cosine and
/// redundancy weights.
fn weight(mut projections: ArrayViewMut3<'_, f32>, scan: &CircularScan, redundancy: &Redundancy) {
    let (_, rows, cols) = projections.dim();
    let u: Vec<f64> = (0..cols).map(|c| column_position(scan, c as f64)).collect();
    let v: Vec<f64> = (0..rows).map(|r| row_position(scan, r as f64)).collect();
    let views = scan.views as f64;
    ndarray::Zip::indexed(&mut projections).par_for_each(|(k, r, c), value| {
        let angle = scan.start_angle + scan.arc * k as f64 / views;
        let w = cosine_weight(scan, u[c], v[r]) * redundancy.weight(angle, u[c]);
        *value = (*value as f64 * w) as f32;
    });
}

/// Each view's [`VoxelView`]: the projection matrix from voxel indices to detector
/// pixels, with `w = U` (depth over `sod`) for cone beams and 1 for parallel beams, and
/// the scale `dbeta * sdd / sod` (cone) or `dbeta` (parallel).
fn voxel_views(
    geometry: &ProjectionGeometry,
    volume: &VolumeGeometry,
    scan: &CircularScan,
) -> Vec<VoxelView> {
    let step = scan.arc.abs() / scan.views as f64;
    let (reference, scale_factor) = match geometry.beam {
        Beam::Cone => (scan.sod, step * scan.sdd / scan.sod),
        Beam::Parallel => (1.0, step),
    };
    geometry
        .views
        .iter()
        .map(|view| VoxelView {
            matrix: projection_matrix(view, geometry, volume, reference),
            scale: scale_factor as f32,
            reserved: [0; 3],
        })
        .collect()
}

/// The row-major 3x4 matrix taking voxel indices `(ix, iy, iz, 1)` to `(c w, r w, w)`
/// for `view` (see [`VoxelView`]), computed in f64.
///
/// With `n` the detector's unit normal (pointing away from the source) and `u*`, `v*`
/// the dual basis of the detector axes (`u* . u = 1`, `u* . v = 0`, both normal to
/// `n`), a world point `X` projects to column `c0 + (P - D) . u*` where `P` is where
/// its ray meets the detector. For a cone beam that is
/// `c = c0 + (S - D) . u* + d0 ((X - S) . u*) / ((X - S) . n)`, `d0 = (D - S) . n`,
/// a ratio of affine functions of `X`; `w = (X - S) . n / reference`.
fn projection_matrix(
    view: &View,
    geometry: &ProjectionGeometry,
    volume: &VolumeGeometry,
    reference: f64,
) -> [f32; 12] {
    let c0 = (geometry.cols as f64 - 1.0) / 2.0;
    let r0 = (geometry.rows as f64 - 1.0) / 2.0;
    let normal = cross(view.u, view.v);
    let mut n = scale(normal, 1.0 / norm(normal));
    let u_dual_direction = cross(view.v, n);
    let u_dual = scale(u_dual_direction, 1.0 / dot(view.u, u_dual_direction));
    let v_dual_direction = cross(n, view.u);
    let v_dual = scale(v_dual_direction, 1.0 / dot(view.v, v_dual_direction));
    // Each row of the matrix is an affine function `g . X + g0` of the world point X.
    let rows: [([f64; 3], f64); 3] = match geometry.beam {
        Beam::Cone => {
            let source = view.source;
            if dot(sub(view.detector, source), n) < 0.0 {
                n = scale(n, -1.0);
            }
            let d0 = dot(sub(view.detector, source), n);
            let along = |dual: [f64; 3], centre: f64| {
                let offset = centre + dot(sub(source, view.detector), dual);
                let g = [
                    (offset * n[0] + d0 * dual[0]) / reference,
                    (offset * n[1] + d0 * dual[1]) / reference,
                    (offset * n[2] + d0 * dual[2]) / reference,
                ];
                (g, -dot(g, source))
            };
            let depth = scale(n, 1.0 / reference);
            [
                along(u_dual, c0),
                along(v_dual, r0),
                (depth, -dot(depth, source)),
            ]
        }
        Beam::Parallel => {
            let direction = view.source;
            let along = |dual: [f64; 3], centre: f64| {
                let tilt = dot(direction, dual) / dot(direction, n);
                let g = sub(dual, scale(n, tilt));
                (g, centre - dot(g, view.detector))
            };
            [along(u_dual, c0), along(v_dual, r0), ([0.0; 3], 1.0)]
        }
    };
    // X = origin + A (i + 1/2): fold A and the half-voxel shift into each row.
    let a = volume.index_to_world();
    let centre_of_first = volume.index_point_to_world([0.5; 3]);
    let mut matrix = [0.0f32; 12];
    for (row, (g, g0)) in rows.iter().enumerate() {
        for axis in 0..3 {
            matrix[4 * row + axis] = (0..3).map(|k| g[k] * a[k][axis]).sum::<f64>() as f32;
        }
        matrix[4 * row + 3] = (dot(*g, centre_of_first) + g0) as f32;
    }
    matrix
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the ray from the source through `x` meets the detector, as (col, row), by
    /// intersecting the line with the plane directly.
    fn hit(view: &View, geometry: &ProjectionGeometry, x: [f64; 3]) -> (f64, f64) {
        let n = cross(view.u, view.v);
        let direction = match geometry.beam {
            Beam::Cone => sub(x, view.source),
            Beam::Parallel => view.source,
        };
        let t = dot(sub(view.detector, x), n) / dot(direction, n);
        let p = sub(
            [
                x[0] + t * direction[0],
                x[1] + t * direction[1],
                x[2] + t * direction[2],
            ],
            view.detector,
        );
        // Solve p = a u + b v (u, v not necessarily orthogonal) by least squares.
        let (uu, uv, vv) = (
            dot(view.u, view.u),
            dot(view.u, view.v),
            dot(view.v, view.v),
        );
        let (pu, pv) = (dot(p, view.u), dot(p, view.v));
        let det = uu * vv - uv * uv;
        let a = (pu * vv - pv * uv) / det;
        let b = (pv * uu - pu * uv) / det;
        (
            a + (geometry.cols as f64 - 1.0) / 2.0,
            b + (geometry.rows as f64 - 1.0) / 2.0,
        )
    }

    #[test]
    fn matrix_projects_voxel_centres_where_their_rays_meet_the_detector() {
        let volume = VolumeGeometry::new([5, 6, 7], [0.7, 1.1, 1.3], [-3.0, -4.0, -2.5])
            .with_direction({
                let (s, c) = 0.4f64.sin_cos();
                [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
            });
        for beam_is_cone in [true, false] {
            let mut scan = CircularScan::new(300.0, 500.0, 7, [20, 30], 0.9);
            scan.detector_offset = [3.0, -2.0];
            scan.start_angle = 0.3;
            if !beam_is_cone {
                scan = scan.parallel_beam();
            }
            let geometry = scan.geometry().unwrap();
            let views = voxel_views(&geometry, &volume, &scan);
            for (view, voxel_view) in geometry.views.iter().zip(&views) {
                for index in [[0, 0, 0], [4, 5, 6], [2, 1, 3]] {
                    let x = volume.voxel_centre(index);
                    let (c, r) = hit(view, &geometry, x);
                    let m = &voxel_view.matrix;
                    let i = [index[2] as f32, index[1] as f32, index[0] as f32, 1.0];
                    let row = |k: usize| (0..4).map(|j| m[4 * k + j] * i[j]).sum::<f32>();
                    let w = row(2);
                    assert!(
                        (row(0) / w - c as f32).abs() < 1e-3,
                        "col {} vs {c}",
                        row(0) / w
                    );
                    assert!(
                        (row(1) / w - r as f32).abs() < 1e-3,
                        "row {} vs {r}",
                        row(1) / w
                    );
                    if beam_is_cone {
                        // w is the depth along the principal ray (the source's direction
                        // to the rotation axis, here the detector normal) over sod.
                        let axis = [-view.source[0], -view.source[1], -view.source[2]];
                        let depth = dot(sub(x, view.source), axis) / norm(axis) / scan.sod;
                        assert!((w as f64 - depth).abs() < 1e-5, "w {w} vs {depth}");
                    } else {
                        assert_eq!(w, 1.0);
                    }
                }
            }
        }
    }
}
