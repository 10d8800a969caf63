"""How calls behave in a Python process: the GIL is released while the library works,
Ctrl-C stops a long projection cleanly, and the CUDA build runs where a driver is (on
the project's software CUDA driver in CI)."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import xray_projector as xp

# Sized on the machine it runs on to take about 40 s, so that a cancel flag that did
# not work would show as a wait of tens of seconds after Ctrl-C.
LONG_PROJECTION = textwrap.dedent(
    """
    import sys, time, numpy as np, xray_projector as xp
    volume = xp.Volume(np.full((128, 128, 128), 0.01, np.float32))
    def scan(views):
        return xp.Geometry.circular(400, 700, views, 64, 3.0)
    started = time.perf_counter()
    xp.project(volume, scan(64), method="joseph", backend="cpu")
    per_view = (time.perf_counter() - started) / 64
    views = max(64, int(40.0 / per_view))
    print("started", round(views * per_view, 1), flush=True)
    try:
        xp.project(volume, scan(views), method="joseph", backend="cpu")
    except KeyboardInterrupt as error:
        print("interrupted:", error, flush=True)
        # The process is still sound: another call works.
        p = xp.project(xp.Volume(np.full((8, 8, 8), 0.02, np.float32)),
                       xp.Geometry.circular(100, 200, 1, 4), backend="cpu")
        print("after:", p.shape, flush=True)
        sys.exit(3)
    print("finished without interruption", flush=True)
    """
)


def test_ctrl_c_stops_a_long_projection_cleanly():
    child = subprocess.Popen([sys.executable, "-c", LONG_PROJECTION], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    word, expected_seconds = child.stdout.readline().split()
    assert word == "started"
    time.sleep(1.0)  # let the projection get going
    child.send_signal(signal.SIGINT)
    interrupted_at = time.perf_counter()
    line = child.stdout.readline()
    waited = time.perf_counter() - interrupted_at
    out, err = child.communicate(timeout=120)
    assert line.startswith("interrupted:"), (line, out, err)
    assert child.returncode == 3 and "after: (1, 4, 4)" in out, (out, err)
    # The projection had about 40 s to go; a working cancel stops it within a few
    # detector bands. Ten seconds leaves room for a loaded machine.
    assert waited < 10.0, f"Ctrl-C took {waited:.1f} s to stop a {expected_seconds} s projection"


def test_the_gil_is_released_during_a_projection():
    volume = xp.Volume(np.full((96, 96, 96), 0.01, np.float32))
    geometry = xp.Geometry.circular(400, 700, 64, 96, 1.5)
    done = threading.Event()
    ticks = 0

    def work():
        xp.project(volume, geometry, method="joseph", backend="cpu")
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    # This thread runs Python code only while the worker does not hold the GIL.
    while not done.is_set():
        ticks += 1
        done.wait(0.001)
    worker.join()
    assert ticks > 20, f"the main thread ran only {ticks} times during the projection"


@pytest.mark.skipif(os.environ.get("XRAY_REQUIRE_GPU") != "1",
                    reason="set XRAY_REQUIRE_GPU=1 where a CUDA driver and device are (CI runs "
                           "this on the software CUDA driver)")
def test_cuda_build_runs_and_agrees_with_the_cpu():
    kinds = {s.kind: s for s in xp.backends()}
    assert kinds["cuda"].usable, kinds["cuda"].detail
    rng = np.random.default_rng(3)
    volume = xp.Volume(rng.uniform(0, 0.02, (24, 20, 16)).astype(np.float32), spacing=(1.2, 1.0, 1.1))
    geometry = xp.Geometry.circular(200, 350, 6, (18, 22), 1.3)
    for method in ("siddon", "joseph"):
        gpu = xp.project(volume, geometry, method=method, backend="cuda")
        cpu = xp.project(volume, geometry, method=method, backend="cpu")
        np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-6)
        y = rng.uniform(0, 1, geometry.shape).astype(np.float32)
        gpu_back = xp.backproject(y, geometry, volume.grid, method=method, backend="cuda")
        cpu_back = xp.backproject(y, geometry, volume.grid, method=method, backend="cpu")
        np.testing.assert_allclose(gpu_back, cpu_back, rtol=1e-4, atol=1e-5)
    recon_gpu = xp.fdk(xp.project(volume, geometry, backend="cpu"), geometry, volume.grid, backend="cuda")
    recon_cpu = xp.fdk(xp.project(volume, geometry, backend="cpu"), geometry, volume.grid, backend="cpu")
    np.testing.assert_allclose(recon_gpu, recon_cpu, rtol=1e-4, atol=1e-5)
