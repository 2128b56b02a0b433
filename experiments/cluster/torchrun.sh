#!/bin/bash
# Launch `soke fit` with torchrun: one process per GPU on this node; run it once per node for several nodes.
#   experiments/cluster/torchrun.sh CONFIG [soke fit args...]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 experiments/cluster/torchrun.sh experiments/stage1/soke.yaml   # on host0
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=host0 experiments/cluster/torchrun.sh experiments/stage1/soke.yaml   # on host1
# Environment: NPROC (processes per node; default: visible GPUs, 1 without), NNODES (1), NODE_RANK (0),
# MASTER_ADDR (127.0.0.1), MASTER_PORT (29500), ACCELERATOR (gpu with GPUs, else cpu), PYTHON, SOKE_OUT.
# Lightning sees torchrun's variables (TorchElasticEnvironment); devices/num_nodes are passed to match.
# Resume: --ckpt_path=last (the newest last.ckpt; none: fresh start) unless you pass your own --ckpt_path.
set -euo pipefail
CONFIG=${1:?usage: torchrun.sh CONFIG [soke fit args...]}; shift
PYTHON=${PYTHON:-.venv/bin/python}
GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
NPROC=${NPROC:-$(( GPUS > 0 ? GPUS : 1 ))}
ACCELERATOR=${ACCELERATOR:-$([ "$GPUS" -gt 0 ] && echo gpu || echo cpu)}
NNODES=${NNODES:-1}
export SOKE_OUT=${SOKE_OUT:-outputs} HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=${WANDB_MODE:-offline}
RESUME=(--ckpt_path=last)
for arg in "$@"; do [[ $arg == --ckpt_path* ]] && RESUME=(); done
exec "$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --nproc_per_node="$NPROC" \
  --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29500}" \
  -m soke_lightning.cli fit --config "$CONFIG" --config experiments/trainer/ddp.yaml --config experiments/cluster/long_job.yaml \
  --trainer.accelerator="$ACCELERATOR" --trainer.devices="$NPROC" --trainer.num_nodes="$NNODES" \
  "${RESUME[@]}" "$@"
