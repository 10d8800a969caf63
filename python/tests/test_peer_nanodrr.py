"""Our projectors against nanodrr's renderer (a peer implementation), at poses nanodrr makes.

nanodrr's conventions, as read in its source (nanodrr 0.1.7):

* Camera (``camera/intrinsics.py`` ``make_k_inv``, ``drr/drr.py`` ``DRR``,
  ``drr/renderer.py`` ``_make_tgt`` and ``_make_src``): a pinhole in OpenCV's camera
  frame. It keeps the *inverse* intrinsics ``k_inv`` and the source-to-detector
  distance ``sdd``; pixel (row ``r``, column ``c``) is at ``sdd * k_inv @ (c + 0.5,
  r + 0.5, 1)`` in the camera frame (pixel centres at half-integers, unlike OpenCV's
  integers) and the source at 0; ``make_k_inv`` has ``fx = sdd / delx``,
  ``cx = x0 / delx + width / 2`` (so the detector centre is at ``(-x0, -y0, sdd)``).
  ``orthographic=True`` starts each ray ``sdd`` behind its pixel along ``z``.
* Pose (``camera/extrinsics.py`` ``make_rt_inv``, ``geometry/se3.py`` ``convert``,
  ``geometry/transform.py`` ``transform_point``): ``rt_inv`` is the 4x4
  camera-to-world matrix applied to those points, ``pose @ reorient``, the pose from
  ZXY Euler angles in degrees with translation ``R @ t + isocenter``; the ``"PA"``
  frame change is a reflection (det -1).
* Volume (``data/subject.py`` ``Subject.from_images``): the torchio tensor
  ``(1, I, J, K)`` becomes ``image`` ``[1, 1, K, J, I]`` (our ``[z, y, x]``), voxel
  centre ``(i, j, k)`` at ``image.affine @ (i, j, k, 1)`` (world not re-centred;
  ``isocenter`` is the volume centre, used only as the pose's pivot); ``image`` is
  attenuation (1/mm) from its ``hu_to_mu``. The affine and its inverse are kept in
  float32.
* Renderer (``drr/backends.py`` ``render_torch``; on the CPU ``pick_fused_backend``
  gives None, so ``backend="auto"`` is this torch path, no triton or metal): the ray,
  mapped to ``grid_sample``'s normalised coordinates, is clipped to the support of the
  trilinear interpolant (voxel indices ``[-1, n]``, zero padding), sampled at
  ``n_samples`` midpoints with ``grid_sample(mode="bilinear", align_corners=False)``
  (trilinear in 3-D), and the sum multiplied by the step in mm (camera-frame length,
  the world's for a rigid ``rt_inv``): the line integral of the trilinearly
  interpolated attenuation, no ``exp``, no normalisation. So the matching model is our
  Joseph (also an integral of the trilinear interpolant, one sample per slice), not
  Siddon (the piecewise-constant voxels): see the bounds below.

Test (a) takes nanodrr's own ray end points (``DRR.src``, ``DRR.tgt`` mapped by
``transform_point(rt_inv, ...)``, as ``render_torch`` does) and checks that
`from_nanodrr` puts our source and every pixel there; test (b) renders a smooth phantom
with nanodrr on the CPU and compares our projections.
"""

import numpy as np
import pytest
from conftest import peer_affine

nanodrr = pytest.importorskip("nanodrr")
torch = pytest.importorskip("torch")
torchio = pytest.importorskip("torchio")

from nanodrr.camera import make_k_inv, make_rt_inv  # noqa: E402
from nanodrr.data import Subject  # noqa: E402
from nanodrr.drr import DRR  # noqa: E402
from nanodrr.drr.backends import pick_fused_backend  # noqa: E402
from nanodrr.geometry import transform_point  # noqa: E402

import xray_projector as xp  # noqa: E402
from xray_projector.convert import from_nanodrr, from_pinhole  # noqa: E402

SHAPE = (48, 48, 48)  # (I, J, K), torchio's index order
SPACING = (1.25, 1.0, 1.125)  # exact in float32 (nanodrr keeps its affine in float32)
SDD = 1000.0
HEIGHT, WIDTH = 40, 48
DELX, DELY = 2.0, 2.2
X0, Y0 = 9.0, -7.0  # principal point off the detector centre (mm)

