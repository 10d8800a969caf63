#!/usr/bin/env python3
"""Writes the physics tables that `host/physics/` embeds, into data/physics/.

* attenuation.csv: mass attenuation coefficients (cm^2/g) of each material at the
  centres of 1 keV bins from 1 to 150 keV (1.5, 2.5, ..., 149.5 keV), with coherent
  (Rayleigh) scattering ("total") and without it ("nocoh"), and air's mass
  energy-absorption coefficient (for air kerma, as half-value layers are defined):
  NIST's (Hubbell & Seltzer, NISTIR 5632, table 4) as SpekPy carries it, log-log
  interpolated (xraylib's CS_Energy departs from it by up to a third below 30 keV).
  Source: xraylib 4.3 (Schoonjans et al., Spectrochim. Acta B 66 (2011) 776), whose
  cross sections are XCOM-grade (Scofield photoionisation, Hubbell's scattering
  factors); compositions and densities from NIST's compound list (Hubbell & Seltzer,
  NISTIR 5632, ICRP tissues) as xraylib carries it.
* spectra.csv: tungsten-anode tube spectra from SpekPy 2.x (Poludniowski et al., Med.
  Phys. 48 (2021) 3630): photons per keV per cm^2 per mAs at 100 cm, unfiltered (the
  anode's self-filtration only), for every kVp from 40 to 150 and anode angles 8, 12,
  16 and 20 degrees, on the same 1 keV bins.
* spectra-reference.csv: SpekPy's own first half-value layer (mm Al, air kerma) and
  mean energy for a few filtered spectra: what the Rust tests compare against.

Run (about three minutes):
    python3 -m venv /tmp/physics && /tmp/physics/bin/pip install xraylib==4.3.0 spekpy==2.5.4
    /tmp/physics/bin/python scripts/make-physics-tables.py
"""

import csv
import json
import math
import os
import sys

import spekpy
import xraylib as xl

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "physics")

# Bin centres, keV: 149 bins of 1 keV covering 1 to 150 keV (SpekPy's bins for dk=1).
ENERGIES = [e + 0.5 for e in range(1, 150)]
KVPS = range(40, 151)
ANODE_ANGLES = (8, 12, 16, 20)

# name in the crate, source in xraylib (a NIST compound name, or an atomic number),
# density in g/cm^3 (NIST's, but for the elements: handbook values).
MATERIALS = [
    ("air", "Air, Dry (near sea level)", None),
    ("lung", "Lung (ICRP)", None),
    ("adipose", "Adipose Tissue (ICRP)", None),
    ("soft_tissue", "Tissue, Soft (ICRP)", None),
    ("brain", "Brain (ICRP)", None),
    ("bone", "Bone, Cortical (ICRP)", None),
    ("water", "Water, Liquid", None),
    ("aluminium", 13, 2.699),
    ("copper", 29, 8.96),
    ("csi", "Cesium Iodide", None),
    ("gos", "Gadolinium Oxysulfide", None),
]

# (kVp, anode angle, mm Al, mm Cu) of the reference half-value layers.
REFERENCE = [
    (50, 12, 2.5, 0.0),
    (70, 12, 2.5, 0.0),
    (80, 12, 2.5, 0.0),
    (100, 10, 3.0, 0.0),
    (120, 12, 2.5, 0.0),
    (120, 16, 2.5, 0.1),
    (150, 20, 3.0, 0.2),
    (60, 8, 1.0, 0.0),
]


def coefficients(source):
    """(total, without coherent) mass attenuation coefficients on ENERGIES."""
    if isinstance(source, int):
        total = [xl.CS_Total(source, e) for e in ENERGIES]
        coherent = [xl.CS_Rayl(source, e) for e in ENERGIES]
    else:
        total = [xl.CS_Total_CP(source, e) for e in ENERGIES]
        coherent = [xl.CS_Rayl_CP(source, e) for e in ENERGIES]
    return total, [t - c for t, c in zip(total, coherent)]


