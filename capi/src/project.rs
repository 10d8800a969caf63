//! The computations: forward projection, backprojection and FDK, from the caller's
//! buffers into the caller's buffers.

use std::ffi::c_int;

use ndarray::ArrayView3;
use xray_projector::recon::{self, Filter};
use xray_projector::Method;

use crate::buffers::{self, check_disjoint, check_len, check_output};
use crate::error::{guard, Failure, Outcome, XrayStatus};
use crate::geometry::{projection_geometry, XrayCircularScan, XrayVolumeGrid};
use crate::handle::{handle, XrayProjector};

/// The ray tracer of a forward projection or backprojection. Functions take it as an
/// `int`; any other value is refused with `XRAY_STATUS_INVALID_ARGUMENT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XrayMethod {
    /// Siddon: exact path lengths through piecewise-constant voxels (a uniform box
    /// gives mu times the chord to float rounding).
    Siddon = 0,
    /// Joseph: one bilinear sample per slice of the ray's dominant axis (smoother;
    /// ASTRA's GPU model).
    Joseph = 1,
}

/// The ramp filter's apodization window for FDK, with `x` the frequency as a fraction
/// of Nyquist. Functions take it as an `int`; any other value is refused with
/// `XRAY_STATUS_INVALID_ARGUMENT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XrayFilter {
    /// The bare ramp (window 1): sharpest, noisiest.
    RamLak = 0,
    /// `sinc(x / 2)`: slightly smoother.
    SheppLogan = 1,
    /// `cos(pi x / 2)`.
    Cosine = 2,
    /// `(1 + cos(pi x)) / 2`: smoothest, for noisy data.
    Hann = 3,
}

/// The method with C value `code`.
fn method_from_code(code: c_int) -> Outcome<Method> {
    match code {
        c if c == XrayMethod::Siddon as c_int => Ok(Method::Siddon),
        c if c == XrayMethod::Joseph as c_int => Ok(Method::Joseph),
        other => Err(Failure::invalid(format!(
            "method = {other} is not an XrayMethod \
             (XRAY_METHOD_SIDDON = 0, XRAY_METHOD_JOSEPH = 1)"
        ))),
    }
}

/// The filter with C value `code`.
fn filter_from_code(code: c_int) -> Outcome<Filter> {
    match code {
        c if c == XrayFilter::RamLak as c_int => Ok(Filter::RamLak),
        c if c == XrayFilter::SheppLogan as c_int => Ok(Filter::SheppLogan),
        c if c == XrayFilter::Cosine as c_int => Ok(Filter::Cosine),
        c if c == XrayFilter::Hann as c_int => Ok(Filter::Hann),
        other => Err(Failure::invalid(format!(
            "filter = {other} is not an XrayFilter (XRAY_FILTER_RAM_LAK = 0, \
             XRAY_FILTER_SHEPP_LOGAN = 1, XRAY_FILTER_COSINE = 2, XRAY_FILTER_HANN = 3)"
        ))),
    }
}

/// A `[a, b, c]` view of a checked input slice (its length is `a * b * c`).
fn view3(shape: [usize; 3], values: &[f32]) -> Outcome<ArrayView3<'_, f32>> {
    ArrayView3::from_shape(shape, values)
        .map_err(|error| Failure::other(format!("internal error: {error}")))
}

