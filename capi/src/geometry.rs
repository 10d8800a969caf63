//! Geometry in C form: the volume grid, the per-view vectors and the circular scan, and
//! their conversion to the library's `VolumeGeometry`, `ProjectionGeometry` and
//! `CircularScan`.

use std::ffi::c_int;

use xray_projector::geometry::MAX_AXIS_LEN;
use xray_projector::{
    Beam, CircularScan, Error, GeometryError, ProjectionGeometry, View, VolumeGeometry,
};

use crate::buffers;
use crate::error::{guard, guard_value, Failure, Outcome, XrayStatus};

/// Number of doubles per view in a `vectors` array, as ASTRA's `cone_vec` and
/// `parallel3d_vec`: the source position (cone beam) or the ray direction (parallel
/// beam), the detector centre, `u` (world step of one detector column) and `v` (world
/// step of one row), each as x, y, z in mm.
pub const XRAY_VECTORS_PER_VIEW: usize = 12;

/// The beam shape of a projection geometry. Functions take it as an `int`; any other
/// value is refused with `XRAY_STATUS_INVALID_ARGUMENT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XrayBeam {
    /// Rays from a point source (the first three numbers of each view) to every pixel
    /// centre.
    Cone = 0,
    /// Parallel rays through every pixel centre, along the direction given by the first
    /// three numbers of each view (any length, pointing towards the detector).
    Parallel = 1,
}

/// The beam with C value `code`.
pub(crate) fn beam_from_code(code: c_int) -> Outcome<Beam> {
    match code {
        c if c == XrayBeam::Cone as c_int => Ok(Beam::Cone),
        c if c == XrayBeam::Parallel as c_int => Ok(Beam::Parallel),
        other => Err(Failure::invalid(format!(
            "beam = {other} is not an XrayBeam (XRAY_BEAM_CONE = 0, XRAY_BEAM_PARALLEL = 1)"
        ))),
    }
}

/// Where a volume's voxels are in the world (the library's `VolumeGeometry`).
///
/// The volume array is `nz * ny * nx` floats, x fastest (C order `[z][y][x]`). A world
/// point is `origin + direction * diag(spacing) * (ix, iy, iz)`, voxel `(ix, iy, iz)`
/// covering `[ix, ix+1) x [iy, iy+1) x [iz, iz+1)` in index space. Make an axis-aligned,
/// centred one with `xray_volume_grid_centered`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct XrayVolumeGrid {
    /// Voxel counts `{nz, ny, nx}` (the array's shape, slowest axis first).
    pub shape: [usize; 3],
    /// Voxel size `{sx, sy, sz}` in mm (per world axis: note the order).
    pub spacing: [f64; 3],
    /// World position (mm) of the grid's minimum corner (not of the first voxel's
    /// centre).
    pub origin: [f64; 3],
    /// Orthonormal 3x3 matrix, row-major, whose columns are the world directions of the
    /// x, y and z index axes (`{1,0,0, 0,1,0, 0,0,1}` for an axis-aligned grid).
    pub direction: [f64; 9],
}

impl XrayVolumeGrid {
    /// The library's form (not yet validated).
    pub(crate) fn to_geometry(self) -> VolumeGeometry {
        let d = self.direction;
        VolumeGeometry::new(self.shape, self.spacing, self.origin).with_direction([
            [d[0], d[1], d[2]],
            [d[3], d[4], d[5]],
            [d[6], d[7], d[8]],
        ])
    }

    /// The C form of `geometry`.
    fn from_geometry(geometry: &VolumeGeometry) -> XrayVolumeGrid {
        let [[d0, d1, d2], [d3, d4, d5], [d6, d7, d8]] = geometry.direction;
        XrayVolumeGrid {
            shape: geometry.shape,
            spacing: geometry.spacing,
            origin: geometry.origin,
            direction: [d0, d1, d2, d3, d4, d5, d6, d7, d8],
        }
    }
}

