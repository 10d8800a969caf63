"""Where things are: the voxel grid (`VolumeGrid`), a volume on it (`Volume`) and the
projection geometry (`Geometry`), in the crate's conventions.

Conventions (the same as the Rust crate's, see its DESIGN.md):

* lengths in mm, attenuation mu in 1/mm, line integrals dimensionless;
* volume arrays are float32 ``[z, y, x]`` (x fastest); ``spacing`` is ``(sx, sy, sz)``
  per *world* axis; ``origin`` is the world position of the grid's minimum corner (not
  of the first voxel's centre); the columns of ``direction`` are the world directions of
  the x, y, z index axes;
* projections are float32 ``[views, rows, cols]``;
* a geometry is one row of 12 numbers per view, in ASTRA's ``cone_vec`` /
  ``parallel3d_vec`` column order: source S (cone) or ray direction (parallel) 0:3,
  detector centre D 3:6, u 6:9 (one column step, mm), v 9:12 (one row step, mm). Pixel
  (r, c) is centred at ``D + (c - (cols-1)/2) u + (r - (rows-1)/2) v``.

These classes only hold and check numbers (NumPy); the Rust library checks the geometry
again, fully, when it is used.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np

Triple = Tuple[float, float, float]


def _triple(name: str, value, positive: bool = False) -> Triple:
    """Three finite floats (positive ones when asked), or a ValueError naming `name`."""
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be three numbers, got {value!r}") from error
    if array.shape != (3,):
        raise ValueError(f"{name} must be three numbers, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {tuple(array)}")
    if positive and not np.all(array > 0):
        raise ValueError(f"{name} must be positive, got {tuple(array)}")
    return (float(array[0]), float(array[1]), float(array[2]))


def _count(name: str, value) -> int:
    """A positive int, or a TypeError/ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


