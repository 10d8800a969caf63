//! FDK's voxel-driven backprojection for a vector's lanes of voxels at once (8 with
//! AVX2, 16 with AVX-512): the CPU's fast path for `xray_kernels::fdk_sample`.
//!
//! Along a row of voxels (one `iy`, one `iz`) only `ix` changes, so the row's products
//! `m[j] * iy` and `m[j] * iz` of each view's matrix are computed once per view, and the
//! lanes finish each voxel's projective coordinates with one product and three sums,
//! exactly as the scalar kernel adds them: `((m[0] ix + m[1] iy) + m[2] iz) + m[3]`.
//! The division, the bounds checks, the four taps (loads masked to zero off the
//! detector) and the bilinear blend are the scalar kernel's operations in its order, so
//! each voxel's sum over the views in order is bit for bit the sum of what `fdk_sample`
//! gives (a sample can differ only in the sign of a zero, where a coordinate is exactly
//! -0.0, which no sum that starts at +0.0 keeps), and what the GPU kernel computes up to
//! its own rounding. The unit tests below check that on every path the CPU has.
//!
//! Where every used lane's four taps are on the detector (all but the voxels that
//! project onto its edge) and the lanes read with scalar loads ([`Gather::Loads`]),
//! each lane reads its taps as two pairs of neighbouring pixels, one 8-byte load each
//! ([`Simd::gather_pairs`]), instead of four masked loads: on the Zen 4 measured (fp256
//! FDK from 16 views, 2 threads, alternated builds) 0.98-1.04 against 0.86-0.90 G
//! voxel-views per second with AVX-512 and 0.78-0.84 against 0.61-0.72 with AVX2. With
//! the gather instruction (the Intel Xeon's way) the four masked gathers stay: that
//! machine was not there to measure pairs on.

use xray_kernels::{fdk_sample, VoxelView};

#[cfg(target_arch = "x86_64")]
use super::joseph_lanes::{tap, within};
#[cfg(target_arch = "x86_64")]
use super::lanes::Simd;
use super::lanes::{Gather, LanePath};

/// The filtered projections and view matrices of one FDK backprojection, and the lane
/// path that runs it.
#[derive(Clone, Copy)]
pub(crate) struct FdkRows<'a> {
    /// `[views, rows, cols]` filtered projections.
    filtered: &'a [f32],
    rows: usize,
    cols: usize,
    views: &'a [VoxelView],
    path: LanePath,
    /// How the lanes read the detector pixels.
    gather: Gather,
}

impl<'a> FdkRows<'a> {
    /// The backprojection of `filtered` (`[views.len(), rows, cols]`) by `views`, in
    /// the lanes of `path` where the CPU runs it and a detector image's pixel count fits
    /// in `i32`, one voxel at a time otherwise.
    pub(crate) fn new(
        filtered: &'a [f32],
        rows: usize,
        cols: usize,
        views: &'a [VoxelView],
        path: LanePath,
    ) -> Self {
        debug_assert_eq!(filtered.len(), views.len() * rows * cols);
        let image_fits = rows
            .checked_mul(cols)
            .is_some_and(|pixels| pixels <= i32::MAX as usize);
        let path = if path.is_supported() && image_fits {
            path
        } else {
            LanePath::Scalar
        };
        FdkRows {
            filtered,
            rows,
            cols,
            views,
            path,
            gather: Gather::in_use(),
        }
    }

    /// The same backprojection reading its pixels the way `gather` says (the tests run
    /// both).
    #[cfg(test)]
    fn with_gather(self, gather: Gather) -> Self {
        FdkRows { gather, ..self }
    }

    /// Adds to `out[ix]` the backprojection of voxel `(ix, iy, iz)` for every `ix` of
    /// `out`: `fdk_sample` summed over the views in order, bit for bit.
    pub(crate) fn add_row(&self, iy: f32, iz: f32, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `new` kept a vector path only where the CPU runs it and a detector
        // image's pixel count fits in `i32`; `filtered` holds every view's image.
        unsafe {
            match self.path {
                LanePath::Avx512 => return on_avx512(self, iy, iz, out),
                LanePath::Avx2 => return on_avx2(self, iy, iz, out),
                LanePath::Scalar => {}
            }
        }
        self.add_row_scalar(iy, iz, out);
    }

