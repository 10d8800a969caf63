#!/usr/bin/env bash
# The whole GPU check in one job, on a GPU machine, from a folder made by
# scripts/gpu-bundle.sh: the GPU tests (a skip is a failure here), compute-sanitizer
# memcheck on them, `xray bench` and the Criterion GPU benches on the standard cases,
# and ASTRA on the same cases in the same job. Results go to OUT.
#
# usage: bash DIR/gpu-check.sh DIR OUT
set -uo pipefail
dir=$(cd "${1:?usage: gpu-check.sh DIR OUT}" && pwd)
out=${2:?usage: gpu-check.sh DIR OUT}
mkdir -p "$out"
export XRAY_REQUIRE_GPU=1
status=0
run() { # name, command...: output to OUT/name.txt, remember failures
  local name=$1; shift
  echo "=== $name: $*" | tee -a "$out/summary.txt"
  "$@" >"$out/$name.txt" 2>&1
  local rc=$?
  echo "    rc=$rc" | tee -a "$out/summary.txt"
  [ $rc -eq 0 ] || status=1
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
run info "$dir/bin/xray" info
run tests-gpu "$dir/bin/test-gpu" --test-threads=1
run tests-backends "$dir/bin/test-backends"
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$sanitizer" ]; then
  # The 70 000-view and out-of-memory tests are slow under memcheck and add nothing.
  run sanitizer "$sanitizer" --tool memcheck --leak-check full --error-exitcode 1 \
    "$dir/bin/test-gpu" --test-threads=1 --skip more_views --skip impossible
else
  echo "compute-sanitizer not found" | tee -a "$out/summary.txt"; status=1
fi
for method in siddon joseph; do
  run "bench-$method" "$dir/bin/xray" bench --backend cuda --method "$method" --repeats 5 \
    --case fp256 --case fp512 --case drr1 --case drr64 --json
done
run astra bash "$dir/anchors/run_on_device.sh" "$dir/anchors" fp256 fp512 drr
run criterion "$dir/bin/bench-gpu" --bench --warm-up-time 1 --measurement-time 3
exit $status
