"""The package's functions: projection, backprojection, reconstruction, DRRs and files,
over the native module (see `_native` for which one is loaded and why)."""

from __future__ import annotations

import ctypes
import math
import os
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ._geometry import Geometry, Volume, VolumeGrid

_MODULE = None
_CUDA_REASON: Optional[str] = None


def _load():
    """The CUDA build of the native module when the NVIDIA driver loads here, the CPU
    build otherwise (with the reason). ``XRAY_PROJECTOR_CUDA=0`` forces the CPU build.

    The CUDA build leaves the driver's ``cu*`` symbols unresolved; loading
    ``libcuda.so.1`` with ``RTLD_GLOBAL`` first is what resolves them, so on a machine
    without a driver the CUDA build is never imported (importing it there would fail)."""
    from . import _native as cpu

    if os.environ.get("XRAY_PROJECTOR_CUDA", "1") == "0":
        return cpu, "XRAY_PROJECTOR_CUDA=0 is set"
    try:
        ctypes.CDLL("libcuda.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError as error:
        return cpu, f"no NVIDIA driver here (libcuda.so.1 does not load: {error})"
    try:
        from . import _native_cuda as cuda
    except ImportError as error:
        return cpu, f"the package's CUDA module does not load ({error})"
    return cuda, None


def _native():
    """The native module, loaded on first use."""
    global _MODULE, _CUDA_REASON
    if _MODULE is None:
        _MODULE, _CUDA_REASON = _load()
    return _MODULE


class BackendStatus(NamedTuple):
    """One backend: its name (``"cpu"`` or ``"cuda"``), whether it can run here, and
    what it runs on or why it cannot."""

    kind: str
    usable: bool
    detail: str


def backends() -> List[BackendStatus]:
    """Which backends are usable here and why not, as ``xray info`` reports them."""
    module = _native()
    statuses = [BackendStatus(*status) for status in module.backends()]
    if _CUDA_REASON is not None:
        statuses = [
            BackendStatus("cuda", False, _CUDA_REASON) if s.kind == "cuda" else s
            for s in statuses
        ]
    return statuses


def _check_backend(backend: str) -> str:
    """`backend` if it is a name; raises RuntimeError for ``"cuda"`` when only the CPU
    module could be loaded (with the reason)."""
    if backend not in ("auto", "cpu", "cuda"):
        raise ValueError(f"backend must be 'auto', 'cpu' or 'cuda', got {backend!r}")
    _native()
    if backend == "cuda" and _CUDA_REASON is not None:
        raise RuntimeError(f"the CUDA backend is unavailable: {_CUDA_REASON}")
    return backend


def _float32_array(name: str, array, ndim: int) -> np.ndarray:
    """`array` itself if it is a C-contiguous float32 NumPy array of `ndim` dimensions;
    TypeError/ValueError otherwise (no silent conversion)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(array).__name__}")
    if array.dtype != np.float32:
        raise TypeError(f"{name} must be float32, got {array.dtype} (use .astype(np.float32))")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    return array


def _grid_args(grid: VolumeGrid):
    if not isinstance(grid, VolumeGrid):
        raise TypeError(f"grid must be a VolumeGrid, got {type(grid).__name__}")
    return (grid.shape, grid.spacing, grid.origin, [list(map(float, r)) for r in grid.direction])


def _geometry_args(geometry: Geometry):
    if not isinstance(geometry, Geometry):
        raise TypeError(f"geometry must be a Geometry, got {type(geometry).__name__}")
    return geometry.vectors, geometry.rows, geometry.cols, geometry.beam


def _volume(volume) -> Volume:
    if not isinstance(volume, Volume):
        raise TypeError(f"volume must be a Volume (xray_projector.Volume), got {type(volume).__name__}")
    return volume


def project(volume: Volume, geometry: Geometry, method: str = "siddon", backend: str = "auto") -> np.ndarray:
    """Line integrals ``p = sum mu_i L_i`` of every detector pixel of every view:
    float32 ``[views, rows, cols]``. ``method`` is ``"siddon"`` (exact path lengths) or
    ``"joseph"`` (bilinear, one sample per slice); ``backend`` ``"auto"`` (CUDA when
    usable, else CPU), ``"cpu"`` or ``"cuda"``. The volume's array is read in place (no
    copy); the result is a new array that owns the library's buffer (no copy)."""
    volume = _volume(volume)
    vectors, rows, cols, beam = _geometry_args(geometry)
    backend = _check_backend(backend)
    return _native().project(
        volume.data, _grid_args(volume.grid), vectors, rows, cols, beam, method, backend
    )


