#!/usr/bin/env bash
# `make train-stage2`: SynthSign -> stage 1 (only if its checkpoint is missing) -> token cache -> stage-2 demo fit ->
# test -> table of DTW-JPE / DTW-PA-JPE per language and part: model vs the mean-pose and dictionary baselines.
# Environment: SOKE (the soke command), PY (python), DEMO_DATA (store), OUT (outputs root), STAGE2_THREADS.
set -euo pipefail
SOKE=${SOKE:-.venv/bin/soke}
PY=${PY:-.venv/bin/python}
DATA=${DEMO_DATA:-data/synthsign-demo}
export SOKE_OUT=${OUT:-outputs}
export SOKE_SYNTHSIGN=$DATA
export HF_HUB_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-disabled} TOKENIZERS_PARALLELISM=false
STAGE1=$SOKE_OUT/stage1-demo/checkpoints/last.ckpt
CACHE=$SOKE_OUT/tokens-demo
RUN=$SOKE_OUT/stage2-demo
# One intra-op thread: on a shared 2-core machine torch's thread pool made steps 3-10x slower (measured).
STAGE2_THREADS=${STAGE2_THREADS:-1}

[ -f "$DATA/store.json" ] || $SOKE synth --out "$DATA" --preset demo
if [ ! -f "$STAGE1" ]; then
    echo "== stage 1: $STAGE1 is missing, training it"
    $SOKE fit --config experiments/stage1/demo.yaml
fi
if ! $PY - "$STAGE1" "$CACHE" <<'PYEOF' 2>/dev/null; then
import sys
from soke_lightning.data.token_cache import open_token_cache
from soke_lightning.models.tokenizer import tokenizer_hash
cache = open_token_cache(sys.argv[2], tokenizer_hash(sys.argv[1]))
sys.exit(0 if {"train", "val", "test"} <= set(cache.splits) else 1)
PYEOF
    echo "== token cache $CACHE"
    $SOKE encode --tokenizer "$STAGE1" --data datamodules/synthsign.yaml --out "$CACHE" --splits train val test \
        --set "init_args.stores=[$DATA]"
else
    echo "== token cache $CACHE is up to date"
fi
echo "== stage 2: fit"
rm -rf "$RUN/checkpoints"
OMP_NUM_THREADS=$STAGE2_THREADS $SOKE fit --config experiments/stage2/demo.yaml
echo "== stage 2: test"
# B-T BLEU next to DTW when a back-translation judge exists (`make train-backtranslation`)
BT=$SOKE_OUT/backtranslation-demo/checkpoints/best.ckpt
BT_ARGS=()
if [ -f "$BT" ]; then
    BT_ARGS=("--trainer.callbacks+=soke_lightning.callbacks.backtranslation.BackTranslationScorer"
             "--trainer.callbacks.init_args.model_ckpt=$BT")
fi
OMP_NUM_THREADS=$STAGE2_THREADS $SOKE test --config experiments/stage2/demo.yaml --ckpt_path "$RUN/checkpoints/last.ckpt" \
    --trainer.logger.init_args.version test "${BT_ARGS[@]}"
$PY scripts/stage2_report.py --store "$DATA" --metrics "$RUN/logs/test/metrics.csv" --json "$RUN/report.json" \
    ${STAGE2_BASELINES:+--baselines "$STAGE2_BASELINES"}