# Poses, one batch of three views: near an axis of the volume, and two oblique ones.
# ZXY Euler angles (degrees), and the translations (mm, about the volume centre) in the
# orientation's camera frame: the source ~800 mm before the centre, a little off-axis.
ANGLES = [(0.0, 0.0, 0.0), (20.0, -10.0, 5.0), (-35.0, 15.0, -8.0)]
SHIFTS = [(0.0, 0.0, -800.0), (-5.0, 10.0, -800.0), (8.0, -6.0, -760.0)]


def _phantom_hu():
    """A smooth CT-like volume in HU, ``(1, I, J, K)``: air around an ellipsoidal body
    and two inner structures (one denser, one lighter), each a ``(1 - r^2)^p`` bump, so
    the volume is C^1, exactly air at the edges of the grid (nothing for the two
    renderers' different edge handling to see), and neighbouring voxels differ by at
    most ~0.1 of the maximum attenuation."""
    i, j, k = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in SHAPE], indexing="ij")

    def bump(centre, radii, power):
        r2 = sum(((x - c) / r) ** 2 for x, c, r in zip((i, j, k), centre, radii))
        return (1.0 - np.minimum(r2, 1.0)) ** power

    hu = (-1000.0 + 1040.0 * bump((23.5, 24.5, 24.0), (22, 20, 21), 2)
          + 300.0 * bump((30, 20, 27), (12, 14, 13), 3) - 300.0 * bump((18, 28, 22), (12, 11, 13), 3))
    return torch.from_numpy(hu.astype(np.float32))[None]


def _subject64(image, affine):
    """nanodrr's subject of `image` moved to float64 (``Module.to``, in place), with its
    affine, inverse and grid map recomputed in float64 (nanodrr builds them in float32;
    ``Subject._make_voxel_to_grid``'s formula): a sharper reference that differs from
    nanodrr as shipped only in rounding."""
    s = Subject.from_images(image).to(torch.float64)
    size = torch.tensor(SHAPE, dtype=torch.float64)  # (W, H, D) of image [D, H, W] = (I, J, K)
    voxel_to_grid = torch.eye(4, dtype=torch.float64)
    voxel_to_grid[:3, :3] = torch.diag(2.0 / size)
    voxel_to_grid[:3, 3] = 1.0 / size - 1.0
    s.voxel_to_world = torch.from_numpy(affine)
    s.world_to_voxel = s.voxel_to_world.inverse()
    s.voxel_to_grid = voxel_to_grid
    s.world_to_grid = voxel_to_grid @ s.world_to_voxel
    s.isocenter = s.isocenter.double()
    return s


def _camera(dtype, orthographic=False):
    return DRR.from_carm_intrinsics(SDD, DELX, DELY, X0, Y0, HEIGHT, WIDTH, orthographic, dtype=dtype)


def _poses(orientation, isocenter, dtype):
    """nanodrr's camera-to-world matrices ``(3, 4, 4)`` for `ANGLES` and `SHIFTS`. The
    orientation's frame change is ``make_rt_inv`` at the identity pose; it maps the
    camera-frame shifts to the translations ``make_rt_inv`` takes."""
    zero = torch.zeros(1, 3, dtype=dtype)
    reorient = make_rt_inv(zero, zero, orientation)[0, :3, :3]
    rotation = torch.tensor(ANGLES, dtype=dtype)
    translation = torch.tensor(SHIFTS, dtype=dtype) @ reorient.T
    return make_rt_inv(rotation, translation, orientation, isocenter=isocenter.to(dtype))


def _pixels(geometry):
    """Our pixel centres ``(views, rows, cols, 3)``."""
    r = np.arange(geometry.rows) - (geometry.rows - 1) / 2.0
    c = np.arange(geometry.cols) - (geometry.cols - 1) / 2.0
    return (geometry.detectors[:, None, None] + c[None, None, :, None] * geometry.u[:, None, None]
            + r[None, :, None, None] * geometry.v[:, None, None])


