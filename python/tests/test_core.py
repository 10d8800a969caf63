"""The NumPy-level API against ground truth from outside the bindings: analytic chords,
the adjoint identity, and the Rust CLI's own output (the same library driven from files),
which the bindings must reproduce bit for bit on the CPU."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import xray_projector as xp
from conftest import DATA, smooth_phantom, write_vectors_toml


def tilted_geometry(views=5, rows=24, cols=20):
    """Cone-beam views off the circle: tilted detectors, shifted sources."""
    rng = np.random.default_rng(7)
    vectors = []
    for k in range(views):
        a = 0.4 + 1.3 * k
        tilt = rng.uniform(-0.3, 0.3)
        source = np.array([-300 * math.cos(a), -300 * math.sin(a), 40 * tilt])
        detector = np.array([200 * math.cos(a), 200 * math.sin(a), -20 * tilt])
        u = 1.7 * np.array([-math.sin(a), math.cos(a), 0.0])
        v = 1.7 * np.array([0.2 * tilt * math.cos(a), 0.2 * tilt * math.sin(a), 1.0])
        vectors.append(np.concatenate([source, detector, u, v]))
    return xp.Geometry(np.array(vectors), rows, cols)


def test_uniform_box_gives_the_analytic_chord():
    volume = xp.Volume(np.full((32, 32, 32), 0.02, np.float32), spacing=(1.0, 1.0, 1.0))
    geometry = xp.Geometry.drr(source=(-500, 0, 0), sdd=800, detector=(16, 16), pixel=1.0)
    for method in ("siddon", "joseph"):
        p = xp.project(volume, geometry, method=method, backend="cpu")
        assert p.shape == (1, 16, 16) and p.dtype == np.float32
        # Each ray crosses the slabs x = -16 and x = 16 of the 32 mm box; its chord is
        # 32 mm times the ray's length per unit x.
        rows, cols = np.meshgrid(np.arange(16) - 7.5, np.arange(16) - 7.5, indexing="ij")
        chord = 32.0 * np.sqrt(800.0**2 + rows**2 + cols**2) / 800.0
        np.testing.assert_allclose(p[0], 0.02 * chord, rtol=2e-5)


@pytest.mark.parametrize("method", ["siddon", "joseph"])
def test_adjoint_identity(method):
    grid = xp.VolumeGrid((12, 14, 16), spacing=(1.5, 1.2, 1.0))
    geometry = tilted_geometry()
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, grid.shape).astype(np.float32)
    y = rng.uniform(0, 1, geometry.shape).astype(np.float32)
    ax = xp.project(xp.Volume(x, grid=grid), geometry, method=method, backend="cpu")
    aty = xp.backproject(y, geometry, grid, method=method, backend="cpu")
    left = float(np.dot(ax.ravel().astype(np.float64), y.ravel()))
    right = float(np.dot(x.ravel().astype(np.float64), aty.ravel()))
    assert abs(left - right) <= 1e-5 * abs(left)


@pytest.mark.parametrize("method", ["siddon", "joseph"])
def test_projection_and_backprojection_equal_the_cli_bit_for_bit(tmp_path, xray_cli, method):
    shape, spacing = (20, 22, 24), (1.1, 1.0, 1.3)
    data = smooth_phantom(shape)
    np.save(tmp_path / "volume.npy", data)
    geometry = tilted_geometry()
    write_vectors_toml(tmp_path / "geometry.toml", geometry)
    xray_cli("project", "--volume", tmp_path / "volume.npy", "--spacing", ",".join(map(str, spacing)),
             "--geometry", tmp_path / "geometry.toml", "--method", method, "--backend", "cpu",
             "--out", tmp_path / "p.npy")
    ours = xp.project(xp.Volume(data, spacing=spacing), geometry, method=method, backend="cpu")
    np.testing.assert_array_equal(ours, np.load(tmp_path / "p.npy"))

    xray_cli("backproject", "--projections", tmp_path / "p.npy", "--geometry", tmp_path / "geometry.toml",
             "--shape", "24,22,20", "--spacing", ",".join(map(str, spacing)), "--method", method,
             "--backend", "cpu", "--out", tmp_path / "bp.npy")
    grid = xp.VolumeGrid(shape, spacing)
    back = xp.backproject(ours, geometry, grid, method=method, backend="cpu")
    np.testing.assert_array_equal(back, np.load(tmp_path / "bp.npy"))


def test_circular_scan_and_recon_equal_the_cli(tmp_path, xray_cli):
    geometry = xp.Geometry.circular(sod=300, sdd=500, views=24, detector=(20, 28), pixel=1.5,
                                    start_angle=math.radians(10))
    data = smooth_phantom((16, 16, 16))
    np.save(tmp_path / "volume.npy", data)
    xray_cli("project", "--volume", tmp_path / "volume.npy", "--spacing", "1,1,1", "--views", 24,
             "--sod", 300, "--sdd", 500, "--det", "20x28", "--pixel", 1.5, "--angle", 10,
             "--backend", "cpu", "--out", tmp_path / "p.npy")
    p = xp.project(xp.Volume(data), geometry, backend="cpu")
    np.testing.assert_array_equal(p, np.load(tmp_path / "p.npy"))

    common = ["--projections", tmp_path / "p.npy", "--sod", 300, "--sdd", 500,
              "--det", "20x28", "--pixel", 1.5, "--angle", 10, "--shape", "16,16,16",
              "--spacing", "1,1,1", "--backend", "cpu"]
    grid = xp.VolumeGrid((16, 16, 16))
    xray_cli("recon", *common, "--filter", "hann", "--out", tmp_path / "fdk.npy")
    np.testing.assert_array_equal(xp.fdk(p, geometry, grid, filter="hann", backend="cpu"),
                                  np.load(tmp_path / "fdk.npy"))
    xray_cli("recon", *common, "--algorithm", "cgls", "--iterations", 5, "--out", tmp_path / "cgls.npy")
    cgls = xp.cgls(p, geometry, grid, iterations=5, backend="cpu")
    np.testing.assert_array_equal(cgls.volume, np.load(tmp_path / "cgls.npy"))
    assert cgls.stopped == "iteration-limit" and len(cgls.residuals) == 6
    xray_cli("recon", *common, "--algorithm", "sirt", "--iterations", 4, "--out", tmp_path / "sirt.npy")
    sirt = xp.sirt(p, geometry, grid, iterations=4, backend="cpu")
    np.testing.assert_array_equal(sirt.volume, np.load(tmp_path / "sirt.npy"))


def test_sirt_callback_stops_and_its_exception_propagates():
    geometry = xp.Geometry.circular(300, 500, 8, 16, 1.5)
    p = xp.project(xp.Volume(smooth_phantom((12, 12, 12))), geometry, backend="cpu")
    grid = xp.VolumeGrid((12, 12, 12))
    seen = []
    result = xp.sirt(p, geometry, grid, iterations=20, backend="cpu",
                     callback=lambda i, r: seen.append((i, r)) or i < 3)
    assert result.stopped == "interrupted" and [i for i, _ in seen] == [0, 1, 2, 3]
    assert [r for _, r in seen] == result.residuals

    def fails(i, r):
        raise ZeroDivisionError("from the callback")

    with pytest.raises(ZeroDivisionError, match="from the callback"):
        xp.sirt(p, geometry, grid, iterations=5, backend="cpu", callback=fails)


def test_drr_with_noise_equals_the_cli(tmp_path, xray_cli):
    data = smooth_phantom((16, 16, 16))
    np.save(tmp_path / "volume.npy", data)
    geometry = xp.Geometry.circular(300, 500, 3, 20, 1.5)
    xray_cli("project", "--volume", tmp_path / "volume.npy", "--spacing", "1,1,1", "--views", 3,
             "--sod", 300, "--sdd", 500, "--det", "20x20", "--pixel", 1.5, "--i0", 1000,
             "--noise-seed", 42, "--backend", "cpu", "--out", tmp_path / "counts.npy")
    ours = xp.drr(xp.Volume(data), geometry, i0=1000, noise_seed=42, backend="cpu")
    np.testing.assert_array_equal(ours, np.load(tmp_path / "counts.npy"))
    clean = xp.drr(xp.Volume(data), geometry, i0=1000, backend="cpu")
    p = xp.project(xp.Volume(data), geometry, backend="cpu")
    np.testing.assert_allclose(clean, 1000 * np.exp(-p.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("name", ["nibabel_sform_int16.nii.gz", "sitk_int16.mha", "dicom_rle"])
def test_from_file_places_voxels_as_the_reference_tools_do(name):
    import json

    expected = json.loads((DATA / "expected.json").read_text())[name]
    volume = xp.Volume.from_file(DATA / name, world=True)
    assert volume.data.dtype == np.float32 and volume.data.flags.c_contiguous
    for key, world in expected["points"].items():
        i, j, k = json.loads(key)
        np.testing.assert_allclose((volume.grid.affine @ [i, j, k, 1])[:3], world, atol=1e-4)
    nz, ny, nx = volume.shape
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    raw = i + 10 * j + 100 * k
    np.testing.assert_array_equal(volume.data, expected["slope"] * raw + expected["inter"])


def test_from_file_with_hu_projects_as_the_cli(tmp_path, xray_cli):
    path = DATA / "nibabel_sform_int16.nii.gz"
    volume = xp.Volume.from_file(path, hu=True)
    np.testing.assert_allclose(volume.grid.centre, 0, atol=1e-9)
    geometry = xp.Geometry.circular(300, 500, 2, 12, 1.0)
    xray_cli("project", "--volume", path, "--hu", "--views", 2, "--sod", 300, "--sdd", 500,
             "--det", "12x12", "--pixel", 1, "--backend", "cpu", "--out", tmp_path / "p.npy")
    np.testing.assert_array_equal(xp.project(volume, geometry, backend="cpu"), np.load(tmp_path / "p.npy"))


def test_affine_round_trip():
    affine = np.array([[0, 0, -2.5, 10], [0.7, 0, 0, -3], [0, -0.7, 0, 5], [0, 0, 0, 1]])
    grid = xp.VolumeGrid.from_affine((4, 5, 6), affine)
    np.testing.assert_allclose(grid.affine, affine, atol=1e-12)
    assert grid.spacing == pytest.approx((0.7, 0.7, 2.5))


def test_volume_keeps_the_callers_array_and_results_are_plain_arrays():
    data = np.zeros((4, 4, 4), np.float32)
    assert xp.Volume(data).data is data  # kept, not copied
    assert xp.Volume(data.astype(np.float64)).data.dtype == np.float32  # converted once
    p = xp.project(xp.Volume(data), xp.Geometry.circular(100, 200, 1, 4), backend="cpu")
    assert p.dtype == np.float32 and p.flags.c_contiguous and p.flags.writeable


def test_geometry_selects_views_only():
    geometry = xp.Geometry.circular(100, 200, 6, 4)
    np.testing.assert_array_equal(geometry[2].vectors, geometry.vectors[2:3])
    np.testing.assert_array_equal(geometry[1:3].vectors, geometry.vectors[1:3])
    np.testing.assert_array_equal(geometry[[0, 5]].vectors, geometry.vectors[[0, 5]])
    for index in [(slice(None), slice(0, 6)), Ellipsis, (slice(None), 0)]:
        with pytest.raises(IndexError):
            geometry[index]


def test_a_scan_must_be_the_vectors_it_claims():
    geometry = xp.Geometry.circular(100, 200, 6, 4)
    other = xp.Geometry.circular(100, 250, 6, 4)
    with pytest.raises(ValueError, match="scan"):
        xp.Geometry(other.vectors, 4, 4, scan=geometry.scan)
    with pytest.raises(TypeError):
        geometry.scan["sod"] = 50.0


def test_grids_compare_by_value():
    a = xp.VolumeGrid((4, 5, 6), (1.0, 2.0, 3.0))
    assert a == xp.VolumeGrid((4, 5, 6), (1.0, 2.0, 3.0)) and hash(a) == hash(xp.VolumeGrid((4, 5, 6), (1.0, 2.0, 3.0)))
    assert a != xp.VolumeGrid((4, 5, 6), (1.0, 2.0, 3.5))
    with pytest.raises(ValueError, match="last row"):
        xp.VolumeGrid.from_affine((4, 5, 6), np.eye(4)[::-1])


class TestErrors:
    """Bad input raises a Python exception with the library's message; nothing panics."""

    grid = xp.VolumeGrid((4, 4, 4))
    geometry = xp.Geometry.circular(100, 200, 2, 4)

    def test_wrong_dtype_is_a_type_error(self):
        with pytest.raises(TypeError, match="float32"):
            xp.backproject(np.zeros((2, 4, 4)), self.geometry, self.grid)

    def test_wrong_shape_names_both_shapes(self):
        with pytest.raises(ValueError, match=r"\[2, 4, 4\]"):
            xp.backproject(np.zeros((3, 4, 4), np.float32), self.geometry, self.grid, backend="cpu")

    def test_non_contiguous_is_refused(self):
        with pytest.raises(ValueError, match="contiguous"):
            xp.backproject(np.zeros((2, 4, 8), np.float32)[:, :, ::2], self.geometry, self.grid)

    def test_nan_in_the_volume_is_located(self):
        data = np.zeros((4, 4, 4), np.float32)
        data[1, 2, 3] = np.nan
        with pytest.raises(ValueError, match=r"\[1, 2, 3\]"):
            xp.project(xp.Volume(data), self.geometry, backend="cpu")

    def test_nan_in_projections_is_located(self):
        p = np.zeros((2, 4, 4), np.float32)
        p[1, 0, 2] = np.inf
        with pytest.raises(ValueError, match=r"\[1, 0, 2\]"):
            xp.backproject(p, self.geometry, self.grid, backend="cpu")

    def test_bad_geometry_gets_the_library_message(self):
        with pytest.raises(ValueError, match="source-detector distance"):
            xp.Geometry.circular(sod=500, sdd=400, views=2, detector=4)
        with pytest.raises(ValueError, match="not finite"):
            xp.Geometry(np.full((1, 12), np.nan), 4, 4)
        degenerate = np.zeros((1, 12))
        degenerate[0, 3] = 100.0  # u = v = 0
        with pytest.raises(ValueError):
            xp.project(xp.Volume(np.zeros((4, 4, 4), np.float32)), xp.Geometry(degenerate, 4, 4), backend="cpu")

    def test_bad_names(self):
        volume = xp.Volume(np.zeros((4, 4, 4), np.float32))
        with pytest.raises(ValueError, match="method"):
            xp.project(volume, self.geometry, method="ray-marching")
        with pytest.raises(ValueError, match="backend"):
            xp.project(volume, self.geometry, backend="tpu")
        with pytest.raises(ValueError, match="filter"):
            xp.fdk(np.zeros((2, 4, 4), np.float32), self.geometry, self.grid, filter="none")

    def test_fdk_needs_a_circular_scan(self):
        with pytest.raises(ValueError, match="circular"):
            xp.fdk(np.zeros((1, 4, 4), np.float32), self.geometry[0], self.grid)

    def test_files(self, tmp_path):
        with pytest.raises(OSError):
            xp.Volume.from_file(tmp_path / "missing.nii")
        bad = tmp_path / "bad.nii"
        header = bytearray(352)
        header[0:4] = (348).to_bytes(4, "little")
        header[40:56] = np.array([3, 32767, 32767, 32767, 1, 1, 1, 1], "<i2").tobytes()
        header[70:72] = (16).to_bytes(2, "little")
        header[344:348] = b"n+1\0"
        bad.write_bytes(bytes(header))
        with pytest.raises(ValueError, match="bad.nii"):
            xp.Volume.from_file(bad)
        with pytest.raises(ValueError, match="spacing"):
            np.save(tmp_path / "v.npy", np.zeros((2, 2, 2), np.float32))
            xp.Volume.from_file(tmp_path / "v.npy")


