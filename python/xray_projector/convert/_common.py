"""Checks and small vector helpers shared by the converters (private)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .._geometry import Geometry


def finite_array(name: str, value, shape: Optional[Sequence[Optional[int]]] = None) -> np.ndarray:
    """`value` as a finite float64 array, of `shape` when given (``None`` entries match
    any length); a TypeError or ValueError naming `name` otherwise."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be numbers, got {value!r}") from error
    if shape is not None:
        wanted = tuple(shape)
        if array.ndim != len(wanted) or any(w is not None and w != n for w, n in zip(wanted, array.shape)):
            shown = "(" + ", ".join("n" if w is None else str(w) for w in wanted) + ")"
            raise ValueError(f"{name} must have shape {shown}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array!r}")
    return array


def per_view(name: str, value, views: int, width: int = 1) -> np.ndarray:
    """A parameter given once or once per view, as an array ``(views,)`` (``width`` 1)
    or ``(views, width)``."""
    array = finite_array(name, value)
    if width == 1:
        if array.ndim == 0 or array.shape == (1,):
            return np.full(views, float(array.reshape(-1)[0]))
        if array.shape == (views,):
            return array
        raise ValueError(f"{name} must be one number or {views} (one per view), got shape {array.shape}")
    if array.shape == (width,):
        return np.tile(array, (views, 1))
    if array.shape == (views, width):
        return array
    raise ValueError(f"{name} must have shape ({width},) or ({views}, {width}), got {array.shape}")


def count(name: str, value) -> int:
    """A positive integer (NumPy integers and integral floats accepted)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an integer, got {value!r}") from error
    if not number.is_integer() or number <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(number)


def unit_rows(name: str, vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its length; a ValueError naming `name` for a zero row."""
    lengths = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if np.any(lengths == 0):
        raise ValueError(f"{name} has a zero-length vector")
    return vectors / lengths


def rotation_z(angles: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` right-handed rotations about z by `angles` (radians)."""
    c, s = np.cos(angles), np.sin(angles)
    z, o = np.zeros_like(angles), np.ones_like(angles)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def rotation_y(angles: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` right-handed rotations about y by `angles` (radians)."""
    c, s = np.cos(angles), np.sin(angles)
    z, o = np.zeros_like(angles), np.ones_like(angles)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rotation_x(angles: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` right-handed rotations about x by `angles` (radians)."""
    c, s = np.cos(angles), np.sin(angles)
    z, o = np.zeros_like(angles), np.ones_like(angles)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def check_geometry(geometry) -> Geometry:
    """`geometry` if it is a `Geometry`, a TypeError otherwise."""
    if not isinstance(geometry, Geometry):
        raise TypeError(f"expected an xray_projector Geometry, got {type(geometry).__name__}")
    return geometry


def common_length(name: str, vectors: np.ndarray, tolerance: float = 1e-6) -> float:
    """The length shared by all rows of `vectors` (one pixel pitch for every view)."""
    lengths = np.linalg.norm(vectors, axis=1)
    if np.ptp(lengths) > tolerance * lengths.max():
        raise ValueError(
            f"the {name} pixel pitch differs between views ({lengths.min()} to {lengths.max()} mm); "
            "this tool has one pixel size for the whole scan"
        )
    return float(lengths.mean())


def check_orthogonal(geometry: Geometry, tolerance: float = 1e-6) -> None:
    """A ValueError unless every view's u and v are orthogonal."""
    cosine = np.abs(np.sum(unit_rows("u", geometry.u) * unit_rows("v", geometry.v), axis=1))
    if np.any(cosine > tolerance):
        view = int(np.argmax(cosine))
        raise ValueError(f"view {view}: u and v are not orthogonal (cosine {cosine[view]:.3g}); "
                         "this tool needs a rectangular pixel grid")


def reverse_columns(geometry: Geometry) -> Geometry:
    """The same detector with its columns numbered the other way: column ``c`` becomes
    ``cols - 1 - c`` (``u`` is negated, the centre stays). Projections of the result are
    those of `geometry` with ``p[..., ::-1]``.

    Our circular scan numbers columns the opposite way to ASTRA's ``cone``, RTK's and
    TIGRE's default detectors (see the converter modules); this turns one into the other.
    """
    check_geometry(geometry)
    vectors = np.array(geometry.vectors)
    vectors[:, 6:9] *= -1.0
    return Geometry(vectors, geometry.rows, geometry.cols, geometry.beam)
