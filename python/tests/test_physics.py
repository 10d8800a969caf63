"""The physics API against ground truth from outside it: SpekPy's half-value layers,
NIST's attenuation coefficients, Beer-Lambert's law, the Rust CLI's radiograph of the
head (the same library driven from the command line, bit for bit), and finite
differences of the model's gradient."""

import csv

import numpy as np
import pytest

import xray_projector as xp
from xray_projector import physics
from conftest import REPO


def test_half_value_layers_and_mean_energies_match_spekpys():
    path = REPO / "data" / "physics" / "spectra-reference.csv"
    rows = [r for r in csv.reader(l for l in path.open() if not l.startswith("#"))][1:]
    assert len(rows) == 8
    for kvp, angle, al, cu, hvl, mean in ([float(x) for x in r] for r in rows):
        beam = physics.Spectrum.tube(kvp, angle, filters=[("al", al), ("cu", cu)])
        assert beam.half_value_layer_mm_al == pytest.approx(hvl, rel=0.01)
        assert beam.mean_energy_kev == pytest.approx(mean, rel=0.005)


def test_attenuation_matches_nist_and_bad_names_raise():
    # NIST (Hubbell & Seltzer): water 0.2059 at 60 keV, aluminium 0.3681 at 50 keV.
    assert physics.mass_attenuation("water", [60.0])[0] == pytest.approx(0.2059, rel=0.005)
    assert physics.mass_attenuation("al", [50.0])[0] == pytest.approx(0.3681, rel=0.005)
    assert physics.materials()["bone"] == pytest.approx(1.85)
    with pytest.raises(ValueError, match="unknown material"):
        physics.mass_attenuation("unobtainium", [60.0])
    with pytest.raises(ValueError, match="keV"):
        physics.mass_attenuation("water", [200.0])
    with pytest.raises(ValueError, match="kVp"):
        physics.Spectrum.tube(200)
    with pytest.raises(ValueError):
        physics.Spectrum(np.array([60.0]), np.array([-1.0]))


def test_the_monochromatic_limit_is_beer_lamberts_law_bit_for_bit():
    mu = np.full((16, 16, 16), 0.02, np.float32)
    grid = xp.VolumeGrid((16, 16, 16), (2.0, 2.0, 2.0))
    geometry = xp.Geometry.circular(200, 400, 1, (12, 12), 3.0)
    body = physics.MaterialVolume([mu], ["attenuation"], grid)
    i0 = 5000.0
    ours = physics.radiograph(body, geometry, physics.Spectrum.monochromatic(60, i0),
                              physics.Detector(scintillator=None, counting=True), log=False, backend="cpu")
    reference = xp.drr(xp.Volume(mu, grid=grid), geometry, i0=i0, backend="cpu")
    assert np.array_equal(ours, reference)


def test_the_default_head_radiograph_is_the_clis_bit_for_bit(xray_cli, tmp_path):
    options = ["drr", "--size", "32", "--det", "16x16", "--pixel", "16", "--kvp", "90",
               "--filter", "3mm-al", "--mas", "2", "--noise-seed", "4", "--blur", "0.6"]
    xray_cli(*options, "--raw-signal", "--out", tmp_path / "raw.npy")
    xray_cli(*options, "--out", tmp_path / "log.npy")
    head = physics.MaterialVolume.head(32)
    geometry = xp.Geometry.circular(1000, 1500, 1, (16, 16), 16.0)
    beam = physics.Spectrum.tube(90, filters=[("al", 3.0)])
    detector = physics.Detector(blur_pixels=0.6)
    raw = physics.radiograph(head, geometry, beam, detector, mas=2.0, noise_seed=4, log=False,
                             backend="cpu")[0]
    assert np.array_equal(raw, np.load(tmp_path / "raw.npy"))
    # The logarithm: NumPy's and Rust's may differ in the last bit.
    ours = physics.radiograph(head, geometry, beam, detector, mas=2.0, noise_seed=4, backend="cpu")[0]
    np.testing.assert_allclose(ours, np.load(tmp_path / "log.npy"), rtol=1e-6, atol=1e-7)
    # A harder beam shows less contrast; noise changes with the seed.
    hard = physics.radiograph(head, geometry, physics.Spectrum.tube(140, filters=[("cu", 0.3)]),
                              mas=2.0, backend="cpu")[0]
    assert hard[8, 8] < ours[8, 8]
    other = physics.radiograph(head, geometry, beam, physics.Detector(blur_pixels=0.6), mas=2.0,
                               noise_seed=5, backend="cpu")[0]
    assert not np.array_equal(other, ours)


