#!/usr/bin/env bash
# shellcheck disable=SC2317 # steps run through `step NAME FUNCTION`, out of shellcheck's sight
# The whole GPU check in one short job, on a GPU machine that has the NVIDIA driver and
# CUDA but no Rust, from a folder made by scripts/gpu-bundle.sh:
#
#   preflight  the bundle (run bits, `ldd` finds libcuda, the bundled PTX is the one the
#              executables embed, `ptxas -v` on it, the options this script passes
#              exist), nvidia-smi, `xray info` showing the GPU as usable
#   tests      the GPU tests (a skip is a failure: XRAY_REQUIRE_GPU=1) and tests/backends
#   bench      `xray bench --backend cuda` on the standard cases, Siddon and Joseph
#   astra      the ASTRA anchor on the same cases, in the same job (anchors/)
#   sanitizer  compute-sanitizer memcheck (the test process only) on the GPU tests but
#              the slow one and those that make a driver call fail on purpose (a
#              kernel fault, a rejected PTX, an impossible allocation)
#   criterion  the Criterion GPU benches of the resident volume (kernel time, CUDA
#              events), 10 samples each, short measurement
#   ratios     ASTRA's times over ours, from this run's bench and astra results
#
# Each step has a time budget (coreutils `timeout`; budgets sum to 7 min, and the steps
# stop at 7.5 min in all, the ratio table excepted), and its output is appended to its
# file under OUT while it runs, so a step that runs out of time still leaves what it
# did; a command that would start with no time left is not run, and its step is marked
# TIMEOUT. OUT gets six files:
# summary.txt (one line per step, and the ratio table), preflight.txt, tests.txt,
# bench.txt (xray bench's JSON lines, then Criterion's report), astra.txt (ASTRA's JSON
# lines) and sanitizer.txt. Exit status 0 when every step passed.
#
# Dry run, for CI on the software CUDA driver (scripts/with-emulated-gpu.sh):
#   XRAY_GPU_CHECK_EMULATED=1 bash DIR/gpu-check.sh DIR OUT
# runs every step's code on little work: the preflight without nvidia-smi, the GPU
# tests with `--skip more_views` (CI passes XRAY_GPU_CHECK_TEST_FILTER to run one: it
# has run them all already), `xray bench` on one view of fp256
# with one run of each kind, Criterion's `--test` (each matching bench run once,
# nothing measured) on one one-view bench, and the ratio table on that output (then on
# made-up records, to check its arithmetic). It says `SKIPPED (emulated)` for ASTRA and
# compute-sanitizer, which need the GPU, and fails on any error, so that the first real
# run does not fail on a script error. About a minute on the software driver.
#
# Environment: PTXAS, COMPUTE_SANITIZER (tools, else found in PATH or /usr/local/cuda*),
# XRAY_GPU_CHECK_TOTAL_S (the whole check's limit, seconds), XRAY_GPU_CHECK_CRITERION
# (Criterion's benchmark filter, a regex; default ^cuda_resident_, or one one-view bench
# in a dry run), XRAY_GPU_CHECK_TEST_FILTER (libtest filter words for the GPU tests of
# step `tests`, e.g. to keep a dry run short; default: all).
#
# usage: bash DIR/gpu-check.sh DIR OUT
set -uo pipefail

usage() {
  echo "usage: [XRAY_GPU_CHECK_EMULATED=1] bash DIR/gpu-check.sh DIR OUT" >&2
  exit 2
}
[ $# -eq 2 ] || usage
dir=$(cd "$1" 2>/dev/null && pwd) || usage
mkdir -p "$2" || usage
out=$(cd "$2" && pwd) || usage
case "${XRAY_GPU_CHECK_EMULATED:-0}" in
  "" | 0) emulated=false ;;
  *) emulated=true ;;
esac
export XRAY_REQUIRE_GPU=1 PYTHONUNBUFFERED=1

