//! Voxel-driven, distance-weighted backprojection: the last step of filtered
//! backprojection (FDK for cone beams, FBP for parallel beams).
//!
//! Each voxel centre is projected onto each view's detector by a 3x4 projection matrix
//! ([`VoxelView`]), reads the filtered projection there (bilinear, zero outside the
//! detector) and adds it with the weight `scale / w^2`, where `w` is the voxel's depth
//! along the view's principal axis relative to the rotation axis (Kak and Slaney's `U`;
//! `w = 1` for parallel beams).
//!
//! Unlike [`crate::backproject_pixel`], this is *not* the transpose of a projector: it
//! interpolates the detector, which is what FDK's formula asks for and what makes it
//! smooth.

use crate::math::floor_i32;
use crate::voxels::Voxels;

/// One view as seen from the voxel grid, for [`fdk_sample`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "bytemuck", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct VoxelView {
    /// Row-major 3x4 matrix `P` with `(c w, r w, w) = P (ix, iy, iz, 1)` for the centre of
    /// voxel `(ix, iy, iz)`: `c` and `r` are the detector column and row the voxel
    /// projects to (pixel centres at integers) and `w` its depth weight.
    pub matrix: [f32; 12],
    /// The view's weight in the sum (angular step and magnification).
    pub scale: f32,
    /// Unused, zero: pads the record to 64 bytes.
    pub reserved: [u32; 3],
}

/// The contribution of one view to the voxel at index `[ix, iy, iz]`: `scale / w^2` times the
/// filtered projection bilinearly sampled at the voxel's detector position, or 0 when
/// the voxel is behind the source (`w <= 0`) or projects off the detector.
///
/// `projection` holds the view's `rows * cols` filtered values, row by row, starting
/// at `offset`.
#[inline(always)]
pub fn fdk_sample<P: Voxels + ?Sized>(
    projection: &P,
    offset: usize,
    rows: u32,
    cols: u32,
    view: &VoxelView,
    [ix, iy, iz]: [f32; 3],
) -> f32 {
    let m = &view.matrix;
    let w = m[8] * ix + m[9] * iy + m[10] * iz + m[11];
    if w <= 0.0 {
        return 0.0;
    }
    let inverse_w = 1.0 / w;
    let c = (m[0] * ix + m[1] * iy + m[2] * iz + m[3]) * inverse_w;
    let r = (m[4] * ix + m[5] * iy + m[6] * iz + m[7]) * inverse_w;
    // Bounds in f32 first: far-off (or NaN) positions must not reach the integer casts.
    if !(c > -1.0 && c < cols as f32 && r > -1.0 && r < rows as f32) {
        return 0.0;
    }
    let c0 = floor_i32(c);
    let r0 = floor_i32(r);
    let fc = c - c0 as f32;
    let fr = r - r0 as f32;
    let tap = |row: i32, col: i32| -> f32 {
        if row >= 0 && (row as u32) < rows && col >= 0 && (col as u32) < cols {
            projection.voxel(offset + row as usize * cols as usize + col as usize)
        } else {
            0.0
        }
    };
    let top = tap(r0, c0) * (1.0 - fc) + tap(r0, c0 + 1) * fc;
    let bottom = tap(r0 + 1, c0) * (1.0 - fc) + tap(r0 + 1, c0 + 1) * fc;
    let value = top * (1.0 - fr) + bottom * fr;
    view.scale * inverse_w * inverse_w * value
}

/// The backprojected value of voxel `(ix, iy, iz)`: [`fdk_sample`] summed over all
/// views in order. `projections` is `[views, rows, cols]` of filtered values.
#[inline(always)]
pub fn fdk_voxel<P: Voxels + ?Sized>(
    projections: &P,
    rows: u32,
    cols: u32,
    views: &[VoxelView],
    ix: u32,
    iy: u32,
    iz: u32,
) -> f32 {
    let image = rows as usize * cols as usize;
    let mut sum = 0.0f32;
    for (k, view) in views.iter().enumerate() {
        sum += fdk_sample(
            projections,
            k * image,
            rows,
            cols,
            view,
            [ix as f32, iy as f32, iz as f32],
        );
    }
    sum
}

const _: () = assert!(core::mem::size_of::<VoxelView>() == 64);

#[cfg(test)]
mod tests {
    use super::*;

    /// A view that maps voxel (ix, iy, iz) to column ix + dc, row iy + dr, w = 1.
    fn shift(dc: f32, dr: f32, scale: f32) -> VoxelView {
        VoxelView {
            matrix: [1.0, 0.0, 0.0, dc, 0.0, 1.0, 0.0, dr, 0.0, 0.0, 0.0, 1.0],
            scale,
            reserved: [0; 3],
        }
    }

    #[test]
    fn samples_bilinearly_with_zero_outside() {
        // 2 rows x 3 cols: value = 10 * row + col.
        let image = [0.0f32, 1.0, 2.0, 10.0, 11.0, 12.0];
        let at = |dc: f32, dr: f32, x: f32, y: f32| {
            fdk_sample(&image[..], 0, 2, 3, &shift(dc, dr, 1.0), [x, y, 0.0])
        };
        assert_eq!(at(0.0, 0.0, 1.0, 1.0), 11.0);
        assert!((at(0.5, 0.25, 1.0, 0.0) - (1.5 + 2.5)).abs() < 1e-6);
        // Half a pixel beyond the last column: halfway to the zero outside.
        assert!((at(0.5, 0.0, 2.0, 1.0) - 6.0).abs() < 1e-6);
        assert_eq!(at(0.0, 0.0, 3.0, 0.0), 0.0);
        assert_eq!(at(0.0, 0.0, -1.0, 0.0), 0.0);
        assert_eq!(at(0.0, 0.0, 0.0, 2.0), 0.0);
        assert_eq!(at(f32::NAN, 0.0, 0.0, 0.0), 0.0);
    }

    #[test]
    fn weights_by_scale_over_depth_squared() {
        // w = 2 at every voxel; columns and rows scale with 1/w, so aim at pixel (1, 1).
        let mut view = shift(0.0, 0.0, 3.0);
        view.matrix = [2.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0];
        let image = [0.0f32, 1.0, 2.0, 10.0, 11.0, 12.0];
        let value = fdk_sample(&image[..], 0, 2, 3, &view, [1.0, 1.0, 0.0]);
        assert!((value - 3.0 * 11.0 / 4.0).abs() < 1e-5);
        // Behind the source.
        view.matrix[11] = -1.0;
        view.matrix[10] = 0.0;
        view.matrix[8] = 0.0;
        assert_eq!(fdk_sample(&image[..], 0, 2, 3, &view, [1.0, 1.0, 0.0]), 0.0);
    }

    #[test]
    fn sums_views_in_order_reading_each_views_image() {
        let images = [1.0f32, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0];
        let views = [shift(0.0, 0.0, 1.0), shift(0.0, 0.0, 0.5)];
        assert_eq!(fdk_voxel(&images[..], 2, 2, &views, 1, 0, 0), 1.0 + 2.5);
    }
}
