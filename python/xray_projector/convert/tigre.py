"""TIGRE geometries to and from ours.

TIGRE builds from source with CUDA only, so these conversions are checked against its
code, not its output. The facts, from TIGRE (2026-06) ``Common/CUDA/Siddon_projection.cu``
(``computeDeltas_Siddon``, ``rollPitchYaw``, ``eulerZYZ``, ``kernelPixelDetector``; the
same in ``ray_interpolated_projection.cu`` ``computeDeltas``) and
``Python/tigre/utilities/cuda_interface/_types.pxd`` (``convert_to_c_geometry``):

* Python's arrays are reversed against the C fields: ``nVoxel``, ``sVoxel``, ``dVoxel``
  and ``offOrigin`` are ``(z, y, x)``; ``nDetector``, ``dDetector``, ``offDetector`` are
  ``(v, u)`` = ``(rows, cols)``; ``rotDetector`` is ``(about x, about y, about z)``
  (C's ``dYaw, dPitch, dRoll``). Images are ``[z, y, x]`` (x fastest, the texture's x),
  projections ``[view, row, col]`` (``_Ax.pyx``): our layouts.
* Before the gantry rotation the source is at ``(DSO, 0, 0)``; the detector centre at
  ``(-(DSD - DSO), offU, offV)``; row ``r`` and column ``c`` of the projection array at
  ``rotDetector`` applied to ``(0, dU (c - (nU-1)/2), dV (r - (nV-1)/2))`` about the detector
  centre (``pixelV = nDetecV - v - 1`` with a ``-dV`` step: rows run up, along +z), where
  the detector rotation is ``Rz(about z) Ry(about y) Rx(about x)``.
* The gantry rotation is ``E = Rz(alpha) Ry(theta) Rz(psi)`` with angles ``(n,)`` (alpha)
  or ``(n, 3)``; angle 0 puts the source on +x.
* The image's centre is at ``offOrigin`` in that world; ``COR`` moves source and
  detector by ``COR (-sin alpha, cos alpha, 0)``.
* Parallel beam (``Siddon_projection_parallel.cu``, ``computeDeltas_Siddon_parallel``):
  only ``alpha`` is used; each ray runs along ``-x'`` through its pixel; ``offDetector``
  shifts the pixels but not the rays' starts (the rays tilt), so it is refused here.

``from_tigre`` puts the image centre at our world origin (``offOrigin`` of each view is
subtracted from its vectors, which also covers TIGRE's per-view image offsets, e.g.
helical scans); `grid_from_tigre` is then a grid centred at the origin.

::

    TIGRE, alpha = 0                          ours, circular scan at angle 0

          +y  (columns: u = +y)                    +y  (columns: u = +y)
           |                                        |
     ] ----O---- S  -> +x                     S ----O---- [  -> +x
    detector  (DSO, 0, 0)                 (-sod, 0, 0)   detector
    at x = -(DSD - DSO)                                  at x = sdd - sod

    TIGRE alpha  ==  ours at angle alpha + pi, columns reversed (`reverse_columns`);
    `to_tigre` writes our circular scan as alpha = a - pi with rotDetector (0, 0, pi)
    (the flat detector turned half a turn about its row axis: the same pixels).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional, Tuple

import numpy as np

from .._geometry import Geometry, VolumeGrid
from ._common import (
    check_geometry, check_orthogonal, common_length, count, finite_array, per_view,
    rotation_x, rotation_y, rotation_z, unit_rows,
)

_MISSING = object()


def _field(geo, name: str, default=_MISSING):
    """``geo[name]`` (a dict) or ``geo.name`` (a TIGRE geometry object)."""
    value = geo.get(name, default) if isinstance(geo, Mapping) else getattr(geo, name, default)
    if value is _MISSING:
        raise ValueError(f"the TIGRE geometry has no {name!r}")
    return value


def _angles(geo, angles) -> np.ndarray:
    """TIGRE's angles as ``(n, 3)`` ``(alpha, theta, psi)`` radians."""
    a = finite_array("angles", _field(geo, "angles") if angles is None else angles)
    if a.ndim == 1:
        a = np.stack([a, np.zeros_like(a), np.zeros_like(a)], 1)
    if a.ndim != 2 or a.shape[1] != 3 or a.shape[0] == 0:
        raise ValueError(f"angles must be (n,) or (n, 3) with n >= 1, got shape {a.shape}")
    return a