/// Forward projection: the line integral `p = sum_i mu_i L_i` of every detector pixel of
/// every view, through the volume `volume` (attenuation in 1/mm) on `*grid`.
///
/// * `volume`: `volume_len = nz * ny * nx` floats, x fastest (`[z][y][x]`).
/// * `vectors`: `views * XRAY_VECTORS_PER_VIEW` doubles, one record per view (source or
///   ray direction, detector centre, u, v; see `XRAY_VECTORS_PER_VIEW`); pixel (r, c)
///   of a view is centred at `D + (c - (cols-1)/2) u + (r - (rows-1)/2) v`.
/// * `beam`: an `XrayBeam`; `method`: an `XrayMethod`.
/// * `out`: `out_len = views * rows * cols` floats, written as `[view][row][col]`
///   (dimensionless line integrals). It need not be initialised. The result is computed
///   into a library buffer and copied into `out`; on failure `out` is left untouched.
///
/// # Errors
/// `XRAY_STATUS_INVALID_ARGUMENT` (NULL pointers, a wrong `volume_len` or `out_len`, an
/// unknown `beam` or `method`, `out` overlapping `volume`), `XRAY_STATUS_GEOMETRY` (an
/// unusable grid or views), `XRAY_STATUS_NON_FINITE` (NaN or infinite voxels),
/// `XRAY_STATUS_ALLOCATION`, and on CUDA the GPU's statuses.
///
/// # Safety
/// `projector` must be NULL or a live handle; `volume` must point to `volume_len`
/// floats and `grid` to an `XrayVolumeGrid`; `vectors` must point to
/// `views * XRAY_VECTORS_PER_VIEW` doubles; `out` must be valid for writes of `out_len`
/// floats. No buffer may be written by another thread during the call.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn xray_forward(
    projector: *const XrayProjector,
    volume: *const f32,
    volume_len: usize,
    grid: *const XrayVolumeGrid,
    vectors: *const f64,
    views: usize,
    rows: usize,
    cols: usize,
    beam: c_int,
    method: c_int,
    out: *mut f32,
    out_len: usize,
) -> XrayStatus {
    guard(|| {
        // SAFETY: `projector` is NULL (refused) or a live handle (the contract).
        let projector = unsafe { handle(projector) }?;
        // SAFETY: `grid` is NULL (refused) or points to an XrayVolumeGrid (the contract).
        let volume_geometry = unsafe { buffers::read("grid", grid) }?.to_geometry();
        let method = method_from_code(method)?;
        // SAFETY: `vectors` is NULL (refused) or points to `views * XRAY_VECTORS_PER_VIEW`
        // doubles (the contract).
        let geometry = unsafe { projection_geometry(vectors, views, rows, cols, beam) }?;
        volume_geometry.validate()?;
        geometry.validate()?;
        let voxels = volume_geometry.voxel_count()?;
        check_len("volume_len", volume_len, voxels, "the grid's nz * ny * nx")?;
        let rays = geometry.ray_count()?;
        check_len("out_len", out_len, rays, "views * rows * cols")?;
        // SAFETY: `volume` is NULL (refused) or points to `volume_len` floats (the
        // contract), and `volume_len == voxels` (checked above).
        let volume_values = unsafe { buffers::input("volume", volume, voxels) }?;
        check_output("out", out, rays)?;
        check_disjoint(("volume", volume, voxels), ("out", out.cast_const(), rays))?;
        let volume_view = view3(volume_geometry.shape, volume_values)?;
        let projections = projector.forward(&volume_view, &volume_geometry, &geometry, method)?;
        // SAFETY: `out` is valid for `out_len == rays` writes (the contract; checked above
        // to be non-null and aligned), and `projections` is the library's new array.
        unsafe { buffers::write_array("out", out, rays, &projections) }
    })
}

/// Backprojection, the exact transpose of `xray_forward` with the same geometry and
/// method: for each voxel, the sum over rays of the projection value times the length
/// (mm) that ray has in the voxel. Satisfies `<A x, y> = <x, A^T y>` to float rounding.
///
/// * `projections`: `projections_len = views * rows * cols` floats, `[view][row][col]`.
/// * `vectors`, `views`, `rows`, `cols`, `beam`: the projection geometry, as for
///   `xray_forward`; `grid`: the output volume's grid; `method`: an `XrayMethod`.
/// * `out`: `out_len = nz * ny * nx` floats, written `[z][y][x]`. It need not be
///   initialised. The result is computed into a library buffer and copied into `out`;
///   on failure `out` is left untouched.
///
/// On CUDA the kernel adds with atomics, so the last bits can vary between runs; the
/// CPU result is the same on every run.
///
/// # Errors
/// `XRAY_STATUS_INVALID_ARGUMENT` (NULL pointers, wrong lengths, unknown enum values,
/// `out` overlapping `projections`), `XRAY_STATUS_GEOMETRY`, `XRAY_STATUS_NON_FINITE`
/// (NaN or infinite projection values), `XRAY_STATUS_ALLOCATION`, and on CUDA the GPU's
/// statuses.
///
/// # Safety
/// As for `xray_forward`: every pointer must be NULL or valid for its documented length
/// (`out` for writes), and no buffer may be written by another thread during the call.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn xray_backward(
    projector: *const XrayProjector,
    projections: *const f32,
    projections_len: usize,
    vectors: *const f64,
    views: usize,
    rows: usize,
    cols: usize,
    beam: c_int,
    grid: *const XrayVolumeGrid,
    method: c_int,
    out: *mut f32,
    out_len: usize,
) -> XrayStatus {
    guard(|| {
        // SAFETY: `projector` is NULL (refused) or a live handle (the contract).
        let projector = unsafe { handle(projector) }?;
        // SAFETY: `vectors` is NULL (refused) or points to `views * XRAY_VECTORS_PER_VIEW`
        // doubles (the contract).
        let geometry = unsafe { projection_geometry(vectors, views, rows, cols, beam) }?;
        // SAFETY: `grid` is NULL (refused) or points to an XrayVolumeGrid (the contract).
        let volume_geometry = unsafe { buffers::read("grid", grid) }?.to_geometry();
        let method = method_from_code(method)?;
        geometry.validate()?;
        volume_geometry.validate()?;
        let rays = geometry.ray_count()?;
        check_len(
            "projections_len",
            projections_len,
            rays,
            "views * rows * cols",
        )?;
        let voxels = volume_geometry.voxel_count()?;
        check_len("out_len", out_len, voxels, "the grid's nz * ny * nx")?;
        // SAFETY: `projections` is NULL (refused) or points to `projections_len` floats
        // (the contract), and `projections_len == rays` (checked above).
        let values = unsafe { buffers::input("projections", projections, rays) }?;
        check_output("out", out, voxels)?;
        check_disjoint(
            ("projections", projections, rays),
            ("out", out.cast_const(), voxels),
        )?;
        let projections_view = view3(geometry.shape(), values)?;
        let volume = projector.backward(&projections_view, &geometry, &volume_geometry, method)?;
        // SAFETY: `out` is valid for `out_len == voxels` writes (the contract; checked
        // above to be non-null and aligned), and `volume` is the library's new array.
        unsafe { buffers::write_array("out", out, voxels, &volume) }
    })
}

