//! The physics functions of the native module: spectra, mass attenuation, material
//! maps, and the polychromatic radiograph model with its vector-Jacobian product (see
//! the crate's `physics` module). Spectra cross as two float64 arrays, energies (keV)
//! and photons per cm^2 per mAs at 100 cm.

use numpy::{PyArray1, PyArray3, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;
use xray_projector::phantom::MaterialPhantom;
use xray_projector::physics::{
    segmentation, Absorber, Detector, Exposure, Line, Material, RadiographModel, Response, Scatter,
    Scintillator, Spectrum,
};

use crate::args::{self, GridArgs};
use crate::errors::{to_python, value_error};

/// Adds the physics functions to `module`.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(materials, module)?)?;
    module.add_function(wrap_pyfunction!(mass_attenuation, module)?)?;
    module.add_function(wrap_pyfunction!(tube_spectrum, module)?)?;
    module.add_function(wrap_pyfunction!(filter_spectrum, module)?)?;
    module.add_function(wrap_pyfunction!(spectrum_summary, module)?)?;
    module.add_function(wrap_pyfunction!(segment_hu, module)?)?;
    module.add_function(wrap_pyfunction!(segment_labels, module)?)?;
    module.add_function(wrap_pyfunction!(head_phantom, module)?)?;
    module.add_function(wrap_pyfunction!(radiograph, module)?)?;
    module.add_function(wrap_pyfunction!(radiograph_vjp, module)?)?;
    Ok(())
}

type SpectrumArrays<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

/// Material density maps and their materials' names.
type NamedMaps<'py> = (Vec<Bound<'py, PyArray3<f32>>>, Vec<String>);

/// The detector as a dict (keys as the Python layer's `Detector` fields).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct DetectorArgs {
    scintillator: Option<String>,
    thickness_mm: Option<f64>,
    fill: Option<f64>,
    counting: bool,
    gain: f64,
    offset: f64,
    electronic_noise: f64,
    blur_pixels: f64,
}

impl DetectorArgs {
    fn detector(&self) -> PyResult<Detector> {
        let scintillator = match self.scintillator.as_deref() {
            None => None,
            Some(name) => {
                let preset = match name {
                    "csi" => Scintillator::csi(),
                    "gos" => Scintillator::gos(),
                    other => Scintillator {
                        material: material(other)?,
                        thickness_mm: 0.5,
                        fill: 1.0,
                    },
                };
                Some(Scintillator {
                    thickness_mm: self.thickness_mm.unwrap_or(preset.thickness_mm),
                    fill: self.fill.unwrap_or(preset.fill),
                    ..preset
                })
            }
        };
        let detector = Detector {
            scintillator,
            response: if self.counting {
                Response::PhotonCounting
            } else {
                Response::EnergyIntegrating
            },
            gain: self.gain,
            offset: self.offset,
            electronic_noise: self.electronic_noise,
            blur_pixels: self.blur_pixels,
        };
        detector.validate().map_err(to_python)?;
        Ok(detector)
    }
}

fn material(name: &str) -> PyResult<Material> {
    name.parse().map_err(to_python)
}

fn absorber(name: &str) -> PyResult<Absorber> {
    if name == "attenuation" {
        Ok(Absorber::Attenuation)
    } else {
        material(name).map(Absorber::Material)
    }
}

fn spectrum_from(
    energies: &PyReadonlyArray1<'_, f64>,
    photons: &PyReadonlyArray1<'_, f64>,
) -> PyResult<Spectrum> {
    let (energies, photons) = (energies.as_array(), photons.as_array());
    if energies.len() > xray_projector::physics::MAX_LINES {
        return Err(value_error(format!(
            "the spectrum has {} lines, at most {}",
            energies.len(),
            xray_projector::physics::MAX_LINES
        )));
    }
    if energies.len() != photons.len() {
        return Err(value_error(format!(
            "the spectrum has {} energies but {} photon counts",
            energies.len(),
            photons.len()
        )));
    }
    let lines = energies
        .iter()
        .zip(photons.iter())
        .map(|(&energy_kev, &photons)| Line {
            energy_kev,
            photons,
        })
        .collect();
    Spectrum::from_lines(lines).map_err(to_python)
}

fn spectrum_arrays<'py>(py: Python<'py>, spectrum: &Spectrum) -> SpectrumArrays<'py> {
    let energies: Vec<f64> = spectrum.lines().iter().map(|l| l.energy_kev).collect();
    let photons: Vec<f64> = spectrum.lines().iter().map(|l| l.photons).collect();
    (
        PyArray1::from_vec(py, energies),
        PyArray1::from_vec(py, photons),
    )
}

