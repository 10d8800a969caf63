//! The functions of the native module. Arrays come in as read-only NumPy views (no
//! copy when C-contiguous float32, which the Python layer ensures) and go out as NumPy
//! arrays that take over the Rust buffer (no copy).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Mutex;

use numpy::{PyArray2, PyArray3, PyReadonlyArray2, PyReadonlyArray3, PyReadwriteArray3};
use pyo3::prelude::*;
use xray_projector::hounsfield::HuToMu;
use xray_projector::io::{read_volume as read_file, ReadOptions, DEFAULT_MAX_BYTES};
use xray_projector::recon::{self, IterativeOptions, Stopped};
use xray_projector::{backend_statuses, intensity, Cancel, ProjectionGeometry, Projector};

use crate::args::{self, GridArgs, PoseArgs, RawArgs, ScanArgs};
use crate::errors::{to_python, value_error};
use crate::run::interruptible;

/// Adds every function to `module`.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(backends, module)?)?;
    module.add_function(wrap_pyfunction!(circular_vectors, module)?)?;
    module.add_function(wrap_pyfunction!(drr_vectors, module)?)?;
    module.add_function(wrap_pyfunction!(project, module)?)?;
    module.add_function(wrap_pyfunction!(backproject, module)?)?;
    module.add_function(wrap_pyfunction!(fdk, module)?)?;
    module.add_function(wrap_pyfunction!(iterative, module)?)?;
    module.add_function(wrap_pyfunction!(read_volume, module)?)?;
    module.add_function(wrap_pyfunction!(hu_to_mu, module)?)?;
    module.add_function(wrap_pyfunction!(beer_lambert, module)?)?;
    module.add_function(wrap_pyfunction!(poisson_noise, module)?)?;
    Ok(())
}

/// `[(kind, usable, detail)]` for every backend, as `xray info` prints them.
#[pyfunction]
fn backends(py: Python<'_>) -> Vec<(String, bool, String)> {
    py.detach(|| {
        backend_statuses()
            .into_iter()
            .map(|status| (status.kind.to_string(), status.usable, status.detail))
            .collect()
    })
}

/// The `(views, 12)` vectors of a circular scan.
#[pyfunction]
fn circular_vectors<'py>(py: Python<'py>, scan: ScanArgs) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let geometry = scan.scan()?.geometry().map_err(to_python)?;
    Ok(vectors_array(py, &geometry))
}

/// The `(1, 12)` vectors of a DRR pose.
#[pyfunction]
fn drr_vectors<'py>(py: Python<'py>, pose: PoseArgs) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let geometry = pose.pose().geometry().map_err(to_python)?;
    Ok(vectors_array(py, &geometry))
}

/// A geometry's views as `(views, 12)` rows.
fn vectors_array<'py>(py: Python<'py>, geometry: &ProjectionGeometry) -> Bound<'py, PyArray2<f64>> {
    let rows: Vec<Vec<f64>> = geometry
        .views
        .iter()
        .map(|view| {
            [view.source, view.detector, view.u, view.v]
                .iter()
                .flatten()
                .copied()
                .collect()
        })
        .collect();
    let flat: Vec<f64> = rows.into_iter().flatten().collect();
    let array = ndarray::Array2::from_shape_vec((geometry.views.len(), 12), flat)
        .expect("12 numbers per view");
    PyArray2::from_owned_array(py, array)
}

/// A projector on `backend` watching a fresh cancellation flag.
fn projector(backend: &str) -> PyResult<(Projector, Cancel)> {
    let cancel = Cancel::new();
    let projector = Projector::new(args::backend(backend)?)
        .map_err(to_python)?
        .with_cancel(cancel.clone());
    Ok((projector, cancel))
}