# Seconds per step. On a GPU they sum to 420 (7 min): well inside one 8-minute call.
# The preflight's 40 s cover a cold machine: nvidia-smi twice, and the first CUDA
# context with an empty JIT cache (`xray info`).
#
# Criterion's 75 s: the filter ^cuda_resident_ matches 12 benches (forward Siddon and
# Joseph on fp256, fp512, drr1 and drr64; backward Siddon and Joseph on fp256 and
# fp512). Each takes at least its 0.5 s warm-up and 1.5 s measurement (24 s in all), at
# most about 3.5 s while a kernel runs under 0.15 s; beyond that 10 samples of one run
# each, about 11 runs (fp512's backprojection, if it takes 0.5 s, 6 s). With the inputs
# (voxelising fp512 and the DRR volume, uploads) that is 35 to 50 s.
#
# Under emulation the budgets only stop a hang: the dry run takes about a minute.
declare -A budget
if $emulated; then
  budget=([preflight]=120 [tests]=600 [bench]=180 [astra]=0 [sanitizer]=0 [criterion]=120 [ratios]=30)
  total_s=${XRAY_GPU_CHECK_TOTAL_S:-1080}
else
  budget=([preflight]=40 [tests]=90 [bench]=60 [astra]=60 [sanitizer]=90 [criterion]=75 [ratios]=5)
  total_s=${XRAY_GPU_CHECK_TOTAL_S:-450}
fi
total_deadline=$((SECONDS + total_s))
if $emulated; then
  # One bench of one view (drr1: a few seconds on the software driver), run once.
  criterion_filter=${XRAY_GPU_CHECK_CRITERION:-^cuda_resident_siddon/drr1/}
else
  criterion_filter=${XRAY_GPU_CHECK_CRITERION:-^cuda_resident_}
fi
cases=(fp256 fp512 drr1 drr64)
# Tests left out under compute-sanitizer: `--skip` patterns, each checked in the
# preflight to match a test. The 70 000-view test is slow there and adds nothing to a
# memory check; the others make a driver call fail on purpose, which the tool reports
# as an error: a kernel fault (in a child process: faulted_context), a rejected PTX, an
# impossible allocation. The launch-limit and axis-length tests stay: they are refused
# before any driver call, and the 524,280-row projection at the limit is worth checking.
sanitizer_skips=(more_views impossible faulted_context rejected_ptx)
# Left out of the dry run only: CI runs it in its own test step on the software GPU,
# and the dry run checks the script, not the kernels.
emulated_skips=(more_views)

summary=$out/summary.txt
for f in summary preflight tests bench astra sanitizer; do : >"$out/$f.txt"; done
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch" || exit 1 # stray files from the executables land here, not in OUT

# The ratio table (step `ratios`): ASTRA's times over ours, from xray bench's JSON lines
# and Criterion's report in argv[1] and ASTRA's JSON lines in argv[2].
cat >"$scratch/ratios.py" <<'PY'
import json, re, sys

def records(path):
    found = []
    for line in open(path, encoding="utf-8", errors="replace"):
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                pass
    return found