def test_the_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    grid = xp.VolumeGrid((6, 6, 6), (4.0, 4.0, 4.0))
    maps = [(1.0 + 0.1 * rng.random((6, 6, 6))).astype(np.float32),
            (0.3 * rng.random((6, 6, 6))).astype(np.float32)]
    body = physics.MaterialVolume(maps, ["soft_tissue", "bone"], grid)
    geometry = xp.Geometry.circular(200, 400, 2, (8, 8), 5.0)
    beam = physics.Spectrum.tube(80)
    detector = physics.Detector("gos", gain=0.5, offset=3.0, blur_pixels=0.7)
    upstream = rng.random((2, 8, 8)).astype(np.float32)
    direction = [rng.standard_normal((6, 6, 6)).astype(np.float32) for _ in maps]

    def loss(ms):
        b = physics.MaterialVolume(ms, body.materials, grid)
        s = physics.radiograph(b, geometry, beam, detector, mas=1.0, log=False, backend="cpu")
        return float(np.sum(s.astype(np.float64) * upstream))

    grads = physics.radiograph_gradient(body, geometry, beam, upstream, detector, mas=1.0,
                                        method="siddon", backend="cpu")
    analytic = sum(float(np.sum(g.astype(np.float64) * d)) for g, d in zip(grads, direction))
    eps = 1e-2
    plus = [(m + eps * d).astype(np.float32) for m, d in zip(maps, direction)]
    minus = [(m - eps * d).astype(np.float32) for m, d in zip(maps, direction)]
    numeric = (loss(plus) - loss(minus)) / (2 * eps)
    assert analytic == pytest.approx(numeric, rel=2e-3)


def test_ct_numbers_become_material_maps_and_bad_inputs_raise():
    hu = np.array([-1000, -700, -100, 40, 1200], np.float32).reshape(1, 1, 5)
    body = physics.MaterialVolume.from_hu(xp.Volume(hu))
    assert body.materials == ["air", "lung", "adipose", "soft_tissue", "bone"]
    for i, m in enumerate(body.maps):
        assert m[0, 0, i] > 0 and np.count_nonzero(m) == 1
    bad = hu.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        physics.MaterialVolume.from_hu(xp.Volume(bad))
    with pytest.raises(ValueError):
        physics.MaterialVolume([hu], ["water", "bone"], xp.VolumeGrid((1, 1, 5)))
    with pytest.raises(ValueError, match="mAs"):
        physics.radiograph(physics.MaterialVolume.head(8), xp.Geometry.circular(1000, 1500, 1, 4),
                           physics.Spectrum.tube(80), mas=-1.0, backend="cpu")
    with pytest.raises(ValueError, match="blur"):
        physics.radiograph(physics.MaterialVolume.head(8), xp.Geometry.circular(1000, 1500, 1, 4),
                           physics.Spectrum.tube(80), physics.Detector(blur_pixels=-2), backend="cpu")


def test_label_maps_become_density_maps():
    labels = np.array([0, 1, 2, 1], np.float32).reshape(1, 1, 4)
    body = physics.MaterialVolume.from_labels(xp.Volume(labels), {1: ("soft_tissue", 1.05), 2: ("bone", 1.9)})
    assert body.materials == ["soft_tissue", "bone"]
    assert np.array_equal(body.maps[0], np.array([[[0, 1.05, 0, 1.05]]], np.float32))
    assert np.array_equal(body.maps[1], np.array([[[0, 0, 1.9, 0]]], np.float32))
    with pytest.raises(ValueError, match="holds 2"):
        physics.MaterialVolume.from_labels(xp.Volume(labels), {1: ("soft_tissue", 1.05)})


def test_scatter_is_the_clis_and_adds_the_estimate_to_the_primary(xray_cli, tmp_path):
    options = ["drr", "--size", "32", "--det", "24x24", "--pixel", "12", "--kvp", "100",
               "--mas", "2", "--scatter", "--air-gap", "300", "--raw-signal"]
    xray_cli(*options, "--out", tmp_path / "scatter.npy")
    head = physics.MaterialVolume.head(32)
    geometry = xp.Geometry.circular(1000, 1500, 1, (24, 24), 12.0)
    beam = physics.Spectrum.tube(100, filters=[("al", 2.5)])
    total = physics.radiograph(head, geometry, beam, mas=2.0, log=False, backend="cpu",
                               scatter_air_gap_mm=300)[0]
    assert np.array_equal(total, np.load(tmp_path / "scatter.npy"))
    primary = physics.radiograph(head, geometry, beam, mas=2.0, log=False, backend="cpu")[0]
    scatter = physics.scatter_estimate(head, geometry, beam, 300.0, mas=2.0, backend="cpu")[0]
    assert scatter.min() > 0
    np.testing.assert_allclose(total, primary.astype(np.float64) + scatter, rtol=1e-5)
    # Scatter lowers the log image's contrast: the skull's shadow is less deep.
    log_with = physics.radiograph(head, geometry, beam, mas=2.0, backend="cpu",
                                  scatter_air_gap_mm=300)[0]
    log_without = physics.radiograph(head, geometry, beam, mas=2.0, backend="cpu")[0]
    assert log_with.max() < log_without.max()
    with pytest.raises(ValueError, match="air gap"):
        physics.scatter_estimate(head, geometry, beam, 900.0, backend="cpu")
    with pytest.raises(TypeError, match="air gap"):
        physics.radiograph(head, geometry, beam, scatter_air_gap_mm=True, backend="cpu")
