"""ASTRA Toolbox geometries and arrays to and from ours.

Our projection geometry *is* ASTRA's vector geometry: the same 12 numbers per view in
the same order (source or ray, detector centre, u, v), the same units, the same pixel
centres. So ``cone_vec`` / ``parallel3d_vec`` pass through unchanged and only the
angle-based ``cone`` / ``parallel3d`` need formulas. The facts below come from ASTRA's
source (astra-toolbox, 2026-08):

* ``cone_vec`` (``ConeVecProjectionGeometry3D.cpp``, ``initializeAngles``): the
  detector corner is ``d - rows/2 v - cols/2 u`` and ``projectPoint`` subtracts 0.5, so
  pixel ``(r, c)`` is centred at ``d + (c - (cols-1)/2) u + (r - (rows-1)/2) v``; u goes
  from pixel (0,0) to (0,1) (one column), v from (0,0) to (1,0) (one row). Ours exactly.
* ``cone`` (``GeometryUtil3D.cpp``, ``genConeProjections``; ``functions.py``,
  ``geom_2vec``): at angle ``a`` the source is ``DistanceOriginSource (sin a, -cos a, 0)``,
  the detector centre ``DistanceOriginDetector (-sin a, cos a, 0)`` (measured from the
  origin: source-detector distance = DSO + DOD), ``u = DetectorSpacingX (cos a, sin a, 0)``,
  ``v = (0, 0, DetectorSpacingY)``. Angles are stored as float32 in ASTRA.
* ``parallel3d`` (``genPar3DProjections``): ray ``(-sin a, cos a, 0)`` (source towards
  detector; ``geom_2vec`` writes the opposite sign, the same lines), detector centre at
  the origin, u and v as for ``cone``.
* volume (``VolumeGeometry3D.h``, ``GeometryUtil3D.cpp`` ``convertAstraGeometry_internal``,
  ``cone_fp.cu``): ``GridColCount`` voxels along x, ``GridRowCount`` along y,
  ``GridSliceCount`` along z, over the window ``[WindowMinX, WindowMaxX]`` and so on;
  voxel index ``i`` along x covers ``WindowMinX + [i, i+1) * (WindowMaxX-WindowMinX)/cols``
  (no axis is flipped), and ASTRA's volume arrays are ``[slice, row, col]`` = ``[z, y, x]``,
  ours. Projection data are ``[row, view, col]``; ours are ``[view, row, col]``.

::

    ASTRA cone, angle a = 0                   ours, circular scan, angle 0

               +y                                      +y
                |                                       |          |  detector at
       =========|=========  detector at y = DOD,        |          |  x = sdd - sod,
                |           columns u along +x     S    |          |  columns u along +y
     -----------O-----------> +x               ----*----O----------|---> +x
                |                            (-sod, 0, 0)
                *  S = (0, -DSO, 0)

    Both rotate anticlockwise about +z (seen from +z), rows v along +z. ASTRA's cone at
    angle a is our circular scan at angle a + pi/2 with the columns reversed (ASTRA's u
    is minus ours): reverse_columns(from_astra(cone)) has exactly the numbers of our
    circular scan with sod = DSO, sdd = DSO + DOD and the angles a + pi/2.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._geometry import Geometry, VolumeGrid
from ._common import check_geometry, count, finite_array

_TYPES = ("cone", "cone_vec", "parallel3d", "parallel3d_vec")


def _key(mapping: Mapping, key: str, where: str):
    """``mapping[key]``, or a ValueError naming the missing key."""
    if key not in mapping:
        raise ValueError(f"{where} has no {key!r}")
    return mapping[key]


def _positive(name: str, value) -> float:
    """A finite positive number."""
    number = float(finite_array(name, value, ()))
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {number}")
    return number


def _angle_vectors(proj_geom: Mapping, cone: bool) -> np.ndarray:
    """The vectors of an angle-based ``cone`` / ``parallel3d`` geometry."""
    angles = finite_array("ProjectionAngles", _key(proj_geom, "ProjectionAngles", "proj_geom"), (None,))
    if angles.size == 0:
        raise ValueError("ProjectionAngles is empty")
    pitch_x = _positive("DetectorSpacingX", _key(proj_geom, "DetectorSpacingX", "proj_geom"))
    pitch_y = _positive("DetectorSpacingY", _key(proj_geom, "DetectorSpacingY", "proj_geom"))
    s, c = np.sin(angles), np.cos(angles)
    zero = np.zeros_like(angles)
    vectors = np.zeros((angles.size, 12))
    if cone:
        source = _positive("DistanceOriginSource", _key(proj_geom, "DistanceOriginSource", "proj_geom"))
        detector = _key(proj_geom, "DistanceOriginDetector", "proj_geom")
        detector = float(finite_array("DistanceOriginDetector", detector, ()))
        vectors[:, 0:3] = np.stack([s * source, -c * source, zero], 1)
        vectors[:, 3:6] = np.stack([-s * detector, c * detector, zero], 1)
    else:
        vectors[:, 0:3] = np.stack([-s, c, zero], 1)
    vectors[:, 6:9] = np.stack([c * pitch_x, s * pitch_x, zero], 1)
    vectors[:, 11] = pitch_y
    return vectors


def from_astra(proj_geom: Mapping) -> Geometry:
    """Our `Geometry` from an ASTRA 3-D projection geometry (the dict that
    ``astra.create_proj_geom`` makes) of type ``cone``, ``cone_vec``, ``parallel3d`` or
    ``parallel3d_vec``. The world, units and pixel order stay ASTRA's (they are ours).

    Raises ValueError for other types, missing keys or non-finite numbers."""
    if not isinstance(proj_geom, Mapping):
        raise TypeError(f"proj_geom must be a dict, got {type(proj_geom).__name__}")
    kind = _key(proj_geom, "type", "proj_geom")
    if kind not in _TYPES:
        raise ValueError(f"ASTRA geometry type {kind!r} is not supported; use one of {', '.join(_TYPES)}")
    rows = count("DetectorRowCount", _key(proj_geom, "DetectorRowCount", "proj_geom"))
    cols = count("DetectorColCount", _key(proj_geom, "DetectorColCount", "proj_geom"))
    if kind.endswith("_vec"):
        vectors = finite_array("Vectors", _key(proj_geom, "Vectors", "proj_geom"), (None, 12))
    else:
        vectors = _angle_vectors(proj_geom, cone=kind == "cone")
    beam = "cone" if kind.startswith("cone") else "parallel"
    return Geometry(vectors, rows, cols, beam)


def to_astra(geometry: Geometry) -> dict:
    """ASTRA's ``cone_vec`` (cone beam) or ``parallel3d_vec`` (parallel beam) dict for
    `geometry`, laid out as ``astra.create_proj_geom`` makes it. Every geometry is
    representable: the vectors are copied unchanged."""
    check_geometry(geometry)
    return {
        "type": "cone_vec" if geometry.beam == "cone" else "parallel3d_vec",
        "DetectorRowCount": geometry.rows,
        "DetectorColCount": geometry.cols,
        "Vectors": np.array(geometry.vectors),
    }


def _window(options: Mapping, axis: str, voxels: int) -> tuple:
    """``(min, max)`` of one axis of ASTRA's volume window (default ``-n/2 .. n/2``)."""
    low = options.get(f"WindowMin{axis}", -voxels / 2.0)
    high = options.get(f"WindowMax{axis}", voxels / 2.0)
    low = float(finite_array(f"WindowMin{axis}", low, ()))
    high = float(finite_array(f"WindowMax{axis}", high, ()))
    if not high > low:
        raise ValueError(f"WindowMax{axis} ({high}) must exceed WindowMin{axis} ({low})")
    return low, high