bench, astra = sys.argv[1], sys.argv[2]
ours = {(r.get("case"), r.get("method")): r for r in records(bench) if r.get("backend") == "cuda"}
anchor = {str(r.get("case", "")).replace("drr x", "drr"): r for r in records(astra)}
units = {"ps": 1e-12, "ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0}
criterion = {}  # (group, case) -> median seconds
text = open(bench, encoding="utf-8", errors="replace").read()
for m in re.finditer(r"(?m)^(\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", text):
    parts = m.group(1).split("/")
    if len(parts) >= 2 and m.group(3) in units:
        criterion[(parts[0], parts[1])] = float(m.group(2)) * units[m.group(3)]

rows = []
for case in ("fp256", "fp512", "drr1", "drr64"):
    a = anchor.get(case, {})
    for method in ("siddon", "joseph"):
        r = ours.get((case, method), {})
        rows.append((case, method, "forward, resident", a.get("fp_dev_s"), r.get("resident_seconds")))
        rows.append((case, method, "forward, Criterion", a.get("fp_dev_s"),
                     criterion.get(("cuda_resident_" + method, case))))
        rows.append((case, method, "forward, from host", a.get("fp_host_s"), r.get("seconds")))
        if case.startswith("fp"):
            rows.append((case, method, "backward, Criterion", a.get("bp_dev_s"),
                         criterion.get(("cuda_resident_backward_" + method, case))))

def ms(t):
    return "%10.3f" % (t * 1e3) if isinstance(t, (int, float)) else "%10s" % "-"

print("ratios from this run: ASTRA's time / ours (above 1: ours is faster)")
print("%-6s %-7s %-20s %10s %10s %7s" % ("case", "method", "what", "ASTRA ms", "ours ms", "ratio"))
for case, method, what, theirs, mine in rows:
    ok = isinstance(theirs, (int, float)) and isinstance(mine, (int, float)) and mine > 0
    print("%-6s %-7s %-20s %s %s %7s" % (case, method, what, ms(theirs), ms(mine),
                                         "%.2f" % (theirs / mine) if ok else "-"))
missing = sum(1 for row in rows if not isinstance(row[4], (int, float)))
if missing:
    print("(%d of %d figures of ours missing)" % (missing, len(rows)))
PY

say() { printf '%s\n' "$*" | tee -a "$summary"; }
status=0

# --- steps -----------------------------------------------------------------------------
# step NAME FUNCTION: runs FUNCTION with NAME's budget, its output to OUT/<file>.txt, and
# writes NAME's line to the summary. Inside, `run` runs a command with what is left of the
# budget, `capture` gives a command's output, `fail` records a failed condition, `note` a
# line for the summary.
step() {
  local name=$1 fn=$2 t0=$SECONDS line
  local limit=$((total_deadline - SECONDS))
  # The ratio table takes a second and is what the run is for: it runs even then.
  ((limit < budget[$name])) && [ "$name" != ratios ] || limit=${budget[$name]}
  step_deadline=$((SECONDS + limit)) step_failed=false step_timed_out=false
  step_state="" step_notes=()
  rm -f "$capture_timed_out"
  if ((limit < 1)); then
    say "$(printf '%-10s TIMEOUT    the whole check ran out of time before it' "$name")"
    status=1
    return
  fi
  say "$(printf '%-10s started    at most %d s' "$name" "$limit")"
  "$fn"
  if [ -e "$capture_timed_out" ]; then
    step_timed_out=true
    while read -r line; do note "$line"; done <"$capture_timed_out"
  fi
  local state
  if [ -n "$step_state" ]; then
    state=$step_state
  elif $step_timed_out; then
    state=TIMEOUT status=1
  elif $step_failed; then
    state=FAILED status=1
  else
    state=ok
  fi
  say "$(printf '%-10s %-10s %4d s of %d' "$name" "$state" $((SECONDS - t0)) "$limit")"
  for line in "${step_notes[@]}"; do say "             $line"; done
}

# skip NAME FILE REASON: a step that does not run here.
skip() {
  printf 'SKIPPED (emulated): %s\n' "$3" >>"$out/$2"
  say "$(printf '%-10s SKIPPED (emulated): %s' "$1" "$3")"
}

left() {
  local l=$((step_deadline - SECONDS))
  ((l > 0)) || l=0
  echo "$l"
}

# run FILE LABEL CMD...: CMD, stdin closed, with what is left of the step's time; its
# output is appended to OUT/FILE as it comes. Returns CMD's status (124/137: timed out).
run() {
  local file=$out/$1 label=$2 t rc t0=$SECONDS
  shift 2
  t=$(left)
  if ((t < 1)); then
    echo "=== $label: not started, the step's time is up" >>"$file"
    step_timed_out=true
    step_notes+=("$label: not started, the step's time was up")
    return 124
  fi
  echo "=== $label: $* (at most $t s)" >>"$file"
  timeout -k 5 "$t" "$@" </dev/null >>"$file" 2>&1
  rc=$?
  echo "=== $label: rc=$rc after $((SECONDS - t0)) s" >>"$file"
  case $rc in
    0) ;;
    124 | 137)
      step_timed_out=true
      step_notes+=("$label: timed out after $((SECONDS - t0)) s")
      ;;
    *)
      step_failed=true
      step_notes+=("$label: rc=$rc")
      ;;
  esac
  return "$rc"
}

