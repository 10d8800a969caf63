"""The geometry converters (xray_projector.convert), without the native module.

Every conversion is checked by mapping world points to detector positions twice: with
our definition (pixel (r, c) at D + (c - (cols-1)/2) u + (r - (rows-1)/2) v, written
out here, not taken from the converters) and with the other tool's own code where it
runs here (ASTRA's C++ ``projectPoint`` through ``astra.experimental``, RTK's matrices,
XML reader and writer, ITK's images, DiffDRR's detector, kornia's pinhole camera), or
with its documented formulas transcribed here where it cannot (TIGRE needs CUDA).
Tests that need another tool skip without it.
"""

import math
import re

import numpy as np
import pytest

from xray_projector import Geometry, VolumeGrid
from xray_projector import convert as xc

RNG_SEED = 20260807


# --- our definitions, written out ------------------------------------------------------


def circular_vectors(sod, sdd, angles, pixel=(1.0, 1.0)):
    """Our circular scan (DESIGN.md): S = (-sod cos a, -sod sin a, 0), D = ((sdd - sod)
    cos a, (sdd - sod) sin a, 0), u = pixel_u (-sin a, cos a, 0), v = pixel_v (0, 0, 1)."""
    a = np.asarray(angles, dtype=np.float64)
    c, s, z, o = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.concatenate([
        np.stack([-sod * c, -sod * s, z], 1),
        np.stack([(sdd - sod) * c, (sdd - sod) * s, z], 1),
        pixel[0] * np.stack([-s, c, z], 1),
        pixel[1] * np.stack([z, z, o], 1),
    ], 1)


def pixel_centres(vectors, rows, cols):
    """``(views, rows, cols, 3)`` world positions of the pixel centres."""
    d, u, v = vectors[:, None, None, 3:6], vectors[:, None, None, 6:9], vectors[:, None, None, 9:12]
    c = (np.arange(cols) - (cols - 1) / 2.0)[None, None, :, None]
    r = (np.arange(rows) - (rows - 1) / 2.0)[None, :, None, None]
    return d + c * u + r * v


def project_points(geometry, points):
    """``(views, points, 2)`` continuous ``(col, row)`` where each world point meets the
    detector along its ray (cone: from the source; parallel: along the rays)."""
    out = np.empty((geometry.views, len(points), 2))
    c0, r0 = (geometry.cols - 1) / 2.0, (geometry.rows - 1) / 2.0
    for n, (s, d, u, v) in enumerate(geometry.vectors.reshape(-1, 4, 3)):
        corner = d - c0 * u - r0 * v
        for k, x in enumerate(points):
            if geometry.beam == "cone":
                col, row, w = np.linalg.solve(np.stack([u, v, corner - s], 1), x - s)
                out[n, k] = (col / w, row / w)
            else:
                col, row, _ = np.linalg.solve(np.stack([u, v, s], 1), x - corner)
                out[n, k] = (col, row)
    return out


def random_points(rng, count=7, radius=60.0):
    return rng.uniform(-radius, radius, size=(count, 3))


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def random_cone_geometry(rng, views=5, rows=6, cols=9, pixel=(0.7, 1.1)):
    """Cone-beam views with a rectangular detector in random poses around the origin."""
    vectors = []
    for _ in range(views):
        frame = random_rotation(rng)
        source = frame @ np.array([0.0, 0.0, -rng.uniform(400, 900)]) + rng.normal(size=3) * 10
        centre = frame @ np.array([0.0, 0.0, rng.uniform(300, 600)]) + rng.normal(size=3) * 10
        vectors.append(np.concatenate([source, centre, frame[:, 0] * pixel[0], frame[:, 1] * pixel[1]]))
    return Geometry(np.array(vectors), rows, cols, "cone")


def assert_same_rays(a, b, atol=1e-9):
    """Same detector, pixel for pixel, and the same sources (cone) or ray lines (parallel)."""
    assert (a.rows, a.cols, a.beam, a.views) == (b.rows, b.cols, b.beam, b.views)
    scale = max(1.0, np.abs(a.vectors).max())
    np.testing.assert_allclose(pixel_centres(a.vectors, a.rows, a.cols),
                               pixel_centres(b.vectors, b.rows, b.cols), atol=atol * scale, rtol=0)
    if a.beam == "cone":
        np.testing.assert_allclose(a.sources, b.sources, atol=atol * scale, rtol=0)
    else:
        cross = np.cross(a.sources / np.linalg.norm(a.sources, axis=1, keepdims=True),
                         b.sources / np.linalg.norm(b.sources, axis=1, keepdims=True))
        np.testing.assert_allclose(cross, 0, atol=atol)


# --- ASTRA -----------------------------------------------------------------------------


def astra_cone(angles, rows=4, cols=6, pitch=(1.5, 2.0), dso=700.0, dod=300.0):
    """ASTRA's 'cone' dict, laid out as astra.create_proj_geom makes it."""
    return {"type": "cone", "DetectorSpacingX": pitch[0], "DetectorSpacingY": pitch[1],
            "DetectorRowCount": rows, "DetectorColCount": cols, "ProjectionAngles": np.asarray(angles),
            "DistanceOriginSource": dso, "DistanceOriginDetector": dod}


def test_astra_cone_vectors_are_astras_documented_formulas():
    """Expectations from ASTRA's geom_2vec (python/astra/functions.py) and
    genConeProjections (src/GeometryUtil3D.cpp) for 'cone'."""
    a = np.array([0.0, 0.4, 2.5])
    g = xc.from_astra(astra_cone(a, dso=700.0, dod=300.0))
    s, c = np.sin(a), np.cos(a)
    np.testing.assert_allclose(g.sources, np.stack([700 * s, -700 * c, 0 * a], 1), atol=1e-12)
    np.testing.assert_allclose(g.detectors, np.stack([-300 * s, 300 * c, 0 * a], 1), atol=1e-12)
    np.testing.assert_allclose(g.u, np.stack([1.5 * c, 1.5 * s, 0 * a], 1), atol=1e-12)
    np.testing.assert_allclose(g.v, np.tile([0, 0, 2.0], (3, 1)), atol=1e-12)
    assert (g.rows, g.cols, g.beam) == (4, 6, "cone")


def test_astra_cone_is_our_circular_scan_turned_a_quarter_with_columns_reversed():
    a = np.linspace(0, 2 * np.pi, 8, endpoint=False) + 0.1
    g = xc.reverse_columns(xc.from_astra(astra_cone(a, pitch=(1.5, 2.0), dso=700.0, dod=300.0)))
    np.testing.assert_allclose(g.vectors, circular_vectors(700.0, 1000.0, a + np.pi / 2, (1.5, 2.0)), atol=1e-9)


