#!/usr/bin/env bash
# Builds everything the GPU check needs into one folder, on a build machine (no GPU
# needed): the `cuda` test and bench executables, the `xray` binary, the ASTRA anchor
# (../shared/anchors/prepare.sh) and scripts/gpu-check.sh. Copy or carry that folder to
# a GPU machine that has only the NVIDIA driver and run `bash DIR/gpu-check.sh DIR OUT`.
#
# usage: scripts/gpu-bundle.sh [DIR]        (default: gpu-run, ignored by git)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/gpu-run}
anchors=${ANCHORS:-$root/../shared/anchors}
cd "$root"
rm -rf "$dir" && mkdir -p "$dir/bin"

executables() { # cargo's JSON messages -> the executables of the named targets
  python3 -c '
import json, sys
wanted = set(sys.argv[1:])
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in wanted:
        print(m["target"]["name"], m["executable"])' "$@"
}

cargo build --release --features cuda --bin xray
cp target/release/xray "$dir/bin/"
cargo test --release --features cuda --no-run --message-format=json --test gpu --test backends \
  | executables gpu backends | while read -r name path; do cp "$path" "$dir/bin/test-$name"; done
cargo bench --features cuda --no-run --message-format=json --bench gpu \
  | executables gpu | while read -r name path; do cp "$path" "$dir/bin/bench-$name"; done
strip "$dir"/bin/* 2>/dev/null || true
cp scripts/gpu-check.sh "$dir/"
bash "$anchors/prepare.sh" "$dir/anchors"
du -sh "$dir"