def _pair(geo, name: str) -> np.ndarray:
    """A positive two-number field ``(v, u)``."""
    value = finite_array(name, _field(geo, name), (2,))
    if not np.all(value > 0):
        raise ValueError(f"{name} must be positive, got {tuple(value)}")
    return value


def _detector(geo) -> Tuple[int, int, np.ndarray]:
    """``(rows, cols, (dV, dU))``, checking ``sDetector`` as TIGRE's ``check_geo`` does."""
    shape = finite_array("nDetector", _field(geo, "nDetector"), (2,))
    rows, cols = count("nDetector[0]", shape[0]), count("nDetector[1]", shape[1])
    pitch = _pair(geo, "dDetector")
    size = _field(geo, "sDetector", None)
    if size is not None and np.sum(np.abs(finite_array("sDetector", size, (2,)) - pitch * shape)) > 1e-6:
        raise ValueError("sDetector is not nDetector * dDetector")
    return rows, cols, pitch


def _rotations(alpha, theta, psi) -> np.ndarray:
    """TIGRE's gantry rotations ``Rz(alpha) Ry(theta) Rz(psi)``, ``(n, 3, 3)``."""
    return rotation_z(alpha) @ rotation_y(theta) @ rotation_z(psi)


def _detector_rotations(about_x, about_y, about_z) -> np.ndarray:
    """TIGRE's detector rotations ``Rz Ry Rx`` (its roll, pitch, yaw), ``(n, 3, 3)``."""
    return rotation_z(about_z) @ rotation_y(about_y) @ rotation_x(about_x)


def from_tigre(geo, angles=None) -> Geometry:
    """Our `Geometry` from a TIGRE geometry (a ``tigre.geometry`` object or a dict with
    its fields: ``DSD``, ``DSO``, ``nDetector``, ``dDetector``, optional ``sDetector``,
    ``offOrigin``, ``offDetector``, ``rotDetector``, ``COR``, ``mode``) and its angles
    (``(n,)`` or ``(n, 3)`` ZYZ radians; ``geo.angles`` when None). The image centre
    is put at our world origin (module notes); `grid_from_tigre` gives its grid."""
    a = _angles(geo, angles)
    views = a.shape[0]
    rows, cols, (pitch_v, pitch_u) = _detector(geo)
    mode = _field(geo, "mode", None) or "cone"
    if mode not in ("cone", "parallel"):
        raise ValueError(f"TIGRE mode must be 'cone' or 'parallel', got {mode!r}")
    dsd = per_view("DSD", _field(geo, "DSD"), views)
    dso = per_view("DSO", _field(geo, "DSO"), views)
    offset = per_view("offDetector", _field(geo, "offDetector", (0.0, 0.0)), views, 2)
    image = per_view("offOrigin", _field(geo, "offOrigin", (0.0, 0.0, 0.0)), views, 3)[:, ::-1]
    tilt = per_view("rotDetector", _field(geo, "rotDetector", (0.0, 0.0, 0.0)), views, 3)
    cor = per_view("COR", _field(geo, "COR", 0.0), views)
    if mode == "parallel" and (np.any(a[:, 1:] != 0) or np.any(offset != 0)):
        raise ValueError("TIGRE's parallel-beam projectors use only the first angle and no offDetector "
                         "(Siddon_projection_parallel.cu); this geometry sets theta/psi or offDetector")
    gantry = _rotations(a[:, 0], a[:, 1], a[:, 2])
    panel = gantry @ _detector_rotations(tilt[:, 0], tilt[:, 1], tilt[:, 2])
    shift = np.stack([-cor * np.sin(a[:, 0]), cor * np.cos(a[:, 0]), np.zeros(views)], 1) - image
    zero = np.zeros(views)
    centre = np.stack([dso - dsd, offset[:, 1], offset[:, 0]], 1)
    source = np.stack([dso, zero, zero], 1) if mode == "cone" else np.stack([-np.ones(views), zero, zero], 1)
    vectors = np.empty((views, 12))
    vectors[:, 0:3] = np.einsum("nij,nj->ni", gantry, source) + (shift if mode == "cone" else 0.0)
    vectors[:, 3:6] = np.einsum("nij,nj->ni", gantry, centre) + shift
    vectors[:, 6:9] = panel[:, :, 1] * pitch_u
    vectors[:, 9:12] = panel[:, :, 2] * pitch_v
    return Geometry(vectors, rows, cols, mode)


