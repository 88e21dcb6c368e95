#!/usr/bin/env bash
# The GPU measurements of issue 17 (many models per GPU), as ONE prepared run of about 8
# minutes on a lent GPU machine (the `run` device tool: `bash experiments/pack_gpu_check.sh`):
#   1. benchmarks/pack_throughput.py --device cuda --k 1,8,32,64,128   (training, img/s)
#   2. benchmarks/pack_eval.py --device cuda                          (scoring, models/min)
#   3. the reduced locatello2019 dSprites grid (72 runs: 6 methods x 6 hyper-parameters x
#      2 seeds, preset locatello2019_reduced) trained with --pack auto and scored, with its
#      study report rendered.
# Every step has its own time limit, so a slow step cannot eat the others' time; a study cut
# by its limit is stopped like Ctrl-C (table written, runs resumable) and reported as far as
# it got. Results go to $OUT (the device tool's output folder) or ./pack_gpu_check.
# Environment: PYTHON (default: python3), LOC_STEPS (training steps per run, default 1000).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/pack_gpu_check}"
PY="${PYTHON:-python3}"
STEPS="${LOC_STEPS:-1000}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
LOG="$OUT/summary.txt"
say() { echo "== $*" | tee -a "$LOG"; }
start=$(date +%s)
say "pack_gpu_check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1 | tee -a "$LOG"

say "1. training throughput (limit 110 s)"
if [ -f benchmarks/pack_throughput.py ]; then
  timeout 110 "$PY" benchmarks/pack_throughput.py --device cuda --k 1,8,32,64,128 2>&1 \
    | tee "$OUT/pack_throughput.txt" | tail -20 | tee -a "$LOG"
else
  say "benchmarks/pack_throughput.py is missing in this tree"
fi

say "2. evaluation per model (limit 100 s)"
timeout 100 "$PY" benchmarks/pack_eval.py --device cuda --k 1,16 --baseline-runs 1 \
  --metrics mig,sap,modularity,beta_vae,factor_vae 2>&1 | tee "$OUT/pack_eval.txt" \
  | tail -8 | tee -a "$LOG"

say "3. locatello2019_reduced: 72 runs x $STEPS steps, --pack auto (limit 250 s)"
"$PY" -m dislab.cli study plan locatello2019_reduced --steps "$STEPS" --pack auto \
  --no-measure 2>&1 | tail -3 | tee -a "$LOG"
t0=$(date +%s)
timeout -s TERM 250 "$PY" -m dislab.cli study run locatello2019_reduced --out "$OUT/loc72" \
  --steps "$STEPS" --pack auto --workers 1 2>&1 | tail -15 | tee -a "$LOG"
say "study wall time: $(( $(date +%s) - t0 )) s"
"$PY" -m dislab.cli study collect "$OUT/loc72" 2>&1 | tail -2 | tee -a "$LOG"
timeout 60 "$PY" -m dislab.cli study report "$OUT/loc72" 2>&1 | tail -2 | tee -a "$LOG"
# keep what comes back small: the table, the report and each run's result, not the weights
find "$OUT/loc72/runs" \( -name '*.safetensors' -o -name 'codes.npz' -o -name 'tb' \) \
  -prune -exec rm -rf {} + 2>/dev/null
say "total: $(( $(date +%s) - start )) s"
