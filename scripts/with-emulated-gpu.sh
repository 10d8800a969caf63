#!/usr/bin/env bash
# Runs a command with the project's software CUDA driver (cuda-emu/) in place of the
# real libcuda.so.1: builds it if needed (release), lays out target/cuda-emu/lib64/ with
# libcuda.so (to link `--features cuda` builds against) and libcuda.so.1 (to load), and
# runs CMD with CUDA_LIBRARY_PATH and LD_LIBRARY_PATH pointing there.
#
# usage: scripts/with-emulated-gpu.sh CMD [ARGS...]
#   e.g. scripts/with-emulated-gpu.sh cargo test --release --features cuda
#        scripts/with-emulated-gpu.sh target/release/xray drr --backend cuda --out drr.png
# The software device is configured by XRAY_EMU_* variables (cuda-emu/README.md).
set -euo pipefail
if [ $# -eq 0 ]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
lib64="$target_dir/cuda-emu/lib64"
# Quietly up to date: cargo does nothing when cuda-emu has not changed.
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p cuda-emu
mkdir -p "$lib64"
cp -f "$target_dir/release/libcuda_emu.so" "$lib64/libcuda.so.1.tmp"
mv -f "$lib64/libcuda.so.1.tmp" "$lib64/libcuda.so.1"
ln -sf libcuda.so.1 "$lib64/libcuda.so"
export CUDA_LIBRARY_PATH="$target_dir/cuda-emu"
export LD_LIBRARY_PATH="$lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$@"