@pytest.mark.parametrize("orthographic", [False, True])
@pytest.mark.parametrize("orientation", ["AP", "PA", None])
def test_geometry_is_nanodrrs(orientation, orthographic):
    """(a) nanodrr's own source and pixel positions (world, float64) are ours."""
    drr = _camera(torch.float64, orthographic)
    rt_inv = _poses(orientation, torch.tensor([3.0, -4.0, 5.0]), torch.float64)
    views = rt_inv.shape[0]
    # What render_torch does before its world-to-grid map: camera -> world by rt_inv.
    src = transform_point(rt_inv, drr.src.expand(views, -1, -1)).numpy()
    tgt = transform_point(rt_inv, drr.tgt.expand(views, -1, -1)).numpy().reshape(views, HEIGHT, WIDTH, 3)

    geometry = from_nanodrr(drr, rt_inv)
    assert geometry.shape == (views, HEIGHT, WIDTH)
    assert geometry.beam == ("parallel" if orthographic else "cone")
    pixel_error = np.abs(_pixels(geometry) - tgt).max()
    if orthographic:
        rays = tgt - src.reshape(views, HEIGHT, WIDTH, 3)
        assert np.allclose(np.linalg.norm(rays, axis=-1), SDD, rtol=0, atol=1e-9)
        source_error = np.abs(rays / SDD - geometry.sources[:, None, None]).max() * SDD
    else:
        source_error = np.abs(src[:, 0] - geometry.sources).max()
    print(f"\n{orientation}, orthographic={orthographic}: max pixel error {pixel_error:.1e} mm, "
          f"source/direction error {source_error:.1e} mm")
    assert pixel_error < 1e-9 and source_error < 1e-9

    # The same from nanodrr's raw arguments (render's order after the subject), as NumPy.
    again = from_nanodrr(drr.k_inv.numpy(), rt_inv.numpy(), SDD, HEIGHT, WIDTH, orthographic)
    assert np.abs(again.vectors - geometry.vectors).max() < 1e-12


@pytest.mark.parametrize("orientation", ["AP", None])
def test_is_opencv_pinhole_with_half_pixel_shift(orientation):
    """With a rotation (det +1) for rt_inv, nanodrr's camera is OpenCV's pinhole with the
    principal point half a pixel lower: ``K_opencv = K - 0.5`` in ``cx`` and ``cy``,
    extrinsics ``inverse(rt_inv)``. (The "PA" frame is a reflection, which `from_pinhole`
    refuses.)"""
    rt_inv = _poses(orientation, torch.zeros(3), torch.float64).numpy()
    k_inv = make_k_inv(SDD, DELX, DELY, X0, Y0, HEIGHT, WIDTH, dtype=torch.float64)[0].numpy()
    K = np.linalg.inv(k_inv)
    K[:2, 2] -= 0.5
    pinhole = from_pinhole(K, np.linalg.inv(rt_inv), (HEIGHT, WIDTH), sdd=SDD)
    ours = from_nanodrr(k_inv, rt_inv, SDD, HEIGHT, WIDTH)
    assert np.abs(pinhole.vectors - ours.vectors).max() < 1e-9


def test_from_nanodrr_refuses():
    drr = _camera(torch.float64)
    rt_inv = _poses("AP", torch.zeros(3), torch.float64)
    with pytest.raises(TypeError, match="DRR module"):
        from_nanodrr(drr, rt_inv, sdd=SDD)
    with pytest.raises(TypeError, match="needs sdd"):
        from_nanodrr(drr.k_inv, rt_inv)
    scaled = rt_inv.clone()
    scaled[:, :3, :3] *= 2.0
    with pytest.raises(ValueError, match="orthonormal"):
        from_nanodrr(drr, scaled)
    with pytest.raises(ValueError, match="singular"):
        from_nanodrr(torch.zeros(3, 3), rt_inv, SDD, HEIGHT, WIDTH)
    with pytest.raises(ValueError, match="batch sizes"):
        from_nanodrr(drr.k_inv.expand(2, 3, 3), rt_inv, SDD, HEIGHT, WIDTH)


CASES = [
    # (orientation, affine kind, orthographic)
    ("AP", "axis", False),
    ("PA", "flipped", False),
    (None, "axis", True),
]


