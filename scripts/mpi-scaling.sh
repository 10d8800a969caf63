#!/usr/bin/env bash
# CPU scaling with MPI ranks: times `xray project`, `backproject` and `recon` (FDK,
# SIRT) alone and under `mpirun -n 1` and `-n N`, the configurations interleaved in
# each of several rounds (this machine may be shared and noisy), and prints the
# medians and the speed-ups against one rank.
#
#   scripts/mpi-scaling.sh [N=2] [ROUNDS=3]
#
# Needs `xray` built with `--features mpi` (target/release/xray) and Open MPI's
# `mpirun`. Each rank runs RAYON_NUM_THREADS = cores / ranks threads, unbound
# (`--bind-to none`: Open MPI would otherwise pin a lone rank to one core), so every
# configuration uses the same cores. `startup` is a one-ray projection: the cost of
# starting the processes and MPI, which every other row includes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ranks=${1:-2}
rounds=${2:-3}
xray="$root/target/release/xray"
cores=$(nproc)
if ! "$xray" info | grep -q '^mpi   built in'; then
  echo "$xray was built without MPI: cargo build --release --features mpi" >&2
  exit 1
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

scanner=(--det 192x192 --pixel 1.6 --sod 600 --sdd 900)
grid=(--shape 128,128,128 --spacing 2,2,2)
"$xray" project --phantom shepp-logan --size 128 --views 96 "${scanner[@]}" --out p.npy 2>/dev/null

declare -A commands=(
  [startup]="project --phantom box --size 16 --views 1 --det 8x8 --out o.npy --force"
  [project]="project --phantom shepp-logan --size 128 --views 96 ${scanner[*]} --out o.npy --force"
  [backproject]="backproject --projections p.npy ${scanner[*]} ${grid[*]} --out o.npy --force"
  [fdk]="recon --algorithm fdk --projections p.npy ${scanner[*]} ${grid[*]} --out o.npy --force"
  [sirt]="recon --algorithm sirt --iterations 3 --projections p.npy ${scanner[*]} ${grid[*]} --out o.npy --force"
)
order=(startup project backproject fdk sirt)

# run LABEL PROCESSES THREADS [mpirun]: one timed run, appended to times.txt.
run() {
  local label=$1 processes=$2 threads=$3 launcher=$4 name start end
  for name in "${order[@]}"; do
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    if [ "$launcher" = alone ]; then
      RAYON_NUM_THREADS=$threads "$xray" ${commands[$name]} 2>/dev/null
    else
      mpirun --oversubscribe --bind-to none -x RAYON_NUM_THREADS="$threads" -n "$processes" "$xray" ${commands[$name]} 2>/dev/null
    fi
    end=$(date +%s.%N)
    echo "$label $name $(echo "$end - $start" | bc -l)" >> times.txt
  done
}

threads=$(( cores / ranks > 0 ? cores / ranks : 1 ))
for round in $(seq "$rounds"); do
  echo "round $round of $rounds" >&2
  run "alone" 1 "$cores" alone
  run "1-rank" 1 "$cores" mpirun
  run "$ranks-ranks" "$ranks" "$threads" mpirun
  run "1-rank-small" 1 "$threads" mpirun
done

python3 - "$ranks" "$cores" "$threads" <<'EOF'
import collections, statistics, sys
ranks, cores, threads = sys.argv[1], sys.argv[2], sys.argv[3]
times = collections.defaultdict(list)
for line in open("times.txt"):
    label, name, seconds = line.split()
    times[(label, name)].append(float(seconds))
labels = ["alone", "1-rank", f"{ranks}-ranks", "1-rank-small"]
heads = [f"alone x{cores}", f"1 rank x{cores}", f"{ranks} ranks x{threads}", f"1 rank x{threads}"]
print(f"median wall seconds over {len(times[(labels[0], 'project')])} rounds; "
      f"'x T': RAYON_NUM_THREADS per process; {cores} cores")
print(f"{'case':<12}" + "".join(f"{h:>15}" for h in heads)
      + f"{'same cores':>12}{'per rank':>10}")
for name in ["startup", "project", "backproject", "fdk", "sirt"]:
    m = [statistics.median(times[(l, name)]) for l in labels]
    # Speed-ups of N ranks: against 1 rank on the same cores, and against 1 rank with
    # the threads of one of the N.
    print(f"{name:<12}" + "".join(f"{v:>15.2f}" for v in m)
          + f"{m[1] / m[2]:>12.2f}{m[3] / m[2]:>10.2f}")
EOF
