#!/usr/bin/env bash
# Builds the kernels crate to PTX with nightly rustc's NVPTX backend (TOOLCHAIN.md).
#   scripts/build-ptx.sh            regenerate the committed copy kernels/xray_kernels.ptx
#   scripts/build-ptx.sh --check    fail if the committed copy differs from a fresh build
#   scripts/build-ptx.sh --out F    write the fresh PTX to F
# Needs: rustup's `nightly` toolchain with the rust-src component.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
committed="$root/kernels/xray_kernels.ptx"
mode=write; out="$committed"
case "${1:-}" in
  --check) mode=check; out=$(mktemp) ;;
  --out) out=${2:?--out needs a file} ;;
  "") ;;
  *) echo "usage: $0 [--check | --out FILE]" >&2; exit 2 ;;
esac
target_dir="$root/target/ptx"
env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u RUSTC -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER \
  -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET \
  RUSTUP_TOOLCHAIN=nightly CARGO_TARGET_DIR="$target_dir" \
  RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Ctarget-cpu=sm_70" \
  cargo rustc --release --target nvptx64-nvidia-cuda -Zbuild-std=core \
    --manifest-path "$root/kernels/Cargo.toml" -- --emit=asm >&2
ptx=$(ls -t "$target_dir"/nvptx64-nvidia-cuda/release/deps/xray_kernels-*.s | head -n 1)
cp "$ptx" "$out"
if [ "$mode" = check ]; then
  if ! diff -q "$committed" "$out" >/dev/null; then
    echo "kernels/xray_kernels.ptx is stale: run scripts/build-ptx.sh and commit it" >&2
    diff -u "$committed" "$out" | head -n 40 >&2
    exit 1
  fi
  echo "kernels/xray_kernels.ptx is fresh"
else
  echo "wrote $out"
fi