def test_astra_parallel3d_rays_follow_astras_genPar3DProjections():
    """Ray (-sin a, cos a, 0) rotated from (0, 1, 0), detector centre at the origin."""
    a = np.array([0.3, 1.7])
    proj = {"type": "parallel3d", "DetectorSpacingX": 0.5, "DetectorSpacingY": 0.8, "DetectorRowCount": 3,
            "DetectorColCount": 5, "ProjectionAngles": a}
    g = xc.from_astra(proj)
    assert g.beam == "parallel"
    np.testing.assert_allclose(g.sources, np.stack([-np.sin(a), np.cos(a), 0 * a], 1), atol=1e-15)
    np.testing.assert_allclose(g.detectors, 0, atol=1e-15)


def astra_geometries(astra):
    rng = np.random.default_rng(RNG_SEED)
    angles = np.array([0.0, 0.7, 2.1, 4.0])
    vectors = random_cone_geometry(rng, views=3, rows=5, cols=7).vectors
    parallel = vectors.copy()
    parallel[:, 0:3] = np.cross(parallel[:, 6:9], parallel[:, 9:12]) + rng.normal(size=(3, 3)) * 0.1
    return [
        astra.create_proj_geom("cone", 1.3, 0.9, 5, 7, angles, 600.0, 400.0),
        astra.create_proj_geom("parallel3d", 1.3, 0.9, 5, 7, angles),
        astra.create_proj_geom("cone_vec", 5, 7, vectors),
        astra.create_proj_geom("parallel3d_vec", 5, 7, parallel),
    ]


def test_astra_projectPoint_agrees_with_our_pixels():
    """ASTRA's own C++ projectPoint (astra.experimental) against our definition, for all
    four geometry types (the angle-based ones use float32 inside ASTRA)."""
    astra = pytest.importorskip("astra")
    experimental = pytest.importorskip("astra.experimental")
    points = random_points(np.random.default_rng(RNG_SEED), radius=40.0)
    for proj in astra_geometries(astra):
        g = xc.from_astra(proj)
        ours = project_points(g, points)
        for view in range(g.views):
            for k, x in enumerate(points):
                theirs = experimental.projectPoint(proj, *map(float, x), view)
                np.testing.assert_allclose(theirs, ours[view, k], atol=2e-4, err_msg=proj["type"])


def test_astra_geom_2vec_gives_our_vectors():
    astra = pytest.importorskip("astra")
    cone, parallel = astra_geometries(astra)[:2]
    np.testing.assert_allclose(xc.from_astra(cone).vectors, astra.functions.geom_2vec(cone)["Vectors"], atol=1e-9)
    theirs = xc.from_astra(astra.functions.geom_2vec(parallel))
    assert_same_rays(xc.from_astra(parallel), theirs)  # geom_2vec writes the ray reversed


def test_astra_round_trips_and_layout():
    g = random_cone_geometry(np.random.default_rng(1))
    proj = xc.to_astra(g)
    assert proj["type"] == "cone_vec" and proj["DetectorRowCount"] == g.rows and proj["DetectorColCount"] == g.cols
    np.testing.assert_array_equal(xc.from_astra(proj).vectors, g.vectors)
    parallel = Geometry(g.vectors, g.rows, g.cols, "parallel")
    assert xc.to_astra(parallel)["type"] == "parallel3d_vec"
    astra = pytest.importorskip("astra")
    made = astra.create_proj_geom("cone_vec", g.rows, g.cols, g.vectors)
    assert list(made) == list(proj)


