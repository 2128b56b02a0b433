#!/usr/bin/env bash
# `make sweep-codebook` / `make sweep-lambda`: a sweep YAML (experiments/sweeps/) run by a wandb agent when a wandb
# server answers (WANDB_MODE=online and a login), otherwise by the local runner `soke sweep` (same YAML, same argv
# per run, no network; results in $SOKE_OUT/sweeps/<name>/results.md + a plot; re-running resumes).
#   experiments/cluster/sweep.sh experiments/sweeps/lambda.yaml [soke sweep options, e.g. --dry-run]
# Environment: SWEEP_RUNS (at most this many configurations), SWEEP_EXTRA (arguments appended to every run, e.g.
# '--trainer.max_epochs=4'), SOKE_OUT (outputs), DEMO_DATA (SynthSign store, made by `make demo-data`), VENV (.venv).
# Stage-2 sweeps first make what the runs need if it is missing: the stage-1 demo checkpoint and its token cache
# (as scripts/train_stage2.sh does), passed to every run as absolute paths (each run has its own $SOKE_OUT).
set -euo pipefail
FILE=${1:?usage: sweep.sh SWEEP.yaml [soke sweep options]}; shift
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"   # a wandb agent runs `python`: this venv's
OUT=${SOKE_OUT:-outputs}
DATA=${DEMO_DATA:-data/synthsign-demo}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false SOKE_SYNTHSIGN=$DATA
EXTRA=${SWEEP_EXTRA:-}
[ -f "$DATA/store.json" ] || soke synth --out "$DATA" --preset demo
if grep -q "experiments/stage2/" "$FILE"; then
    STAGE1=$OUT/stage1-demo/checkpoints/last.ckpt
    CACHE=$OUT/tokens-demo
    [ -f "$STAGE1" ] || SOKE_OUT=$OUT soke fit --config experiments/stage1/demo.yaml
    [ -f "$CACHE/train/codes.npy" ] || soke encode --tokenizer "$STAGE1" \
        --data datamodules/synthsign.yaml --out "$CACHE" --splits train val test --set "init_args.stores=[$DATA]"
    EXTRA="--model.init_args.tokenizer_ckpt=$(realpath "$STAGE1") --data.init_args.token_cache=$(realpath "$CACHE") $EXTRA"
fi
if [ "${WANDB_MODE:-offline}" = online ] && timeout 30 python -c \
        "import sys, wandb; sys.exit(0 if wandb.Api(timeout=20).viewer else 1)" >/dev/null 2>&1; then
    [ -z "${SWEEP_EXTRA:-}" ] || echo "sweep.sh: SWEEP_EXTRA is not passed to a wandb agent; edit the sweep's command" >&2
    ID=$(wandb sweep "$FILE" 2>&1 | tee /dev/stderr | sed -n 's/.*wandb agent \([^ ]*\).*/\1/p' | tail -1)
    exec wandb agent ${SWEEP_RUNS:+--count "$SWEEP_RUNS"} "$ID"
fi
echo "sweep.sh: no wandb server (WANDB_MODE=${WANDB_MODE:-offline}); running the local runner" >&2
exec soke sweep "$FILE" --out "$OUT/sweeps/$(basename "$FILE" .yaml)" ${SWEEP_RUNS:+--max-runs "$SWEEP_RUNS"} \
    ${EXTRA:+"--extra=$EXTRA"} "$@"