fn filtered(mut spectrum: Spectrum, filters: &[(String, f64)]) -> PyResult<Spectrum> {
    for (name, mm) in filters {
        spectrum = spectrum.filtered(material(name)?, *mm).map_err(to_python)?;
    }
    Ok(spectrum)
}

/// Each projection as an `ndarray` view (no copy).
fn array_views<'a>(
    projections: &'a [PyReadonlyArray3<'_, f32>],
) -> Vec<ndarray::ArrayView3<'a, f32>> {
    projections.iter().map(|p| p.as_array()).collect()
}

/// Volumes or projections handed to NumPy (no copy).
fn to_numpy(py: Python<'_>, arrays: Vec<ndarray::Array3<f32>>) -> Vec<Bound<'_, PyArray3<f32>>> {
    arrays
        .into_iter()
        .map(|a| PyArray3::from_owned_array(py, a))
        .collect()
}

/// `[(name, density g/cm^3)]` of every material of the tables.
#[pyfunction]
fn materials() -> Vec<(String, f64)> {
    Material::ALL
        .iter()
        .map(|m| (m.name().to_string(), m.density()))
        .collect()
}

/// Mass attenuation coefficients (cm^2/g) of `material` at `energies` (keV).
#[pyfunction]
fn mass_attenuation<'py>(
    py: Python<'py>,
    material_name: &str,
    energies: PyReadonlyArray1<'py, f64>,
    coherent: bool,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let m = material(material_name)?;
    let values = energies
        .as_array()
        .iter()
        .map(|&e| m.mass_attenuation(e, coherent))
        .collect::<Result<Vec<f64>, _>>()
        .map_err(to_python)?;
    Ok(PyArray1::from_vec(py, values))
}

/// A tungsten tube's spectrum after `filters` (`[(material, mm)]`).
#[pyfunction]
fn tube_spectrum<'py>(
    py: Python<'py>,
    kvp: f64,
    anode_angle: f64,
    filters: Vec<(String, f64)>,
) -> PyResult<SpectrumArrays<'py>> {
    let spectrum = filtered(
        Spectrum::tube(kvp, anode_angle).map_err(to_python)?,
        &filters,
    )?;
    Ok(spectrum_arrays(py, &spectrum))
}

/// A spectrum after `filters`.
#[pyfunction]
fn filter_spectrum<'py>(
    py: Python<'py>,
    energies: PyReadonlyArray1<'py, f64>,
    photons: PyReadonlyArray1<'py, f64>,
    filters: Vec<(String, f64)>,
) -> PyResult<SpectrumArrays<'py>> {
    let spectrum = filtered(spectrum_from(&energies, &photons)?, &filters)?;
    Ok(spectrum_arrays(py, &spectrum))
}

/// `(photons, mean energy keV, first half-value layer mm Al)` of a spectrum.
#[pyfunction]
fn spectrum_summary(
    energies: PyReadonlyArray1<'_, f64>,
    photons: PyReadonlyArray1<'_, f64>,
) -> PyResult<(f64, f64, f64)> {
    let s = spectrum_from(&energies, &photons)?;
    Ok((s.photons(), s.mean_energy_kev(), s.half_value_layer_mm_al()))
}

/// Density maps of air, lung, adipose, soft tissue and bone from a CT in HU, with
/// their material names.
#[pyfunction]
fn segment_hu<'py>(
    py: Python<'py>,
    volume: PyReadonlyArray3<'py, f32>,
) -> PyResult<NamedMaps<'py>> {
    let hu = volume.as_array();
    let maps = py.detach(|| segmentation::from_hu(hu)).map_err(to_python)?;
    let names = segmentation::CT_MATERIALS
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    Ok((to_numpy(py, maps), names))
}

