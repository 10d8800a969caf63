"""RTK (Reconstruction Toolkit) geometries and images to and from ours.

RTK describes view ``i`` of a ``ThreeDCircularProjectionGeometry`` by nine numbers
(``AddProjection``): source-to-isocenter distance ``sid``, source-to-detector distance
``sdd`` (0 for a parallel beam), gantry angle, projection offsets ``px, py``, out-of-plane
and in-plane angles, source offsets ``sx, sy`` (angles in degrees in the API and the XML,
radians in the getters). From ``rtkThreeDCircularProjectionGeometry.cxx``
(``AddProjectionInRadians``, ``GetSourcePosition``,
``GetProjectionCoordinatesToFixedSystemMatrix``) and ITK's ``Euler3DTransform`` (ZXY):

* the rotation ``R = Rz(-in_plane) Rx(-out_of_plane) Ry(-gantry)`` takes world
  coordinates to the rotated (detector) frame ``(x', y', z')``;
* in that frame the source is at ``(sx, sy, sid)`` and the detector is the plane
  ``z' = sid - sdd`` (``z' = -sid`` for a parallel beam, whose rays run along ``-z'``
  from ``z' = +sid``; RTK integrates only that segment, we integrate whole lines);
* the projection stack is an ITK image: pixel index ``(i, j)`` (column, row) has the
  physical detector coordinates ``(pu, pv) = origin + direction @ (spacing * (i, j))``,
  which sit at ``(pu + px, pv + py)`` in the rotated frame;
* ``GetMatrix(i)`` is ``T(sx - px, sy - py) M(-sdd, -sid) T(-sx, -sy, 0) R``: it maps a world
  point (mm, homogeneous) to ``(pu, pv)`` times ``w``, with ``w < 0`` in front of the source.

Our ``[view, row, col]`` projections are RTK's projection stack as ``itk.array_from_image``
gives it (columns along the image's x index, rows along y). Volumes: an ITK image's
voxel centre ``(i, j, k)`` is at ``origin + direction @ (spacing * (i, j, k))`` and
``itk.array_from_image`` gives the array ``[k, j, i]``, our ``[z, y, x]`` order.

Worlds. ``world="rtk"`` (default) keeps RTK's world coordinates: a volume image keeps
its origin and an RTK geometry keeps rotating about y. ``world="circular"`` applies the
rotation ``RTK_TO_CIRCULAR`` so that RTK's rotation axis becomes our z and RTK's gantry
angle ``g`` becomes our circular-scan angle ``g`` (ours ``(x, y, z)`` = RTK ``(-z, -x, y)``)::

    RTK, gantry angle 0                      ours (world="circular"), angle 0

         y  (rotation axis, rows: v = +y)         z  (rotation axis, rows: v = +z)
         |                                        |
         O-----> x   (columns: u = +x)            O-----> x
        /                                        /
       z --> source at (0, 0, sid)              y      source at (-sid, 0, 0),
             detector at z = sid - sdd                 detector at x = sdd - sid

RTK's detector columns, seen from the source, run the other way to our circular scan's:
``AddProjection(sod, sdd, g)`` equals ``Geometry.circular(sod, sdd, ...)`` at angle ``g``
(radians) with the columns reversed (`reverse_columns`), in ``world="circular"``.
`to_rtk` writes such detectors with the projection stack direction ``diag(-1, 1)`` instead.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ElementTree
from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from .._geometry import Geometry, VolumeGrid
from ._common import (
    check_geometry, check_orthogonal, common_length, count, finite_array, per_view,
    rotation_x, rotation_y, rotation_z, unit_rows,
)

RTK_TO_CIRCULAR = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""World rotation of ``world="circular"``: ours = ``RTK_TO_CIRCULAR @ rtk``."""

_WORLDS = {"rtk": np.eye(3), "circular": RTK_TO_CIRCULAR}
_PARAMETERS = ("sid", "sdd", "gantry_angle", "proj_offset_x", "proj_offset_y",
               "out_of_plane_angle", "in_plane_angle", "source_offset_x", "source_offset_y")