def grid_from_tigre(geo) -> VolumeGrid:
    """Our `VolumeGrid` of a TIGRE image (``nVoxel`` and ``dVoxel`` or ``sVoxel``, all
    ``(z, y, x)``), centred at the origin to go with `from_tigre`. TIGRE's image array
    ``[z, y, x]`` is then our volume array as is."""
    shape = finite_array("nVoxel", _field(geo, "nVoxel"), (3,))
    shape = tuple(count(f"nVoxel[{i}]", n) for i, n in enumerate(shape))
    voxel = _field(geo, "dVoxel", None)
    size = _field(geo, "sVoxel", None)
    if voxel is None and size is None:
        raise ValueError("the TIGRE geometry has neither 'dVoxel' nor 'sVoxel'")
    size = None if size is None else finite_array("sVoxel", size, (3,))
    voxel = size / np.array(shape) if voxel is None else finite_array("dVoxel", voxel, (3,))
    if size is not None and np.sum(np.abs(size - voxel * np.array(shape))) > 1e-6:
        raise ValueError("sVoxel is not nVoxel * dVoxel")
    return VolumeGrid(shape, tuple(voxel[::-1]))


def _zyz_angles(rotations: np.ndarray) -> np.ndarray:
    """``(alpha, theta, psi)`` ``(n, 3)`` with ``Rz(alpha) Ry(theta) Rz(psi) == rotations``
    (``psi = 0`` where theta is 0 or pi)."""
    r = rotations
    theta = np.arccos(np.clip(r[:, 2, 2], -1.0, 1.0))
    general = np.sin(theta) > 1e-12
    flipped = np.where(r[:, 2, 2] > 0, 1.0, -1.0)
    alpha = np.where(general, np.arctan2(r[:, 1, 2], r[:, 0, 2]),
                     np.arctan2(flipped * r[:, 1, 0], flipped * r[:, 0, 0]))
    psi = np.where(general, np.arctan2(r[:, 2, 1], -r[:, 2, 0]), 0.0)
    return np.stack([alpha, theta, psi], 1)


def _xyz_angles(rotations: np.ndarray) -> np.ndarray:
    """``(about x, about y, about z)`` ``(n, 3)`` with ``Rz Ry Rx == rotations``."""
    r = rotations
    about_y = np.arcsin(np.clip(-r[:, 2, 0], -1.0, 1.0))
    general = np.abs(np.cos(about_y)) > 1e-12
    about_x = np.where(general, np.arctan2(r[:, 2, 1], r[:, 2, 2]), 0.0)
    about_z = np.where(general, np.arctan2(r[:, 1, 0], r[:, 0, 0]), np.arctan2(-r[:, 0, 1], r[:, 1, 1]))
    return np.stack([about_x, about_y, about_z], 1)


def _gantry_frames(axis: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotations ``(n, 3, 3)`` whose first column is `axis` (unit) and whose third is
    as close to the detector's row axis `v` as possible (to its ``axis x u`` where `v`
    runs along `axis`)."""
    z = v - np.sum(v * axis, 1, keepdims=True) * axis
    along = np.linalg.norm(z, axis=1) < 1e-9
    z[along] = np.cross(axis[along], u[along])
    z = unit_rows("detector row axis", z)
    return np.stack([axis, np.cross(z, axis), z], 2)


def _parallel_frames(geometry: Geometry) -> Tuple[np.ndarray, np.ndarray]:
    """TIGRE's gantry rotations (about z only) and source-origin distances for a
    parallel beam; ValueError where TIGRE's parallel beam cannot express a view."""
    axis = -unit_rows("ray direction", geometry.sources)
    axis *= np.where(np.sum(geometry.detectors * axis, 1) > 0, -1.0, 1.0)[:, None]
    if np.any(np.abs(axis[:, 2]) > 1e-6):
        raise ValueError("TIGRE's parallel beams run in planes of constant z; "
                         "this geometry's rays are not horizontal")
    frames = rotation_z(np.arctan2(axis[:, 1], axis[:, 0]))
    local = np.einsum("nji,nj->ni", frames, geometry.detectors)
    scale = np.linalg.norm(geometry.detectors, axis=1) + np.linalg.norm(geometry.u, axis=1)
    if np.any(np.abs(local[:, 1:]) > 1e-6 * scale[:, None]):
        raise ValueError("TIGRE's parallel beam has its detector centre on the ray through the rotation centre "
                         "(offDetector is not supported there); this geometry's is off it")
    distance = -local[:, 0]
    if np.any(distance <= 0):
        raise ValueError("TIGRE's parallel-beam detector must lie beyond the rotation centre; "
                         "move it along the rays")
    return frames, distance