    /// [`FdkRows::add_row`] one voxel at a time, with the kernels' `fdk_sample`.
    fn add_row_scalar(&self, iy: f32, iz: f32, out: &mut [f32]) {
        let image = self.rows * self.cols;
        let mut sums = vec![0.0f32; out.len()];
        for (k, view) in self.views.iter().enumerate() {
            for (ix, sum) in sums.iter_mut().enumerate() {
                *sum += fdk_sample(
                    self.filtered,
                    k * image,
                    self.rows as u32,
                    self.cols as u32,
                    view,
                    [ix as f32, iy, iz],
                );
            }
        }
        for (voxel, sum) in out.iter_mut().zip(sums) {
            *voxel += sum;
        }
    }
}

/// [`add_row`] compiled for AVX2.
///
/// # Safety
/// As [`add_row`], on a CPU with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn on_avx2(task: &FdkRows, iy: f32, iz: f32, out: &mut [f32]) {
    add_row::<super::lanes::avx2::Avx2>(task, iy, iz, out)
}

/// [`add_row`] compiled for AVX-512.
///
/// # Safety
/// As [`add_row`], on a CPU with AVX-512 F, BW, DQ and VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn on_avx512(task: &FdkRows, iy: f32, iz: f32, out: &mut [f32]) {
    add_row::<super::lanes::avx512::Avx512>(task, iy, iz, out)
}

