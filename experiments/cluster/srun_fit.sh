#!/bin/bash
# Shared body of the sbatch scripts: `srun` one `soke fit` task per GPU with devices/num_nodes from the job.
#   srun_fit.sh CONFIG [soke fit args...]        (inside an allocation; used by slurm_stage{1,2}.sbatch)
# Resume: an hpc_ckpt_N.ckpt that Lightning wrote on SIGUSR1 is picked up by Lightning itself (ckpt_path unset);
# otherwise --ckpt_path=last resumes from the newest last.ckpt of the run's checkpoint callbacks (none: fresh start).
set -euo pipefail
CONFIG=$1; shift
: "${SLURM_NNODES:?srun_fit.sh runs inside a SLURM allocation (sbatch/salloc)}"
PER_NODE=${SLURM_NTASKS_PER_NODE%%(*}   # "4(x2)" -> 4
PYTHON=${PYTHON:-.venv/bin/python}
export SOKE_OUT=${SOKE_OUT:-outputs/slurm-${SLURM_JOB_ID}}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=${WANDB_MODE:-offline} PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
RESUME=(--ckpt_path=last)
if compgen -G "$SOKE_OUT/*/hpc_ckpt_*.ckpt" > /dev/null || compgen -G "$SOKE_OUT/hpc_ckpt_*.ckpt" > /dev/null; then
  RESUME=()
fi
echo "srun_fit: $SLURM_NNODES node(s) x $PER_NODE task(s), config $CONFIG, outputs $SOKE_OUT, resume: ${RESUME[*]:-hpc}"
srun --kill-on-bad-exit=1 "$PYTHON" -m soke_lightning.cli fit --config "$CONFIG" \
  --config experiments/trainer/ddp.yaml --config experiments/cluster/long_job.yaml \
  --trainer.accelerator=gpu --trainer.devices="$PER_NODE" --trainer.num_nodes="$SLURM_NNODES" \
  "${RESUME[@]}" "$@"