_ANGLES = ("gantry_angle", "out_of_plane_angle", "in_plane_angle")
_XML_PARAMETERS = {
    "sourcetoisocenterdistance": "sid", "sourcetodetectordistance": "sdd",
    "gantryangle": "gantry_angle", "angle": "gantry_angle",
    "projectionoffsetx": "proj_offset_x", "projectionoffsety": "proj_offset_y",
    "outofplaneangle": "out_of_plane_angle", "inplaneangle": "in_plane_angle",
    "sourceoffsetx": "source_offset_x", "sourceoffsety": "source_offset_y",
}
_XML_REFUSED = {
    "radiuscylindricaldetector": "a cylindrical detector",
    "collimationuinf": "collimation", "collimationusup": "collimation",
    "collimationvinf": "collimation", "collimationvsup": "collimation",
}


class RtkProjection(NamedTuple):
    """One view in RTK's parameters, in ``AddProjection``'s argument order (mm,
    degrees): ``rtk_geometry.AddProjection(*projection)``."""

    sid: float
    sdd: float
    gantry_angle: float
    proj_offset_x: float = 0.0
    proj_offset_y: float = 0.0
    out_of_plane_angle: float = 0.0
    in_plane_angle: float = 0.0
    source_offset_x: float = 0.0
    source_offset_y: float = 0.0


class RtkDetector(NamedTuple):
    """The first two dimensions of an RTK projection stack: ``size`` ``(cols, rows)``,
    ``spacing`` and ``origin`` (mm), ``direction`` (2x2). The stack itself is the 3-D
    image of size ``(cols, rows, views)``, spacing ``(*spacing, 1)``, origin
    ``(*origin, 0)``, and a direction whose top-left 2x2 block is ``direction`` (the rest
    the identity's)."""

    size: Tuple[int, int]
    spacing: Tuple[float, float]
    origin: Tuple[float, float]
    direction: Tuple[Tuple[float, float], Tuple[float, float]]


class ItkImageInfo(NamedTuple):
    """Where an ITK image lies: ``size`` ``(nx, ny, nz)``, ``spacing``, ``origin`` (the
    centre of voxel 0) and ``direction`` (3x3, columns = world directions of the index
    axes)."""

    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]
    direction: Tuple[Tuple[float, float, float], ...]


def _world(world: str) -> np.ndarray:
    """The rotation from RTK's world to ours for `world`."""
    if world not in _WORLDS:
        raise ValueError(f"world must be one of {', '.join(map(repr, _WORLDS))}, got {world!r}")
    return _WORLDS[world]


def _itk_matrix(matrix) -> np.ndarray:
    """An ITK matrix as a NumPy array."""
    import itk

    return np.array(itk.array_from_matrix(matrix), dtype=np.float64)


def _is_itk_image(value) -> bool:
    """Whether `value` looks like an ITK image."""
    return hasattr(value, "GetLargestPossibleRegion") and hasattr(value, "GetSpacing")


def _image_info(image) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(size, spacing, origin of the first buffer element, direction)`` of an ITK image."""
    region = image.GetLargestPossibleRegion()
    size = np.array(tuple(region.GetSize()), dtype=np.int64)
    start = np.array(tuple(region.GetIndex()), dtype=np.float64)
    spacing = np.array(tuple(image.GetSpacing()), dtype=np.float64)
    direction = _itk_matrix(image.GetDirection())
    origin = np.array(tuple(image.GetOrigin()), dtype=np.float64) + direction @ (spacing * start)
    return size, spacing, origin, direction


def _detector_direction(direction) -> np.ndarray:
    """The 2x2 in-plane direction of a projection stack (given 2x2, or 3x3 whose third
    row and column are those of the identity)."""
    d = finite_array("direction", direction)
    if d.shape == (3, 3):
        if np.abs(d[2] - [0, 0, 1]).max() > 1e-9 or np.abs(d[:2, 2]).max() > 1e-9:
            raise ValueError("a projection stack's direction must leave its third (projection) axis alone")
        d = d[:2, :2]
    if d.shape != (2, 2) or np.abs(d.T @ d - np.eye(2)).max() > 1e-9:
        raise ValueError(f"direction must be an orthonormal 2x2 (or 3x3) matrix, got {d.tolist()}")
    return d


def _in_plane(name: str, value) -> np.ndarray:
    """The first two of a projection stack's two or three spacings or origin values."""
    array = finite_array(name, value)
    if array.shape not in ((2,), (3,)):
        raise ValueError(f"{name} must be 2 (or the stack's 3) numbers, got shape {array.shape}")
    return array[:2]