/// FDK reconstruction (filtered backprojection; plain FBP for a parallel beam) of the
/// circular scan `*scan` onto the grid `*grid`: attenuation in 1/mm from the line
/// integrals `projections`.
///
/// * `projections`: `projections_len = scan->views * scan->rows * scan->cols` floats,
///   `[view][row][col]`, as `xray_forward` makes them from `xray_circular_vectors`.
/// * `filter`: an `XrayFilter` (the ramp filter's window).
/// * `out`: `out_len = nz * ny * nx` floats, written `[z][y][x]`. It need not be
///   initialised. The result is computed into a library buffer and copied into `out`;
///   on failure `out` is left untouched.
///
/// The scan must cover a full turn, or at least 180 degrees plus the fan angle (a short
/// scan, weighted with Parker's weights). A full turn may have its detector offset
/// sideways (the rotation axis must stay on the detector); a short scan may not.
///
/// # Errors
/// `XRAY_STATUS_INVALID_ARGUMENT` (NULL pointers, wrong lengths, unknown enum values,
/// overlapping buffers, an arc FDK cannot reconstruct), `XRAY_STATUS_GEOMETRY`,
/// `XRAY_STATUS_NON_FINITE` (NaN or infinite projection values),
/// `XRAY_STATUS_ALLOCATION`, and on CUDA the GPU's statuses.
///
/// # Safety
/// `projector` must be NULL or a live handle; `projections` must point to
/// `projections_len` floats, `scan` to an `XrayCircularScan` and `grid` to an
/// `XrayVolumeGrid`; `out` must be valid for writes of `out_len` floats. No buffer may
/// be written by another thread during the call.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn xray_fdk(
    projector: *const XrayProjector,
    projections: *const f32,
    projections_len: usize,
    scan: *const XrayCircularScan,
    grid: *const XrayVolumeGrid,
    filter: c_int,
    out: *mut f32,
    out_len: usize,
) -> XrayStatus {
    guard(|| {
        // SAFETY: `projector` is NULL (refused) or a live handle (the contract).
        let projector = unsafe { handle(projector) }?;
        // SAFETY: `scan` is NULL (refused) or points to an XrayCircularScan (the contract).
        let scan = unsafe { buffers::read("scan", scan) }?.to_scan()?;
        // SAFETY: `grid` is NULL (refused) or points to an XrayVolumeGrid (the contract).
        let volume_geometry = unsafe { buffers::read("grid", grid) }?.to_geometry();
        let filter = filter_from_code(filter)?;
        let geometry = scan.geometry()?;
        volume_geometry.validate()?;
        let rays = geometry.ray_count()?;
        check_len(
            "projections_len",
            projections_len,
            rays,
            "the scan's views * rows * cols",
        )?;
        let voxels = volume_geometry.voxel_count()?;
        check_len("out_len", out_len, voxels, "the grid's nz * ny * nx")?;
        // SAFETY: `projections` is NULL (refused) or points to `projections_len` floats
        // (the contract), and `projections_len == rays` (checked above).
        let values = unsafe { buffers::input("projections", projections, rays) }?;
        check_output("out", out, voxels)?;
        check_disjoint(
            ("projections", projections, rays),
            ("out", out.cast_const(), voxels),
        )?;
        let projections_view = view3(geometry.shape(), values)?;
        let volume = recon::fdk(
            projector,
            &projections_view,
            &scan,
            &volume_geometry,
            filter,
        )?;
        // SAFETY: `out` is valid for `out_len == voxels` writes (the contract; checked
        // above to be non-null and aligned), and `volume` is the library's new array.
        unsafe { buffers::write_array("out", out, voxels, &volume) }
    })
}