# fail FILE MESSAGE: fails the step, saying MESSAGE in OUT/FILE and the summary.
fail() {
  echo "FAILED: $2" >>"$out/$1"
  step_failed=true
  step_notes+=("$2")
}
note() { step_notes+=("$*"); }

# capture CMD...: CMD's output (stdout and stderr), with what is left of the step's time;
# not run when none is left (`timeout 0` would not limit it). It runs in a subshell
# (`$(capture ...)`), so a timeout reaches `step` through a file.
capture_timed_out=$scratch/capture-timed-out
capture() {
  local t rc
  t=$(left)
  if ((t < 1)); then
    echo "$1: not started, the step's time was up" >>"$capture_timed_out"
    return 124
  fi
  timeout -k 5 "$t" "$@" </dev/null 2>&1
  rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "$1: timed out" >>"$capture_timed_out"
  fi
  return "$rc"
}

# find_tool NAME VARIABLE: a CUDA tool from $VARIABLE, else PATH, else /usr/local/cuda,
# else the last /usr/local/cuda-* that has it.
find_tool() {
  local name=$1 given=${!2:-} found="" candidate
  if [ -n "$given" ]; then
    echo "$given"
    return
  fi
  if found=$(command -v "$name" 2>/dev/null); then
    echo "$found"
    return
  fi
  found=""
  for candidate in /usr/local/cuda-*/bin/"$name" /usr/local/cuda-*/"$name"/"$name" \
    /usr/local/cuda/"$name"/"$name" /usr/local/cuda/bin/"$name"; do
    [ -x "$candidate" ] && found=$candidate
  done
  echo "$found"
}