/// [`FdkRows::add_row`] in `S::LANES` voxels at a time; see the module docs.
///
/// # Safety
/// Must run compiled for `S`'s instruction set, on a CPU that has it; `task.filtered`
/// must hold `task.views.len()` images of `rows * cols <= i32::MAX` pixels. Then every
/// tap read is inside its view's image: in a group with a lane whose four taps are all
/// on the detector and no used lane with a tap off it, the used lanes read their taps
/// and the others pixels 0, 1, `cols` and `cols + 1` (inside an image at least 2 x 2, as
/// the used lane's taps show); otherwise a tap is read only where its row and column
/// are on the detector, and other taps read pixel 0 and are masked to 0.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn add_row<S: Simd>(task: &FdkRows, iy: f32, iz: f32, out: &mut [f32]) {
    let (rows, cols, how) = (task.rows, task.cols, task.gather);
    let image = rows * cols;
    if image == 0 {
        // The scalar kernel: every sample is off the detector, every sum exactly 0.
        return;
    }
    let one = S::splat_f(1.0);
    let (rows_i, cols_i) = (S::splat_i(rows as i32), S::splat_i(cols as i32));
    let (rows_f, cols_f) = (S::splat_f(rows as f32), S::splat_f(cols as f32));
    let minus_one = S::splat_f(-1.0);
    let one_i = S::splat_i(1);
    // Each view's `m[j] * iy` and `m[j] * iz` for its three matrix rows, made once for
    // the row of voxels.
    let row_terms: Vec<[[f32; 2]; 3]> = task
        .views
        .iter()
        .map(|view| [0, 4, 8].map(|a| [view.matrix[a + 1] * iy, view.matrix[a + 2] * iz]))
        .collect();
    for (chunk, voxels) in out.chunks_mut(S::LANES).enumerate() {
        let first = (chunk * S::LANES) as i32;
        let ix = S::to_f(S::add_i(S::splat_i(first), S::iota()));
        let mut sum = S::splat_f(0.0);
        for (k, (view, terms)) in task.views.iter().zip(&row_terms).enumerate() {
            let pixels = &task.filtered[k * image..(k + 1) * image];
            let m = &view.matrix;
            let w = coordinate::<S>(m[8], ix, terms[2], m[11]);
            let inverse_w = S::div_f(one, w);
            let c = S::mul_f(coordinate::<S>(m[0], ix, terms[0], m[3]), inverse_w);
            let r = S::mul_f(coordinate::<S>(m[4], ix, terms[1], m[7]), inverse_w);
            // In front of the source and on the detector (or its one-pixel margin);
            // NaN fails every comparison, as in the scalar kernel.
            let on_detector = S::and_m(
                S::and_m(S::gt_f(c, minus_one), S::lt_f(c, cols_f)),
                S::and_m(S::gt_f(r, minus_one), S::lt_f(r, rows_f)),
            );
            let used = S::and_m(S::gt_f(w, S::splat_f(0.0)), on_detector);
            let (floor_c, floor_r) = (S::floor_f(c), S::floor_f(r));
            let (c0, r0) = (S::trunc_i(floor_c), S::trunc_i(floor_r));
            let (fc, fr) = (S::sub_f(c, floor_c), S::sub_f(r, floor_r));
            let (c1, r1) = (S::add_i(c0, one_i), S::add_i(r0, one_i));
            let (col0, col1) = (within::<S>(c0, cols_i), within::<S>(c1, cols_i));
            let (row0, row1) = (within::<S>(r0, rows_i), within::<S>(r1, rows_i));
            let base = S::add_i(S::mul_i(r0, cols_i), c0);
            if S::bits(used) == 0 {
                // Every lane would add +0.0, which leaves each sum as it is. (The pairs
                // below rely on this: with no lane used, their condition would hold
                // for an image too small for their reads.)
                continue;
            }
            let inside = S::and_m(S::and_m(row0, row1), S::and_m(col0, col1));
            let (t00, t01, t10, t11) =
                if how == Gather::Loads && S::bits(S::and_not_m(inside, used)) == 0 {
                    // Every used lane's four taps are on the detector: two 8-byte loads a
                    // lane. The other lanes read pixels 0, 1, `cols` and `cols + 1`, inside
                    // the image because a used lane's taps make it at least 2 x 2.
                    let at = S::keep_i(used, base);
                    let (t00, t01) = S::gather_pairs(pixels, at);
                    let (t10, t11) = S::gather_pairs(pixels, S::add_i(at, cols_i));
                    (t00, t01, t10, t11)
                } else {
                    taps_masked::<S>(how, pixels, base, cols_i, [row0, row1, col0, col1], used)
                };
            // The kernel's blend, operation for operation.
            let left = S::sub_f(one, fc);
            let top = S::add_f(S::mul_f(t00, left), S::mul_f(t01, fc));
            let bottom = S::add_f(S::mul_f(t10, left), S::mul_f(t11, fc));
            let value = S::add_f(S::mul_f(top, S::sub_f(one, fr)), S::mul_f(bottom, fr));
            let weight = S::mul_f(S::mul_f(S::splat_f(view.scale), inverse_w), inverse_w);
            // Unused lanes add +0.0, as the scalar kernel's early returns do.
            sum = S::add_f(sum, S::keep_f(used, S::mul_f(weight, value)));
        }
        for (voxel, lane_sum) in voxels.iter_mut().zip(S::to_array(sum)) {
            *voxel += lane_sum;
        }
    }
}

/// The four taps (0, 0), (0, 1), (1, 0), (1, 1) (row, column) at `base`: in each lane
/// set in `used`, each tap read where its row and its column are on the detector (the
/// masks `row0`, `row1` of rows `r0`, `r0 + 1` and `col0`, `col1` of columns `c0`,
/// `c0 + 1`), +0.0 elsewhere and in the lanes not used.
///
/// # Safety
/// As [`Simd`]'s methods; a tap on the detector must be a pixel of `pixels`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn taps_masked<S: Simd>(
    how: Gather,
    pixels: &[f32],
    base: S::I,
    cols: S::I,
    [row0, row1, col0, col1]: [S::M; 4],
    used: S::M,
) -> (S::F, S::F, S::F, S::F) {
    let one = S::splat_i(1);
    (
        tap::<S>(how, pixels, base, S::splat_i(0), S::and_m(row0, col0), used),
        tap::<S>(how, pixels, base, one, S::and_m(row0, col1), used),
        tap::<S>(how, pixels, base, cols, S::and_m(row1, col0), used),
        tap::<S>(
            how,
            pixels,
            base,
            S::add_i(cols, one),
            S::and_m(row1, col1),
            used,
        ),
    )
}