def density(source, given):
    return given if given is not None else xl.GetCompoundDataNISTByName(source)["density"]


def nist_air_energy_absorption():
    """Air's mu_en/rho (cm^2/g) on ENERGIES, log-log between NIST's energies."""
    path = os.path.join(os.path.dirname(spekpy.__file__), "data", "tables", "nist_muen_air.dat")
    with open(path) as f:
        table = json.load(f)
    energies = [e * 1000.0 for e in table["photon energy"]]
    values = table["muen_over_rho_air"]
    out = []
    for e in ENERGIES:
        # The last segment that starts at or below e (an edge is listed twice).
        i = max(k for k in range(len(energies) - 1) if energies[k] <= e)
        e0, e1, v0, v1 = energies[i], energies[i + 1], values[i], values[i + 1]
        slope = math.log(v1 / v0) / math.log(e1 / e0)
        out.append(v0 * (e / e0) ** slope)
    return out


def write_attenuation():
    columns = {}
    header = ["energy_kev"]
    densities = []
    for name, source, given in MATERIALS:
        total, nocoh = coefficients(source)
        columns[f"{name}_total"] = total
        columns[f"{name}_nocoh"] = nocoh
        header += [f"{name}_total", f"{name}_nocoh"]
        densities.append((name, density(source, given), source))
    header.append("air_energy_absorption")
    columns["air_energy_absorption"] = nist_air_energy_absorption()
    with open(os.path.join(OUT, "attenuation.csv"), "w", newline="") as f:
        f.write("# Mass attenuation coefficients, cm^2/g, at 1 keV bin centres; written by\n")
        f.write("# scripts/make-physics-tables.py from xraylib 4.3 (NIST compositions); air's\n")
        f.write("# energy-absorption coefficient from NIST's table (as SpekPy carries it).\n")
        for name, rho, source in densities:
            f.write(f"# density {name} {rho} g/cm3 ({source})\n")
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for i, e in enumerate(ENERGIES):
            w.writerow([e] + [f"{columns[h][i]:.6g}" for h in header[1:]])


def write_spectra():
    with open(os.path.join(OUT, "spectra.csv"), "w", newline="") as f:
        f.write("# Unfiltered tungsten-anode spectra, photons/keV/cm^2/mAs at 100 cm, on 1 keV\n")
        f.write("# bins centred at 1.5 .. 149.5 keV; written by scripts/make-physics-tables.py\n")
        f.write(f"# from SpekPy {spekpy.__version__ if hasattr(spekpy, '__version__') else '2'}.\n")
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["kvp", "anode_angle_deg"] + [f"{e}" for e in ENERGIES])
        for angle in ANODE_ANGLES:
            for kvp in KVPS:
                k, fluence = spekpy.Spek(kvp=kvp, th=angle, dk=1).get_spectrum()
                row = dict(zip((round(x, 1) for x in k), fluence))
                values = [row.get(e, 0.0) for e in ENERGIES]
                w.writerow([kvp, angle] + [f"{v:.5g}" if v > 0 else "0" for v in values])
            print(f"anode angle {angle}: done", file=sys.stderr)


def write_reference():
    with open(os.path.join(OUT, "spectra-reference.csv"), "w", newline="") as f:
        f.write("# SpekPy's first half-value layer (air kerma) and mean energy of filtered\n")
        f.write("# spectra; written by scripts/make-physics-tables.py.\n")
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["kvp", "anode_angle_deg", "al_mm", "cu_mm", "hvl1_mm_al", "mean_kev"])
        for kvp, angle, al, cu in REFERENCE:
            s = spekpy.Spek(kvp=kvp, th=angle, dk=1)
            if al:
                s.filter("Al", al)
            if cu:
                s.filter("Cu", cu)
            w.writerow([kvp, angle, al, cu, f"{s.get_hvl1():.4f}", f"{s.get_emean():.4f}"])


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write_attenuation()
    write_reference()
    write_spectra()