def backproject(
    projections: np.ndarray,
    geometry: Geometry,
    grid: VolumeGrid,
    method: str = "siddon",
    backend: str = "auto",
) -> np.ndarray:
    """The exact transpose of `project`: ``<project(x), y> = <x, backproject(y)>`` to
    float32 rounding. ``projections`` is C-contiguous float32 ``[views, rows, cols]``;
    the result is float32 ``[z, y, x]`` on ``grid``. On the CPU the result is the same
    on every run and thread count; on the GPU atomic adds can change the last bits."""
    projections = _float32_array("projections", projections, 3)
    vectors, rows, cols, beam = _geometry_args(geometry)
    backend = _check_backend(backend)
    return _native().backproject(
        projections, vectors, rows, cols, beam, _grid_args(grid), method, backend
    )


def fdk(
    projections: np.ndarray,
    geometry: Geometry,
    grid: VolumeGrid,
    filter: str = "ram-lak",
    backend: str = "auto",
) -> np.ndarray:
    """FDK reconstruction (FBP for a parallel beam) of a circular scan: attenuation in
    1/mm, float32 ``[z, y, x]`` on ``grid``. ``geometry`` must come from
    `Geometry.circular` (full turns, short scans with Parker weights, offset detectors);
    ``filter`` is the ramp's window: ``"ram-lak"``, ``"shepp-logan"``, ``"cosine"`` or
    ``"hann"``."""
    projections = _float32_array("projections", projections, 3)
    if not isinstance(geometry, Geometry) or geometry.scan is None:
        raise ValueError("fdk needs a circular scan: make the geometry with Geometry.circular")
    backend = _check_backend(backend)
    return _native().fdk(projections, dict(geometry.scan), _grid_args(grid), filter, backend)


class Reconstruction(NamedTuple):
    """What `sirt` and `cgls` return: the volume (float32 ``[z, y, x]``, 1/mm), the
    relative residual ``||b - A x|| / ||b||`` after each update (the first is the
    start, 1), and why it stopped: ``"converged"``, ``"iteration-limit"`` or
    ``"interrupted"`` (the callback returned False)."""

    volume: np.ndarray
    residuals: List[float]
    stopped: str


def _iterative(algorithm, projections, geometry, grid, iterations, method, tolerance,
               nonnegative, relaxation, backend, callback):
    projections = _float32_array("projections", projections, 3)
    vectors, rows, cols, beam = _geometry_args(geometry)
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable(iteration, residual)")
    backend = _check_backend(backend)
    volume, residuals, stopped = _native().iterative(
        algorithm, projections, vectors, rows, cols, beam, _grid_args(grid), method,
        int(iterations), float(tolerance), bool(nonnegative), float(relaxation), backend,
        callback,
    )
    return Reconstruction(volume, residuals, stopped)


def sirt(
    projections: np.ndarray,
    geometry: Geometry,
    grid: VolumeGrid,
    iterations: int = 50,
    method: str = "siddon",
    tolerance: float = 0.0,
    nonnegative: bool = True,
    relaxation: float = 1.0,
    backend: str = "auto",
    callback: Optional[Callable[[int, float], Optional[bool]]] = None,
) -> Reconstruction:
    """SIRT, ``x += lambda C A^T R (b - A x)`` from ``x = 0`` (``R``, ``C``: inverse row
    and column sums), for any geometry. Stops after ``iterations`` updates, when the
    relative residual reaches ``tolerance``, or when ``callback(iteration, residual)``
    returns a false value other than None (``False``, ``0``); an exception in it stops
    the reconstruction and is re-raised. ``nonnegative`` clips after every update."""
    return _iterative("sirt", projections, geometry, grid, iterations, method, tolerance,
                      nonnegative, relaxation, backend, callback)


