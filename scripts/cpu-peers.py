#!/usr/bin/env python3
"""CPU speed against the CPU peers on fp256 (BENCHMARKS.md), measured in one run.

Each round runs, in turn: ours (`xray bench --backend cpu`: forward Siddon and Joseph,
their backprojections, FDK from 16 views) on every vector path asked for, the seed's
Numba method (anchors/numba_bench.py), RTK 2.7's CPU Joseph projector
(anchors/rtk_cpu_bench.py) and RTK's CPU FDK (anchors/rtk_cpu_fdk.py). It prints each
round's figures as they come, then the medians over the rounds and the ratios the
project's goals are stated in (BENCHMARKS.md): Siddon against Numba, Joseph against
RTK, FDK against RTK, and each backprojection against its own forward projection.

    scripts/cpu-peers.py [--rounds 3] [--threads N] [--paths avx512,avx2,avx512/loads]

Needs target/release/xray (cargo build --release) and the anchors beside the project
(../shared/anchors, or --anchors DIR). The peers run in a virtual environment
(--venv, default target/peers-venv), made with pip when missing: numpy, numba and
itk-rtk 2.7.0.post1. --threads sets RAYON_NUM_THREADS, NUMBA_NUM_THREADS and
ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS alike (default: every core); --paths the
XRAY_CPU_LANES values to run ours with (default: the best this CPU has, and avx2 below
it), each optionally with `/loads` or `/instruction` for XRAY_CPU_GATHER (default: the
way `xray info` names for this CPU).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ["numpy", "numba", "itk-rtk==2.7.0.post1"]


def run(command, env, cwd=None):
    """Runs `command` and returns its standard output (raises with its errors)."""
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def peers_python(venv_dir):
    """The virtual environment's Python, with the peers installed."""
    python = venv_dir / "bin" / "python"
    if not python.exists():
        print(f"making {venv_dir} with {', '.join(PEERS)}", flush=True)
        venv.create(venv_dir, with_pip=True)
        run([python, "-m", "pip", "install", "--quiet", *PEERS], os.environ.copy())
    return python


def cpu_description():
    """The CPU model and its vector extensions, from /proc/cpuinfo."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    vector = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl") if f in flags]
    return f"{model}, {os.cpu_count()} logical cores, {' '.join(vector) or 'no AVX2'}"


def best_path(xray, env):
    """The vector path `xray info` reports for this CPU, and how its lanes gather."""
    info = run([xray, "info"], env)
    gather = next((way for way in ("instruction", "loads") if f"gathers by {way}" in info), "nothing")
    for path in ("avx512", "avx2", "scalar"):
        if f"; {path} lanes" in info:
            return path, gather
    raise SystemExit(f"xray info names no vector path:\n{info}")


def ours(xray, env, path, op, method):
    """One `xray bench` record (median of 3 repeats after a warm-up); `path` is an
    XRAY_CPU_LANES value, optionally followed by `/` and an XRAY_CPU_GATHER value."""
    lanes, _, gather = path.partition("/")
    env = dict(env, XRAY_CPU_LANES=lanes)
    if gather:
        env["XRAY_CPU_GATHER"] = gather
    line = run([xray, "bench", "--backend", "cpu", "--case", "fp256", "--op", op,
                "--method", method, "--repeats", "3", "--json"], env)
    return json.loads(line.strip().splitlines()[-1])


def anchor(python, script, args, env, anchors):
    """The JSON record an anchor script prints on its last line."""
    out = run([python, script, *args], env, cwd=anchors)
    return json.loads(out.strip().splitlines()[-1].split(" ", 2)[2])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--paths", help="comma-separated XRAY_CPU_LANES values, each optionally "
                        "followed by /loads or /instruction (XRAY_CPU_GATHER)")
    parser.add_argument("--anchors", type=Path, default=ROOT.parent / "shared" / "anchors")
    parser.add_argument("--venv", type=Path, default=ROOT / "target" / "peers-venv")
    args = parser.parse_args()
    xray = ROOT / "target" / "release" / "xray"
    if not xray.exists():
        raise SystemExit(f"{xray} is missing: cargo build --release --bin xray")
    if not (args.anchors / "numba_bench.py").exists():
        raise SystemExit(f"no anchors in {args.anchors} (--anchors DIR)")
    threads = str(args.threads)
    env = dict(os.environ, RAYON_NUM_THREADS=threads, NUMBA_NUM_THREADS=threads,
               ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=threads)
    python = peers_python(args.venv)
    best, gather = best_path(xray, env)
    paths = args.paths.split(",") if args.paths else ([best, "avx2"] if best == "avx512" else [best])
    print(f"# {cpu_description()}; {threads} threads; ours on {', '.join(paths)} "
          f"(gathers by {gather} unless a path names another way)", flush=True)

    # figures[name] = list over rounds; rays per second, or seconds for FDK.
    figures = {}

    def record(name, value, unit):
        figures.setdefault(name, []).append(value)
        print(f"  {name:<34} {value / 1e6 if unit == 'Mray/s' else value:10.3f} {unit}", flush=True)

    for round_index in range(1, args.rounds + 1):
        print(f"round {round_index}", flush=True)
        for path in paths:
            for method in ("siddon", "joseph"):
                record(f"ours {path} forward {method}", ours(xray, env, path, "forward", method)["rays_per_second"], "Mray/s")
                record(f"ours {path} backproject {method}", ours(xray, env, path, "backproject", method)["rays_per_second"], "Mray/s")
            record(f"ours {path} fdk", ours(xray, env, path, "fdk", "siddon")["seconds"], "s")
        numba = anchor(python, "numba_bench.py", ["cpu", "fp256"], env, args.anchors)
        record("numba forward (seed, Siddon-type)", numba["grays_per_s"] * 1e9, "Mray/s")
        rtk = anchor(python, "rtk_cpu_bench.py", ["8", "3"], env, args.anchors)
        record("rtk forward joseph", rtk["rays_per_s"], "Mray/s")
        rtk_fdk = anchor(python, "rtk_cpu_fdk.py", ["16", "3"], env, args.anchors)
        record("rtk fdk", rtk_fdk["s"], "s")

    median = {name: statistics.median(values) for name, values in figures.items()}
    spread = {name: (min(values), max(values)) for name, values in figures.items()}
    print(f"\nmedians over {args.rounds} rounds ({threads} threads):")
    for name, value in median.items():
        low, high = spread[name]
        scale = 1e6 if "fdk" not in name else 1.0
        unit = "Mray/s" if "fdk" not in name else "s"
        print(f"  {name:<34} {value / scale:8.3f} {unit} (rounds {low / scale:.3f}-{high / scale:.3f})")
    print("\nratios (medians; the goals of BENCHMARKS.md in brackets):")
    for path in paths:
        siddon = median[f"ours {path} forward siddon"] / median["numba forward (seed, Siddon-type)"]
        joseph = median[f"ours {path} forward joseph"] / median["rtk forward joseph"]
        fdk = median["rtk fdk"] / median[f"ours {path} fdk"]
        print(f"  {path}: Siddon / Numba {siddon:.2f}x [>= 5], Joseph / RTK {joseph:.2f}x [>= 3], "
              f"FDK RTK time / ours {fdk:.2f}x [>= 3]")
        for method in ("siddon", "joseph"):
            ratio = median[f"ours {path} backproject {method}"] / median[f"ours {path} forward {method}"]
            print(f"  {path}: {method} backprojection per ray / forward per ray {ratio:.2f} [>= 1]")


if __name__ == "__main__":
    sys.exit(main())