@dataclass(frozen=True, eq=False)
class VolumeGrid:
    """A voxel grid in the world: ``shape`` ``(nz, ny, nx)``, ``spacing`` ``(sx, sy, sz)``
    mm, ``origin`` the world position (mm) of the minimum corner, ``direction`` the 3x3
    matrix whose columns are the world directions of the x, y, z index axes.

    A world point is ``origin + direction @ (spacing * (i, j, k))`` for the index-space
    point ``(i, j, k)`` (x, y, z); voxel ``(ix, iy, iz)`` covers ``[ix, ix+1) x ...``.
    ``VolumeGrid(shape, spacing)`` with no origin is centred on the world origin.
    """

    shape: Tuple[int, int, int]
    spacing: Triple = (1.0, 1.0, 1.0)
    origin: Optional[Triple] = None
    direction: Optional[np.ndarray] = None

    def __post_init__(self):
        if len(tuple(self.shape)) != 3:
            raise ValueError(f"shape must be (nz, ny, nx), got {self.shape!r}")
        shape = tuple(_count(f"shape[{i}]", n) for i, n in enumerate(self.shape))
        spacing = _triple("spacing", self.spacing, positive=True)
        if self.origin is None:
            nz, ny, nx = shape
            origin = (-0.5 * nx * spacing[0], -0.5 * ny * spacing[1], -0.5 * nz * spacing[2])
        else:
            origin = _triple("origin", self.origin)
        direction = np.eye(3) if self.direction is None else np.asarray(self.direction, np.float64)
        if direction.shape != (3, 3) or not np.all(np.isfinite(direction)):
            raise ValueError("direction must be a finite 3x3 matrix")
        if np.abs(direction.T @ direction - np.eye(3)).max() > 1e-6:
            raise ValueError("direction must be orthonormal (its columns unit and orthogonal)")
        direction = direction.copy()
        direction.setflags(write=False)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)

    def __eq__(self, other) -> bool:
        if not isinstance(other, VolumeGrid):
            return NotImplemented
        return (self.shape, self.spacing, self.origin) == (other.shape, other.spacing, other.origin) and bool(
            np.array_equal(self.direction, other.direction)
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.spacing, self.origin, self.direction.tobytes()))

    @classmethod
    def from_affine(cls, shape: Sequence[int], affine) -> "VolumeGrid":
        """The grid whose voxel *centres* are at ``affine @ (i, j, k, 1)`` (a 4x4 or 3x4
        matrix, index order x, y, z, in whatever world frame the affine is in: a NIfTI
        sform is RAS+, while `Volume.from_file` gives LPS+). Its columns must be
        orthogonal, as the Rust reader requires (to 1e-4, then made exactly orthonormal):
        their lengths are the spacing."""
        a = np.asarray(affine, np.float64)
        if a.shape not in ((3, 4), (4, 4)) or not np.all(np.isfinite(a)):
            raise ValueError("affine must be a finite 3x4 or 4x4 matrix")
        if a.shape == (4, 4) and not np.array_equal(a[3], [0.0, 0.0, 0.0, 1.0]):
            raise ValueError(f"a 4x4 affine's last row must be (0, 0, 0, 1), got {tuple(a[3])} (transposed?)")
        m, t = a[:3, :3], a[:3, 3]
        spacing = np.linalg.norm(m, axis=0)
        if not np.all(spacing > 0):
            raise ValueError("affine has a zero column (a zero voxel size)")
        direction = m / spacing
        error = np.abs(direction.T @ direction - np.eye(3)).max()
        if error > 1e-4:
            raise ValueError(f"the affine's columns are not orthogonal (error {error:.2e}): a sheared grid")
        # The nearest orthonormal matrix (polar factor), as the Rust reader re-orthonormalises.
        left, _, right = np.linalg.svd(direction)
        direction = left @ right
        origin = t - direction @ (0.5 * spacing)
        return cls(tuple(shape), tuple(spacing), tuple(origin), direction)

    @property
    def affine(self) -> np.ndarray:
        """The 4x4 voxel-centre affine: world = affine @ (i, j, k, 1)."""
        a = np.eye(4)
        a[:3, :3] = self.direction * np.asarray(self.spacing)
        a[:3, 3] = np.asarray(self.origin) + self.direction @ (0.5 * np.asarray(self.spacing))
        return a

    @property
    def centre(self) -> np.ndarray:
        """The world position of the grid's centre."""
        nz, ny, nx = self.shape
        half = 0.5 * np.array([nx, ny, nz]) * np.asarray(self.spacing)
        return np.asarray(self.origin) + self.direction @ half


class Volume:
    """Attenuation coefficients (1/mm) on a grid: ``data`` float32 ``[z, y, x]`` and its
    ``grid`` (a `VolumeGrid`).

    ``Volume(data, spacing=(sx, sy, sz), origin=None, direction=None)``; with no origin
    the volume is centred on the world origin. ``data`` is kept as given when it is a
    C-contiguous float32 array (no copy), converted otherwise (a copy).
    """

    def __init__(self, data, spacing=(1.0, 1.0, 1.0), origin=None, direction=None, grid=None):
        array = np.ascontiguousarray(data, dtype=np.float32)
        if array.ndim != 3:
            raise ValueError(f"a volume is a 3-D array [z, y, x], got shape {array.shape}")
        if grid is None:
            grid = VolumeGrid(array.shape, spacing, origin, direction)
        elif tuple(grid.shape) != array.shape:
            raise ValueError(f"data has shape {array.shape} but the grid is {grid.shape}")
        self.data = array
        self.grid = grid

    @classmethod
    def from_affine(cls, data, affine) -> "Volume":
        """A volume whose voxel centres are at ``affine @ (i, j, k, 1)``."""
        array = np.ascontiguousarray(data, dtype=np.float32)
        return cls(array, grid=VolumeGrid.from_affine(array.shape, affine))

    @classmethod
    def from_file(
        cls,
        path,
        hu: bool = False,
        spacing: Optional[Sequence[float]] = None,
        mu_water: Optional[float] = None,
        bone_scale: float = 1.0,
        world: bool = False,
        max_bytes: Optional[int] = None,
        raw: Optional[dict] = None,
    ) -> "Volume":
        """Reads NIfTI-1/2 (``.nii``, ``.nii.gz``), a DICOM CT series (a directory),
        MetaImage (``.mha``/``.mhd``), NumPy (``.npy``, needs ``spacing``) or, with
        ``raw``, headerless samples (needs ``spacing``), as the crate does (format told
        by content). ``raw`` is a dict: ``shape`` ``(nz, ny, nx)``, ``dtype`` (``"u8"``,
        ``"i8"``, ``"u16"``, ``"i16"``, ``"u32"``, ``"i32"``, ``"f32"``, ``"f64"``), and
        optionally ``big_endian`` (False) and ``header_bytes`` (0).

        ``hu=True`` converts CT numbers to attenuation, ``mu = mu_water (1 + HU/1000)``
        clipped at 0 (``mu_water`` defaults to water at 70 keV, 0.01929/mm; HU above 0
        are stretched by ``bone_scale``). The volume is centred on the world origin
        unless ``world=True`` keeps the file's own placement (LPS+). Files larger than
        ``max_bytes`` (default 16 GiB after decompression) are refused, not truncated."""
        from ._functions import _read_volume

        return _read_volume(path, hu, spacing, mu_water, bone_scale, world, max_bytes, raw)

    @property
    def shape(self) -> Tuple[int, int, int]:
        """``(nz, ny, nx)``."""
        return self.data.shape

    def __repr__(self) -> str:
        g = self.grid
        return f"Volume(shape={g.shape}, spacing={g.spacing}, origin={g.origin})"