def to_tigre(geometry: Geometry, grid: Optional[VolumeGrid] = None) -> Tuple[dict, np.ndarray]:
    """TIGRE's geometry fields (a dict) and angles ``(n, 3)`` for `geometry`, with
    `grid` (axis-aligned) as the image: ``nVoxel``, ``dVoxel``, ``sVoxel`` and
    ``offOrigin`` = its centre; without a grid, ``offOrigin`` is 0 and the image fields
    are left out. Load them with ``geo = tigre.geometry(); geo.__dict__.update(fields)``.

    Representable: orthogonal u and v and one pixel pitch for all views; for a cone beam
    any source position off the rotation centre (it fixes alpha, theta, psi; the
    detector's pose becomes ``offDetector``, ``DSD`` and ``rotDetector``); for a
    parallel beam horizontal rays with the detector centre on the central ray beyond the
    rotation centre. Others raise ValueError."""
    check_geometry(geometry)
    check_orthogonal(geometry)
    views = geometry.views
    pitch_u, pitch_v = common_length("column", geometry.u), common_length("row", geometry.v)
    u, v = unit_rows("u", geometry.u), unit_rows("v", geometry.v)
    if geometry.beam == "cone":
        distance = np.linalg.norm(geometry.sources, axis=1)
        if np.any(distance == 0):
            raise ValueError("TIGRE's source cannot sit at the rotation centre (the world origin)")
        frames = _gantry_frames(geometry.sources / distance[:, None], u, v)
        angles = _zyz_angles(frames)
        local = np.einsum("nji,nj->ni", frames, geometry.detectors)
        dso, dsd = distance, distance - local[:, 0]
    else:
        frames, dso = _parallel_frames(geometry)
        angles = np.stack([np.arctan2(frames[:, 1, 0], frames[:, 0, 0]), np.zeros(views), np.zeros(views)], 1)
        local = np.zeros((views, 3))
        dsd = 2.0 * dso
    panel = np.einsum("nji,njk->nik", frames, np.stack([np.cross(u, v), u, v], 2))
    fields = {
        "mode": geometry.beam,
        "DSD": dsd,
        "DSO": dso,
        "nDetector": np.array([geometry.rows, geometry.cols]),
        "dDetector": np.array([pitch_v, pitch_u]),
        "sDetector": np.array([pitch_v * geometry.rows, pitch_u * geometry.cols]),
        "offDetector": local[:, [2, 1]],
        "rotDetector": _xyz_angles(panel),
        "COR": np.zeros(views),
        "offOrigin": np.zeros((views, 3)),
    }
    if grid is not None:
        fields.update(_image_fields(grid, views))
    return fields, angles


def _image_fields(grid: VolumeGrid, views: int) -> dict:
    """TIGRE's image fields for an axis-aligned grid."""
    if not isinstance(grid, VolumeGrid):
        raise TypeError(f"expected a VolumeGrid, got {type(grid).__name__}")
    if np.abs(grid.direction - np.eye(3)).max() > 1e-12:
        raise ValueError("TIGRE images are axis-aligned; this grid is rotated (direction is not the identity)")
    voxel = np.asarray(grid.spacing)[::-1]
    return {
        "nVoxel": np.array(grid.shape),
        "dVoxel": voxel,
        "sVoxel": voxel * np.array(grid.shape),
        "offOrigin": np.tile(grid.centre[::-1], (views, 1)),
    }
