#!/usr/bin/env bash
# Every GPU figure of docs/performance.md in one run on one H100/H200, as ONE table of ratios, each
# measured side by side in the same run (benchmarks/gpu_table.py lists them). From a bare machine
# in under 8 minutes: expected ~3 min for gpu_label and ~1 min for each gpu_train, and each step is
# cut at its time limit (LABEL_LIMIT_S=280, TRAIN_LIMIT_S=90: 460 s in all), its rows then n/a.
#
#   bash benchmarks/gpu_wheels.sh download        # here first (registry access); carry .gpu_wheels
#   bash benchmarks/gpu_all.sh [--out DIR]        # there; DIR (default $OUT, else a temp dir) keeps the JSONs
#   bash benchmarks/gpu_all.sh --cpu-smoke        # the same steps with tiny models on the CPU (tests): no goal judged
#
# Steps: gpu_label.py (labeling stages, SAM encoder SDPA vs original and its share of the bf16
# peak, batched vs per-image box decoding), gpu_train.py --decode cpu (mae and c2fmae steps + the
# loader), gpu_train.py --decode gpu (c2fmae step + the loader; not in --cpu-smoke). A failing
# step leaves its rows n/a, the table is printed anyway, and the exit status is that of the first
# failing step.
set -uo pipefail
cd "$(dirname "$0")/.."

smoke=0
out=${OUT:-}
while (($#)); do
  case "$1" in
    --cpu-smoke) smoke=1 ;;
    --out) out=$2; shift ;;
    *) echo "usage: $0 [--cpu-smoke] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
out=${out:-$(mktemp -d -t gpu_all.XXXXXX)}
mkdir -p "$out"
rm -f "$out"/label.json "$out"/train_cpu.json "$out"/train_gpu.json "$out"/train_gpu.skipped
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
status=0
start=$SECONDS

step() {  # step NAME LIMIT_S COMMAND...: run (cut after LIMIT_S; 0 = no limit), log its time, keep the first failure
  local name=$1 limit=$2 begin=$SECONDS code=0
  shift 2
  echo "== $name" >&2
  if ((limit > 0)); then timeout "$limit" "$@" || code=$?; else "$@" || code=$?; fi
  echo "== $name: exit $code after $((SECONDS - begin)) s (total $((SECONDS - start)) s)" >&2
  if ((code != 0 && status == 0)); then status=$code; fi
}

if ((smoke)); then
  label_args=(--tiny --budget-s 0.3)
  train_args=(--tiny)
  label_limit=0 train_limit=0
else
  if [[ -d .gpu_wheels ]]; then
    step "wheels" 120 bash benchmarks/gpu_wheels.sh install
  fi
  export PYTHONPATH=".gpu_site:.${PYTHONPATH:+:$PYTHONPATH}"
  label_args=(--budget-s 10 --amg-images 2)
  train_args=(--steps 10 --warmup 3)
  label_limit=${LABEL_LIMIT_S:-280} train_limit=${TRAIN_LIMIT_S:-90}
fi

step "gpu_label" "$label_limit" "$py" benchmarks/gpu_label.py "${label_args[@]}" --json "$out/label.json"

step "gpu_train --decode cpu" "$train_limit" "$py" benchmarks/gpu_table.py train "$out/train_cpu.json" -- \
  "${train_args[@]}" --modes mae c2fmae --decode cpu
if ((smoke)); then
  echo "--cpu-smoke: --decode gpu not run (no GPU)" >"$out/train_gpu.skipped"
else
  step "gpu_train --decode gpu" "$train_limit" "$py" benchmarks/gpu_table.py train "$out/train_gpu.json" -- \
    "${train_args[@]}" --modes c2fmae --decode gpu
fi

echo
echo "=== gpu_all: $((SECONDS - start)) s; results in $out"
"$py" benchmarks/gpu_table.py table "$out"
if ((smoke)); then
  echo "--cpu-smoke: a smoke run (tiny models on the CPU) checks that the script works and measures nothing; no goal judged"
fi
exit "$status"