def test_backends_say_what_is_usable():
    kinds = {s.kind: s for s in xp.backends()}
    assert set(kinds) == {"cpu", "cuda"}
    assert kinds["cpu"].usable and "thread" in kinds["cpu"].detail
    # Without the driver the CPU build is loaded, and the CUDA backend says why.
    forced = subprocess.run(
        [sys.executable, "-c", "import xray_projector as xp; print([tuple(s) for s in xp.backends()])"],
        env={**os.environ, "XRAY_PROJECTOR_CUDA": "0"}, capture_output=True, text=True, check=True,
    )
    assert "('cuda', False, 'XRAY_PROJECTOR_CUDA=0 is set')" in forced.stdout, forced.stdout
    asked_for_cuda = subprocess.run(
        [sys.executable, "-c", "import numpy as np, xray_projector as xp\n"
         "xp.project(xp.Volume(np.zeros((2, 2, 2), np.float32)), xp.Geometry.circular(10, 20, 1, 2), backend='cuda')"],
        env={**os.environ, "XRAY_PROJECTOR_CUDA": "0"}, capture_output=True, text=True,
    )
    assert asked_for_cuda.returncode != 0
    assert "RuntimeError: the CUDA backend is unavailable: XRAY_PROJECTOR_CUDA=0 is set" in asked_for_cuda.stderr