def cgls(
    projections: np.ndarray,
    geometry: Geometry,
    grid: VolumeGrid,
    iterations: int = 50,
    method: str = "siddon",
    tolerance: float = 0.0,
    nonnegative: bool = True,
    backend: str = "auto",
    callback: Optional[Callable[[int, float], Optional[bool]]] = None,
) -> Reconstruction:
    """CGLS (conjugate gradients on the normal equations) from ``x = 0``, for any
    geometry; stopping as `sirt`. ``nonnegative`` clips once at the end (clipping
    inside would break the conjugacy)."""
    return _iterative("cgls", projections, geometry, grid, iterations, method, tolerance,
                      nonnegative, 1.0, backend, callback)


def drr(
    volume: Volume,
    geometry: Geometry,
    i0: float = 1.0,
    noise_seed: Optional[int] = None,
    method: str = "siddon",
    backend: str = "auto",
) -> np.ndarray:
    """A radiograph: the detected intensity ``i0 exp(-p)`` of each pixel, float32
    ``[views, rows, cols]`` (``geometry`` from `Geometry.drr` gives one view). With
    ``noise_seed``, each pixel is a Poisson sample of that mean (``i0`` is then photons
    per pixel without the object), reproducible from the seed whatever the thread
    count."""
    line_integrals = project(volume, geometry, method, backend)
    counts = _native().beer_lambert(line_integrals, float(i0))
    if noise_seed is not None:
        _native().poisson_noise(counts, int(noise_seed))
    return counts


def _mu_water(mu_water: Optional[float]) -> float:
    """`mu_water`, or the library's default: water at 70 keV (a 120 kVp CT beam)."""
    return _native().MU_WATER_70KEV if mu_water is None else float(mu_water)


def hu_to_mu(volume_hu: np.ndarray, mu_water: Optional[float] = None, bone_scale: float = 1.0) -> np.ndarray:
    """Attenuation (1/mm) from CT numbers: ``mu = mu_water (1 + HU/1000)``, clipped at 0,
    with HU above 0 stretched by ``bone_scale`` (``mu_water`` defaults to water at 70 keV,
    0.01929/mm). A new float32 array."""
    out = np.array(volume_hu, dtype=np.float32, order="C", copy=True)
    if out.ndim != 3:
        raise ValueError(f"a volume has 3 dimensions, got shape {out.shape}")
    _native().hu_to_mu(out, _mu_water(mu_water), float(bone_scale))
    return out


def _raw_args(raw):
    """`Volume.from_file`'s ``raw`` dict as the native call takes it."""
    if not isinstance(raw, dict):
        raise TypeError(f"raw must be a dict with 'shape' and 'dtype', got {type(raw).__name__}")
    unknown = set(raw) - {"shape", "dtype", "big_endian", "header_bytes"}
    if unknown or "shape" not in raw or "dtype" not in raw:
        raise ValueError(f"raw needs 'shape' and 'dtype' (optional 'big_endian', 'header_bytes'); got {sorted(raw)}")
    shape = tuple(int(n) for n in raw["shape"])
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError(f"raw shape must be three positive sizes (nz, ny, nx), got {raw['shape']!r}")
    header = int(raw.get("header_bytes", 0))
    if header < 0:
        raise ValueError(f"raw header_bytes must be >= 0, got {header}")
    return (shape, str(raw["dtype"]), bool(raw.get("big_endian", False)), header)


def _read_volume(path, hu, spacing, mu_water, bone_scale, world, max_bytes, raw=None) -> Volume:
    """`Volume.from_file`'s work."""
    spacing_arg = None if spacing is None else tuple(float(s) for s in spacing)
    if max_bytes is not None and (isinstance(max_bytes, bool) or int(max_bytes) < 0):
        raise ValueError(f"max_bytes must be a non-negative integer, got {max_bytes!r}")
    raw_arg = None if raw is None else _raw_args(raw)
    data, (shape, spacing_, origin, direction) = _native().read_volume(
        os.fspath(path), bool(world), spacing_arg, None if max_bytes is None else int(max_bytes), raw_arg
    )
    grid = VolumeGrid(tuple(shape), tuple(spacing_), tuple(origin), np.asarray(direction))
    if hu:
        _native().hu_to_mu(data, _mu_water(mu_water), float(bone_scale))
    return Volume(data, grid=grid)