/// An axis-aligned grid of `nz * ny * nx` voxels of `sx * sy * sz` mm centred on the
/// world origin (identity direction; `origin = {-nx sx / 2, -ny sy / 2, -nz sz / 2}`).
///
/// Nothing is checked here: the functions that use the grid validate it.
#[no_mangle]
pub extern "C" fn xray_volume_grid_centered(
    nz: usize,
    ny: usize,
    nx: usize,
    sx: f64,
    sy: f64,
    sz: f64,
) -> XrayVolumeGrid {
    let fallback = XrayVolumeGrid {
        shape: [nz, ny, nx],
        spacing: [sx, sy, sz],
        origin: [0.0; 3],
        direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
    };
    guard_value(fallback, || {
        XrayVolumeGrid::from_geometry(&VolumeGeometry::centered([nz, ny, nx], [sx, sy, sz]))
    })
}

/// The projection geometry of `views` records of `XRAY_VECTORS_PER_VIEW` doubles at
/// `vectors` (not yet validated).
///
/// # Safety
/// Unless `views` is 0 or `vectors` is NULL (refused), `vectors` must point to
/// `views * XRAY_VECTORS_PER_VIEW` initialised doubles.
pub(crate) unsafe fn projection_geometry(
    vectors: *const f64,
    views: usize,
    rows: usize,
    cols: usize,
    beam: c_int,
) -> Outcome<ProjectionGeometry> {
    let beam = beam_from_code(beam)?;
    // Refused before the vectors are read: a huge `views` would read (and copy) far
    // beyond any real buffer.
    if views > MAX_AXIS_LEN {
        return Err(Error::from(GeometryError::TooLarge {
            field: "number of views".into(),
            value: views as u128,
            limit: MAX_AXIS_LEN as u128,
        })
        .into());
    }
    let len = views
        .checked_mul(XRAY_VECTORS_PER_VIEW)
        .ok_or_else(|| Failure::invalid(format!("views = {views} is too large")))?;
    let values: &[f64] = if views == 0 {
        // Refused by the geometry's validation ("number of views must be at least 1").
        &[]
    } else {
        // SAFETY: the caller guarantees `views * XRAY_VECTORS_PER_VIEW` doubles at
        // `vectors` (this function's contract); `input` refuses NULL.
        unsafe { buffers::input("vectors", vectors, len) }?
    };
    let views = values
        .chunks_exact(XRAY_VECTORS_PER_VIEW)
        .map(|v| View {
            source: [v[0], v[1], v[2]],
            detector: [v[3], v[4], v[5]],
            u: [v[6], v[7], v[8]],
            v: [v[9], v[10], v[11]],
        })
        .collect();
    Ok(ProjectionGeometry {
        beam,
        rows,
        cols,
        views,
    })
}

/// A circular scan about the world z axis (the library's `CircularScan`), for FDK and
/// for `xray_circular_vectors`.
///
/// View `k` is at angle `a = start_angle + arc * k / views`; the source is at
/// `(-sod cos a, -sod sin a, 0)`, the detector centre at
/// `((sdd - sod) cos a, (sdd - sod) sin a, 0)` shifted by `detector_offset`,
/// `u = pixel[0] * (-sin a, cos a, 0)` and `v = pixel[1] * (0, 0, 1)`. For a parallel
/// beam the rays run along `(cos a, sin a, 0)` and `sod` only places the detector.
/// `xray_circular_scan_new` fills in the usual defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct XrayCircularScan {
    /// `XRAY_BEAM_CONE` or `XRAY_BEAM_PARALLEL` (an `int`: any other value is refused).
    pub beam: c_int,
    /// Source to rotation axis, mm.
    pub sod: f64,
    /// Source to detector, mm (larger than `sod`).
    pub sdd: f64,
    /// Number of views.
    pub views: usize,
    /// Detector rows (along `v`).
    pub rows: usize,
    /// Detector columns (along `u`).
    pub cols: usize,
    /// Pixel `{width along u, height along v}`, mm.
    pub pixel: [f64; 2],
    /// Angle of the first view, radians (0 puts the source on -x).
    pub start_angle: f64,
    /// Angle covered by the views, radians (2 pi for a full turn); views are
    /// `arc / views` apart.
    pub arc: f64,
    /// Shift of the detector centre `{along u, along v}`, mm.
    pub detector_offset: [f64; 2],
}

