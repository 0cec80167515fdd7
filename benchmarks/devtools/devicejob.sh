#!/usr/bin/env bash
# The whole GPU job (issue #24, docs/gpu-job.md), run on a bare GPU machine from the repo root:
#
#   bash benchmarks/devtools/devicejob.sh devicejob "$OUT" [budget seconds, default 540]
#
# It installs the carried wheels, unpacks minilm-l6-bf16 and the data, times bert-base's architecture, runs the
# Fig 6 and Fig 7 suites at full scale (every offline task, seed 0) with workers sharing the GPU, then dense in bf16
# against fp32, each step inside what is left of the budget. Runs resume, so a step cut short by its time keeps its
# finished cells. Everything comes back in "$OUT": job.log, gpu.csv, bert_base_timing.json, results.tar.gz.
set -uo pipefail
JOB=${1:-devicejob}
OUT=${2:-${OUT:-/tmp/prunebench-out}}
BUDGET=${3:-540}
JOBS=${PRUNEBENCH_GPU_JOBS:-8}   # worker processes sharing the one GPU (docs/gpu-job.md: memory per worker)
ROOT=${PRUNEBENCH_JOB_ROOT:-/tmp/prunebench-job}
START=$(date +%s)
mkdir -p "$OUT" "$ROOT"
exec > >(tee -a "$OUT/job.log") 2>&1

left() { echo $(( BUDGET - ($(date +%s) - START) )); }
stamp() { echo "[$(( $(date +%s) - START )) s] $*"; }

stamp "installing $(ls "$JOB"/wheels/*.whl 2>/dev/null | wc -l) wheels"
if ls "$JOB"/wheels/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "${TMPDIR:-/tmp}/prunebench-site" \
    "$JOB"/wheels/*.whl || exit 2
fi
export PYTHONPATH="${TMPDIR:-/tmp}/prunebench-site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PRUNEBENCH_CACHE_DIR="$ROOT/cache" PRUNEBENCH_DATA_DIR="$ROOT/data"

stamp "unpacking"
python3 -m benchmarks.devtools.devicejob unpack "$JOB" --to "$ROOT" || exit 2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

# A later call resumes: PRUNEBENCH_GPU_RESUME names folders whose finished records seed the results (e.g. the
# published partial boards), PRUNEBENCH_GPU_STEPS picks steps (default all but stacked), PRUNEBENCH_GPU_TASKS the
# tasks; step "stacked" (docs/stacking.md) runs both suites as stacks of PRUNEBENCH_GPU_STACK cells for SST-2
# (default 9) and PRUNEBENCH_GPU_STACK_SMALL for the other tasks (default 5), PRUNEBENCH_GPU_STACK_JOBS workers each.
STEPS=${PRUNEBENCH_GPU_STEPS:-"timing low high bf16"}
TASKS=${PRUNEBENCH_GPU_TASKS:-"[sst2,mrpc,stsb,qnli,mnli]"}  # MLM trains nothing (docs/gpu-job.md)
for seed in ${PRUNEBENCH_GPU_RESUME:-}; do  # "suite=folder": copy that folder's records and grids
  mkdir -p "$ROOT/results/${seed%%=*}-full" && cp -r "${seed#*=}"/records "${seed#*=}"/grids "$ROOT/results/${seed%%=*}-full/"
  stamp "resuming ${seed%%=*} from ${seed#*=} ($(ls "${seed#*=}"/records/*.json | wc -l) records)"
done
want() { [[ " $STEPS " == *" $1 "* ]]; }  # is step $1 among PRUNEBENCH_GPU_STEPS?
pack() { tar czf "$OUT/results.tar.gz" -C "$ROOT" results 2>/dev/null; stamp "packed results"; }

if want timing; then
  stamp "bert-base architecture: 300 training steps"
  timeout 90 python3 -m benchmarks.devtools.devicejob time-bert-base --steps 300 > "$OUT/bert_base_timing.json"
fi
run_suite() {  # name, share of the time left (percent), extra --set arguments
  local name=$1 share=$2; shift 2
  local secs=$(( $(left) * share / 100 ))
  if (( secs < 30 )); then stamp "$name: no time left"; return; fi
  stamp "$name: up to $secs s, $JOBS workers"
  timeout --signal=TERM --kill-after=20 "$secs" python3 -m benchmarks run --suite "$name" --model minilm-l6-bf16 \
    --set scale=full --set "tasks=$TASKS" --results "$ROOT/results/$name-full" --jobs "$JOBS" --no-progress "$@"
  stamp "$name: exit $?"
}
if want both; then  # both suites at once, each with $JOBS workers, packing what finished
  # explicit pids: a bare `wait` also waits for the log's tee (process substitution), which never ends
  run_suite bert-lowsparsity 90 & low=$!
  run_suite bert-highsparsity 90 & high=$!
  wait "$low" "$high"
  pack
fi
if want stacked; then  # docs/stacking.md: every suite's cells as stacks of one task's rows, all steps side by side
  # SST-2 (6,315 steps a cell) apart from the small tasks, so its stacks hold half its rows each (2 workers); the
  # dense row in bf16 (for the bf16-vs-fp32 difference) beside them. Each process has its own time limit.
  # SST-2's batches are short (little memory per cell): big stacks; the other tasks' reach 128 tokens: smaller ones.
  STACK=${PRUNEBENCH_GPU_STACK:-9} SMALL=${PRUNEBENCH_GPU_STACK_SMALL:-5} SJOBS=${PRUNEBENCH_GPU_STACK_JOBS:-2}
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}  # ten processes feeding one GPU: little CPU arithmetic each
  pids=()
  for name in bert-lowsparsity bert-highsparsity; do
    JOBS=$SJOBS TASKS="[sst2]" run_suite "$name" 95 --stack "$STACK" & pids+=($!)
    JOBS=$SJOBS TASKS="[mrpc,stsb,qnli,mnli]" run_suite "$name" 95 --stack "$SMALL" & pids+=($!)
  done
  JOBS=$SJOBS run_suite bert-lowsparsity 95 --set "rows=[dense]" --set recipe.precision=bf16 & pids+=($!)
  wait "${pids[@]}"  # explicit pids: a bare `wait` also waits for the log's tee
  pack
fi
want low && { run_suite bert-lowsparsity 50; pack; }
want high && { run_suite bert-highsparsity 75; pack; }
# bf16 against fp32 on the dense row (the fp32 dense cells are the low-sparsity suite's own).
want bf16 && { JOBS=4 run_suite bert-lowsparsity 90 --set "rows=[dense]" --set recipe.precision=bf16; pack; }
stamp "done"
