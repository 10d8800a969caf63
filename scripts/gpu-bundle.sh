#!/usr/bin/env bash
# Builds everything the GPU check needs into one folder, on a build machine that needs
# neither a GPU nor CUDA: the `cuda` test and bench executables, the `xray` binary, a
# copy of the PTX they embed (kernels.ptx, for `ptxas -v` there), the ASTRA anchor
# (../shared/anchors/prepare.sh: pip and gcc needed), scripts/gpu-check.sh and
# BUNDLE.txt (what was built, from which commit). Carry that folder to a GPU machine
# that has the NVIDIA driver and CUDA but no Rust, and run `bash DIR/gpu-check.sh DIR OUT`
# there (one call, under 8 minutes; see gpu-check.sh).
#
# Linking needs a libcuda.so under $CUDA_LIBRARY_PATH/lib64: when CUDA_LIBRARY_PATH is
# unset, the software CUDA driver of cuda-emu/ is built and used for that
# (scripts/with-emulated-gpu.sh). The executables load the real driver on the GPU machine
# (they name libcuda.so.1, found there by the loader).
#
# usage: scripts/gpu-bundle.sh [DIR]        (default: gpu-run, ignored by git)
# env:   ANCHORS=DIR   the anchors to prepare (default ../shared/anchors beside the
#                      checkout); ANCHORS=none leaves ASTRA out (gpu-check then fails
#                      its ASTRA step on a GPU, and skips it in a dry run)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/gpu-run}
anchors=${ANCHORS:-$root/../shared/anchors}
# The folder is deleted and made again: refuse anything that is not a bundle.
dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
case "$dir" in
  / | "$root" | "$HOME") echo "gpu-bundle: refusing to use $dir" >&2; exit 1 ;;
esac
if [ -n "$(ls -A "$dir")" ] && [ ! -f "$dir/BUNDLE.txt" ]; then
  echo "gpu-bundle: $dir holds something that is not a bundle; give an empty folder" >&2
  exit 1
fi
if [ "$anchors" != none ]; then
  anchors=$(cd "$anchors" 2>/dev/null && pwd) || anchors=${ANCHORS:-$root/../shared/anchors}
fi
cd "$root"

if [ "$anchors" != none ] && [ ! -f "$anchors/prepare.sh" ]; then
  echo "gpu-bundle: no ASTRA anchor at $anchors (set ANCHORS=DIR, or ANCHORS=none)" >&2
  exit 1
fi

if [ -z "${CUDA_LIBRARY_PATH:-}" ]; then
  if [ ! -f scripts/with-emulated-gpu.sh ]; then
    echo "gpu-bundle: CUDA_LIBRARY_PATH is unset and scripts/with-emulated-gpu.sh is missing" >&2
    exit 1
  fi
  # Builds the software driver and lays out its lib64/; says where (target/cuda-emu).
  CUDA_LIBRARY_PATH=$(bash scripts/with-emulated-gpu.sh printenv CUDA_LIBRARY_PATH)
  export CUDA_LIBRARY_PATH
fi
if [ ! -d "$CUDA_LIBRARY_PATH/lib64" ]; then
  echo "gpu-bundle: CUDA_LIBRARY_PATH=$CUDA_LIBRARY_PATH has no lib64/" >&2
  exit 1
fi

rm -rf "$dir" && mkdir -p "$dir/bin"
# Marks the folder as a bundle (so that a rerun may replace it); rewritten at the end.
echo "INCOMPLETE: scripts/gpu-bundle.sh did not finish" >"$dir/BUNDLE.txt"
messages=$(mktemp)
trap 'rm -f "$messages"' EXIT

# cargo's JSON messages -> "KIND NAME PATH" for each executable (KIND: bin, test or
# bench; tests/gpu.rs and benches/gpu.rs are both named gpu), and "ptx - PATH" for the
# PTX that build.rs left in OUT_DIR.
executables() {
  python3 -c '
import json, os, sys
for line in sys.stdin:
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["kind"][0], m["target"]["name"], m["executable"])
    elif m.get("reason") == "build-script-executed":
        ptx = os.path.join(m.get("out_dir") or "", "xray_kernels.ptx")
        if os.path.isfile(ptx):
            print("ptx", "-", ptx)'
}
json=--message-format=json-render-diagnostics
cargo build --release --features cuda --bin xray "$json" >"$messages"
cargo test --release --features cuda --no-run "$json" --test gpu --test backends >>"$messages"
cargo bench --features cuda --no-run "$json" --bench gpu >>"$messages"
ptx=""
while read -r kind name path; do
  case "$kind $name" in
    "bin xray") exe=xray ;;
    "test gpu" | "test backends") exe=test-$name ;;
    "bench gpu") exe=bench-gpu ;;
    "ptx -") [ -n "$ptx" ] || ptx=$path; continue ;;
    *) continue ;;
  esac
  [ -f "$dir/bin/$exe" ] || cp "$path" "$dir/bin/$exe"
done < <(executables <"$messages")
strip "$dir"/bin/* 2>/dev/null || true
chmod 0755 "$dir"/bin/*
for exe in xray test-gpu test-backends bench-gpu; do
  [ -x "$dir/bin/$exe" ] || { echo "gpu-bundle: no $exe was built" >&2; exit 1; }
done

# The PTX the executables embed (build.rs's output; the committed copy is the fallback).
cp "${ptx:-kernels/xray_kernels.ptx}" "$dir/kernels.ptx"
python3 -c '
import sys
ptx = open(sys.argv[1], "rb").read()
missing = [p for p in sys.argv[2:] if ptx not in open(p, "rb").read()]
sys.exit("gpu-bundle: kernels.ptx is not the PTX embedded in " + " ".join(missing) if missing else 0)
' "$dir/kernels.ptx" "$dir"/bin/*
cmp -s "$dir/kernels.ptx" kernels/xray_kernels.ptx ||
  echo "gpu-bundle: note: the embedded PTX differs from the committed kernels/xray_kernels.ptx" >&2

cp scripts/gpu-check.sh "$dir/"
chmod 0755 "$dir/gpu-check.sh"
if [ "$anchors" != none ]; then
  bash "$anchors/prepare.sh" "$dir/anchors"
fi

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit+local changes"
{
  echo "xray-projector $commit, bundled $(date -u '+%F %T UTC') on $(uname -srm)"
  echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
  echo "linked against: $CUDA_LIBRARY_PATH/lib64 (the GPU machine's own libcuda.so.1 loads there)"
  echo "PTX: kernels.ptx, $(wc -c <"$dir/kernels.ptx") bytes, sha256 $(sha256sum "$dir/kernels.ptx" | cut -c1-16)"
  echo "ASTRA anchor: $([ "$anchors" != none ] && echo "anchors/ (from $anchors)" || echo "none (ANCHORS=none)")"
  echo "executables:"
  (cd "$dir/bin" && stat -c '  %A %10s %n' -- *)
} >"$dir/BUNDLE.txt"

size_kib=$(du -sk "$dir" | cut -f1)
echo "bundle: $dir, $((size_kib / 1024)) MiB"
cat "$dir/BUNDLE.txt"
# The device tool carries at most 64 MiB with the working tree.
if ((size_kib > 56 * 1024)); then
  echo "gpu-bundle: warning: $((size_kib / 1024)) MiB is close to or over the 64 MiB a device call carries" >&2
fi
echo "run there: bash $(basename "$dir")/gpu-check.sh $(basename "$dir") \"\$OUT\"   (carry: $(basename "$dir"))"
