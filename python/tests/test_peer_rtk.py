"""Our projectors against RTK's Joseph forward projector (itk-rtk, CPU), through the
converters: an RTK geometry and an ITK volume are converted with
`xray_projector.convert` and projected by both.

What to expect (rtkJosephForwardProjectionImageFilter.hxx, ThreadedGenerateData and
BilinearInterpolationOnBorders): RTK samples the ray once per slice of its dominant
index axis, at the slice's voxel-centre plane, bilinearly in the other two axes, and
weights each sample by the ray's length per slice, as we do. It differs at the
boundary: its box is the hull of the voxel centres (half a voxel in from the grid's
faces), its first and last samples are weighted by the partial step, and it repeats
the edge voxels instead of reading zeros outside. The phantom below is zero within
six voxels of every face, where those differences vanish, so the two projections agree
to float32 rounding: max |diff| / max |p| was 9e-6 (asserted: 1e-4).

Siddon (exact path lengths through piecewise-constant voxels) is a different model of
the same object: it differs from Joseph by up to 7% of the largest value at the
ellipsoids' edges (asserted: 20%), and its integral over the detector agreed with RTK's
to 4e-5 (asserted: 1%).
"""

import numpy as np
import pytest

itk = pytest.importorskip("itk")
from itk import RTK as rtk  # noqa: E402

import xray_projector as xp  # noqa: E402
from xray_projector import convert as xc  # noqa: E402

IMAGE = itk.Image[itk.F, 3]
N = 64
SPACING = (1.0, 1.2, 0.9)
FIRST_VOXEL_CENTRE = (-30.0, -40.0, -25.0)
DETECTOR = dict(detector=(96, 80), spacing=(1.1, 1.25), origin=(-54.0, -48.0))
VIEWS = [
    # sid, sdd, gantry, proj offset x, y, out-of-plane, in-plane, source offset x, y (mm, degrees)
    xc.RtkProjection(500.0, 800.0, 0.0),
    xc.RtkProjection(520.0, 790.0, 37.0, 4.0, -3.0),
    xc.RtkProjection(480.0, 810.0, 95.0, 0.0, 2.0, 12.0),
    xc.RtkProjection(500.0, 800.0, 200.0, -5.0, 0.0, -8.0, 6.0, 3.0, -2.0),
    xc.RtkProjection(510.0, 805.0, 301.0, 2.0, 5.0, 4.0, -10.0, -4.0, 1.0),
]


def phantom(n):
    """Nested ellipsoids of water-like attenuation (1/mm), as the project's benchmark
    anchors (shared/anchors/geometry.py) make them, shrunk by 0.9 so that the volume's
    outer six voxels are empty."""
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) / 0.9,) * 3, indexing="ij")
    vol = np.zeros((n, n, n), np.float32)
    vol[(x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.85) ** 2 < 1] = 0.02
    vol[(x / 0.3) ** 2 + ((y - 0.2) / 0.25) ** 2 + (z / 0.4) ** 2 < 1] = 0.04
    vol[((x + 0.3) / 0.1) ** 2 + (y / 0.1) ** 2 + (z / 0.1) ** 2 < 1] = 0.06
    return vol


def volume_image(data):
    image = itk.image_from_array(data)  # numpy [z, y, x] -> ITK (x, y, z)
    image.SetSpacing(SPACING)
    image.SetOrigin(FIRST_VOXEL_CENTRE)
    return image


def rtk_geometry(projections):
    geometry = rtk.ThreeDCircularProjectionGeometry.New()
    for p in projections:
        geometry.AddProjection(*map(float, p))
    return geometry


def rtk_joseph(image, geometry, detector: xc.RtkDetector, views):
    """RTK's Joseph projection, ``[views, rows, cols]`` (itk.array_from_image order)."""
    source = rtk.ConstantImageSource[IMAGE].New()
    source.SetSize([*detector.size, views])
    source.SetSpacing([*detector.spacing, 1.0])
    source.SetOrigin([*detector.origin, 0.0])
    direction = np.eye(3)
    direction[:2, :2] = detector.direction
    source.SetDirection(itk.matrix_from_array(direction))
    source.SetConstant(0.0)
    projector = rtk.JosephForwardProjectionImageFilter[IMAGE, IMAGE].New()
    projector.SetInput(0, source.GetOutput())
    projector.SetInput(1, image)
    projector.SetGeometry(geometry)
    projector.Update()
    return np.array(itk.array_from_image(projector.GetOutput()))


def ours(data, grid, geometry, method):
    volume = xp.Volume(data, spacing=grid.spacing, origin=grid.origin, direction=grid.direction)
    return xp.project(volume, geometry, method=method, backend="cpu")


def figure(a, b):
    """max |a - b| / max |b|."""
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def case():
    data = phantom(N)
    image = volume_image(data)
    geometry = rtk_geometry(VIEWS)
    detector = xc.rtk_detector(**DETECTOR)
    return data, image, geometry, detector, rtk_joseph(image, geometry, detector, len(VIEWS))


@pytest.mark.parametrize("world", ["rtk", "circular"])
def test_joseph_agrees_with_rtk_joseph(case, world):
    """RTK's geometry and volume converted (in RTK's world, and in the rotated
    "circular" world, where our grid is rotated too)."""
    data, image, geometry, detector, reference = case
    assert reference.shape == (len(VIEWS), 80, 96) and reference.max() > 0.5
    converted = xc.from_rtk(geometry, *detector, world=world)
    grid = xc.grid_from_rtk(image, world=world)
    projection = ours(data, grid, converted, "joseph")
    error = figure(projection, reference)
    print(f"Joseph vs RTK Joseph ({world} world): max |diff| / max |p| = {error:.2e}")
    assert projection.shape == reference.shape
    assert error < 1e-4


def test_to_rtk_of_our_circular_scan_agrees_with_rtk_joseph(case):
    """Our circular scan (columns the other way to RTK's) through to_rtk: RTK projects
    with the stack direction diag(-1, 1) and gives our pixel order."""
    data, image, _, _, _ = case
    geometry = xp.Geometry.circular(500.0, 800.0, 4, (70, 90), pixel=(1.2, 1.1), start_angle=0.3)
    projections, detector = xc.to_rtk(geometry)
    assert detector.direction == ((-1.0, 0.0), (0.0, 1.0))
    reference = rtk_joseph(image, rtk_geometry(projections), detector, geometry.views)
    projection = ours(data, xc.grid_from_rtk(image), geometry, "joseph")
    error = figure(projection, reference)
    print(f"Joseph vs RTK Joseph (our circular scan via to_rtk): max |diff| / max |p| = {error:.2e}")
    assert reference.max() > 0.5
    assert error < 1e-4


def test_siddon_integral_agrees_with_rtk_joseph(case):
    data, image, geometry, detector, reference = case
    projection = ours(data, xc.grid_from_rtk(image), xc.from_rtk(geometry, *detector), "siddon")
    ratio = float(projection.sum() / reference.sum())
    error = figure(projection, reference)
    print(f"Siddon vs RTK Joseph: sum ratio {ratio:.5f}, max |diff| / max |p| = {error:.2e}")
    assert abs(ratio - 1.0) < 0.01
    assert error < 0.2