def rtk_detector(detector, spacing=None, origin=None, direction=None) -> RtkDetector:
    """An `RtkDetector` from an ITK projection stack (its size, spacing, origin and
    direction; the other arguments must then be None) or from ``detector`` =
    ``(cols, rows)`` with ``spacing`` (default 1 mm), ``origin`` (default: the detector
    centred on the projection axis, ``-direction @ (spacing * (size - 1) / 2)``) and
    ``direction`` (default the identity)."""
    if _is_itk_image(detector):
        if spacing is not None or origin is not None or direction is not None:
            raise ValueError("give either an ITK projection image or size/spacing/origin/direction, not both")
        size, spacing_a, origin_a, direction_a = _image_info(detector)
        size, spacing, origin = size[:2], spacing_a[:2], origin_a[:2]
        direction = _detector_direction(direction_a)
    else:
        pair = finite_array("detector size", detector, (2,))
        size = np.array([count("detector cols", pair[0]), count("detector rows", pair[1])])
        spacing = _in_plane("spacing", (1.0, 1.0) if spacing is None else spacing)
        direction = _detector_direction(np.eye(2) if direction is None else direction)
        centred = -direction @ (spacing * (size - 1) / 2.0)
        origin = centred if origin is None else _in_plane("origin", origin)
    if not np.all(spacing > 0):
        raise ValueError(f"detector spacing must be positive, got {tuple(spacing)}")
    return RtkDetector(
        (int(size[0]), int(size[1])), tuple(map(float, spacing)), tuple(map(float, origin)),
        tuple(tuple(map(float, row)) for row in direction),
    )


def _rotation(gantry_angle, out_of_plane_angle, in_plane_angle) -> np.ndarray:
    """RTK's rotation matrices ``(n, 3, 3)`` (world to the rotated frame) for angles in
    radians: ``Rz(-in_plane) Rx(-out_of_plane) Ry(-gantry)``."""
    gantry, out_of_plane, in_plane = (-np.asarray(a) for a in (gantry_angle, out_of_plane_angle, in_plane_angle))
    return rotation_z(in_plane) @ rotation_x(out_of_plane) @ rotation_y(gantry)


def _beam(sdd: np.ndarray) -> str:
    """``"cone"`` when every view has ``sdd != 0``, ``"parallel"`` when all have 0."""
    if np.all(sdd != 0):
        return "cone"
    if np.all(sdd == 0):
        return "parallel"
    raise ValueError("an RTK geometry is all cone beam (sdd != 0) or all parallel beam (sdd == 0), not both")


def _geometry_from_parameters(params: dict, detector: RtkDetector, world: np.ndarray) -> Geometry:
    """Our geometry from per-view RTK parameters (arrays, angles in radians)."""
    beam = _beam(params["sdd"])
    views = params["sid"].size
    world_to_rotated = _rotation(params["gantry_angle"], params["out_of_plane_angle"], params["in_plane_angle"])
    rotated_to_world = np.swapaxes(world_to_rotated, 1, 2)
    cols, rows = detector.size
    spacing = np.asarray(detector.spacing)
    direction = np.asarray(detector.direction)
    centre = np.asarray(detector.origin) + direction @ (spacing * (np.array([cols, rows]) - 1) / 2.0)
    local = np.zeros((views, 4, 3))
    if beam == "cone":
        local[:, 0] = np.stack([params["source_offset_x"], params["source_offset_y"], params["sid"]], 1)
        local[:, 1, 2] = params["sid"] - params["sdd"]
    else:
        local[:, 0, 2] = -1.0
        local[:, 1, 2] = -params["sid"]
    local[:, 1, 0] = centre[0] + params["proj_offset_x"]
    local[:, 1, 1] = centre[1] + params["proj_offset_y"]
    local[:, 2, :2] = direction[:, 0] * spacing[0]
    local[:, 3, :2] = direction[:, 1] * spacing[1]
    vectors = np.einsum("ij,njk,nlk->nli", world, rotated_to_world, local).reshape(views, 12)
    return Geometry(vectors, rows, cols, beam)