class Geometry:
    """The projection geometry: one row of 12 numbers per view (``vectors``, shape
    ``(views, 12)``, ASTRA ``cone_vec`` / ``parallel3d_vec`` column order), the detector
    ``rows`` and ``cols``, and the ``beam`` (``"cone"`` or ``"parallel"``).

    Build one with `Geometry.circular`, `Geometry.drr`, from vectors, or with the
    converters of `xray_projector.convert` (ASTRA, RTK, TIGRE, cameras, 3x4 matrices).
    """

    def __init__(self, vectors, rows: int, cols: int, beam: str = "cone", scan: Optional[dict] = None):
        v = np.array(vectors, dtype=np.float64, copy=True)
        if v.ndim == 1 and v.size == 12:
            v = v.reshape(1, 12)
        if v.ndim != 2 or v.shape[1] != 12 or v.shape[0] == 0:
            raise ValueError(f"vectors must be an (n, 12) array with n >= 1, got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            bad = np.argwhere(~np.isfinite(v))[0]
            raise ValueError(f"vectors[{bad[0]}, {bad[1]}] is not finite")
        if beam not in ("cone", "parallel"):
            raise ValueError(f"beam must be 'cone' or 'parallel', got {beam!r}")
        v.setflags(write=False)
        self.vectors = v
        self.rows = _count("rows", rows)
        self.cols = _count("cols", cols)
        self.beam = beam
        # The circular scan's parameters when the geometry is one (FDK needs them),
        # read-only, and checked to be the scan these vectors are.
        self.scan = None
        if scan is not None:
            from ._functions import _native

            expected = _native().circular_vectors(dict(scan))
            if expected.shape != v.shape or not np.array_equal(expected, v) or (rows, cols) != tuple(scan["detector"]):
                raise ValueError("scan does not describe these vectors (make circular scans with Geometry.circular)")
            self.scan = types.MappingProxyType(dict(scan))

    @classmethod
    def circular(
        cls,
        sod: float,
        sdd: float,
        views: int,
        detector: Union[int, Sequence[int]],
        pixel: Union[float, Sequence[float]] = 1.0,
        start_angle: float = 0.0,
        arc: float = 2 * math.pi,
        detector_offset: Sequence[float] = (0.0, 0.0),
        beam: str = "cone",
    ) -> "Geometry":
        """The circular scan about z: view k at angle ``a = start_angle + arc k / views``
        (radians), source at ``(-sod cos a, -sod sin a, 0)``, detector centre at
        ``((sdd - sod) cos a, (sdd - sod) sin a, 0)`` (shifted by ``detector_offset``
        ``(along u, along v)`` mm), ``u = pixel_u (-sin a, cos a, 0)``,
        ``v = pixel_v (0, 0, 1)``. ``detector`` is ``rows`` or ``(rows, cols)``, ``pixel``
        a size or ``(width along u, height along v)`` mm. Parallel beam: the rays run
        along ``(cos a, sin a, 0)``. The vectors come from the Rust library."""
        from ._functions import _native

        rows, cols = (detector, detector) if np.ndim(detector) == 0 else tuple(detector)
        pu, pv = (pixel, pixel) if np.ndim(pixel) == 0 else tuple(pixel)
        scan = dict(
            sod=float(sod), sdd=float(sdd), views=_count("views", views),
            detector=(_count("rows", rows), _count("cols", cols)), pixel=(float(pu), float(pv)),
            start_angle=float(start_angle), arc=float(arc),
            detector_offset=tuple(float(x) for x in detector_offset), beam=beam,
        )
        geometry = cls(_native().circular_vectors(scan), scan["detector"][0], scan["detector"][1], beam)
        # These vectors are the scan's by construction: no need to check them again.
        geometry.scan = types.MappingProxyType(scan)
        return geometry

    @classmethod
    def drr(
        cls,
        source: Sequence[float],
        target: Sequence[float] = (0.0, 0.0, 0.0),
        sdd: float = 1000.0,
        up: Sequence[float] = (0.0, 0.0, 1.0),
        detector: Union[int, Sequence[int]] = 256,
        pixel: Union[float, Sequence[float]] = 1.0,
    ) -> "Geometry":
        """One cone-beam view from a pose: the source, the point the central ray passes
        through, the source-to-detector distance along it, and the world direction up
        the detector (rows). Columns run along ``up x direction``."""
        from ._functions import _native

        rows, cols = (detector, detector) if np.ndim(detector) == 0 else tuple(detector)
        pu, pv = (pixel, pixel) if np.ndim(pixel) == 0 else tuple(pixel)
        pose = dict(
            source=_triple("source", source), target=_triple("target", target), sdd=float(sdd),
            up=_triple("up", up), detector=(_count("rows", rows), _count("cols", cols)),
            pixel=(float(pu), float(pv)),
        )
        vectors = _native().drr_vectors(pose)
        return cls(vectors, pose["detector"][0], pose["detector"][1], "cone")

    @property
    def views(self) -> int:
        """Number of views."""
        return self.vectors.shape[0]

    @property
    def shape(self) -> Tuple[int, int, int]:
        """``(views, rows, cols)``, the shape of its projections."""
        return (self.views, self.rows, self.cols)

    @property
    def sources(self) -> np.ndarray:
        """``(views, 3)``: sources (cone) or ray directions (parallel)."""
        return self.vectors[:, 0:3]

    @property
    def detectors(self) -> np.ndarray:
        """``(views, 3)``: detector centres."""
        return self.vectors[:, 3:6]

    @property
    def u(self) -> np.ndarray:
        """``(views, 3)``: one column step, mm."""
        return self.vectors[:, 6:9]

    @property
    def v(self) -> np.ndarray:
        """``(views, 3)``: one row step, mm."""
        return self.vectors[:, 9:12]

    def __getitem__(self, index) -> "Geometry":
        """The geometry of some views: an int, a slice, an index array or a boolean mask
        over the views (not over the 12 numbers of a view)."""
        if isinstance(index, tuple) or index is Ellipsis:
            raise IndexError("a Geometry is indexed by views only: geometry[view], geometry[a:b], geometry[[i, j]]")
        rows = self.vectors[index]
        if rows.ndim == 1:
            rows = rows[np.newaxis]
        if rows.ndim != 2 or rows.shape[1] != 12:
            raise IndexError(f"geometry[{index!r}] does not select views")
        return Geometry(rows, self.rows, self.cols, self.beam)

    def __len__(self) -> int:
        return self.views

    def __repr__(self) -> str:
        return f"Geometry(views={self.views}, rows={self.rows}, cols={self.cols}, beam={self.beam!r})"