/// A matrix row's `m_x * ix + m_y * iy + m_z * iz + m_1` in each lane, summed left to
/// right as the scalar kernel does, from the row's products `[m_y * iy, m_z * iz]`
/// (`terms`, made once per row of voxels).
///
/// # Safety
/// As [`Simd`]'s methods.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn coordinate<S: Simd>(m_x: f32, ix: S::F, terms: [f32; 2], m_1: f32) -> S::F {
    let along = S::add_f(S::mul_f(S::splat_f(m_x), ix), S::splat_f(terms[0]));
    S::add_f(S::add_f(along, S::splat_f(terms[1])), S::splat_f(m_1))
}

#[cfg(test)]
mod tests {
    //! The lanes against the scalar kernel, bit for bit.

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use xray_kernels::VoxelView;

    use super::super::lanes::test_support::vector_paths;
    use super::super::lanes::{Gather, LanePath};
    use super::FdkRows;

    /// A cone-beam-like view of an `n`-voxel row: voxel `ix` projects near column
    /// `ix * 0.9 + shift`, with a depth that varies along the row and may pass behind
    /// the source.
    fn view(random: &mut ChaCha8Rng, behind: bool) -> VoxelView {
        let mut matrix = [0.0f32; 12];
        for (j, m) in matrix.iter_mut().enumerate() {
            *m = random.random_range(-0.05..0.05) + [0.9, 0.1, 0.05, 3.0][j % 4] * 0.5;
        }
        matrix[0] = random.random_range(0.5..1.2);
        matrix[5] = random.random_range(0.5..1.2);
        matrix[8] = random.random_range(-0.02..0.02);
        matrix[11] = if behind {
            0.3
        } else {
            random.random_range(0.8..1.2)
        };
        VoxelView {
            matrix,
            scale: random.random_range(0.5..2.0),
            reserved: [0; 3],
        }
    }

    #[test]
    fn lanes_equal_the_scalar_kernel_bit_for_bit() {
        let mut random = ChaCha8Rng::seed_from_u64(17);
        let (rows, cols) = (13usize, 29usize);
        let views: Vec<VoxelView> = (0..9).map(|k| view(&mut random, k == 4)).collect();
        let mut filtered: Vec<f32> = (0..views.len() * rows * cols)
            .map(|_| random.random_range(-1.0..3.0))
            .collect();
        filtered[5] = -0.0;
        let scalar = FdkRows::new(&filtered, rows, cols, &views, LanePath::Scalar);
        for path in vector_paths("fdk lanes") {
            let lanes = FdkRows::new(&filtered, rows, cols, &views, path);
            // Rows longer and shorter than a vector, and a partial last vector; rows
            // partly off the detector on both sides.
            let cases = [(37usize, 3.0f32, 2.0f32), (5, 11.0, 0.0), (40, -4.0, 15.5)];
            for ((nx, iy, iz), gather) in
                cases.into_iter().flat_map(|c| Gather::ALL.map(|g| (c, g)))
            {
                let lanes = lanes.with_gather(gather);
                let start: Vec<f32> = (0..nx).map(|i| i as f32 * 0.25).collect();
                let (mut want, mut got) = (start.clone(), start);
                scalar.add_row(iy, iz, &mut want);
                lanes.add_row(iy, iz, &mut got);
                for (ix, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{path} {gather} ({ix}, {iy}, {iz})"
                    );
                }
                let touched = want
                    .iter()
                    .enumerate()
                    .filter(|&(ix, &v)| v != ix as f32 * 0.25)
                    .count();
                assert!(
                    touched > nx / 3,
                    "{path}: the row must be seen by the views"
                );
            }
        }
    }
}