def grid_from_astra(vol_geom: Mapping) -> VolumeGrid:
    """Our `VolumeGrid` from an ASTRA 3-D volume geometry (``astra.create_vol_geom``):
    ``GridColCount`` x voxels, ``GridRowCount`` y, ``GridSliceCount`` z over the
    ``option`` window. An ASTRA volume array ``[z, y, x]`` is then our volume array as is."""
    if not isinstance(vol_geom, Mapping):
        raise TypeError(f"vol_geom must be a dict, got {type(vol_geom).__name__}")
    nx = count("GridColCount", _key(vol_geom, "GridColCount", "vol_geom"))
    ny = count("GridRowCount", _key(vol_geom, "GridRowCount", "vol_geom"))
    nz = count("GridSliceCount", _key(vol_geom, "GridSliceCount", "vol_geom (a 3-D volume geometry)"))
    options = vol_geom.get("option", {})
    windows = [_window(options, axis, n) for axis, n in (("X", nx), ("Y", ny), ("Z", nz))]
    spacing = tuple((high - low) / n for (low, high), n in zip(windows, (nx, ny, nz)))
    origin = tuple(low for low, _ in windows)
    return VolumeGrid((nz, ny, nx), spacing, origin)


def grid_to_astra(grid: VolumeGrid) -> dict:
    """ASTRA's volume geometry dict for `grid` (as ``astra.create_vol_geom`` lays it
    out). ASTRA's grids are axis-aligned: a rotated grid raises ValueError."""
    if not isinstance(grid, VolumeGrid):
        raise TypeError(f"expected a VolumeGrid, got {type(grid).__name__}")
    if np.abs(grid.direction - np.eye(3)).max() > 1e-12:
        raise ValueError("ASTRA volume grids are axis-aligned; this grid is rotated "
                         "(direction is not the identity)")
    nz, ny, nx = grid.shape
    low = np.asarray(grid.origin)
    high = low + np.asarray(grid.spacing) * np.array([nx, ny, nz])
    return {
        "option": {
            "WindowMinX": float(low[0]), "WindowMaxX": float(high[0]),
            "WindowMinY": float(low[1]), "WindowMaxY": float(high[1]),
            "WindowMinZ": float(low[2]), "WindowMaxZ": float(high[2]),
        },
        "GridRowCount": ny,
        "GridColCount": nx,
        "GridSliceCount": nz,
    }


def _swap_first_axes(name: str, data) -> np.ndarray:
    """A C-contiguous float32 copy of a 3-D array with its first two axes swapped."""
    array = np.asarray(data)
    if array.ndim != 3:
        raise ValueError(f"{name} must be a 3-D array, got shape {array.shape}")
    return np.ascontiguousarray(np.swapaxes(array, 0, 1), dtype=np.float32)


def projections_from_astra(data) -> np.ndarray:
    """Our projections ``[view, row, col]`` (float32) from ASTRA's sinogram layout
    ``[row, view, col]``."""
    return _swap_first_axes("ASTRA projection data", data)


def projections_to_astra(projections) -> np.ndarray:
    """ASTRA's sinogram layout ``[row, view, col]`` (float32) from our projections
    ``[view, row, col]``."""
    return _swap_first_axes("projections", projections)