def test_raw_file_reads_as_the_cli(tmp_path, xray_cli):
    values = (np.arange(6 * 5 * 4).reshape(6, 5, 4) - 1000).astype(">i2")
    path = tmp_path / "ct.raw"
    path.write_bytes(b"\0" * 16 + values.tobytes())
    volume = xp.Volume.from_file(path, raw=dict(shape=(6, 5, 4), dtype="i16", big_endian=True, header_bytes=16),
                                 spacing=(0.5, 0.6, 0.7), hu=True)
    expected = np.maximum(0.01929 * (1 + values.astype(np.float64) / 1000), 0)
    np.testing.assert_allclose(volume.data, expected, rtol=1e-6)
    geometry = xp.Geometry.circular(100, 200, 2, 8, 0.5)
    xray_cli("project", "--volume", path, "--raw", "6,5,4", "--dtype", "i16", "--big-endian",
             "--header-bytes", 16, "--spacing", "0.5,0.6,0.7", "--hu", "--views", 2, "--sod", 100,
             "--sdd", 200, "--det", "8x8", "--pixel", 0.5, "--backend", "cpu", "--out", tmp_path / "p.npy")
    np.testing.assert_array_equal(xp.project(volume, geometry, backend="cpu"), np.load(tmp_path / "p.npy"))
    with pytest.raises(ValueError, match="dtype"):
        xp.Volume.from_file(path, raw=dict(shape=(6, 5, 4), dtype="i12"), spacing=(1, 1, 1))