def test_astra_volume_window_and_array_shapes():
    """Window convention from VolumeGeometry3D.h / create_vol_geom: GridColCount along x,
    GridRowCount along y, GridSliceCount along z; voxel 0 starts at WindowMin."""
    vol = {"option": {"WindowMinX": -10.0, "WindowMaxX": 14.0, "WindowMinY": -3.0, "WindowMaxY": 5.0,
                      "WindowMinZ": 0.0, "WindowMaxZ": 6.0},
           "GridRowCount": 4, "GridColCount": 6, "GridSliceCount": 3}
    grid = xc.grid_from_astra(vol)
    assert grid.shape == (3, 4, 6)
    np.testing.assert_allclose(grid.spacing, (4.0, 2.0, 2.0))
    np.testing.assert_allclose(grid.origin, (-10.0, -3.0, 0.0))
    assert xc.grid_to_astra(grid) == vol
    default = xc.grid_from_astra({"GridRowCount": 4, "GridColCount": 6, "GridSliceCount": 2})
    np.testing.assert_allclose(default.origin, (-3.0, -2.0, -1.0))
    np.testing.assert_allclose(default.spacing, (1.0, 1.0, 1.0))
    rotated = VolumeGrid((2, 2, 2), direction=[[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="axis-aligned"):
        xc.grid_to_astra(rotated)
    astra = pytest.importorskip("astra")
    made = astra.create_vol_geom(4, 6, 3, -10.0, 14.0, -3.0, 5.0, 0.0, 6.0)
    assert made == vol
    volume = astra.data3d.create("-vol", made)
    sino = astra.data3d.create("-sino", astra.create_proj_geom("cone", 1.0, 1.0, 5, 7, np.zeros(2), 100.0, 50.0))
    try:
        assert astra.data3d.get(volume).shape == grid.shape
        sinogram = astra.data3d.get(sino)
        assert sinogram.shape == (5, 2, 7)
        assert xc.projections_from_astra(sinogram).shape == (2, 5, 7)
    finally:
        astra.data3d.delete([volume, sino])


def test_astra_projection_layout_round_trip():
    p = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    a = xc.projections_to_astra(p)
    assert a.shape == (3, 2, 4) and a[1, 0, 2] == p[0, 1, 2]
    np.testing.assert_array_equal(xc.projections_from_astra(a), p)


def test_astra_malformed_input():
    with pytest.raises(ValueError, match="not supported"):
        xc.from_astra({"type": "fanflat"})
    broken = astra_cone([0.0])
    del broken["DistanceOriginSource"]
    with pytest.raises(ValueError, match="DistanceOriginSource"):
        xc.from_astra(broken)
    with pytest.raises(ValueError, match="finite"):
        xc.from_astra(astra_cone([0.0, np.nan]))
    with pytest.raises(ValueError, match="shape"):
        xc.from_astra({"type": "cone_vec", "DetectorRowCount": 2, "DetectorColCount": 2,
                       "Vectors": np.zeros((2, 11))})
    with pytest.raises(TypeError):
        xc.from_astra([1, 2, 3])
    with pytest.raises(ValueError, match="3-D"):
        xc.projections_from_astra(np.zeros((2, 3)))


# --- RTK -------------------------------------------------------------------------------


def rtk_views(rng, count=6):
    """RTK parameter sets (mm, degrees) with offsets, out-of-plane and in-plane angles."""
    return [
        xc.RtkProjection(rng.uniform(600, 1000), rng.uniform(1100, 1500), rng.uniform(0, 360),
                         rng.normal() * 8, rng.normal() * 8, rng.normal() * 15, rng.normal() * 15,
                         rng.normal() * 5, rng.normal() * 5)
        for _ in range(count)
    ]


def itk_and_rtk():
    itk = pytest.importorskip("itk")
    return itk, itk.RTK


def rtk_object(rtk, projections):
    geometry = rtk.ThreeDCircularProjectionGeometry.New()
    for p in projections:
        geometry.AddProjection(*map(float, p))
    return geometry


def rtk_read(rtk, path, text):
    """`text` written to `path` and read by RTK's own XML reader."""
    path.write_text(text)
    reader = rtk.ThreeDCircularProjectionGeometryXMLFileReader.New()
    reader.SetFilename(str(path))
    reader.GenerateOutputInformation()
    return reader.GetOutputObject()


def assert_rtk_matrices_agree(itk, rtk_geometry, geometry, detector, points, world=np.eye(3)):
    """RTK's GetMatrix(i) maps each world point to detector physical coordinates; our
    geometry maps it to (col, row), and the projection stack's origin, spacing and
    direction turn those into the same physical coordinates (1e-9 relative)."""
    ours = project_points(geometry, points @ world.T)
    spacing, origin, direction = map(np.asarray, (detector.spacing, detector.origin, detector.direction))
    scale = np.abs(spacing * np.asarray(detector.size)).max()
    for view in range(geometry.views):
        matrix = itk.array_from_matrix(rtk_geometry.GetMatrix(view))
        homogeneous = np.c_[points, np.ones(len(points))] @ matrix.T
        theirs = homogeneous[:, :2] / homogeneous[:, 2:]
        physical = origin + (ours[view] * spacing) @ direction.T
        np.testing.assert_allclose(physical, theirs, rtol=1e-9, atol=1e-9 * scale)


def test_rtk_known_answer_from_its_definitions():
    """From GetSourcePosition / GetProjectionCoordinatesToFixedSystemMatrix: gantry 0
    puts the source on +z at sid, the detector plane at z = sid - sdd, u along +x, v
    along +y; gantry 90 puts the source on +x."""
    g = xc.from_rtk_parameters(1000.0, 1500.0, [0.0, 90.0], detector=(5, 3), spacing=(0.5, 0.25))
    np.testing.assert_allclose(g.sources, [[0, 0, 1000], [1000, 0, 0]], atol=1e-9)
    np.testing.assert_allclose(g.detectors, [[0, 0, -500], [-500, 0, 0]], atol=1e-9)
    np.testing.assert_allclose(g.u, [[0.5, 0, 0], [0, 0, -0.5]], atol=1e-12)
    np.testing.assert_allclose(g.v, [[0, 0.25, 0], [0, 0.25, 0]], atol=1e-12)
    assert (g.rows, g.cols) == (3, 5)


def test_rtk_circular_world_is_our_circular_scan_with_columns_reversed():
    angles = np.linspace(0, 360, 12, endpoint=False) + 7.0
    g = xc.from_rtk_parameters(1000.0, 1500.0, angles, detector=(8, 6), spacing=(1.2, 0.8), world="circular")
    np.testing.assert_allclose(xc.reverse_columns(g).vectors,
                               circular_vectors(1000.0, 1500.0, np.radians(angles), (1.2, 0.8)), atol=1e-9)
    np.testing.assert_allclose(xc.RTK_TO_CIRCULAR @ [1, 2, 3], [-3, -1, 2])


def test_rtk_matrices_and_source_agree_with_rtk():
    itk, rtk = itk_and_rtk()
    rng = np.random.default_rng(RNG_SEED)
    views = rtk_views(rng)
    geometry = rtk_object(rtk, views)
    detector = xc.rtk_detector((11, 7), spacing=(1.3, 0.9), origin=(-7.0, -2.5), direction=[[0, -1], [1, 0]])
    ours = xc.from_rtk(geometry, *detector)
    points = random_points(rng)
    assert_rtk_matrices_agree(itk, geometry, ours, detector, points)
    for view, p in enumerate(views):
        source = np.asarray(geometry.GetSourcePosition(view))[:3]
        np.testing.assert_allclose(ours.sources[view], source, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(xc.rtk_matrix(p), itk.array_from_matrix(geometry.GetMatrix(view)),
                                   rtol=1e-12, atol=1e-9)
        # RTK's fixed-system matrix puts pixel (0, 0) where we do.
        fixed = itk.array_from_matrix(geometry.GetProjectionCoordinatesToFixedSystemMatrix(view))
        corner = fixed @ np.r_[detector.origin, 0.0, 1.0]
        first_pixel = pixel_centres(ours.vectors, ours.rows, ours.cols)[view, 0, 0]
        np.testing.assert_allclose(first_pixel, corner[:3], atol=1e-9)
    circular = xc.from_rtk(geometry, *detector, world="circular")
    assert_rtk_matrices_agree(itk, geometry, circular, detector, points, world=xc.RTK_TO_CIRCULAR)


def test_rtk_projection_image_describes_the_detector():
    itk, rtk = itk_and_rtk()
    image = itk.Image[itk.F, 3].New()
    region = itk.ImageRegion[3]()
    region.SetIndex([2, 1, 0])
    region.SetSize([9, 5, 3])
    image.SetRegions(region)
    image.SetSpacing([0.7, 1.1, 1.0])
    image.SetOrigin([-3.0, 4.0, 0.0])
    image.Allocate()
    geometry = rtk_object(rtk, rtk_views(np.random.default_rng(3), 3))
    ours = xc.from_rtk(geometry, image)
    detector = xc.rtk_detector(image)
    assert detector.size == (9, 5) and (ours.cols, ours.rows) == (9, 5)
    first = image.TransformIndexToPhysicalPoint([2, 1, 0])
    np.testing.assert_allclose(detector.origin, tuple(first)[:2])
    assert_rtk_matrices_agree(itk, geometry, ours, detector, random_points(np.random.default_rng(4)))


def test_rtk_parallel_beam_agrees_with_rtk():
    itk, rtk = itk_and_rtk()
    views = [xc.RtkProjection(500.0, 0.0, 30.0, 3.0, -2.0, 10.0, 5.0), xc.RtkProjection(500.0, 0.0, 200.0)]
    geometry = rtk_object(rtk, views)
    detector = xc.rtk_detector((6, 4), spacing=(2.0, 1.5))
    ours = xc.from_rtk(geometry, *detector)
    assert ours.beam == "parallel"
    assert_rtk_matrices_agree(itk, geometry, ours, detector, random_points(np.random.default_rng(5)))
    back, _ = xc.to_rtk(ours)
    np.testing.assert_allclose([p.sid for p in back], 500.0)


def test_rtk_xml_written_by_rtk_reads_like_the_object(tmp_path):
    itk, rtk = itk_and_rtk()
    geometry = rtk_object(rtk, rtk_views(np.random.default_rng(6)))
    writer = rtk.ThreeDCircularProjectionGeometryXMLFileWriter.New()
    path = tmp_path / "geometry.xml"
    writer.SetFilename(str(path))
    writer.SetObject(geometry)
    writer.WriteFile()
    detector = xc.rtk_detector((7, 5), spacing=(1.0, 2.0))
    expected = xc.from_rtk(geometry, *detector)
    assert_same_rays(xc.from_rtk(path, *detector), expected)
    assert_same_rays(xc.from_rtk(path.read_text(), *detector), expected)


PERSISTING = [
    ("<GantryAngle>10</GantryAngle><ProjectionOffsetX>4</ProjectionOffsetX>", xc.RtkProjection(1000, 1536, 10, 4)),
    ("<GantryAngle>20</GantryAngle><OutOfPlaneAngle>3</OutOfPlaneAngle>",
     xc.RtkProjection(1000, 1536, 20, 4, 0, 3)),
    ("<Angle>30</Angle><SourceOffsetY>-2.5</SourceOffsetY>",
     xc.RtkProjection(1000, 1536, 30, 4, 0, 3, 0, 0, -2.5)),
]


def persisting_xml(with_matrices):
    """Global distances, then projections that each set some parameters."""
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE RTKGEOMETRY>", '<RTKThreeDCircularGeometry version="3">',
             "<SourceToIsocenterDistance>1000</SourceToIsocenterDistance>",
             "<SourceToDetectorDistance>1536</SourceToDetectorDistance>"]
    for elements, expected in PERSISTING:
        matrix = " ".join(repr(float(x)) for x in xc.rtk_matrix(expected).ravel())
        matrix_element = f"<Matrix>{matrix}</Matrix>" if with_matrices else ""
        lines.append(f"<Projection>{elements}{matrix_element}</Projection>")
    return "\n".join(lines + ["</RTKThreeDCircularGeometry>"])


PERSISTING_XML = persisting_xml(with_matrices=False)


def test_rtk_xml_parameters_persist_as_in_rtks_reader(tmp_path):
    """A parameter keeps its last value across <Projection> elements
    (rtkThreeDCircularProjectionGeometryXMLFileReader.cxx, EndElement). RTK's reader
    accepts the file whose matrices follow that rule (it checks each <Matrix> against
    its parameters) and gives the same geometry."""
    projections, matrices = xc.read_rtk_xml(PERSISTING_XML)
    assert projections == [expected for _, expected in PERSISTING]
    assert matrices == [None, None, None]
    itk, rtk = itk_and_rtk()
    path = tmp_path / "persisting.xml"
    read = rtk_read(rtk, path, persisting_xml(with_matrices=True))
    detector = xc.rtk_detector((4, 3))
    assert_same_rays(xc.from_rtk(path, *detector), xc.from_rtk(read, *detector))


def matrix_xml(projections):
    lines = ['<?xml version="1.0"?>', '<RTKThreeDCircularGeometry version="3">']
    for p in projections:
        rows = "\n".join(" ".join(repr(float(x)) for x in row) for row in xc.rtk_matrix(p))
        lines.append(f"<Projection><Matrix>{rows}</Matrix></Projection>")
    return "\n".join(lines + ["</RTKThreeDCircularGeometry>"])


def test_rtk_xml_of_matrices_only():
    views = rtk_views(np.random.default_rng(7), 4)
    detector = xc.rtk_detector((9, 6), spacing=(0.8, 1.2), origin=(-5.0, -2.0))
    expected = xc.from_rtk_parameters(*np.array(views).T, detector=detector.size, spacing=detector.spacing,
                                      origin=detector.origin)
    assert_same_rays(xc.from_rtk(matrix_xml(views), *detector), expected, atol=1e-8)


def test_rtk_xml_inconsistent_or_unsupported():
    text = xc.to_rtk_xml(Geometry(circular_vectors(800.0, 1200.0, [0.3]), 4, 4))
    tampered = re.sub(r"<SourceToIsocenterDistance>[^<]*<", "<SourceToIsocenterDistance>801<", text)
    with pytest.raises(ValueError, match="disagree"):
        xc.from_rtk(tampered, (4, 4))
    def with_global(element):
        return PERSISTING_XML.replace("<Projection>", element + "<Projection>", 1)

    with pytest.raises(ValueError, match="cylindrical"):
        xc.from_rtk(with_global("<RadiusCylindricalDetector>900</RadiusCylindricalDetector>"), (4, 3))
    with pytest.raises(ValueError, match="collimation"):
        xc.from_rtk(with_global("<CollimationUInf>10</CollimationUInf>"), (4, 3))
    with pytest.raises(ValueError, match="version"):
        xc.from_rtk(PERSISTING_XML.replace('version="3"', 'version="1"'), (4, 3))
    with pytest.raises(ValueError, match="number"):
        xc.from_rtk(PERSISTING_XML.replace("1536", "far"), (4, 3))
    with pytest.raises(ValueError, match="root"):
        xc.from_rtk("<Geometry/>", (4, 3))
    with pytest.raises(ValueError, match="world"):
        xc.from_rtk(PERSISTING_XML, (4, 3), world="lps")
    with pytest.raises(ValueError, match="all cone beam"):
        xc.from_rtk_parameters(1000.0, [1500.0, 0.0], [0.0, 1.0], detector=(2, 2))


def test_rtk_rejects_unsupported_objects():
    itk, rtk = itk_and_rtk()
    geometry = rtk_object(rtk, [xc.RtkProjection(1000.0, 1500.0, 0.0)])
    geometry.SetRadiusCylindricalDetector(1200.0)
    with pytest.raises(ValueError, match="cylindrical"):
        xc.from_rtk(geometry, (4, 4))
    geometry = rtk_object(rtk, [xc.RtkProjection(1000.0, 1500.0, 0.0)])
    geometry.SetCollimationOfLastProjection(10.0, 10.0, 10.0, 10.0)
    with pytest.raises(ValueError, match="collimated"):
        xc.from_rtk(geometry, (4, 4))
    with pytest.raises(TypeError):
        xc.from_rtk(42, (4, 4))


@pytest.mark.parametrize("world", ["rtk", "circular"])
def test_to_rtk_gives_rtk_geometries_with_our_pixels(world, tmp_path):
    """Our geometries (the circular scan, whose columns RTK numbers the other way, and
    random poses) through to_rtk into RTK objects, and through to_rtk_xml into RTK's
    reader: RTK's matrices map world points to our pixels."""
    itk, rtk = itk_and_rtk()
    rng = np.random.default_rng(8)
    frame = xc.RTK_TO_CIRCULAR if world == "circular" else np.eye(3)
    circular = Geometry(circular_vectors(900.0, 1300.0, np.linspace(0, 6, 5), (0.9, 1.4)), 5, 8)
    for geometry in (circular, random_cone_geometry(rng), xc.reverse_columns(random_cone_geometry(rng))):
        projections, detector = xc.to_rtk(geometry, world)
        points = random_points(rng)
        assert_rtk_matrices_agree(itk, rtk_object(rtk, projections), geometry, detector, points @ frame, frame)
        read = rtk_read(rtk, tmp_path / "to_rtk.xml", xc.to_rtk_xml(geometry, world))
        assert_rtk_matrices_agree(itk, read, geometry, detector, points @ frame, frame)
        assert_same_rays(xc.from_rtk_parameters(*np.array(projections).T, detector=detector.size,
                                                spacing=detector.spacing, origin=detector.origin,
                                                direction=detector.direction, world=world), geometry)
        assert_same_rays(xc.from_rtk(xc.to_rtk_xml(geometry, world), *detector, world=world), geometry)
    _, detector = xc.to_rtk(circular, world)
    assert detector.direction == ((-1.0, 0.0), (0.0, 1.0))


def test_to_rtk_refusals():
    g = random_cone_geometry(np.random.default_rng(9))
    skewed = np.array(g.vectors)
    skewed[0, 6:9] += 0.3 * skewed[0, 9:12]
    with pytest.raises(ValueError, match="orthogonal"):
        xc.to_rtk(Geometry(skewed, g.rows, g.cols))
    scaled = np.array(g.vectors)
    scaled[1, 6:9] *= 1.1
    with pytest.raises(ValueError, match="pitch"):
        xc.to_rtk(Geometry(scaled, g.rows, g.cols))
    mixed = np.concatenate([g.vectors, xc.reverse_columns(g).vectors])
    with pytest.raises(ValueError, match="same way"):
        xc.to_rtk(Geometry(mixed, g.rows, g.cols))
    oblique = Geometry(np.concatenate([[0.3, 0.0, 1.0], [0, 0, -100.0], [1, 0, 0], [0, 1, 0]]), 2, 2, "parallel")
    with pytest.raises(ValueError, match="oblique"):
        xc.to_rtk(oblique)


def test_rtk_volume_grid_matches_itk_images():
    """ITK's own TransformIndexToPhysicalPoint gives the voxel centres of our grid; and
    itk.array_from_image's [z, y, x] array is our volume array."""
    itk, _ = itk_and_rtk()
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    image = itk.image_from_array(data)
    image.SetSpacing([0.5, 0.75, 2.0])
    image.SetOrigin([-3.0, 1.0, 7.0])
    c, s = math.cos(0.4), math.sin(0.4)
    direction = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    image.SetDirection(itk.matrix_from_array(direction))
    for world in ("rtk", "circular"):
        frame = xc.RTK_TO_CIRCULAR if world == "circular" else np.eye(3)
        grid = xc.grid_from_rtk(image, world=world)
        assert grid.shape == data.shape
        for index in ([0, 0, 0], [5, 4, 3], [2, 3, 1]):
            expected = frame @ np.array(tuple(image.TransformIndexToPhysicalPoint(index)))
            np.testing.assert_allclose((grid.affine @ np.r_[index, 1.0])[:3], expected, atol=1e-12)
        info = xc.grid_to_rtk(grid, world)
        assert info.size == (6, 5, 4)
        np.testing.assert_allclose(info.spacing, (0.5, 0.75, 2.0))
        np.testing.assert_allclose(info.origin, (-3.0, 1.0, 7.0), atol=1e-12)
        np.testing.assert_allclose(info.direction, direction, atol=1e-12)
    sized = xc.grid_from_rtk((6, 5, 4), spacing=(0.5, 0.75, 2.0), origin=(-3.0, 1.0, 7.0))
    np.testing.assert_allclose(sized.origin, (-3.25, 0.625, 6.0))


# --- TIGRE -----------------------------------------------------------------------------


def tigre_rays(geo, angles):
    """Sources and pixel centres ``(views, rows, cols, 3)`` as TIGRE's CUDA code computes
    them, transcribed from Common/CUDA/Siddon_projection.cu (computeDeltas_Siddon,
    rollPitchYaw, eulerZYZ, kernelPixelDetector: ``pixelV = nDetecV - v - 1``) and, for
    mode 'parallel', Siddon_projection_parallel.cu (computeDeltas_Siddon_parallel and its
    kernel's per-pixel source), with the Python-to-C field map of
    Python/tigre/utilities/cuda_interface/_types.pxd (convert_to_c_geometry), in world mm
    relative to the image centre (before TIGRE's ``+ sVoxel/2`` and ``/ dVoxel``)."""
    views = len(angles)
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim == 1:
        angles = np.stack([angles, 0 * angles, 0 * angles], 1)

    def each(name, width, default):
        value = np.asarray(geo.get(name, default), dtype=np.float64)
        return np.broadcast_to(value, (views, width) if width > 1 else (views,))

    n_v, n_u = geo["nDetector"]
    d_v, d_u = geo["dDetector"]
    dsd, dso, cor = each("DSD", 1, 0), each("DSO", 1, 0), each("COR", 1, 0.0)
    off_v, off_u = each("offDetector", 2, (0, 0)).T
    off_z, off_y, off_x = each("offOrigin", 3, (0, 0, 0)).T
    yaw, pitch, roll = each("rotDetector", 3, (0, 0, 0)).T

    def roll_pitch_yaw(i, p):
        x, y, z = p
        cr, sr, cp, sp, cy, sy = (math.cos(roll[i]), math.sin(roll[i]), math.cos(pitch[i]), math.sin(pitch[i]),
                                  math.cos(yaw[i]), math.sin(yaw[i]))
        return np.array([cr * cp * x + (cr * sp * sy - sr * cy) * y + (cr * sp * cy + sr * sy) * z,
                         sr * cp * x + (sr * sp * sy + cr * cy) * y + (sr * sp * cy - cr * sy) * z,
                         -sp * x + cp * sy * y + cp * cy * z])

    def euler_zyz(alpha, theta, psi, p):
        x, y, z = p
        ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
        cs, ss = math.cos(psi), math.sin(psi)
        return np.array([(ca * ct * cs - sa * ss) * x + (-ca * ct * ss - sa * cs) * y + ca * st * z,
                         (sa * ct * cs + ca * ss) * x + (-sa * ct * ss + ca * cs) * y + sa * st * z,
                         -st * cs * x + st * ss * y + ct * z])

    parallel = geo.get("mode", "cone") == "parallel"
    sources, pixels = [], []
    for i, (alpha, theta, psi) in enumerate(angles):
        p = np.array([-(dsd[i] - dso[i]), d_u * (-n_u / 2 + 0.5), d_v * (n_v / 2 - 0.5)])
        pu0, pv0 = np.array([0.0, d_u, 0.0]), np.array([0.0, 0.0, -d_v])
        source = np.array([dso[i], 0.0, 0.0])
        if parallel:
            source = roll_pitch_yaw(i, np.array([0.0, p[1], p[2]])) + [dso[i], 0, 0]
        p[0] = 0.0
        p, pu0, pv0 = roll_pitch_yaw(i, p), roll_pitch_yaw(i, pu0), roll_pitch_yaw(i, pv0)
        p[0] -= dsd[i] - dso[i]
        p[1] += off_u[i]
        p[2] += off_v[i]
        if parallel:
            turn = lambda q: np.array([q[0] * math.cos(alpha) - q[1] * math.sin(alpha),
                                       q[1] * math.cos(alpha) + q[0] * math.sin(alpha), q[2]])
        else:
            turn = lambda q: euler_zyz(alpha, theta, psi, q)
        p, pu0, pv0, source = turn(p), turn(pu0), turn(pv0), turn(source)
        shift = np.array([-off_x[i] - cor[i] * math.sin(alpha), -off_y[i] + cor[i] * math.cos(alpha), -off_z[i]])
        p, source = p + shift, source + shift
        v_index = (n_v - np.arange(n_v) - 1)[:, None, None]
        u_index = np.arange(n_u)[None, :, None]
        pixels.append(p + u_index * pu0 + v_index * pv0)
        sources.append(source + u_index * pu0 + v_index * pv0 if parallel else source)
    return np.array(sources), np.array(pixels)


def tigre_default(**changes):
    """TIGRE's ConeGeometryDefault(high_resolution=False)
    (Python/tigre/utilities/geometry_default.py) as a dict."""
    geo = {"DSD": 1536.0, "DSO": 1000.0, "nDetector": np.array((128, 128)), "dDetector": np.array((0.8, 0.8)) * 4,
           "nVoxel": np.array((64, 64, 64)), "sVoxel": np.array((256, 256, 256)),
           "dVoxel": np.array((4.0, 4.0, 4.0)), "offOrigin": np.array((0, 0, 0)), "offDetector": np.array((0, 0)),
           "rotDetector": np.array((0, 0, 0)), "accuracy": 0.5, "mode": "cone"}
    geo["sDetector"] = geo["nDetector"] * geo["dDetector"]
    geo.update(changes)
    return geo


def assert_tigre_rays(geometry, geo, angles, atol=1e-9):
    sources, pixels = tigre_rays(geo, angles)
    scale = np.abs(pixels).max()
    ours = pixel_centres(geometry.vectors, geometry.rows, geometry.cols)
    np.testing.assert_allclose(ours, pixels, atol=atol * scale, rtol=0)
    if geometry.beam == "cone":
        np.testing.assert_allclose(geometry.sources, sources, atol=atol * scale, rtol=0)
    else:
        rays = pixels - sources
        cross = np.cross(rays, geometry.sources[:, None, None, :])
        np.testing.assert_allclose(cross, 0, atol=atol * scale * np.abs(geometry.sources).max())


def test_tigre_default_is_our_circular_scan_half_a_turn_on_with_columns_reversed():
    angles = np.linspace(0, 2 * np.pi, 100)
    geo = tigre_default()
    g = xc.from_tigre(geo, angles)
    assert (g.rows, g.cols, g.beam) == (128, 128, "cone")
    assert_tigre_rays(g, geo, angles)
    expected = circular_vectors(1000.0, 1536.0, angles + np.pi, (3.2, 3.2))
    np.testing.assert_allclose(xc.reverse_columns(g).vectors, expected, atol=1e-9)
    grid = xc.grid_from_tigre(geo)
    assert grid.shape == (64, 64, 64)
    np.testing.assert_allclose(grid.origin, (-128.0, -128.0, -128.0))


def test_tigre_offsets_rotations_and_euler_angles_follow_its_cuda_code():
    rng = np.random.default_rng(10)
    views = 5
    geo = tigre_default(
        nDetector=np.array((6, 9)), dDetector=np.array((1.1, 0.7)), sDetector=None,
        DSD=rng.uniform(1400, 1600, views), DSO=rng.uniform(900, 1100, views),
        offDetector=rng.normal(size=(views, 2)) * 20, offOrigin=rng.normal(size=(views, 3)) * 15,
        rotDetector=rng.normal(size=(views, 3)) * 0.2, COR=rng.normal(size=views) * 3,
    )
    angles = rng.uniform(-np.pi, np.pi, size=(views, 3))
    assert_tigre_rays(xc.from_tigre(geo, angles), geo, angles)
    helical = tigre_default(offOrigin=np.stack([np.linspace(-40, 40, views), np.zeros(views), np.zeros(views)], 1))
    g = xc.from_tigre(helical, angles[:, 0])
    np.testing.assert_allclose(g.sources[:, 2], -np.linspace(-40, 40, views), atol=1e-9)
    assert_tigre_rays(g, helical, angles[:, 0])


def test_tigre_parallel_beam_follows_its_cuda_code():
    geo = tigre_default(mode="parallel", nDetector=np.array((4, 6)), dDetector=np.array((1.0, 1.5)),
                        sDetector=None, rotDetector=np.array((0.1, -0.05, 0.2)), COR=2.0)
    angles = np.array([0.0, 0.8, 2.5])
    g = xc.from_tigre(geo, angles)
    assert g.beam == "parallel"
    assert_tigre_rays(g, geo, angles)
    with pytest.raises(ValueError, match="parallel"):
        xc.from_tigre(dict(geo, offDetector=np.array((1.0, 0.0))), angles)
    with pytest.raises(ValueError, match="parallel"):
        xc.from_tigre(geo, np.stack([angles, angles, 0 * angles], 1))


def test_to_tigre_round_trips_through_its_definitions():
    rng = np.random.default_rng(11)
    grid = VolumeGrid((10, 12, 14), (1.0, 1.5, 2.0), origin=(-5.0, 3.0, 8.0))
    for geometry in (random_cone_geometry(rng), xc.reverse_columns(random_cone_geometry(rng)),
                     Geometry(circular_vectors(1000.0, 1536.0, np.linspace(0, 6, 7), (3.2, 3.2)), 8, 8)):
        fields, angles = xc.to_tigre(geometry, grid)
        shifted = np.array(geometry.vectors)
        shifted[:, 0:3] -= grid.centre
        shifted[:, 3:6] -= grid.centre
        expected = Geometry(shifted, geometry.rows, geometry.cols)
        assert_same_rays(xc.from_tigre(fields, angles), expected, atol=1e-9)
        assert_tigre_rays(expected, fields, angles)
        regrid = xc.grid_from_tigre(fields)
        assert regrid.shape == grid.shape
        np.testing.assert_allclose(regrid.spacing, grid.spacing)
    fields, angles = xc.to_tigre(Geometry(circular_vectors(1000.0, 1536.0, [0.5]), 4, 4))
    np.testing.assert_allclose(np.cos(angles[0, 0] - (0.5 - np.pi)), 1.0)
    np.testing.assert_allclose(np.abs(fields["rotDetector"][0]), (0.0, 0.0, np.pi), atol=1e-9)


def test_to_tigre_parallel():
    angles = np.linspace(0, 3, 4)
    vectors = circular_vectors(500.0, 800.0, angles)
    vectors[:, 0:3] = -vectors[:, 0:3] / 500.0
    geometry = Geometry(vectors, 3, 5, "parallel")
    fields, tigre_angles = xc.to_tigre(geometry)
    assert fields["mode"] == "parallel"
    assert_tigre_rays(geometry, fields, tigre_angles)
    through_origin = np.array(vectors)
    through_origin[:, 3:6] = 0.0
    with pytest.raises(ValueError, match="beyond"):
        xc.to_tigre(Geometry(through_origin, 3, 5, "parallel"))


def test_tigre_malformed_input():
    with pytest.raises(ValueError, match="DSO"):
        xc.from_tigre({k: v for k, v in tigre_default().items() if k != "DSO"}, [0.0])
    with pytest.raises(ValueError, match="angles"):
        xc.from_tigre(tigre_default(), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="finite"):
        xc.from_tigre(tigre_default(DSD=np.nan), [0.0])
    with pytest.raises(ValueError, match="sDetector"):
        xc.from_tigre(tigre_default(sDetector=np.array((1.0, 1.0))), [0.0])
    with pytest.raises(ValueError, match="one per view"):
        xc.from_tigre(tigre_default(DSD=np.array([1.0, 2.0, 3.0])), [0.0, 1.0])
    with pytest.raises(ValueError, match="mode"):
        xc.from_tigre(tigre_default(mode="fan"), [0.0])
    with pytest.raises(ValueError, match="axis-aligned"):
        rotated = VolumeGrid((2, 2, 2), direction=[[0, 1, 0], [-1, 0, 0], [0, 0, 1]])
        xc.to_tigre(Geometry(circular_vectors(10.0, 20.0, [0.0]), 2, 2), rotated)

    class TigreObject:
        DSD, DSO, angles = 1536.0, 1000.0, np.array([0.2])
        nDetector, dDetector = np.array((2, 3)), np.array((1.0, 1.0))

    assert xc.from_tigre(TigreObject()).views == 1


# --- pinhole cameras and projection matrices -----------------------------------------------


def random_camera(rng, rows=6, cols=8):
    k = np.array([[rng.uniform(800, 1200), 0, rng.uniform(2, 6)],
                  [0, rng.uniform(800, 1200), rng.uniform(1, 4)],
                  [0, 0, 1]])
    r = random_rotation(rng)
    centre = rng.normal(size=3) * 300
    return k, np.c_[r, -r @ centre], centre


def camera_pixels(k, extrinsics, points):
    """OpenCV's pinhole model: (col, row) = dehomogenised K (R x + t)."""
    h = (k @ (extrinsics[:, :3] @ points.T + extrinsics[:, 3:])).T
    return h[:, :2] / h[:, 2:]


def test_pinhole_known_answer_central_ray_along_z():
    g = xc.from_pinhole(np.array([[1000.0, 0, 3.5], [0, 1000.0, 2.5], [0, 0, 1]]), np.c_[np.eye(3), np.zeros(3)],
                        detector=(6, 8), sdd=1500.0)
    np.testing.assert_allclose(g.sources, [[0, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(g.detectors, [[0, 0, 1500.0]], atol=1e-12)
    np.testing.assert_allclose(g.u, [[1.5, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(g.v, [[0, 1.5, 0]], atol=1e-12)
    off_centre = np.array([[1000.0, 0, 4.5], [0, 1000.0, 2.5], [0, 0, 1]])
    shifted = xc.from_pinhole(off_centre, np.eye(4), detector=(6, 8), pixel=1.5)
    np.testing.assert_allclose(shifted.detectors, [[-1.5, 0, 1500.0]], atol=1e-9)


def test_pinhole_projects_world_points_to_their_pixels():
    rng = np.random.default_rng(12)
    points = random_points(rng, radius=50.0)
    for _ in range(4):
        k, extrinsics, centre = random_camera(rng)
        g = xc.from_pinhole(k, extrinsics, detector=(6, 8), sdd=1200.0)
        np.testing.assert_allclose(g.sources[0], centre, atol=1e-9)
        expected = camera_pixels(k, extrinsics, points)
        np.testing.assert_allclose(project_points(g, points)[0], expected, rtol=1e-9, atol=1e-9)
        # Both ways: the ray through a point's pixel passes through the point.
        pixel = pixel_centres(g.vectors, 6, 8)[0]
        col, row = expected[0]
        corner, u, v = pixel[0, 0], g.u[0], g.v[0]
        on_detector = corner + col * u + row * v
        ray = on_detector - g.sources[0]
        offset = points[0] - g.sources[0]
        sine = np.cross(ray, offset) / (np.linalg.norm(ray) * np.linalg.norm(offset))
        np.testing.assert_allclose(sine, 0, atol=1e-9)
        gl_extrinsics = np.diag([1.0, -1.0, -1.0]) @ extrinsics
        gl = xc.from_pinhole(k, gl_extrinsics, detector=(6, 8), sdd=1200.0, convention="opengl")
        np.testing.assert_allclose(gl.vectors, g.vectors, atol=1e-9)


def test_pinhole_agrees_with_kornia():
    torch = pytest.importorskip("torch")
    camera = pytest.importorskip("kornia.geometry.camera")
    rng = np.random.default_rng(13)
    k, extrinsics, _ = random_camera(rng)
    points = random_points(rng, radius=50.0)
    intrinsics4, extrinsics4 = np.eye(4), np.eye(4)
    intrinsics4[:3, :3], extrinsics4[:3] = k, extrinsics
    height, width = torch.tensor([6.0], dtype=torch.float64), torch.tensor([8.0], dtype=torch.float64)
    pinhole = camera.PinholeCamera(torch.tensor(intrinsics4)[None], torch.tensor(extrinsics4)[None], height, width)
    theirs = pinhole.project(torch.tensor(points)[None]).numpy()[0]
    g = xc.from_pinhole(k, extrinsics, detector=(6, 8), pixel=(1.1, 1.1 * k[0, 0] / k[1, 1]))
    np.testing.assert_allclose(project_points(g, points)[0], theirs, rtol=1e-9, atol=1e-9)


def test_projection_matrices_round_trip():
    rng = np.random.default_rng(14)
    points = random_points(rng)
    for geometry in (random_cone_geometry(rng), xc.reverse_columns(random_cone_geometry(rng)),
                     Geometry(circular_vectors(800.0, 1200.0, np.linspace(0, 6, 4), (0.5, 0.5)), 6, 9)):
        matrices = xc.to_projection_matrices(geometry)
        pitch = (np.linalg.norm(geometry.u[0]), np.linalg.norm(geometry.v[0]))
        back = xc.from_projection_matrices(matrices, (geometry.rows, geometry.cols), pixel=pitch)
        assert_same_rays(back, geometry, atol=1e-9)
        ours = project_points(geometry, points)
        for view, matrix in enumerate(matrices):
            h = np.c_[points, np.ones(len(points))] @ matrix.T
            np.testing.assert_allclose(h[:, :2] / h[:, 2:], ours[view], rtol=1e-9, atol=1e-9)
            assert np.all(h[:, 2] > 0)
    k, extrinsics, centre = random_camera(rng)
    decomposed = xc.decompose_projection_matrix(3.7 * k @ extrinsics)
    np.testing.assert_allclose(decomposed[0], k, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(decomposed[1], extrinsics[:, :3], atol=1e-9)
    np.testing.assert_allclose(decomposed[2], centre, atol=1e-7)


def test_camera_refusals():
    k = np.array([[1000.0, 2.0, 3.0], [0, 1000.0, 3.0], [0, 0, 1]])
    with pytest.raises(ValueError, match="skew"):
        xc.from_pinhole(k, np.eye(4), (4, 4), sdd=1000.0)
    k[0, 1] = 0
    with pytest.raises(ValueError, match="orthonormal"):
        xc.from_pinhole(k, np.c_[2 * np.eye(3), np.zeros(3)], (4, 4), sdd=1000.0)
    with pytest.raises(ValueError, match="give sdd"):
        xc.from_pinhole(k, np.eye(4), (4, 4))
    with pytest.raises(ValueError, match="disagree"):
        xc.from_pinhole(k, np.eye(4), (4, 4), pixel=1.0, sdd=900.0)
    with pytest.raises(ValueError, match="does not match"):
        xc.from_pinhole(k, np.eye(4), (4, 4), pixel=(1.0, 2.0))
    with pytest.raises(ValueError, match="convention"):
        xc.from_pinhole(k, np.eye(4), (4, 4), sdd=1.0, convention="blender")
    with pytest.raises(ValueError, match="finite"):
        xc.from_pinhole(k * np.nan, np.eye(4), (4, 4), sdd=1.0)
    with pytest.raises(ValueError, match="singular"):
        xc.decompose_projection_matrix(np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]))
    with pytest.raises(ValueError, match="parallel"):
        xc.to_projection_matrices(Geometry(circular_vectors(10.0, 20.0, [0.0]), 2, 2, "parallel"))


# --- DiffDRR ---------------------------------------------------------------------------


@pytest.mark.parametrize("reverse_x_axis, orientation", [(True, "AP"), (False, "PA"), (True, None)])
def test_diffdrr_detector_points_are_our_pixels(reverse_x_axis, orientation):
    """DiffDRR's own Detector (diffdrr/detector.py) makes the source and target points;
    pose from diffdrr.pose.convert, as DRR.forward does."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffdrr")
    from diffdrr.detector import Detector
    from diffdrr.pose import convert

    height, width, sdd, delx, dely, x0, y0 = 5, 8, 1020.0, 2.0, 2.5, 3.0, -4.0
    reorient = {"AP": [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]],
                "PA": [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]],
                None: np.eye(4).tolist()}[orientation]
    detector = Detector(sdd, height, width, delx, dely, x0, y0, torch.tensor(reorient, dtype=torch.float32),
                        reverse_x_axis=reverse_x_axis)
    pose = convert(torch.tensor([[0.3, -0.2, 1.1]]), torch.tensor([[10.0, 850.0, -20.0]]),
                   parameterization="euler_angles", convention="ZXY")
    source, target = detector(pose, None)
    g = xc.from_diffdrr(pose.matrix.numpy(), sdd, height, width, delx, dely, x0, y0, reverse_x_axis, orientation)
    scale = np.abs(target.numpy()).max()
    np.testing.assert_allclose(g.sources, source.numpy()[:, 0], atol=1e-5 * scale)
    ours = pixel_centres(g.vectors, height, width).reshape(1, -1, 3)
    np.testing.assert_allclose(ours, target.numpy(), atol=1e-5 * scale)


def test_diffdrr_volume_placement():
    """DiffDRR samples density[i, j, k] at affine @ (i, j, k, 1) (voxel_shift 0.5 in
    diffdrr/renderers.py: voxel planes at index - 0.5, grid_sample on density.permute(2, 1, 0))."""
    density = np.random.default_rng(15).random((4, 5, 6)).astype(np.float32)
    affine = np.array([[0.0, 0.0, -2.0, 10.0], [1.5, 0.0, 0.0, -3.0], [0.0, 0.5, 0.0, 2.0], [0, 0, 0, 1.0]])
    volume = xc.volume_from_diffdrr(density[None], affine)
    assert volume.shape == (6, 5, 4)
    assert volume.data[5, 1, 3] == density[3, 1, 5]
    np.testing.assert_allclose(volume.grid.affine, affine, atol=1e-12)


def test_diffdrr_refusals():
    with pytest.raises(ValueError, match="orientation"):
        xc.from_diffdrr(np.eye(4), 1000.0, 4, 4, 1.0, orientation="LR")
    with pytest.raises(ValueError, match="pose"):
        xc.from_diffdrr(np.eye(3), 1000.0, 4, 4, 1.0)
    with pytest.raises(ValueError, match="positive"):
        xc.from_diffdrr(np.eye(4), -1.0, 4, 4, 1.0)
