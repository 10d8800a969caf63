"""Our Siddon against DiffDRR's (a peer implementation), at a pose DiffDRR places.

DiffDRR's conventions, as read in its source (diffdrr 0.6.1):

* Volume placement (``diffdrr/data.py``, ``read`` and ``canonicalize``): the
  ``torchio.ScalarImage``'s 4x4 affine maps a voxel index ``(i, j, k)`` to the world
  (RAS+, mm) position of that voxel's *centre*; the tensor is ``[1, i, j, k]``.
  ``center_volume=True`` (the default) translates the affine so that the centre of the
  voxel-centre box, ``affine @ ((n - 1) / 2)`` (torchio's ``get_center``), is the world
  origin. ``read`` also turns HU into ``density`` (``transform_hu_to_density``: air
  (<= -800 HU) is set to the soft-tissue minimum, then min-max scaled to [0, 1]); that
  density is what DiffDRR renders, and what we project.
* The renderer (``diffdrr/renderers.py``, ``Siddon`` with ``voxel_shift=0.5``): rays are
  mapped into voxel space by the inverse affine, voxel ``i`` spans ``[i - 0.5, i + 0.5]``
  (planes at ``arange(n + 1) - 0.5``), each segment's voxel is read with
  ``grid_sample(mode="nearest", align_corners=False)`` of ``volume.permute(2, 1, 0)``.
* Output scaling (``diffdrr/drr.py``, ``DRR.render``): the image starts as the ray
  length ``|target - source|`` (world mm) and the renderer multiplies it by
  ``sum density_i * (alpha_{i+1} - alpha_i)``, the alphas being fractions of the
  source-to-target segment. So DiffDRR's Siddon output is the line integral
  ``sum density_i * L_i`` with ``L_i`` in mm, density read as 1/mm: no ``exp``, no
  normalisation, the same quantity as our ``project``.
* Camera (``diffdrr/detector.py``, ``diffdrr/pose.py``): the source sits at the camera
  origin and the detector plane at ``z = sdd`` in the camera frame, pixel centres
  spaced ``delx``, ``dely`` and offset by ``x0``, ``y0``; ``orientation`` ("AP", "PA",
  None) is a fixed 4x4 frame change applied before the pose; a pose from Euler angles
  and a translation ``t`` is the matrix ``[R | R t]``. The image is ``[B, 1, H, W]``
  with pixel ``(r, c)`` the ray to ``target[r * W + c]`` (``reshape_transform``).

We do not re-derive that camera: ``drr.detector(pose, None)`` gives the source and every
pixel's world position, and the test fits our ``Geometry(vectors, rows, cols)`` (source,
detector centre, column step, row step) to them, checking that the fit reproduces every
pixel position.
"""

import numpy as np
import pytest

diffdrr = pytest.importorskip("diffdrr")
torch = pytest.importorskip("torch")
torchio = pytest.importorskip("torchio")

from diffdrr.data import read  # noqa: E402
from diffdrr.drr import DRR  # noqa: E402
from diffdrr.pose import convert  # noqa: E402

import xray_projector as xp  # noqa: E402

SHAPE = (64, 60, 56)  # (ni, nj, nk): not a cube, so that an axis mix-up shows
SPACING = (1.25, 1.0, 1.125)  # exact in float32 (DiffDRR keeps its affine in float32)
SDD = 1000.0
HEIGHT, WIDTH = 56, 64  # not square either
DELX, DELY = 1.6, 1.9
X0, Y0 = 3.0, -2.0  # principal point offsets (mm)


def _smooth_step(r, radius, width=2.0):
    """1 inside an ellipsoid, 0 outside, with a smooth (tanh) edge ``width`` voxels wide;
    ``r`` is the ellipsoidal radius (1 on the surface), ``radius`` a mean semi-axis
    (voxels), so that ``(r - 1) * radius`` is about the distance to the surface."""
    return 0.5 * (1.0 - torch.tanh((r - 1.0) * radius / width))


def _phantom_hu():
    """A CT-like volume in HU, ``[1, i, j, k]``: an ellipsoidal body of soft tissue with
    a gentle texture, a lung-like cavity and two bone-like ellipsoids, all with smooth
    edges about two voxels wide (so the density has no jumps, including at DiffDRR's
    -800 HU air cut; neighbouring voxels differ by at most ~0.25 of the maximum)."""
    ni, nj, nk = SHAPE
    i, j, k = torch.meshgrid(
        *[torch.arange(n, dtype=torch.float64) for n in SHAPE], indexing="ij"
    )

    def ellipsoid(ci, cj, ck, ri, rj, rk):
        r = torch.sqrt(((i - ci) / ri) ** 2 + ((j - cj) / rj) ** 2 + ((k - ck) / rk) ** 2)
        return _smooth_step(r, (ri + rj + rk) / 3.0)

    body = ellipsoid(ni / 2, nj / 2, nk / 2, 0.42 * ni, 0.38 * nj, 0.45 * nk)
    texture = 30.0 * torch.sin(i / 4.0) * torch.cos(j / 5.0 + k / 7.0)
    hu = -1000.0 + body * (1040.0 + texture)
    hu = hu - 700.0 * ellipsoid(0.35 * ni, 0.5 * nj, 0.55 * nk, 8, 10, 12)
    hu = hu + 900.0 * ellipsoid(0.62 * ni, 0.45 * nj, 0.5 * nk, 5, 6, 18)
    hu = hu + 600.0 * ellipsoid(0.5 * ni, 0.7 * nj, 0.4 * nk, 7, 4, 5)
    return hu.to(torch.float32)[None]


