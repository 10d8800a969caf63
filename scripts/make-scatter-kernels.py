#!/usr/bin/env python3
"""Writes data/physics/scatter-kernels.csv: the scatter point-spread functions of water
slabs that `host/physics/scatter.rs` superposes (scatter kernel superposition).

A Monte Carlo of photon transport in water: a pencil beam of photons of one energy
enters a laterally infinite slab of liquid water (1.0 g/cm^3) at normal incidence;
each photon is tracked until it is absorbed, leaves through the entrance face, or
leaves through the exit face. Interactions: photoelectric absorption (the photon
ends; water's fluorescence, 0.5 keV, is not followed), incoherent (Compton)
scattering with the incoherent scattering function S(x, Z) (Klein-Nishina otherwise;
no Doppler broadening) and coherent (Rayleigh) scattering with the atomic form
factors. Cross sections from xraylib 4.3 (Schoonjans et al., Spectrochim. Acta B 66
(2011) 776): total per process from CS_Photo, CS_Compt and CS_Rayl, angles from
DCS_Compt and DCS_Rayl, for H and O by mass fraction. Photons below 1 keV are
absorbed where they are.

Every photon that leaves the exit face having scattered at least once is carried in a
straight line across an air gap (air's attenuation neglected) to a detector plane
parallel to the slab, and tallied by its distance from the beam's axis in that plane.
The table holds, per primary energy, slab thickness, air gap and ring of radii:
scattered photons per mm^2 of detector per photon entering the slab, and their mean
energy (keV). Photons that cross without interacting are the primary, not tallied.

Columns: energy_kev, thickness_mm, gap_mm, quantity ("photons_per_mm2" or
"mean_kev"), then one value per ring; the ring edges are on the "# r_edges_mm:" line.

It also writes data/physics/scatter-check.csv: the scatter behind a heterogeneous
slab under a broad beam (see `check`), what the Rust tests hold the superposition to
and data/physics/scatter-between.csv: pencil beams at energies, thicknesses and gaps
between the table's points, what its interpolation is held to (`--check-only` writes
these two files alone).

Run (about five minutes):
    python3 -m venv /tmp/physics && /tmp/physics/bin/pip install xraylib==4.3.0 numpy
    /tmp/physics/bin/python scripts/make-scatter-kernels.py
"""

import os
import sys

import numpy as np
import xraylib as xl
import xraylib_np as xn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "physics", "scatter-kernels.csv")

ENERGIES = [10.0 * k for k in range(1, 16)]  # keV, 10 to 150
THICKNESSES = [25.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0]  # mm of water
GAPS = [0.0, 100.0, 200.0, 400.0, 800.0]  # mm from the exit face to the detector
R_EDGES = np.concatenate(
    [
        np.arange(0.0, 10.0, 2.0),
        np.arange(10.0, 40.0, 5.0),
        np.arange(40.0, 100.0, 10.0),
        np.arange(100.0, 300.0, 20.0),
        np.arange(300.0, 800.0, 50.0),
        [800.0],
    ]
)
PHOTONS = 1_000_000
SEED = 20261207

DENSITY = 1.0  # g/cm^3
WATER = xl.CompoundParser("H2O")
Z = np.array(WATER["Elements"])
FRACTIONS = np.array(WATER["massFractions"])

# Angle tables for sampling: energies every 0.5 keV, polar angles dense near 0.
TABLE_E = np.arange(1.0, 150.5, 0.5)
THETA = np.pi * np.linspace(0.0, 1.0, 2001) ** 2


def per_mm(cross_sections):
    """cm^2/g per element [Z][E] -> 1/mm of water."""
    return (FRACTIONS[:, None] * cross_sections).sum(axis=0) * DENSITY / 10.0


MU_PHOTO = per_mm(xn.CS_Photo(Z, TABLE_E))
MU_COMPT = per_mm(xn.CS_Compt(Z, TABLE_E))
MU_RAYL = per_mm(xn.CS_Rayl(Z, TABLE_E))
MU_TOTAL = MU_PHOTO + MU_COMPT + MU_RAYL


