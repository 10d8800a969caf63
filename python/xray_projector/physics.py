"""Realistic radiographs: X-ray tube spectra, materials, and the polychromatic model of
what a detector records, with its noise and its gradient (the Rust crate's ``physics``
module).

A radiograph of a CT at 120 kV::

    import xray_projector as xp
    from xray_projector import physics
    ct = xp.Volume.from_file("ct.nii.gz")                       # CT numbers (HU), not mu
    body = physics.MaterialVolume.from_hu(ct)                   # air, lung, fat, tissue, bone
    beam = physics.Spectrum.tube(120, filters=[("al", 2.5), ("cu", 0.1)])
    pose = xp.Geometry.drr(source=(0, -1000, 0), sdd=1500, detector=512, pixel=0.8)
    image = physics.radiograph(body, pose, beam, mas=2.0, noise_seed=1)[0]

The model: per pixel, ``gain * blur(g * sum_E S(E) eta(E) w(E) exp(-sum_m
(mu/rho)_m(E) p_m / 10)) + offset``, with ``p_m`` the projection of material ``m``'s
density map (g/cm^3, mm), ``S`` the spectrum, ``eta`` the scintillator's efficiency,
``w`` the photon's energy (or 1 when counting) and ``g`` the pixel's exposure (mAs,
area, inverse square, obliquity). One projection per material, not per energy.
Scatter from the body (``scatter_air_gap_mm``, :func:`scatter_estimate`) is added by
scatter kernel superposition; it is off by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._functions import (
    _check_backend,
    _float32_array,
    _geometry_args,
    _grid_args,
    _native,
    backproject,
    project,
)
from ._geometry import Geometry, Volume, VolumeGrid

Filters = Sequence[Tuple[str, float]]


def materials() -> Dict[str, float]:
    """Every material of the tables and its reference density (g/cm^3)."""
    return dict(_native().materials())


def mass_attenuation(material: str, energies_kev, coherent: bool = True) -> np.ndarray:
    """Mass attenuation coefficients (cm^2/g) of ``material`` at ``energies_kev`` (1 to
    150 keV), with coherent scattering or without (NIST compositions, xraylib's
    XCOM-grade cross sections): a 1-D float64 array, the energies flattened."""
    energies = np.ascontiguousarray(energies_kev, dtype=np.float64).ravel()
    return _native().mass_attenuation(str(material), energies, bool(coherent))


@dataclass(frozen=True)
class Spectrum:
    """Photon lines: ``energies_kev`` (1 to 150) and ``photons`` per cm^2 per mAs at
    100 cm from the focal spot (or per pixel, with ``mas=None`` in `radiograph`)."""

    energies_kev: np.ndarray
    photons: np.ndarray

    def __post_init__(self):
        energies = np.ascontiguousarray(self.energies_kev, dtype=np.float64).ravel()
        photons = np.ascontiguousarray(self.photons, dtype=np.float64).ravel()
        # Validated (and sorted, merged) by the library.
        energies, photons = _native().filter_spectrum(energies, photons, [])
        object.__setattr__(self, "energies_kev", energies)
        object.__setattr__(self, "photons", photons)

    @classmethod
    def tube(cls, kvp: float, anode_angle: float = 12.0, filters: Filters = (("al", 2.5),)) -> "Spectrum":
        """A tungsten tube at ``kvp`` (40 to 150, whole numbers) with ``anode_angle``
        degrees (8 to 20), SpekPy's spectrum, after ``filters`` ``[(material, mm)]``
        (default 2.5 mm Al; ``()`` for the anode's self-filtration only)."""
        energies, photons = _native().tube_spectrum(float(kvp), float(anode_angle), _filters(filters))
        return cls(energies, photons)

    @classmethod
    def monochromatic(cls, energy_kev: float, photons: float) -> "Spectrum":
        """One energy."""
        return cls(np.array([energy_kev], np.float64), np.array([photons], np.float64))

    def filtered(self, filters: Filters) -> "Spectrum":
        """The spectrum after ``filters`` ``[(material, mm)]``."""
        energies, photons = _native().filter_spectrum(self.energies_kev, self.photons, _filters(filters))
        return Spectrum(energies, photons)

    @property
    def total_photons(self) -> float:
        """Photons per cm^2 per mAs at 100 cm, all energies."""
        return _native().spectrum_summary(self.energies_kev, self.photons)[0]

    @property
    def mean_energy_kev(self) -> float:
        """The fluence-weighted mean energy."""
        return _native().spectrum_summary(self.energies_kev, self.photons)[1]

    @property
    def half_value_layer_mm_al(self) -> float:
        """The first half-value layer (air kerma, narrow beam), mm of aluminium."""
        return _native().spectrum_summary(self.energies_kev, self.photons)[2]


def _filters(filters: Filters) -> List[Tuple[str, float]]:
    return [(str(name), float(mm)) for name, mm in filters]


@dataclass(frozen=True)
class Detector:
    """The detector: ``scintillator`` ``"csi"`` (0.6 mm, 80 % packing), ``"gos"``
    (0.2 mm, 50 %), another material name (0.5 mm, solid), or None (stops every
    photon), with ``thickness_mm`` and ``fill`` overriding the preset's; ``counting`` weighs each
    photon 1 instead of its energy; ``gain`` and ``offset`` map the signal to the
    output; ``electronic_noise`` (standard deviation, output units, with a noise seed)
    and ``blur_pixels`` (Gaussian)."""

    scintillator: Optional[str] = "csi"
    thickness_mm: Optional[float] = None
    fill: Optional[float] = None
    counting: bool = False
    gain: float = 1.0
    offset: float = 0.0
    electronic_noise: float = 0.0
    blur_pixels: float = 0.0

    def _args(self) -> dict:
        return {
            "scintillator": self.scintillator,
            "thickness_mm": None if self.thickness_mm is None else float(self.thickness_mm),
            "fill": None if self.fill is None else float(self.fill),
            "counting": bool(self.counting),
            "gain": float(self.gain),
            "offset": float(self.offset),
            "electronic_noise": float(self.electronic_noise),
            "blur_pixels": float(self.blur_pixels),
        }


@dataclass
class MaterialVolume:
    """One density map (g/cm^3, float32 ``[z, y, x]``) per material on one grid; a
    material named ``"attenuation"`` is a map of mu in 1/mm, the same at every energy."""

    maps: List[np.ndarray]
    materials: List[str]
    grid: VolumeGrid = field(repr=False)

    def __post_init__(self):
        if len(self.maps) != len(self.materials) or not self.maps:
            raise ValueError(f"{len(self.maps)} maps for {len(self.materials)} materials")
        for name, m in zip(self.materials, self.maps):
            _float32_array(f"the map of {name}", m, 3)
            if m.shape != tuple(self.grid.shape):
                raise ValueError(f"the map of {name} has shape {m.shape}, the grid {self.grid.shape}")

    @classmethod
    def from_hu(cls, ct: Volume) -> "MaterialVolume":
        """Air, lung, adipose, soft tissue and bone from a CT in Hounsfield units
        (smooth transitions; see the crate's ``physics::segmentation``)."""
        maps, names = _native().segment_hu(ct.data)
        return cls(list(maps), list(names), ct.grid)

    @classmethod
    def from_labels(cls, labels: Volume, assignments: Dict[int, Tuple[str, float]]) -> "MaterialVolume":
        """One density map per label from a label map (whole numbers; 0 is empty unless
        assigned): ``assignments`` maps each label to ``(material, density g/cm^3)``. A
        label in the map that is neither 0 nor assigned raises ValueError."""
        items = [(int(label), str(m), float(d)) for label, (m, d) in assignments.items()]
        maps, names = _native().segment_labels(labels.data, items)
        return cls(list(maps), list(names), labels.grid)

    @classmethod
    def head(cls, shape: int = 128, spacing: Optional[float] = None) -> "MaterialVolume":
        """The built-in head (skull, brain, sinuses, teeth, spine), centred, ``shape^3``
        voxels over 256 mm unless ``spacing`` says."""
        spacing = 256.0 / shape if spacing is None else float(spacing)
        grid = VolumeGrid((shape, shape, shape), (spacing, spacing, spacing))
        maps, names = _native().head_phantom(_grid_args(grid))
        return cls(list(maps), list(names), grid)


def _model_args(body: MaterialVolume, spectrum: Spectrum, detector: Detector, mas: Optional[float]):
    if not isinstance(body, MaterialVolume):
        raise TypeError(f"expected a MaterialVolume, got {type(body).__name__}")
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be a Spectrum, got {type(spectrum).__name__}")
    if not isinstance(detector, Detector):
        raise TypeError(f"detector must be a Detector, got {type(detector).__name__}")
    return (list(body.materials), spectrum.energies_kev, spectrum.photons, detector._args(),
            None if mas is None else float(mas))


def project_materials(body: MaterialVolume, geometry: Geometry, method: str = "siddon",
                      backend: str = "auto") -> List[np.ndarray]:
    """One projection (g/cm^3 mm) per material."""
    return [project(Volume(m, grid=body.grid), geometry, method, backend) for m in body.maps]


def radiograph(
    body: MaterialVolume,
    geometry: Geometry,
    spectrum: Spectrum,
    detector: Detector = Detector(),
    mas: Optional[float] = None,
    noise_seed: Optional[int] = None,
    log: bool = True,
    method: str = "siddon",
    backend: str = "auto",
    scatter_air_gap_mm: Optional[float] = None,
) -> np.ndarray:
    """What the detector records, float32 ``[views, rows, cols]``. ``mas`` is the tube
    charge (photons per pixel from the spectrum's fluence at 100 cm, the pixel's area,
    inverse square and obliquity); None takes the spectrum's photons per pixel. With
    ``noise_seed``, one exposure: Poisson photons per energy, blur, gain and offset,
    Gaussian electronic noise, reproducible from the seed on any thread count. With
    ``log`` (default) the flat-field-corrected radiograph ``-ln((s - offset) / (flat -
    offset))`` (transmissions below 1e-10 clipped); else the raw output.

    ``scatter_air_gap_mm`` adds scatter from the body (scatter kernel superposition on
    each ray's water-equivalent thickness, Monte Carlo kernels of water slabs; see
    :func:`scatter_estimate`) for that air gap between the body and the detector, 0 to
    800 mm; None (default) gives the primary image."""
    args = _model_args(body, spectrum, detector, mas)
    projections = project_materials(body, geometry, method, _check_backend(backend))
    vectors, rows, cols, beam = _geometry_args(geometry)
    native = _native()
    gap = _air_gap(scatter_air_gap_mm)
    mode, seed = ("expected", None) if noise_seed is None else ("sample", int(noise_seed))
    signal = native.radiograph(projections, *args, vectors, rows, cols, beam, mode, seed, gap)
    if not log:
        return signal
    flat = native.radiograph(projections, *args, vectors, rows, cols, beam, "flat", None, None)
    dark = detector.offset
    ratio = (signal.astype(np.float64) - dark) / (flat.astype(np.float64) - dark)
    return (-np.log(np.maximum(ratio, 1e-10))).astype(np.float32)


def scatter_estimate(
    body: MaterialVolume,
    geometry: Geometry,
    spectrum: Spectrum,
    air_gap_mm: float,
    detector: Detector = Detector(),
    mas: Optional[float] = None,
    method: str = "siddon",
    backend: str = "auto",
) -> np.ndarray:
    """The noise-free scatter alone, float32 ``[views, rows, cols]``, in the units of the
    detector's signal before its gain, blur and offset: what :func:`radiograph` with
    ``scatter_air_gap_mm`` adds to the primary. Every pixel's ray is a pencil beam
    through water as thick as its water-equivalent thickness; the pencils' scatter
    point-spread functions (a Monte Carlo of water slabs with xraylib's cross
    sections, per energy, thickness and air gap) are added over the detector."""
    args = _model_args(body, spectrum, detector, mas)
    projections = project_materials(body, geometry, method, _check_backend(backend))
    vectors, rows, cols, beam = _geometry_args(geometry)
    return _native().radiograph(projections, *args, vectors, rows, cols, beam, "scatter", None,
                                _air_gap(air_gap_mm))


def _air_gap(value: Optional[float]) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"the air gap must be a number of mm, got {type(value).__name__}")
    return float(value)


def radiograph_gradient(
    body: MaterialVolume,
    geometry: Geometry,
    spectrum: Spectrum,
    upstream: np.ndarray,
    detector: Detector = Detector(),
    mas: Optional[float] = None,
    method: str = "siddon",
    backend: str = "auto",
) -> List[np.ndarray]:
    """The gradient of ``sum(upstream * radiograph(..., log=False))`` (noise-free) with
    respect to each density map: the model's vector-Jacobian product backprojected by
    the exact transpose of ``method``. One float32 ``[z, y, x]`` per material."""
    args = _model_args(body, spectrum, detector, mas)
    upstream = _float32_array("upstream", upstream, 3)
    backend = _check_backend(backend)
    projections = project_materials(body, geometry, method, backend)
    vectors, rows, cols, beam = _geometry_args(geometry)
    per_projection = _native().radiograph_vjp(projections, *args, vectors, rows, cols, beam, upstream)
    return [backproject(g, geometry, body.grid, method, backend) for g in per_projection]