# --- preflight -------------------------------------------------------------------------
preflight() {
  local f=preflight.txt exe lib line arch cap ptxas
  {
    echo "=== bundle"
    cat "$dir/BUNDLE.txt" 2>/dev/null || echo "(no BUNDLE.txt)"
    echo "=== machine: $(uname -srm), $(nproc 2>/dev/null) CPUs, $(date -u '+%F %T UTC')"
  } >>"$out/$f"
  if $emulated; then
    echo "=== nvidia-smi: SKIPPED (emulated)" >>"$out/$f"
    arch=sm_90
  else
    run "$f" nvidia-smi nvidia-smi
    cap=$(capture nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d ' .')
    arch=sm_90
    if [[ $cap =~ ^[0-9]+$ ]]; then arch=sm_$cap; fi
  fi

  # The executables: run bits (put back if lost, so the other steps still run) and the
  # CUDA driver library the loader finds for them.
  for exe in xray test-gpu test-backends bench-gpu; do
    [ -f "$dir/bin/$exe" ] || fail "$f" "bin/$exe is missing from the bundle"
    [ -f "$dir/bin/$exe" ] || continue
    if [ ! -x "$dir/bin/$exe" ]; then
      fail "$f" "bin/$exe lost its run bits on the way (chmod +x done here)"
      chmod +x "$dir/bin/$exe"
    fi
    if command -v ldd >/dev/null; then
      lib=$(capture ldd "$dir/bin/$exe")
    else
      lib=$(capture env LD_TRACE_LOADED_OBJECTS=1 "$dir/bin/$exe")
    fi
    line=$(grep -m 1 'libcuda\.so' <<<"$lib" | sed 's/^[[:space:]]*//')
    echo "ldd bin/$exe: ${line:-no libcuda}" >>"$out/$f"
    [[ $line == *"=> /"* ]] || fail "$f" "bin/$exe: the loader finds no libcuda (${line:-not linked})"
    if ! $emulated; then
      [[ $line != *cuda-emu* ]] || fail "$f" "bin/$exe would load the software driver, not the GPU's"
    fi
  done

  # The PTX: the bundled copy is what every executable embeds, and ptxas compiles it.
  [ -f "$dir/kernels.ptx" ] || fail "$f" "kernels.ptx is missing from the bundle"
  if [ -f "$dir/kernels.ptx" ]; then
    cat >"$scratch/embedded.py" <<'PY'
import sys
ptx = open(sys.argv[1], "rb").read()
missing = [p for p in sys.argv[2:] if ptx not in open(p, "rb").read()]
n = len(sys.argv) - 2
print("%d bytes of PTX, embedded in %d of %d executables" % (len(ptx), n - len(missing), n))
sys.exit("not embedded in: " + " ".join(missing) if missing else 0)
PY
    run "$f" "the bundled PTX is the one each executable embeds" python3 "$scratch/embedded.py" \
      "$dir/kernels.ptx" "$dir"/bin/*
    ptxas=$(find_tool ptxas PTXAS)
    if [ -z "$ptxas" ]; then
      ptxas=$(python3 -c 'import nvidia.cuda_nvcc as m; print(list(m.__path__)[0] + "/bin/ptxas")' 2>/dev/null)
      [ -x "$ptxas" ] || ptxas=""
    fi
    [ -n "$ptxas" ] || fail "$f" "ptxas not found (PTXAS, PATH, /usr/local/cuda*/bin)"
    if [ -n "$ptxas" ]; then
      run "$f" "ptxas version" "$ptxas" --version
      run "$f" "ptxas -v for $arch" "$ptxas" -v -arch="$arch" "$dir/kernels.ptx" -o "$scratch/kernels.cubin"
    fi
  fi

  local sanitizer_tool
  sanitizer_tool=$(find_tool compute-sanitizer COMPUTE_SANITIZER)
  echo "compute-sanitizer: ${sanitizer_tool:-not found}" >>"$out/$f"
  if [ -n "$sanitizer_tool" ] && ! $emulated; then
    run "$f" "compute-sanitizer version" "$sanitizer_tool" --version
    local sanitizer_help
    sanitizer_help=$(capture "$sanitizer_tool" --help)
    for word in --tool --leak-check --target-processes application-only --error-exitcode; do
      [[ $sanitizer_help == *"$word"* ]] || fail "$f" "compute-sanitizer --help does not mention $word"
    done
  fi

  # What the later steps pass exists, so that none of them fails on a script error.
  local help
  help=$(capture "$dir/bin/xray" bench --help)
  for word in --case --views --backend --method --repeats --resident-repeats --json cuda \
    siddon joseph "${cases[@]}"; do
    [[ $help == *"$word"* ]] || fail "$f" "xray bench --help does not mention $word"
  done
  help=$(capture "$dir/bin/bench-gpu" --help)
  # (`--bench` and `--test` are there too, hidden from the help.)
  for word in --noplot --discard-baseline --sample-size --warm-up-time --measurement-time \
    --nresamples; do
    [[ $help == *"$word"* ]] || fail "$f" "bench-gpu (Criterion) --help does not mention $word"
  done
  local tests pattern
  tests=$(capture "$dir/bin/test-gpu" --list)
  echo "=== test-gpu --list" >>"$out/$f"
  printf '%s\n' "$tests" >>"$out/$f"
  for pattern in "${sanitizer_skips[@]}" "${emulated_skips[@]}"; do
    grep -q -- "$pattern.*: test" <<<"$tests" || fail "$f" "no GPU test matches --skip $pattern"
  done
  if [ -d "$dir/anchors" ]; then
    for line in run_on_device.sh astra_bench.py geometry.py lib/libcufft.so.11 \
      'whl/astra_toolbox-*.whl' 'whl/nvidia_cuda_runtime_cu12-*.whl'; do
      # shellcheck disable=SC2086 # $line may be a glob
      ls "$dir"/anchors/$line >/dev/null 2>&1 || fail "$f" "anchors/$line is missing"
    done
    bash -n "$dir/anchors/run_on_device.sh" || fail "$f" "anchors/run_on_device.sh does not parse"
  elif $emulated; then
    echo "anchors: not in this bundle (ANCHORS=none)" >>"$out/$f"
  else
    fail "$f" "anchors/ is missing: the bundle was made with ANCHORS=none"
  fi

  # The GPU as the project sees it.
  local info
  info=$(capture "$dir/bin/xray" info)
  printf '=== xray info\n%s\n' "$info" >>"$out/$f"
  grep -Eq "^cuda +usable" <<<"$info" || fail "$f" "xray info does not show CUDA as usable"
  note "$(grep -E '^cuda ' <<<"$info" | head -n 1)"
}

