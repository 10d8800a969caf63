"""The package's build backend: maturin's, with one step before it.

maturin builds one extension module per wheel: `xray_projector._native`, the CPU
build. Before it runs, this backend builds the same crate with the `cuda` feature as
`xray_projector._native_cuda` and puts it beside the Python sources, so the wheel
carries both and picks the CUDA one at import where a driver is present.

The CUDA build links no CUDA library: its `cu*` symbols stay undefined, and the
package resolves them at import from the driver it has loaded itself
(`ctypes.CDLL("libcuda.so.1", RTLD_GLOBAL)`). `cust`'s build script still wants a
`libcuda.so` to pass to the linker; it is given an empty linker script (a comment),
which satisfies `-lcuda` and adds nothing. So the wheel builds on any machine with
Rust, GPU or not.

`XRAY_PYTHON_CUDA=0` skips the CUDA module (a CPU-only wheel).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import maturin
from maturin import *  # noqa: F401,F403  (every PEP 517 hook maturin has)

HERE = Path(__file__).resolve().parent.parent
CUDA_MODULE = HERE / "xray_projector" / "_native_cuda.abi3.so"


def _cargo_target_dir() -> Path:
    """Where cargo puts the workspace's build outputs."""
    configured = os.environ.get("CARGO_TARGET_DIR")
    if configured:
        return Path(configured)
    return HERE.parent / "target"


def build_cuda_module() -> None:
    """Builds `_native_cuda` into the package directory (or removes a stale one when
    `XRAY_PYTHON_CUDA=0`)."""
    if os.environ.get("XRAY_PYTHON_CUDA", "1") == "0":
        CUDA_MODULE.unlink(missing_ok=True)
        return
    with tempfile.TemporaryDirectory() as stub:
        lib64 = Path(stub) / "lib64"
        lib64.mkdir()
        (lib64 / "libcuda.so").write_text(
            "/* Empty linker script: the cu* symbols are resolved at import, from the "
            "driver the package loads. */\n"
        )
        env = dict(os.environ)
        previous = env.get("CUDA_LIBRARY_PATH")
        env["CUDA_LIBRARY_PATH"] = stub if not previous else f"{stub}:{previous}"
        # As maturin builds the CPU module: an extension module (libpython not linked),
        # for this interpreter.
        env["PYO3_BUILD_EXTENSION_MODULE"] = "1"
        env.setdefault("PYO3_PYTHON", sys.executable)
        command = [
            "cargo", "build", "--release", "--locked",
            "--manifest-path", str(HERE / "Cargo.toml"),
            "--features", "cuda", "--lib",
        ]
        print("xray_build:", " ".join(command), file=sys.stderr, flush=True)
        subprocess.run(command, check=True, env=env, cwd=HERE)
    built = _cargo_target_dir() / "release" / "libxray_projector_native.so"
    shutil.copyfile(built, CUDA_MODULE)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 517: the CUDA module, then maturin's wheel (which includes it)."""
    build_cuda_module()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660: as `build_wheel`, for `pip install -e`."""
    build_cuda_module()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)
