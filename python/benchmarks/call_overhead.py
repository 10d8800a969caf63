"""The cost of calling the library from Python: one 256 x 256 DRR of the fp256 case
(BENCHMARKS.md; medians of 5 runs on both sides: the anchors' 256^3 phantom, source 1000 mm from the axis, detector at
1500 mm, 1.6 mm pixels) through `xray_projector.project`, against the Rust library's
own timing of the same projection (`xray bench --case fp256 --views 1`), in alternating
rounds; and the fixed cost of a call whose work is nothing (one voxel, one pixel).

Usage: python call_overhead.py [rounds] [path/to/xray]
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import xray_projector as xp

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
CLI = sys.argv[2] if len(sys.argv) > 2 else str(Path(__file__).resolve().parents[2] / "target/release/xray")


def anchors_phantom(n):
    """The anchors' nested ellipsoids (../shared/anchors/geometry.py), [z, y, x]."""
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32),) * 3, indexing="ij")
    vol = np.zeros((n, n, n), np.float32)
    vol[(x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.85) ** 2 < 1] = 0.02
    vol[(x / 0.3) ** 2 + ((y - 0.2) / 0.25) ** 2 + (z / 0.4) ** 2 < 1] = 0.04
    vol[((x + 0.3) / 0.1) ** 2 + (y / 0.1) ** 2 + (z / 0.1) ** 2 < 1] = 0.06
    return vol


def median_of(function, repeats):
    """The median of `repeats` timings of `function()`, in seconds (as `xray bench`)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main():
    volume = xp.Volume(anchors_phantom(256), spacing=(1.0, 1.0, 1.0))
    drr = xp.Geometry.circular(1000, 1500, 1, 256, 1.6)
    tiny_volume = xp.Volume(np.zeros((1, 1, 1), np.float32))
    tiny = xp.Geometry.circular(100, 200, 1, 1, 1.0)
    xp.project(volume, drr, backend="cpu")  # warm up: page in, start the thread pool
    print(f"{'round':>5} {'python s':>10} {'rust s':>10} {'ratio':>7} {'empty call us':>14}")
    for r in range(ROUNDS):
        python = median_of(lambda: xp.project(volume, drr, backend="cpu"), 5)
        bench = subprocess.run([CLI, "bench", "--case", "fp256", "--views", "1", "--backend", "cpu",
                                "--repeats", "5", "--json"], capture_output=True, text=True, check=True)
        rust = json.loads(bench.stdout.splitlines()[-1])["seconds"]
        empty = median_of(lambda: xp.project(tiny_volume, tiny, backend="cpu"), 200)
        print(f"{r:>5} {python:>10.4f} {rust:>10.4f} {python / rust:>7.3f} {empty * 1e6:>14.1f}")


if __name__ == "__main__":
    main()