# --- tests -----------------------------------------------------------------------------
tests() {
  local f=tests.txt extra=() filter=() pattern
  if $emulated; then
    for pattern in "${emulated_skips[@]}"; do extra+=(--skip "$pattern"); done
  fi
  read -r -a filter <<<"${XRAY_GPU_CHECK_TEST_FILTER:-}"
  [ ${#filter[@]} -eq 0 ] || note "GPU tests filtered to: ${filter[*]}"
  run "$f" test-gpu "$dir/bin/test-gpu" --test-threads=1 "${extra[@]}" "${filter[@]}"
  run "$f" test-backends "$dir/bin/test-backends"
  ! grep -q "^SKIPPED" "$out/$f" || fail "$f" "a GPU test skipped"
  ! grep -q "^running 0 tests" "$out/$f" || fail "$f" "no test ran (a filter that matches nothing?)"
  local line
  while read -r line; do note "$line"; done < <(grep '^test result:' "$out/$f")
}

# --- bench: xray bench, then Criterion -------------------------------------------------
bench() {
  local f=bench.txt method args=() expected n c
  if $emulated; then
    # The same command on the least work: one view of fp256, one run of each kind.
    args=(--case fp256 --views 1 --repeats 1 --resident-repeats 1)
    expected=2
  else
    for c in "${cases[@]}"; do args+=(--case "$c"); done
    args+=(--repeats 5)
    expected=$((${#cases[@]} * 2))
  fi
  for method in siddon joseph; do
    run "$f" "xray bench $method" "$dir/bin/xray" bench --backend cuda --method "$method" \
      --json "${args[@]}"
  done
  n=$(grep -c '^{' "$out/$f")
  note "$n of $expected JSON records (cases x 2 methods)"
  [ "$n" -eq "$expected" ] || fail "$f" "xray bench gave $n JSON records, not $expected"
}

criterion() {
  local f=bench.txt once=() n
  # A dry run: Criterion's --test runs each matching bench once and measures nothing.
  ! $emulated || once=(--test)
  run "$f" criterion env CRITERION_HOME="$scratch/criterion" "$dir/bin/bench-gpu" --bench \
    "${once[@]}" --noplot --discard-baseline --sample-size 10 --warm-up-time 0.5 \
    --measurement-time 1.5 --nresamples 20000 "$criterion_filter"
  ! grep -q "^SKIPPED" "$out/$f" || fail "$f" "the Criterion GPU benches skipped"
  if $emulated; then
    n=$(grep -c '^Success' "$out/$f")
    note "$n benchmarks run once (--test; filter $criterion_filter)"
  else
    n=$(grep -c 'time:' "$out/$f")
    note "$n benchmarks measured (filter $criterion_filter; 12 by default)"
  fi
  [ "$n" -gt 0 ] || fail "$f" "no Criterion benchmark matched $criterion_filter"
}

# --- astra -----------------------------------------------------------------------------
astra() {
  local f=astra.txt
  if [ ! -d "$dir/anchors" ]; then
    fail "$f" "anchors/ is missing: the bundle was made with ANCHORS=none"
    return
  fi
  run "$f" astra bash "$dir/anchors/run_on_device.sh" "$dir/anchors" fp256 fp512 drr
  local n
  n=$(grep -c '^{' "$out/$f")
  [ "$n" -eq 4 ] || fail "$f" "ASTRA gave $n of 4 records (fp256, fp512, drr x1, drr x64)"
}

# --- sanitizer -------------------------------------------------------------------------
sanitizer() {
  local f=sanitizer.txt tool args=() pattern
  tool=$(find_tool compute-sanitizer COMPUTE_SANITIZER)
  if [ -z "$tool" ]; then
    fail "$f" "compute-sanitizer not found (COMPUTE_SANITIZER, PATH, /usr/local/cuda*)"
    return
  fi
  for pattern in "${sanitizer_skips[@]}"; do args+=(--skip "$pattern"); done
  run "$f" "compute-sanitizer memcheck" "$tool" --tool memcheck --leak-check full \
    --target-processes application-only --error-exitcode 1 \
    "$dir/bin/test-gpu" --test-threads=1 "${args[@]}"
  if grep -q 'Device not supported' "$out/$f"; then
    # As seen under gVisor: the tool refuses the device; the project is not at fault.
    step_state=UNAVAILABLE
    note "compute-sanitizer: 'Device not supported' on this machine (its runtime)"
  fi
  local line
  line=$(grep -E '^========= (ERROR SUMMARY|LEAK SUMMARY)' "$out/$f" | tail -n 2 | tr '\n' ' ')
  [ -z "$line" ] || note "$line"
}

# --- ratios ----------------------------------------------------------------------------
ratios() {
  local table rc
  table=$(capture python3 "$scratch/ratios.py" "$out/bench.txt" "$out/astra.txt")
  rc=$?
  printf '\n%s\n' "$table" >>"$summary"
  printf '%s\n' "$table"
  [ "$rc" -eq 0 ] || { step_failed=true; note "the ratio table failed: rc=$rc"; }
  $emulated || return
  # A dry run: no ASTRA figures, and ours are the software driver's, but this run's
  # xray bench records must have reached the table.
  grep -Eq '^fp256 +siddon +forward, resident +- +[0-9]+\.[0-9]{3} +-$' <<<"$table" ||
    fail bench.txt "the ratio table did not read this run's xray bench records"
  # Then the table's arithmetic, on made-up records.
  cat >"$scratch/bench.txt" <<'EOF'
{"case":"fp256","backend":"cuda","method":"siddon","views":360,"seconds":0.04,"rays_per_second":5.9e8,"resident_seconds":0.005,"device_mib":160.0,"centre_ray":6.04,"anchor_centre_ray":6.04}
cuda_resident_siddon/fp256/360_views
                        time:   [5.0000 ms 5.1000 ms 5.2000 ms]
cuda_resident_backward_siddon/fp256/360_views
                        time:   [4.9000 µs 5.0000 µs 5.1000 µs]
EOF
  cat >"$scratch/astra.txt" <<'EOF'
{"case": "fp256", "fp_dev_s": 0.0189, "fp_host_s": 0.039, "bp_dev_s": 0.0151, "bp_host_s": 0.032}
EOF
  echo "=== the ratio table on made-up records (a check of its arithmetic)" >>"$out/bench.txt"
  run bench.txt "ratio table (made-up records)" python3 "$scratch/ratios.py" \
    "$scratch/bench.txt" "$scratch/astra.txt"
  grep -q "^fp256  siddon  forward, resident .* 3\.78$" "$out/bench.txt" ||
    fail bench.txt "the ratio table came out wrong on the made-up records"
  grep -q "^fp256  siddon  backward, Criterion .* 3020\.00$" "$out/bench.txt" ||
    fail bench.txt "the ratio table read Criterion's microseconds wrong"
}

# --- the check -------------------------------------------------------------------------
t_start=$SECONDS
mode=GPU
! $emulated || mode="EMULATED (software driver)"
say "gpu-check $(date -u '+%F %T UTC') on $(hostname 2>/dev/null || echo '?'), $mode, at most ${total_s} s"
say "bundle: $(head -n 1 "$dir/BUNDLE.txt" 2>/dev/null || echo '(no BUNDLE.txt)')"
step preflight preflight
step tests tests
step bench bench
if $emulated; then
  skip astra astra.txt "ASTRA needs the GPU"
  skip sanitizer sanitizer.txt "compute-sanitizer needs the GPU"
else
  step astra astra
  step sanitizer sanitizer
fi
step criterion criterion
step ratios ratios
say "gpu-check: $([ "$status" -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - t_start)) s"
exit "$status"