def angle_cdf(dcs):
    """Cumulative distribution over THETA, per energy row, shifted by the row index
    so that one searchsorted serves every row."""
    dcs = (FRACTIONS[:, None, None] * dcs).sum(axis=0)  # [E][theta]
    density = dcs * 2.0 * np.pi * np.sin(THETA)[None, :]
    steps = 0.5 * (density[:, 1:] + density[:, :-1]) * np.diff(THETA)[None, :]
    cdf = np.concatenate([np.zeros((len(TABLE_E), 1)), np.cumsum(steps, axis=1)], axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    return (cdf + np.arange(len(TABLE_E))[:, None]).ravel()


CDF_COMPT = angle_cdf(xn.DCS_Compt(Z, TABLE_E, THETA))
CDF_RAYL = angle_cdf(xn.DCS_Rayl(Z, TABLE_E, THETA))


def row_of(energy):
    return np.clip(np.rint((energy - TABLE_E[0]) / 0.5).astype(np.int64), 0, len(TABLE_E) - 1)


def sample_theta(cdf, rows, rng):
    u = rng.random(len(rows))
    target = rows + u
    k = np.searchsorted(cdf, target, side="right") - 1
    n = len(THETA)
    k = np.clip(k, rows * n, rows * n + n - 2)
    lo, hi = cdf[k], cdf[k + 1]
    t = np.where(hi > lo, (target - lo) / np.maximum(hi - lo, 1e-300), 0.5)
    j = k - rows * n
    return THETA[j] + np.clip(t, 0.0, 1.0) * (THETA[j + 1] - THETA[j])


def turn(u, v, w, theta, phi):
    """Direction cosines after scattering by polar theta, azimuth phi."""
    ct, st = np.cos(theta), np.sin(theta)
    cp, sp = np.cos(phi), np.sin(phi)
    s = np.sqrt(np.maximum(1.0 - w * w, 0.0))
    vertical = s < 1e-9
    safe = np.where(vertical, 1.0, s)
    u2 = np.where(vertical, st * cp, u * ct + st * (u * w * cp - v * sp) / safe)
    v2 = np.where(vertical, st * sp, v * ct + st * (v * w * cp + u * sp) / safe)
    w2 = np.where(vertical, np.sign(w) * ct, w * ct - s * st * cp)
    norm = np.sqrt(u2 * u2 + v2 * v2 + w2 * w2)
    return u2 / norm, v2 / norm, w2 / norm


def transport(energy, thickness, rng, n=PHOTONS, field=0.0, density=None):
    """Exit positions, directions and energies of the photons that leave the exit face
    having scattered: `n` photons entering at the origin (a pencil) or uniformly over
    a `field` mm square; water of density 1, or `density(x, y, z)` <= 1 by Woodcock
    tracking (a step at the largest density, kept as an interaction with probability
    density / 1, else the photon goes on unchanged)."""
    if field > 0.0:
        x = (rng.random(n) - 0.5) * field
        y = (rng.random(n) - 0.5) * field
    else:
        x = np.zeros(n)
        y = np.zeros(n)
    z = np.zeros(n)
    u = np.zeros(n)
    v = np.zeros(n)
    w = np.ones(n)
    e = np.full(n, energy)
    scattered = np.zeros(n, dtype=bool)
    out = []
    while len(x):
        rows = row_of(e)
        step = -np.log(1.0 - rng.random(len(x))) / MU_TOTAL[rows]
        x, y, z = x + step * u, y + step * v, z + step * w
        through = z >= thickness
        if through.any():
            # Back to the exit face.
            sel = through & scattered
            back_sel = (z[sel] - thickness) / w[sel]
            out.append(
                np.stack(
                    [x[sel] - back_sel * u[sel], y[sel] - back_sel * v[sel], u[sel], v[sel], w[sel], e[sel]],
                    axis=1,
                )
            )
        alive = (z > 0.0) & ~through
        x, y, z, u, v, w, e, scattered, rows = (
            a[alive] for a in (x, y, z, u, v, w, e, scattered, rows)
        )
        if not len(x):
            break
        if density is not None:
            real = rng.random(len(x)) < density(x, y, z)
        else:
            real = np.ones(len(x), dtype=bool)
        pick = np.where(real, rng.random(len(x)) * MU_TOTAL[rows], -1.0)
        virtual = pick < 0.0
        compton = (pick >= MU_PHOTO[rows]) & (pick < MU_PHOTO[rows] + MU_COMPT[rows])
        rayleigh = pick >= MU_PHOTO[rows] + MU_COMPT[rows]
        keep = compton | rayleigh | virtual
        theta = np.zeros(len(x))
        theta[compton] = sample_theta(CDF_COMPT, rows[compton], rng)
        theta[rayleigh] = sample_theta(CDF_RAYL, rows[rayleigh], rng)
        phi = 2.0 * np.pi * rng.random(len(x))
        turned = compton | rayleigh
        u2, v2, w2 = turn(u, v, w, theta, phi)
        u, v, w = np.where(turned, u2, u), np.where(turned, v2, v), np.where(turned, w2, w)
        e = np.where(compton, e / (1.0 + e / 510.998950 * (1.0 - np.cos(theta))), e)
        scattered = scattered | turned
        keep &= e >= 1.0
        x, y, z, u, v, w, e, scattered = (a[keep] for a in (x, y, z, u, v, w, e, scattered))
    return np.concatenate(out) if out else np.zeros((0, 6))


def rings(exits, gap):
    x = exits[:, 0] + exits[:, 2] / exits[:, 4] * gap
    y = exits[:, 1] + exits[:, 3] / exits[:, 4] * gap
    r = np.hypot(x, y)
    counts, _ = np.histogram(r, bins=R_EDGES)
    energy, _ = np.histogram(r, bins=R_EDGES, weights=exits[:, 5])
    area = np.pi * (R_EDGES[1:] ** 2 - R_EDGES[:-1] ** 2)
    density = counts / (PHOTONS * area)
    mean = np.where(counts > 0, energy / np.maximum(counts, 1), 0.0)
    return density, mean


CHECK_OUT = os.path.join(HERE, "..", "data", "physics", "scatter-check.csv")
CHECK_FIELD = 300.0  # mm, square, parallel beam
CHECK_THICKNESS = 200.0  # mm
CHECK_PHOTONS = 10_000_000
CHECK_BINS = np.arange(-150.0, 151.0, 10.0)  # x bins on the detector, mm


def lung_insert(x, y, z):
    """Water, but for x >= 0 a layer of density 0.3 from 50 to 150 mm deep: 130 mm of
    water-equivalent thickness beside 200 mm."""
    return np.where((x >= 0.0) & (z >= 50.0) & (z < 150.0), 0.3, 1.0)


def check(rng):
    """A heterogeneous case for the superposition to be tested against: a 300 mm square
    parallel beam into a 200 mm slab whose half x >= 0 holds a 100 mm layer of water at
    density 0.3. Scattered photons per mm^2 on the detector per incident photon per
    mm^2, in 10 mm bins of x over |y| < 50 mm, for gaps 0 and 200 mm."""
    lines = [
        "# Broad-beam Monte Carlo of a heterogeneous slab: scripts/make-scatter-kernels.py",
        f"# {CHECK_PHOTONS} photons per energy over a {CHECK_FIELD:g} mm square, seed {SEED + 1}",
        "# 200 mm of water; for x >= 0 the depths 50-150 mm at density 0.3",
        "energy_kev,gap_mm,x_from_mm,x_to_mm,scatter_per_fluence",
    ]
    chunk = 1_000_000
    for energy in (60.0, 100.0):
        exits = np.concatenate(
            [
                transport(energy, CHECK_THICKNESS, rng, n=chunk, field=CHECK_FIELD, density=lung_insert)
                for _ in range(CHECK_PHOTONS // chunk)
            ]
        )
        for gap in (0.0, 200.0):
            x = exits[:, 0] + exits[:, 2] / exits[:, 4] * gap
            y = exits[:, 1] + exits[:, 3] / exits[:, 4] * gap
            band = np.abs(y) < 50.0
            counts, _ = np.histogram(x[band], bins=CHECK_BINS)
            area = np.diff(CHECK_BINS) * 100.0
            fluence = CHECK_PHOTONS / CHECK_FIELD**2
            for a, b, c, ar in zip(CHECK_BINS[:-1], CHECK_BINS[1:], counts, area):
                lines.append(f"{energy:g},{gap:g},{a:g},{b:g},{c / ar / fluence:.5g}")
            print(f"check {energy:g} keV gap {gap:g}: {len(exits)} scattered", file=sys.stderr)
    with open(CHECK_OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {CHECK_OUT}", file=sys.stderr)


BETWEEN_OUT = os.path.join(HERE, "..", "data", "physics", "scatter-between.csv")
# (keV, mm of water, air gap mm) off the table's points.
BETWEEN = [(60.0, 350.0, 0.0), (100.0, 350.0, 0.0), (60.0, 200.0, 300.0),
           (100.0, 130.0, 600.0), (65.0, 200.0, 0.0), (45.0, 250.0, 150.0)]


def between(rng):
    """Pencil beams at energies, thicknesses and gaps between the table's points: the
    scattered photons reaching the detector within 800 mm of the axis, per photon."""
    lines = [
        "# Pencil beams off the table's points: scripts/make-scatter-kernels.py",
        f"# {PHOTONS} photons each, seed {SEED + 2}; scattered photons per photon within 100 and 800 mm",
        "energy_kev,thickness_mm,gap_mm,within_100mm,within_800mm",
    ]
    for energy, thickness, gap in BETWEEN:
        exits = transport(energy, thickness, rng)
        density, _ = rings(exits, gap)
        area = np.pi * (R_EDGES[1:] ** 2 - R_EDGES[:-1] ** 2)
        near = (density * area)[R_EDGES[1:] <= 100.0].sum()
        lines.append(f"{energy:g},{thickness:g},{gap:g},{near:.5g},{(density * area).sum():.5g}")
    with open(BETWEEN_OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {BETWEEN_OUT}", file=sys.stderr)


def main():
    if sys.argv[1:] == ["--check-only"]:
        check(np.random.default_rng(SEED + 1))
        between(np.random.default_rng(SEED + 2))
        return
    rng = np.random.default_rng(SEED)
    lines = [
        "# Scatter point-spread functions of water slabs: scripts/make-scatter-kernels.py",
        f"# Monte Carlo, {PHOTONS} photons per energy and thickness, seed {SEED}, xraylib {xl.__version__}",
        "# r_edges_mm: " + ",".join(f"{r:g}" for r in R_EDGES),
        "energy_kev,thickness_mm,gap_mm,quantity," + ",".join(f"ring{k}" for k in range(len(R_EDGES) - 1)),
    ]
    for energy in ENERGIES:
        for thickness in THICKNESSES:
            exits = transport(energy, thickness, rng)
            for gap in GAPS:
                density, mean = rings(exits, gap)
                head = f"{energy:g},{thickness:g},{gap:g}"
                lines.append(head + ",photons_per_mm2," + ",".join(f"{d:.4g}" for d in density))
                lines.append(head + ",mean_kev," + ",".join(f"{m:.4g}" for m in mean))
            primary = np.exp(-MU_TOTAL[row_of(np.array([energy]))][0] * thickness)
            total = len(exits) / PHOTONS
            print(
                f"{energy:5g} keV {thickness:5g} mm: scattered out {total:.4f}, primary {primary:.4g}",
                file=sys.stderr,
            )
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)
    check(np.random.default_rng(SEED + 1))
    between(np.random.default_rng(SEED + 2))


if __name__ == "__main__":
    main()