/// One density map per `(label, material, density)` of `assignments` from a label map.
#[pyfunction]
fn segment_labels<'py>(
    py: Python<'py>,
    labels: PyReadonlyArray3<'py, f32>,
    assignments: Vec<(u32, String, f64)>,
) -> PyResult<NamedMaps<'py>> {
    let assignments = assignments
        .iter()
        .map(|(label, name, density)| {
            Ok(segmentation::LabelMaterial {
                label: *label,
                material: material(name)?,
                density: *density,
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let labels = labels.as_array();
    let maps = py
        .detach(|| segmentation::from_labels(labels, &assignments))
        .map_err(to_python)?;
    let names = assignments
        .iter()
        .map(|a| a.material.name().to_string())
        .collect();
    Ok((to_numpy(py, maps), names))
}

/// The built-in head's density maps on `grid`, with their material names.
#[pyfunction]
fn head_phantom<'py>(py: Python<'py>, grid: GridArgs) -> PyResult<NamedMaps<'py>> {
    let grid = args::grid(grid);
    let head = MaterialPhantom::head();
    let maps = py.detach(|| head.voxelize(&grid, 1)).map_err(to_python)?;
    let names = head
        .parts
        .iter()
        .map(|(m, _)| m.name().to_string())
        .collect();
    Ok((to_numpy(py, maps), names))
}

/// The model from its Python parts.
fn model(
    absorbers: &[String],
    energies: &PyReadonlyArray1<'_, f64>,
    photons: &PyReadonlyArray1<'_, f64>,
    detector: &DetectorArgs,
    mas: Option<f64>,
) -> PyResult<RadiographModel> {
    let absorbers = absorbers
        .iter()
        .map(|a| absorber(a))
        .collect::<PyResult<Vec<_>>>()?;
    let exposure = match mas {
        Some(mas) => Exposure::TubeCurrent { mas },
        None => Exposure::PerPixel,
    };
    RadiographModel::new(
        &spectrum_from(energies, photons)?,
        absorbers,
        detector.detector()?,
        exposure,
    )
    .map_err(to_python)
}

/// The detector's output for one projection per absorber: `mode` `"expected"`,
/// `"sample"` (one exposure from `seed`), `"flat"` (nothing in the beam) or
/// `"scatter"` (the scatter estimate alone); with scatter from the object when
/// `air_gap` (mm) is given.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn radiograph<'py>(
    py: Python<'py>,
    projections: Vec<PyReadonlyArray3<'py, f32>>,
    absorbers: Vec<String>,
    energies: PyReadonlyArray1<'py, f64>,
    photons: PyReadonlyArray1<'py, f64>,
    detector: DetectorArgs,
    mas: Option<f64>,
    vectors: PyReadonlyArray2<'py, f64>,
    rows: usize,
    cols: usize,
    beam: &str,
    mode: &str,
    seed: Option<u64>,
    air_gap: Option<f64>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let geometry = args::geometry(&vectors, rows, cols, beam)?;
    let mut model = model(&absorbers, &energies, &photons, &detector, mas)?;
    if let Some(gap) = air_gap {
        model = model
            .with_scatter(Scatter::new(gap).map_err(to_python)?)
            .map_err(to_python)?;
    }
    let views = array_views(&projections);
    let out = py
        .detach(|| match (mode, seed) {
            ("expected", _) => Ok(model.expected(&views, &geometry)),
            ("sample", Some(seed)) => Ok(model.sample(&views, &geometry, seed)),
            ("flat", _) => Ok(model.flat_field(&geometry)),
            ("scatter", _) => Ok(model.scatter_estimate(&views, &geometry)),
            _ => Err(format!("mode {mode:?} (with seed {seed:?}) is not one of expected, sample (with a seed), flat, scatter")),
        })
        .map_err(value_error)?
        .map_err(to_python)?;
    Ok(PyArray3::from_owned_array(py, out))
}

/// The gradient of `sum(upstream * expected)` with respect to each projection.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn radiograph_vjp<'py>(
    py: Python<'py>,
    projections: Vec<PyReadonlyArray3<'py, f32>>,
    absorbers: Vec<String>,
    energies: PyReadonlyArray1<'py, f64>,
    photons: PyReadonlyArray1<'py, f64>,
    detector: DetectorArgs,
    mas: Option<f64>,
    vectors: PyReadonlyArray2<'py, f64>,
    rows: usize,
    cols: usize,
    beam: &str,
    upstream: PyReadonlyArray3<'py, f32>,
) -> PyResult<Vec<Bound<'py, PyArray3<f32>>>> {
    let geometry = args::geometry(&vectors, rows, cols, beam)?;
    let model = model(&absorbers, &energies, &photons, &detector, mas)?;
    let views = array_views(&projections);
    let upstream = upstream.as_array();
    let gradients = py
        .detach(|| model.vjp(&views, &geometry, upstream))
        .map_err(to_python)?;
    Ok(to_numpy(py, gradients))
}