def _affine(kind):
    """The volume's voxel-centre affine (before DiffDRR centres it).

    "axis": RAS-aligned, anisotropic spacing, an arbitrary offset. "flipped": the index
    axes permuted and one reversed (a reflection, as scanner LPS/RAS flips give); every
    entry stays exact in float32.
    """
    a = np.eye(4)
    if kind == "axis":
        a[:3, :3] = np.diag(SPACING)
    elif kind == "flipped":
        # Index axes i -> -y, j -> +x, k -> -z (world): a permutation with a reflection
        # (det -1), the columns scaled by the spacing.
        a[:3, :3] = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]) * np.array(SPACING)
    else:
        raise ValueError(kind)
    a[:3, 3] = (12.5, -30.0, 40.0)
    return a


def _fit_geometry(source, target):
    """Our one-view `Geometry` from DiffDRR's source ``(1, 1, 3)`` and pixel targets
    ``(1, H*W, 3)``: the detector centre is the mean of the pixel centres, the column
    and row steps their mean differences. Returns the geometry and the largest distance
    (mm) between a fitted pixel centre and DiffDRR's."""
    s = source.detach().double().reshape(3).numpy()
    t = target.detach().double().reshape(HEIGHT, WIDTH, 3).numpy()
    centre = t.mean(axis=(0, 1))
    u = ((t[:, -1] - t[:, 0]) / (WIDTH - 1)).mean(axis=0)
    v = ((t[-1, :] - t[0, :]) / (HEIGHT - 1)).mean(axis=0)
    r = np.arange(HEIGHT) - (HEIGHT - 1) / 2
    c = np.arange(WIDTH) - (WIDTH - 1) / 2
    fitted = centre + c[None, :, None] * u + r[:, None, None] * v
    misfit = float(np.abs(fitted - t).max())
    geometry = xp.Geometry(np.concatenate([s, centre, u, v])[None], HEIGHT, WIDTH)
    return geometry, misfit


CASES = [
    # (orientation, affine kind, reverse_x_axis, Euler angles ZXY (rad), translation)
    ("AP", "axis", True, (0.3, -0.2, 0.1), (5.0, 850.0, -10.0)),
    ("PA", "flipped", False, (-0.7, 0.15, -0.25), (-8.0, -800.0, 6.0)),
]