def from_rtk_parameters(
    sid,
    sdd,
    gantry_angle,
    proj_offset_x=0.0,
    proj_offset_y=0.0,
    out_of_plane_angle=0.0,
    in_plane_angle=0.0,
    source_offset_x=0.0,
    source_offset_y=0.0,
    *,
    detector,
    spacing=None,
    origin=None,
    direction=None,
    world: str = "rtk",
) -> Geometry:
    """Our `Geometry` from RTK's ``AddProjection`` parameters (mm and degrees; each one
    number or one per view) and the projection stack (see `rtk_detector`:
    ``detector=(cols, rows)`` with ``spacing``/``origin``/``direction``, or an ITK
    image). ``world`` is ``"rtk"`` (RTK's coordinates) or ``"circular"`` (see the module
    notes)."""
    given = dict(zip(_PARAMETERS, (sid, sdd, gantry_angle, proj_offset_x, proj_offset_y,
                                   out_of_plane_angle, in_plane_angle, source_offset_x, source_offset_y)))
    views = max(np.size(value) for value in given.values())
    params = {name: per_view(name, value, views) for name, value in given.items()}
    for name in _ANGLES:
        params[name] = np.radians(params[name])
    return _geometry_from_parameters(params, rtk_detector(detector, spacing, origin, direction), _world(world))


def _object_parameters(geometry) -> dict:
    """The per-view parameters (radians) of an ``rtk.ThreeDCircularProjectionGeometry``."""
    if geometry.GetRadiusCylindricalDetector() != 0:
        raise ValueError("RTK geometries with a cylindrical detector are not supported (flat panels only)")
    for side in ("UInf", "USup", "VInf", "VSup"):
        if np.any(np.asarray(getattr(geometry, f"GetCollimation{side}")()) < np.finfo(np.float64).max):
            raise ValueError("this RTK geometry is collimated; collimation jaws have no equivalent here")
    getters = {
        "sid": "GetSourceToIsocenterDistances", "sdd": "GetSourceToDetectorDistances",
        "gantry_angle": "GetGantryAngles", "proj_offset_x": "GetProjectionOffsetsX",
        "proj_offset_y": "GetProjectionOffsetsY", "out_of_plane_angle": "GetOutOfPlaneAngles",
        "in_plane_angle": "GetInPlaneAngles", "source_offset_x": "GetSourceOffsetsX",
        "source_offset_y": "GetSourceOffsetsY",
    }
    params = {name: finite_array(getter, list(getattr(geometry, getter)()), (None,))
              for name, getter in getters.items()}
    if params["sid"].size == 0:
        raise ValueError("the RTK geometry has no projections")
    return params