/// Line integrals `[views, rows, cols]` of `volume` (`[z, y, x]` float32 on `grid`).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn project<'py>(
    py: Python<'py>,
    volume: PyReadonlyArray3<'py, f32>,
    grid: GridArgs,
    vectors: PyReadonlyArray2<'py, f64>,
    rows: usize,
    cols: usize,
    beam: &str,
    method: &str,
    backend: &str,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let geometry = args::geometry(&vectors, rows, cols, beam)?;
    let grid = args::grid(grid);
    let method = args::method(method)?;
    let (projector, cancel) = projector(backend)?;
    let volume = volume.as_array();
    let projections = interruptible(py, &cancel, || {
        projector.forward(&volume, &grid, &geometry, method)
    })?;
    Ok(PyArray3::from_owned_array(py, projections))
}

/// The exact transpose of [`project`]: a `[z, y, x]` volume on `grid`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn backproject<'py>(
    py: Python<'py>,
    projections: PyReadonlyArray3<'py, f32>,
    vectors: PyReadonlyArray2<'py, f64>,
    rows: usize,
    cols: usize,
    beam: &str,
    grid: GridArgs,
    method: &str,
    backend: &str,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let geometry = args::geometry(&vectors, rows, cols, beam)?;
    let grid = args::grid(grid);
    let method = args::method(method)?;
    let (projector, cancel) = projector(backend)?;
    let projections = projections.as_array();
    let volume = interruptible(py, &cancel, || {
        projector.backward(&projections, &geometry, &grid, method)
    })?;
    Ok(PyArray3::from_owned_array(py, volume))
}

/// FDK of a circular scan's projections onto `grid`.
#[pyfunction]
fn fdk<'py>(
    py: Python<'py>,
    projections: PyReadonlyArray3<'py, f32>,
    scan: ScanArgs,
    grid: GridArgs,
    filter: &str,
    backend: &str,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let scan = scan.scan()?;
    let grid = args::grid(grid);
    let filter = args::filter(filter)?;
    let (projector, cancel) = projector(backend)?;
    let projections = projections.as_array();
    let volume = interruptible(py, &cancel, || {
        recon::fdk(&projector, &projections, &scan, &grid, filter)
    })?;
    Ok(PyArray3::from_owned_array(py, volume))
}

/// What [`iterative`] returns: the volume, the residuals, why it stopped.
type Reconstructed<'py> = (Bound<'py, PyArray3<f32>>, Vec<f64>, &'static str);

/// SIRT or CGLS: `(volume, residuals, stopped)`, with `stopped` one of `"converged"`,
/// `"iteration-limit"`, `"interrupted"`. `callback(iteration, residual)` is called after
/// every update; returning a false value other than `None` stops, raising stops and
/// re-raises.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (algorithm, projections, vectors, rows, cols, beam, grid, method, iterations, tolerance, nonnegative, relaxation, backend, callback=None))]
fn iterative<'py>(
    py: Python<'py>,
    algorithm: &str,
    projections: PyReadonlyArray3<'py, f32>,
    vectors: PyReadonlyArray2<'py, f64>,
    rows: usize,
    cols: usize,
    beam: &str,
    grid: GridArgs,
    method: &str,
    iterations: usize,
    tolerance: f64,
    nonnegative: bool,
    relaxation: f64,
    backend: &str,
    callback: Option<Py<PyAny>>,
) -> PyResult<Reconstructed<'py>> {
    let run = match algorithm {
        "sirt" => recon::sirt::<ndarray::ViewRepr<&f32>>,
        "cgls" => recon::cgls::<ndarray::ViewRepr<&f32>>,
        other => {
            return Err(value_error(format!(
                "algorithm must be 'sirt' or 'cgls', got {other:?}"
            )))
        }
    };
    let geometry = args::geometry(&vectors, rows, cols, beam)?;
    let grid = args::grid(grid);
    let options = IterativeOptions {
        method: args::method(method)?,
        iterations,
        tolerance,
        nonnegative,
        relaxation,
    };
    let (projector, cancel) = projector(backend)?;
    let projections = projections.as_array();
    let callback_error: Mutex<Option<PyErr>> = Mutex::new(None);
    let on_progress = |progress: &xray_projector::recon::Progress| {
        let Some(callback) = &callback else {
            return ControlFlow::Continue(());
        };
        Python::attach(|py| {
            let answer = callback
                .call1(py, (progress.iteration, progress.residual))
                .and_then(|answer| {
                    let answer = answer.bind(py);
                    // None (no return statement) goes on; any other false value stops.
                    Ok(answer.is_none() || answer.is_truthy()?)
                });
            match answer {
                Ok(true) => ControlFlow::Continue(()),
                Ok(false) => ControlFlow::Break(()),
                Err(error) => {
                    *callback_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                    ControlFlow::Break(())
                }
            }
        })
    };
    let reconstruction = interruptible(py, &cancel, || {
        run(
            &projector,
            &projections,
            &geometry,
            &grid,
            &options,
            on_progress,
        )
    })?;
    if let Some(error) = callback_error
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
    {
        return Err(error);
    }
    let stopped = match reconstruction.stopped {
        Stopped::Converged => "converged",
        Stopped::IterationLimit => "iteration-limit",
        Stopped::Interrupted => "interrupted",
    };
    Ok((
        PyArray3::from_owned_array(py, reconstruction.volume),
        reconstruction.residuals,
        stopped,
    ))
}

