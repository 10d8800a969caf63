"""The package's build backend: maturin's, with one step before it.

maturin builds one extension module per wheel: `xray_projector._native`, the CPU
build. Before it runs, this backend builds the same crate with the `cuda` feature as
`xray_projector._native_cuda` and puts it beside the Python sources, so the wheel
carries both and picks the CUDA one at import where a driver is present.

The CUDA build needs no CUDA library: the package loads the driver itself before it
imports that module (`ctypes.CDLL("libcuda.so.1", RTLD_GLOBAL)`), which resolves the
module's `cu*` symbols. `cust`'s build script still wants a directory with a
`libcuda.so` for the linker: where `CUDA_LIBRARY_PATH` is not set, it is given one under
the cargo target directory holding an empty linker script (a comment), which satisfies
`-lcuda` and links nothing. So the wheel builds on any machine with Rust, GPU or not.
Where `CUDA_LIBRARY_PATH` is set (a CUDA toolkit, or the project's software driver in
CI), it is used as it is, and the module also records `libcuda.so.1` as needed, which
changes nothing: the package imports it only where that library loads.

`XRAY_PYTHON_CUDA=0` skips the CUDA module (a CPU-only wheel).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import maturin
from maturin import *  # noqa: F401,F403  (every PEP 517 hook maturin has)

HERE = Path(__file__).resolve().parent.parent
CUDA_MODULE = HERE / "xray_projector" / "_native_cuda.abi3.so"
LIBRARY_NAME = "xray_projector_native"


def _target_dir() -> Path:
    """The workspace's cargo target directory, as cargo itself reports it."""
    metadata = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--manifest-path", str(HERE / "Cargo.toml")],
        check=True, capture_output=True, text=True, cwd=HERE,
    )
    return Path(json.loads(metadata.stdout)["target_directory"])


def _link_stub(target_dir: Path) -> Path:
    """A fixed directory whose `lib64/libcuda.so` is an empty linker script (a fixed
    path, so that cargo's fingerprint of `CUDA_LIBRARY_PATH` stays the same)."""
    stub = target_dir / "python-cuda-link-stub"
    lib64 = stub / "lib64"
    lib64.mkdir(parents=True, exist_ok=True)
    script = lib64 / "libcuda.so"
    text = "/* Empty linker script: the cu* symbols are resolved at import, from the driver the package loads. */\n"
    if not script.exists() or script.read_text() != text:
        script.write_text(text)
    return stub


def build_cuda_module() -> None:
    """Builds `_native_cuda` into the package directory (or removes a stale one when
    `XRAY_PYTHON_CUDA=0`)."""
    if os.environ.get("XRAY_PYTHON_CUDA", "1") == "0":
        CUDA_MODULE.unlink(missing_ok=True)
        return
    env = dict(os.environ)
    if not env.get("CUDA_LIBRARY_PATH"):
        env["CUDA_LIBRARY_PATH"] = str(_link_stub(_target_dir()))
    # As maturin builds the CPU module: an extension module (libpython not linked), for
    # this interpreter.
    env["PYO3_BUILD_EXTENSION_MODULE"] = "1"
    env.setdefault("PYO3_PYTHON", sys.executable)
    command = [
        "cargo", "build", "--release", "--locked", "--message-format=json-render-diagnostics",
        "--manifest-path", str(HERE / "Cargo.toml"), "--features", "cuda", "--lib",
    ]
    print("xray_build:", " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, check=True, env=env, cwd=HERE, stdout=subprocess.PIPE, text=True)
    built = None
    for line in done.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message["target"]["name"] == LIBRARY_NAME:
            built = next((f for f in message["filenames"] if f.endswith(".so")), built)
    if built is None:
        raise RuntimeError(f"cargo built no lib{LIBRARY_NAME}.so")
    shutil.copyfile(built, CUDA_MODULE)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 517: the CUDA module, then maturin's wheel (which includes it)."""
    build_cuda_module()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660: as `build_wheel`, for `pip install -e`."""
    build_cuda_module()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)