def _xml_number(element) -> float:
    """The number an XML element holds."""
    try:
        value = float((element.text or "").strip())
    except ValueError:
        raise ValueError(f"<{element.tag}> must hold a number, got {element.text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"<{element.tag}> must be finite, got {value}")
    return value


def _xml_matrix(element) -> np.ndarray:
    """The 3x4 matrix of a ``<Matrix>`` element."""
    try:
        numbers = [float(word) for word in (element.text or "").split()]
    except ValueError:
        raise ValueError(f"<Matrix> must hold 12 numbers, got {element.text!r}") from None
    return finite_array("<Matrix>", numbers, (12,)).reshape(3, 4)


def _xml_update(state: dict, element) -> bool:
    """Applies one parameter element to `state`; True if it was a geometry parameter."""
    tag = element.tag.lower()
    if tag in _XML_PARAMETERS:
        state[_XML_PARAMETERS[tag]] = _xml_number(element)
        return True
    if tag in _XML_REFUSED:
        if tag == "radiuscylindricaldetector" and _xml_number(element) == 0:
            return False
        raise ValueError(f"this RTK geometry has {_XML_REFUSED[tag]} (<{element.tag}>), "
                         "which has no equivalent here")
    return False


def _xml_root(text: str):
    """The ``<RTKThreeDCircularGeometry>`` element of an RTK geometry file's text."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        raise ValueError(f"not an XML document: {error}") from None
    if root.tag.lower() != "rtkthreedcirculargeometry":
        raise ValueError(f"an RTK geometry file's root is <RTKThreeDCircularGeometry>, got <{root.tag}>")
    if root.get("version") not in ("2", "3"):
        raise ValueError(f"RTK geometry file version {root.get('version')!r} is not 2 or 3")
    return root


def read_rtk_xml(text: str) -> Tuple[List[RtkProjection], List[Optional[np.ndarray]]]:
    """The views of an RTK geometry XML file's text: their `RtkProjection` (degrees)
    and the 3x4 ``<Matrix>`` each ``<Projection>`` carries (None where absent).

    Read as RTK's ``ThreeDCircularProjectionGeometryXMLFileReader`` reads it: a
    parameter keeps its value, from wherever it was last given in document order (at
    the top level or in an earlier ``<Projection>``), until given again; ``<Angle>`` is
    ``<GantryAngle>``. For a file of matrices without any parameter (which RTK's own
    reader refuses) the list of projections is empty. Cylindrical detectors and
    collimation raise ValueError."""
    state = dict.fromkeys(_PARAMETERS, 0.0)
    projections, matrices, parameters_seen = [], [], False
    for element in _xml_root(text):
        if element.tag.lower() != "projection":
            parameters_seen |= _xml_update(state, element)
            continue
        matrix = None
        for child in element:
            if child.tag.lower() == "matrix":
                matrix = _xml_matrix(child)
            else:
                parameters_seen |= _xml_update(state, child)
        projections.append(RtkProjection(**state))
        matrices.append(matrix)
    if not projections:
        raise ValueError("the RTK geometry file has no <Projection>")
    return (projections if parameters_seen else []), matrices


def rtk_matrix(projection: RtkProjection) -> np.ndarray:
    """RTK's 3x4 projection matrix of one view (as ``GetMatrix`` gives it): world mm to
    detector physical coordinates, homogeneous."""
    p = projection
    r = np.eye(4)
    r[:3, :3] = _rotation(*np.radians([[p.gantry_angle], [p.out_of_plane_angle], [p.in_plane_angle]]))[0]
    source = np.eye(4)
    source[:2, 3] = (-p.source_offset_x, -p.source_offset_y)
    if p.sdd == 0:
        magnification = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])
    else:
        magnification = np.array([[-p.sdd, 0, 0, 0], [0, -p.sdd, 0, 0], [0, 0, 1.0, -p.sid]])
    shift = np.eye(3)
    shift[:2, 2] = (p.source_offset_x - p.proj_offset_x, p.source_offset_y - p.proj_offset_y)
    return shift @ magnification @ source @ r


def _check_matrices(projections: List[RtkProjection], matrices: List[Optional[np.ndarray]]) -> None:
    """A ValueError where a file's ``<Matrix>`` disagrees with its parameters (RTK's
    reader allows 0.001 per entry)."""
    for view, (projection, matrix) in enumerate(zip(projections, matrices)):
        if matrix is not None and np.abs(matrix - rtk_matrix(projection)).max() > 1e-3:
            raise ValueError(f"projection {view}: <Matrix> and the parameters disagree")


def _matrix_views(matrices: List[Optional[np.ndarray]], detector: RtkDetector, world: np.ndarray) -> Geometry:
    """Our geometry from RTK projection matrices alone (cone beam): each is turned into a
    pixel-index camera matrix and read as one (`camera.from_projection_matrices`)."""
    from .camera import from_projection_matrices

    if any(matrix is None for matrix in matrices):
        raise ValueError("an RTK geometry file without parameters needs a <Matrix> in every <Projection>")
    spacing = np.asarray(detector.spacing)
    to_index = np.diag(1.0 / spacing) @ np.asarray(detector.direction).T
    pixel = np.eye(3)
    pixel[:2, :2] = to_index
    pixel[:2, 2] = -to_index @ np.asarray(detector.origin)
    # RTK's w is negative in front of the source; cameras have it positive.
    cameras = np.stack([-pixel @ matrix for matrix in matrices])
    cols, rows = detector.size
    geometry = from_projection_matrices(cameras, (rows, cols), pixel=tuple(spacing))
    vectors = np.einsum("ij,nkj->nki", world, geometry.vectors.reshape(-1, 4, 3)).reshape(-1, 12)
    return Geometry(vectors, rows, cols, "cone")


def _xml_text(source) -> str:
    """XML text from text or from a path."""
    if isinstance(source, str) and source.lstrip().startswith("<"):
        return source
    with open(os.fspath(source), encoding="utf-8") as handle:
        return handle.read()


def from_rtk(geometry, detector, spacing=None, origin=None, direction=None, world: str = "rtk") -> Geometry:
    """Our `Geometry` from an RTK geometry: an ``rtk.ThreeDCircularProjectionGeometry``,
    or an RTK geometry XML file (its text, or a path), with the projection stack
    described as in `rtk_detector` (an ITK image, or ``(cols, rows)`` with ``spacing``,
    ``origin``, ``direction``). ``world`` is ``"rtk"`` or ``"circular"`` (module notes).

    XML files are read as RTK reads them (`read_rtk_xml`); where they have parameters,
    their ``<Matrix>`` elements are checked against them; a file of matrices only is read
    from the matrices. Cylindrical detectors and collimated geometries raise ValueError."""
    frame = _world(world)
    described = rtk_detector(detector, spacing, origin, direction)
    if isinstance(geometry, (str, os.PathLike)):
        projections, matrices = read_rtk_xml(_xml_text(geometry))
        if not projections:
            return _matrix_views(matrices, described, frame)
        _check_matrices(projections, matrices)
        params = {name: np.array([getattr(p, name) for p in projections]) for name in _PARAMETERS}
        for name in _ANGLES:
            params[name] = np.radians(params[name])
    elif hasattr(geometry, "GetGantryAngles"):
        params = _object_parameters(geometry)
    else:
        raise TypeError(f"expected an RTK geometry, its XML text or a path, got {type(geometry).__name__}")
    return _geometry_from_parameters(params, described, frame)


def _zxy_angles(rotations: np.ndarray) -> np.ndarray:
    """``(gantry, out_of_plane, in_plane)`` radians ``(n, 3)`` with
    ``_rotation(gantry, out_of_plane, in_plane) == rotations``."""
    r = rotations
    a = np.arcsin(np.clip(r[:, 2, 1], -1.0, 1.0))
    b = np.arctan2(-r[:, 2, 0], r[:, 2, 2])
    c = np.arctan2(-r[:, 0, 1], r[:, 1, 1])
    locked = np.abs(np.cos(a)) < 1e-12
    b = np.where(locked, np.arctan2(r[:, 0, 2], r[:, 0, 0]), b)
    c = np.where(locked, 0.0, c)
    return -np.stack([b, a, c], 1)


def to_rtk(geometry: Geometry, world: str = "rtk") -> Tuple[List[RtkProjection], RtkDetector]:
    """RTK's parameters for `geometry`: one `RtkProjection` per view (degrees; feed them
    to ``AddProjection(*p)``) and the projection stack (`RtkDetector`).

    Representable: orthogonal u and v, the same pixel pitch in every view, and the same
    detector facing in every view. A detector whose columns run the other way to RTK's
    (our circular scan) gets the stack direction ``diag(-1, 1)``, so that RTK's
    projections are ours pixel for pixel. A parallel beam must run perpendicular to its
    detector and have the isocentre (world origin) in front of it; RTK integrates only
    from the detector plane to the plane as far beyond the isocentre. Others raise
    ValueError.
    """
    check_geometry(geometry)
    check_orthogonal(geometry)
    back = _world(world).T
    s, d, u, v = (np.einsum("ij,nj->ni", back, geometry.vectors[:, k:k + 3]) for k in (0, 3, 6, 9))
    pitch = (common_length("column", u), common_length("row", v))
    x_axis, y_axis = unit_rows("u", u), unit_rows("v", v)
    normal = np.cross(x_axis, y_axis)
    front = np.sum(((s - d) if geometry.beam == "cone" else -d) * normal, axis=1)
    if np.any(front == 0) or not (np.all(front > 0) or np.all(front < 0)):
        raise ValueError("the detectors do not all face the same way (or one passes through the source or "
                         "isocentre); RTK's projection stack has one direction")
    flip = 1.0 if front[0] > 0 else -1.0
    x_axis = flip * x_axis
    rotated_to_world = np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)], 2)
    world_to_rotated = np.swapaxes(rotated_to_world, 1, 2)
    angles = np.degrees(_zxy_angles(world_to_rotated))
    s_local = np.einsum("nij,nj->ni", world_to_rotated, s)
    d_local = np.einsum("nij,nj->ni", world_to_rotated, d)
    if geometry.beam == "cone":
        sid, sdd, source = s_local[:, 2], s_local[:, 2] - d_local[:, 2], s_local[:, :2]
    else:
        along = np.abs(np.einsum("nij,nj->ni", world_to_rotated, unit_rows("direction", s))[:, 2])
        if np.any(along < 1 - 1e-9):
            raise ValueError("RTK's parallel beams run perpendicular to the detector; "
                             "this geometry's rays are oblique")
        sid, sdd, source = -d_local[:, 2], np.zeros(geometry.views), np.zeros((geometry.views, 2))
    table = np.stack([sid, sdd, angles[:, 0], d_local[:, 0], d_local[:, 1], angles[:, 1], angles[:, 2],
                      source[:, 0], source[:, 1]], 1)
    projections = [RtkProjection(*map(float, row)) for row in table]
    direction = np.diag([flip, 1.0])
    size = np.array([geometry.cols, geometry.rows])
    origin = -direction @ (np.asarray(pitch) * (size - 1) / 2.0)
    detector = RtkDetector((geometry.cols, geometry.rows), pitch, tuple(map(float, origin)),
                           tuple(tuple(map(float, row)) for row in direction))
    return projections, detector


def to_rtk_xml(geometry: Geometry, world: str = "rtk") -> str:
    """`geometry` as the text of an RTK geometry file (version 3, as RTK's writer lays
    it out, every parameter given per projection, with its ``<Matrix>``), for
    ``rtk.ReadGeometry`` or ``rtk.ThreeDCircularProjectionGeometryXMLFileReader``. The
    projection stack it needs is `to_rtk`'s `RtkDetector` (not part of RTK's format)."""
    projections, _ = to_rtk(geometry, world)
    tags = ("SourceToIsocenterDistance", "SourceToDetectorDistance", "GantryAngle", "ProjectionOffsetX",
            "ProjectionOffsetY", "OutOfPlaneAngle", "InPlaneAngle", "SourceOffsetX", "SourceOffsetY")
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE RTKGEOMETRY>", '<RTKThreeDCircularGeometry version="3">']
    for projection in projections:
        lines.append("  <Projection>")
        lines += [f"    <{tag}>{value!r}</{tag}>" for tag, value in zip(tags, projection)]
        lines.append("    <Matrix>")
        lines += ["      " + " ".join(repr(float(x)) for x in row) for row in rtk_matrix(projection)]
        lines.append("    </Matrix>")
        lines.append("  </Projection>")
    lines.append("</RTKThreeDCircularGeometry>")
    return "\n".join(lines) + "\n"


def grid_from_rtk(image, spacing=None, origin=None, direction=None, world: str = "rtk") -> VolumeGrid:
    """Our `VolumeGrid` for an ITK/RTK volume: an ITK image, or its ``size``
    ``(nx, ny, nz)`` with ``spacing`` (default 1 mm), ``origin`` (the centre of voxel 0,
    default ITK's 0) and ``direction`` (default the identity). The image's array
    (``itk.array_from_image``, ``[z, y, x]``) is then our volume array as is."""
    if _is_itk_image(image):
        if spacing is not None or origin is not None or direction is not None:
            raise ValueError("give either an ITK image or size/spacing/origin/direction, not both")
        size, spacing, origin, direction = _image_info(image)
    else:
        size = finite_array("size", image, (3,))
        size = np.array([count(f"size[{i}]", n) for i, n in enumerate(size)])
        spacing = finite_array("spacing", (1.0, 1.0, 1.0) if spacing is None else spacing, (3,))
        origin = finite_array("origin", (0.0, 0.0, 0.0) if origin is None else origin, (3,))
        direction = finite_array("direction", np.eye(3) if direction is None else direction, (3, 3))
    frame = _world(world)
    affine = np.eye(4)
    affine[:3, :3] = frame @ direction @ np.diag(spacing)
    affine[:3, 3] = frame @ origin
    return VolumeGrid.from_affine(tuple(int(n) for n in size[::-1]), affine)


def grid_to_rtk(grid: VolumeGrid, world: str = "rtk") -> ItkImageInfo:
    """Where an ITK image of `grid` lies (set them with ``SetSpacing``, ``SetOrigin``,
    ``SetDirection`` on ``itk.image_from_array(data)``)."""
    if not isinstance(grid, VolumeGrid):
        raise TypeError(f"expected a VolumeGrid, got {type(grid).__name__}")
    back = _world(world).T
    direction = back @ grid.direction
    origin = back @ grid.affine[:3, 3]
    nz, ny, nx = grid.shape
    return ItkImageInfo((nx, ny, nz), tuple(map(float, grid.spacing)), tuple(map(float, origin)),
                        tuple(tuple(map(float, row)) for row in direction))