@pytest.mark.parametrize("orientation,kind,reverse_x_axis,angles,translation", CASES)
def test_siddon_matches_diffdrr_siddon(orientation, kind, reverse_x_axis, angles, translation):
    image = torchio.ScalarImage(tensor=_phantom_hu(), affine=_affine(kind))
    subject = read(image, orientation=orientation)  # center_volume=True
    drr = DRR(
        subject, sdd=SDD, height=HEIGHT, width=WIDTH, delx=DELX, dely=DELY, x0=X0, y0=Y0,
        reverse_x_axis=reverse_x_axis, renderer="siddon",
    )
    rotation = torch.tensor([angles], dtype=torch.float32)
    shift = torch.tensor([translation], dtype=torch.float32)

    # Our volume: DiffDRR's own density, [i, j, k] -> our [z, y, x] = [k, j, i], on the
    # grid of DiffDRR's (centred) affine.
    data = np.ascontiguousarray(drr.density.detach().permute(2, 1, 0).numpy())
    assert data.dtype == np.float32
    volume = xp.Volume.from_affine(data, np.asarray(subject.volume.affine))

    # DiffDRR as shipped (float32).
    img32 = drr(rotation, shift, parameterization="euler_angles", convention="ZXY")
    assert img32.shape == (1, 1, HEIGHT, WIDTH)

    # DiffDRR in float64, as a sharper reference: the same module moved to float64 (in
    # place) and its affine (kept in float32 by DRR.__init__) and inverse recomputed in
    # float64, as its source suggests for quality (its issue #202). Only rounding changes.
    drr64 = drr.to(torch.float64)
    drr64._affine = torch.as_tensor(subject.volume.affine, dtype=torch.float64).unsqueeze(0)
    drr64._affine_inverse = drr64._affine.inverse()
    pose = convert(
        rotation.double(), shift.double(), parameterization="euler_angles", convention="ZXY"
    )
    source, target = drr64.detector(pose, None)
    density = drr64.density.detach().clone().requires_grad_(True)
    img64 = drr64.reshape_transform(drr64.render(density, source, target), batch_size=1)

    # Our geometry, fitted to DiffDRR's own source and pixel positions.
    geometry, misfit = _fit_geometry(source, target)
    # DiffDRR's pixels lie on a regular grid in a plane: the fit is exact to f64 rounding.
    assert misfit < 1e-9
    # The volume lies between the source and the detector (DiffDRR does not clip its
    # rays to [source, target]; we do): along the central direction every corner of the
    # voxel box is in front of the source and nearer than the detector.
    s = geometry.sources[0]
    axis = geometry.detectors[0] - s
    axis /= np.linalg.norm(axis)
    corners = np.array(
        [[a, b, c, 1.0] for a in (-0.5, SHAPE[0] - 0.5) for b in (-0.5, SHAPE[1] - 0.5)
         for c in (-0.5, SHAPE[2] - 0.5)]
    ) @ np.asarray(subject.volume.affine).T
    depth = (corners[:, :3] - s) @ axis
    assert depth.min() > 0 and depth.max() < np.linalg.norm(geometry.detectors[0] - s)

    ours = xp.project(volume, geometry, method="siddon", backend="cpu")[0].astype(np.float64)

    ref64 = img64.detach()[0, 0].numpy()
    ref32 = img32.detach()[0, 0].double().numpy()
    scale = ref64.max()
    assert scale > 10.0 and (ref64 > 0.01 * scale).mean() > 0.3  # the volume is in view
    seen = ref64 > 0.01 * scale
    err64 = np.abs(ours - ref64).max() / scale
    err32 = np.abs(ours - ref32).max() / scale
    err_diffdrr = np.abs(ref32 - ref64).max() / scale
    mean_rel = np.mean(np.abs(ours - ref64)[seen] / ref64[seen])
    print(
        f"\n{orientation}/{kind}: max |ours - DiffDRR f64| / max = {err64:.2e}, "
        f"max |ours - DiffDRR f32| / max = {err32:.2e}, "
        f"max |DiffDRR f32 - DiffDRR f64| / max = {err_diffdrr:.2e}, "
        f"mean relative error (pixels above 1% of max) = {mean_rel:.2e}"
    )
    # Against the f64 reference what is left is our f32 walk. Its ray parameter runs
    # from the source, ~800 voxels from the grid, so a crossing is placed to ~1 ulp of t
    # (~6e-5 voxel), and the incremental crossing parameters (t_next += t_delta, the
    # same increment each step) drift systematically: ~1e-3 voxel after a 64-voxel walk
    # (up to ~3e-3). In a line integral through a smooth density those shifts nearly
    # cancel (a shift of the crossing between two voxels changes the sum by the shift
    # times their difference, <= ~0.25 of the maximum here and mostly far less): we
    # measured 3e-5..4e-5 of the maximum integral. 2e-4 leaves a margin of ~5; a
    # convention error (half a voxel or half a pixel off, an axis flipped) gives 4e-2 or
    # more here.
    assert err64 < 2e-4
    # Against DiffDRR as shipped, its own f32 rounding adds to that (printed above;
    # ~1e-5 here): the bound above plus 1e-4 for it.
    assert err32 < 3e-4

    # The adjoints agree too: DiffDRR's autograd gradient of <w, DRR> with respect to the
    # density is its A^T w; ours is backproject(w). Compared in the 2-norm (a voxel
    # grazed by a ray near its corner can differ by more, relative to itself). Here the
    # walk's drift does not cancel: each voxel's value is w times its own segment
    # length (a voxel is crossed by a few of the 3584 rays), and a segment of
    # ~1 voxel is off by the ~1e-3 voxel drift of its ends, so ~5e-4 in the 2-norm is
    # what f32 gives (measured 5e-4..6e-4); 2e-3 bounds it with a margin of ~3.
    w = torch.rand((1, 1, HEIGHT, WIDTH), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    (grad,) = torch.autograd.grad((img64 * w).sum(), density)
    theirs = grad.permute(2, 1, 0).numpy()
    mine = xp.backproject(
        np.ascontiguousarray(w[0].to(torch.float32).numpy()), geometry, volume.grid,
        method="siddon", backend="cpu",
    ).astype(np.float64)
    adj = np.linalg.norm(mine - theirs) / np.linalg.norm(theirs)
    print(f"{orientation}/{kind}: |backproject(w) - DiffDRR's gradient| / |gradient| = {adj:.2e}")
    assert adj < 2e-3