impl XrayCircularScan {
    /// The library's form (not yet validated; the beam code is).
    pub(crate) fn to_scan(self) -> Outcome<CircularScan> {
        Ok(CircularScan {
            beam: beam_from_code(self.beam)?,
            sod: self.sod,
            sdd: self.sdd,
            views: self.views,
            detector: [self.rows, self.cols],
            pixel: self.pixel,
            start_angle: self.start_angle,
            arc: self.arc,
            detector_offset: self.detector_offset,
        })
    }
}

/// A cone-beam full turn (`arc` = 2 pi) starting at angle 0 with square pixels of
/// `pixel` mm and a centred detector of `rows * cols` pixels.
///
/// Nothing is checked here: `xray_circular_vectors` and `xray_fdk` validate the scan.
#[no_mangle]
pub extern "C" fn xray_circular_scan_new(
    sod: f64,
    sdd: f64,
    views: usize,
    rows: usize,
    cols: usize,
    pixel: f64,
) -> XrayCircularScan {
    let scan = XrayCircularScan {
        beam: XrayBeam::Cone as c_int,
        sod,
        sdd,
        views,
        rows,
        cols,
        pixel: [pixel, pixel],
        start_angle: 0.0,
        arc: std::f64::consts::TAU,
        detector_offset: [0.0, 0.0],
    };
    guard_value(scan, || scan)
}

/// Writes the per-view vectors of the circular scan `*scan` into `out`:
/// `scan->views * XRAY_VECTORS_PER_VIEW` doubles, view after view, in the layout that
/// `xray_forward` and `xray_backward` read.
///
/// `out_len` must be exactly `scan->views * XRAY_VECTORS_PER_VIEW`.
///
/// # Errors
/// `XRAY_STATUS_INVALID_ARGUMENT` for a NULL pointer, an unknown beam or a wrong
/// `out_len`; `XRAY_STATUS_GEOMETRY` for an unusable scan (non-positive distances or
/// pixel sizes, `sdd <= sod`, zero views or detector size, non-finite numbers).
///
/// # Safety
/// `scan` must point to an `XrayCircularScan`; `out` must be valid for writes of
/// `out_len` doubles (uninitialised memory is fine).
#[no_mangle]
pub unsafe extern "C" fn xray_circular_vectors(
    scan: *const XrayCircularScan,
    out: *mut f64,
    out_len: usize,
) -> XrayStatus {
    guard(|| {
        // SAFETY: the caller guarantees that `scan` points to an XrayCircularScan
        // (this function's contract); `read` refuses NULL.
        let scan = unsafe { buffers::read("scan", scan) }?.to_scan()?;
        let geometry = scan.geometry()?;
        let len = geometry
            .views
            .len()
            .checked_mul(XRAY_VECTORS_PER_VIEW)
            .ok_or_else(|| Failure::invalid("the scan has too many views"))?;
        buffers::check_len(
            "out_len",
            out_len,
            len,
            "views * XRAY_VECTORS_PER_VIEW for this scan",
        )?;
        buffers::check_output("out", out, len)?;
        let values: Vec<f64> = geometry
            .views
            .iter()
            .flat_map(|view| [view.source, view.detector, view.u, view.v])
            .flatten()
            .collect();
        // SAFETY: `out` is valid for `out_len == values.len()` writes (the caller's
        // contract, length checked above), and `values` is a new Rust allocation.
        unsafe { buffers::write(out, values.as_slice()) };
        Ok(())
    })
}