@pytest.mark.parametrize("orientation,kind,orthographic", CASES)
def test_joseph_matches_nanodrr(orientation, kind, orthographic):
    """(b) nanodrr's CPU render of a smooth phantom against our Joseph (and Siddon)."""
    affine = peer_affine(kind, SPACING)
    image = torchio.ScalarImage(tensor=_phantom_hu(), affine=affine)
    subject = Subject.from_images(image)
    rt_inv = _poses(orientation, subject.isocenter, torch.float32)
    drr = _camera(torch.float32, orthographic)
    # On the CPU nanodrr's "auto" backend is its torch (grid_sample) path.
    assert pick_fused_backend(subject, rt_inv, drr.tgt, HEIGHT, WIDTH) is None
    shipped = drr(subject, rt_inv).double().numpy()[:, 0]  # float32, n_samples=500
    assert shipped.shape == (len(ANGLES), HEIGHT, WIDTH)

    # A float64 reference with 2000 samples per ray (converged: see the bounds below).
    subject64 = _subject64(image, affine)
    drr64 = _camera(torch.float64, orthographic)
    rt_inv64 = _poses(orientation, subject64.isocenter, torch.float64)
    reference = drr64(subject64, rt_inv64, n_samples=2000, backend="torch").numpy()[:, 0]

    # Ours: nanodrr's own attenuation array (already [z, y, x]) on its affine, and the
    # geometry of its camera and poses.
    volume = xp.Volume.from_affine(subject.image[0, 0].numpy(), subject.voxel_to_world.numpy())
    geometry = from_nanodrr(drr64, rt_inv64)
    joseph = xp.project(volume, geometry, method="joseph", backend="cpu").astype(np.float64)
    siddon = xp.project(volume, geometry, method="siddon", backend="cpu").astype(np.float64)

    scale = reference.max()
    assert scale > 0.2 and (reference > 0.01 * scale).mean() > 0.15  # the volume is in view
    err_joseph = np.abs(joseph - reference).max(axis=(1, 2)) / scale
    err_siddon = np.abs(siddon - reference).max(axis=(1, 2)) / scale
    err_shipped = np.abs(joseph - shipped).max(axis=(1, 2)) / scale
    err_nanodrr = np.abs(shipped - reference).max() / scale
    show = lambda e: ", ".join(f"{x:.1e}" for x in e)  # noqa: E731
    print(f"\n{orientation}/{kind}/orthographic={orthographic}, per view (axial, oblique, oblique), "
          f"max |difference| / max:\n  Joseph vs nanodrr f64: {show(err_joseph)}\n"
          f"  Joseph vs nanodrr as shipped (f32, 500 samples): {show(err_shipped)}\n"
          f"  Siddon vs nanodrr f64: {show(err_siddon)}\n"
          f"  nanodrr f32 vs f64: {err_nanodrr:.1e}")

    # Both Joseph and nanodrr integrate the trilinear interpolant of the same voxels;
    # they differ in the quadrature. nanodrr's converged samples give the integral (2000
    # -> 8000 samples changes it by 2e-7 of the maximum); ours takes one sample per slice
    # of the dominant axis, at the slice plane. Along a ray parallel to an index axis the
    # interpolant is linear between those planes, so one sample per slice is exact; a
    # ray with slopes s across the other two axes also crosses their cell faces between
    # samples, where the interpolant has kinks, and the error is O(s^2 h^2 f'').
    # View 0 runs along an index axis (slopes below 0.06 across the fan, 0 for the
    # parallel beam): measured 2e-7..2.3e-6, our f32 rounding plus s^2 ~ 3e-3 times the
    # kink term; 2e-5 bounds it. The oblique views (slopes up to ~0.8): measured
    # 8e-5..8.2e-4; 3e-3 bounds them with a margin of ~3.5. A convention error is far
    # larger: half a pixel off gives 5e-2..8e-2 on every view, half a voxel 1e-2..4e-2
    # (on the views whose rays it does not run along).
    assert err_joseph[0] < 2e-5
    assert err_joseph.max() < 3e-3
    # nanodrr as shipped adds its float32 rounding and its 500-sample quadrature to that
    # (together measured 3e-6..6e-6 of the maximum): 1e-5 more for them.
    assert err_shipped[0] < 3e-5 and err_shipped.max() < 3e-3 + 1e-5
    # Siddon integrates the piecewise-constant voxels, a different model: along the axial
    # view a ray stays in one column of voxels and misses the interpolant's transverse
    # slope (an O(h f') difference, measured 3e-2..6e-2); oblique rays average it out to
    # O(h^2) (1.5e-3..1.8e-2). Joseph is the nearer model on every view.
    assert np.all(err_joseph < err_siddon)
    assert err_siddon[0] > 100 * err_joseph[0]
