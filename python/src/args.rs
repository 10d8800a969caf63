//! Python arguments into the library's types: names of methods, backends, filters and
//! beams; grids, scans, poses and per-view vectors. Each refusal is a `ValueError` that
//! names the argument.

use numpy::PyReadonlyArray2;
use pyo3::prelude::*;
use xray_projector::recon::Filter;
use xray_projector::{
    Backend, Beam, CircularScan, DrrPose, Method, ProjectionGeometry, View, VolumeGeometry,
};

use crate::errors::value_error;
use xray_projector::io::{ByteOrder, RawLayout, SampleType};

/// `"siddon"` or `"joseph"`.
pub fn method(name: &str) -> PyResult<Method> {
    match name {
        "siddon" => Ok(Method::Siddon),
        "joseph" => Ok(Method::Joseph),
        other => Err(value_error(format!(
            "method must be 'siddon' or 'joseph', got {other:?}"
        ))),
    }
}

/// `"auto"`, `"cpu"` or `"cuda"`.
pub fn backend(name: &str) -> PyResult<Backend> {
    match name {
        "auto" => Ok(Backend::Auto),
        "cpu" => Ok(Backend::Cpu),
        "cuda" => Ok(Backend::Cuda),
        other => Err(value_error(format!(
            "backend must be 'auto', 'cpu' or 'cuda', got {other:?}"
        ))),
    }
}

/// `"cone"` or `"parallel"`.
pub fn beam(name: &str) -> PyResult<Beam> {
    match name {
        "cone" => Ok(Beam::Cone),
        "parallel" => Ok(Beam::Parallel),
        other => Err(value_error(format!(
            "beam must be 'cone' or 'parallel', got {other:?}"
        ))),
    }
}

/// A ramp filter window: `"ram-lak"`, `"shepp-logan"`, `"cosine"` or `"hann"`.
pub fn filter(name: &str) -> PyResult<Filter> {
    match name {
        "ram-lak" => Ok(Filter::RamLak),
        "shepp-logan" => Ok(Filter::SheppLogan),
        "cosine" => Ok(Filter::Cosine),
        "hann" => Ok(Filter::Hann),
        other => Err(value_error(format!(
            "filter must be 'ram-lak', 'shepp-logan', 'cosine' or 'hann', got {other:?}"
        ))),
    }
}

/// A voxel grid as the Python layer passes it: `(shape, spacing, origin, direction)`
/// with `shape = (nz, ny, nx)`, `spacing = (sx, sy, sz)`, `origin` the minimum corner
/// and `direction` three rows of three.
pub type GridArgs = ([usize; 3], [f64; 3], [f64; 3], [[f64; 3]; 3]);

/// The library's grid for `grid` (validated when it is used).
pub fn grid((shape, spacing, origin, direction): GridArgs) -> VolumeGeometry {
    VolumeGeometry::new(shape, spacing, origin).with_direction(direction)
}

/// The same grid in the Python layer's form.
pub fn grid_args(grid: &VolumeGeometry) -> GridArgs {
    (grid.shape, grid.spacing, grid.origin, grid.direction)
}

/// A projection geometry from `(views, 12)` vectors (ASTRA `cone_vec` column order).
pub fn geometry(
    vectors: &PyReadonlyArray2<'_, f64>,
    rows: usize,
    cols: usize,
    beam_name: &str,
) -> PyResult<ProjectionGeometry> {
    let vectors = vectors.as_array();
    if vectors.ncols() != 12 {
        return Err(value_error(format!(
            "vectors must have 12 columns (source, detector, u, v), got {}",
            vectors.ncols()
        )));
    }
    let three = |row: ndarray::ArrayView1<'_, f64>, at: usize| [row[at], row[at + 1], row[at + 2]];
    let views = vectors
        .rows()
        .into_iter()
        .map(|row| View {
            source: three(row, 0),
            detector: three(row, 3),
            u: three(row, 6),
            v: three(row, 9),
        })
        .collect();
    Ok(ProjectionGeometry {
        beam: beam(beam_name)?,
        rows,
        cols,
        views,
    })
}

/// A circular scan as a dict (keys as `Geometry.circular`'s arguments).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct ScanArgs {
    sod: f64,
    sdd: f64,
    views: usize,
    detector: (usize, usize),
    pixel: (f64, f64),
    start_angle: f64,
    arc: f64,
    detector_offset: (f64, f64),
    beam: String,
}

impl ScanArgs {
    /// The library's scan.
    pub fn scan(&self) -> PyResult<CircularScan> {
        Ok(CircularScan {
            beam: beam(&self.beam)?,
            sod: self.sod,
            sdd: self.sdd,
            views: self.views,
            detector: [self.detector.0, self.detector.1],
            pixel: [self.pixel.0, self.pixel.1],
            start_angle: self.start_angle,
            arc: self.arc,
            detector_offset: [self.detector_offset.0, self.detector_offset.1],
        })
    }
}

/// A DRR pose as a dict (keys as `Geometry.drr`'s arguments).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct PoseArgs {
    source: [f64; 3],
    target: [f64; 3],
    sdd: f64,
    up: [f64; 3],
    detector: (usize, usize),
    pixel: (f64, f64),
}

impl PoseArgs {
    /// The library's pose.
    pub fn pose(&self) -> DrrPose {
        DrrPose {
            source: self.source,
            target: self.target,
            sdd: self.sdd,
            up: self.up,
            detector: [self.detector.0, self.detector.1],
            pixel: [self.pixel.0, self.pixel.1],
        }
    }
}

/// A raw file's layout as the Python layer passes it: `(shape, dtype, big_endian,
/// header_bytes)` with `shape = (nz, ny, nx)` and `dtype` one of `u8`, `i8`, `u16`,
/// `i16`, `u32`, `i32`, `f32`, `f64`.
pub type RawArgs = ([usize; 3], String, bool, u64);

/// The library's raw layout for `raw`.
pub fn raw_layout((shape, dtype, big_endian, header_bytes): RawArgs) -> PyResult<RawLayout> {
    let sample: SampleType = dtype
        .parse()
        .map_err(|reason| value_error(format!("raw dtype: {reason}")))?;
    Ok(RawLayout {
        shape,
        sample,
        order: if big_endian {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        },
        header_bytes,
    })
}