/// Reads a volume file: `(data, grid)`, the grid as [`GridArgs`] in the file's world
/// frame (LPS+) with `world`, or moved so that its centre is at the origin (as the
/// CLI does without `--world`). With `raw`, the file is read as headerless samples.
#[pyfunction]
#[pyo3(signature = (path, world, spacing=None, max_bytes=None, raw=None))]
fn read_volume(
    py: Python<'_>,
    path: PathBuf,
    world: bool,
    spacing: Option<[f64; 3]>,
    max_bytes: Option<u64>,
    raw: Option<RawArgs>,
) -> PyResult<(Bound<'_, PyArray3<f32>>, GridArgs)> {
    let options = ReadOptions {
        max_bytes: max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
        spacing,
        raw: raw.map(args::raw_layout).transpose()?,
    };
    let loaded = py
        .detach(|| read_file(&path, &options))
        .map_err(to_python)?;
    let grid = if world {
        loaded.grid
    } else {
        loaded.grid.recentred()
    };
    Ok((
        PyArray3::from_owned_array(py, loaded.data),
        args::grid_args(&grid),
    ))
}

/// CT numbers to attenuation in place (see the crate's `hounsfield` module).
#[pyfunction]
fn hu_to_mu(
    py: Python<'_>,
    mut volume: PyReadwriteArray3<'_, f32>,
    mu_water: f64,
    bone_scale: f64,
) -> PyResult<()> {
    let map = HuToMu {
        mu_water,
        bone_scale,
    };
    let mut values = volume.as_array_mut();
    py.detach(|| map.apply(&mut values)).map_err(to_python)
}

/// Expected counts `i0 exp(-p)`.
#[pyfunction]
fn beer_lambert<'py>(
    py: Python<'py>,
    line_integrals: PyReadonlyArray3<'py, f32>,
    i0: f64,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let values = line_integrals.as_array();
    let counts = py
        .detach(|| intensity::beer_lambert(&values, i0))
        .map_err(to_python)?;
    Ok(PyArray3::from_owned_array(py, counts))
}

/// Poisson samples of expected counts, in place, reproducible from `seed`.
#[pyfunction]
fn poisson_noise(
    py: Python<'_>,
    mut counts: PyReadwriteArray3<'_, f32>,
    seed: u64,
) -> PyResult<()> {
    let mut values = counts.as_array_mut();
    py.detach(|| intensity::add_poisson_noise(&mut values, seed))
        .map_err(to_python)
}
