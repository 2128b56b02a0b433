# soke-lightning — every target sets itself up: on a fresh machine `make test` / `make demo` create .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOKE := $(VENV)/bin/soke
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYTHONUNBUFFERED := 1
# Data and outputs (override on the command line: make demo DEMO_DATA=/path)
DEMO_DATA ?= data/synthsign-demo
OUT ?= outputs
STAGE1_CKPT := $(OUT)/stage1-demo/checkpoints/last.ckpt
TOKENS := $(OUT)/tokens-demo
STAGE1_ENV := SOKE_SYNTHSIGN=$(DEMO_DATA) SOKE_OUT=$(OUT)

.PHONY: help install test test-slow test-all lint demo demo-data fonts bench serve clean train-stage1 train-stage2 train-backtranslation eval-backtranslation sweep-codebook sweep-lambda claims fingerspelling

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.13.0 -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package (CPU torch 2.13.0) with dev extras

test: $(STAMP)  ## run the default test suite (fast, CPU, offline)
	WANDB_MODE=disabled $(VENV)/bin/pytest -q

test-slow: $(STAMP)  ## run only the slow tests
	WANDB_MODE=disabled $(VENV)/bin/pytest -q -m slow

test-all: $(STAMP)  ## run every test
	WANDB_MODE=disabled $(VENV)/bin/pytest -q -m "slow or not slow"

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check src tests bench

bench: $(STAMP)  ## run the benchmarks; JSON goes to bench/results/
	$(PY) bench/run.py

$(DEMO_DATA)/store.json: | $(STAMP)
	$(SOKE) synth --out $(DEMO_DATA) --preset demo

demo-data: $(DEMO_DATA)/store.json  ## generate the SynthSign demo corpus (data/synthsign-demo) if absent

fonts:  ## best effort: install a CJK font so Chinese captions render (Debian/Ubuntu, needs root)
	@fc-list :lang=zh 2>/dev/null | grep -q . || (apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1 \
		|| echo "make fonts: could not install fonts-wqy-microhei; Chinese captions will show as boxes")

$(STAGE1_CKPT): | $(DEMO_DATA)/store.json
	$(STAGE1_ENV) $(SOKE) fit --config experiments/stage1/demo.yaml
	$(STAGE1_ENV) $(SOKE) test --config experiments/stage1/demo.yaml --ckpt_path $(STAGE1_CKPT) \
	  --trainer.logger.init_args.version test
	$(SOKE) encode --tokenizer $(STAGE1_CKPT) --data datamodules/synthsign.yaml \
	  --set "init_args.stores=[$(DEMO_DATA)]" --out $(TOKENS) --preview 3 --preview-out $(OUT)/stage1-demo/preview
	@echo "stage 1: checkpoint $(STAGE1_CKPT) (and last.ckpt); metrics $(OUT)/stage1-demo/logs/{fit,test}/metrics.csv;"
	@echo "         ground truth | reconstruction GIFs in $(OUT)/stage1-demo/preview; token cache $(TOKENS)"

train-stage1: $(DEMO_DATA)/store.json  ## (re)train the demo tokenizer on SynthSign (<= 4 min), test it, encode the token cache
	rm -f $(STAGE1_CKPT)
	$(MAKE) --no-print-directory $(STAGE1_CKPT)

train-stage2: $(DEMO_DATA)/store.json  ## SynthSign: stage 1 if missing -> token cache -> stage-2 demo (<= 6 min) -> test table vs baselines
	SOKE=$(SOKE) PY=$(PY) DEMO_DATA=$(DEMO_DATA) OUT=$(OUT) scripts/train_stage2.sh

BT_CKPT := $(OUT)/backtranslation-demo/checkpoints/best.ckpt
STAGE2_LAST := $(OUT)/stage2-demo/checkpoints/last.ckpt
BT_ENV := $(STAGE1_ENV) OMP_NUM_THREADS=1
train-backtranslation: $(DEMO_DATA)/store.json  ## train the sign->text judge on SynthSign (9 epochs, one thread: fit 2.5 min on 2 idle cores), test it; B-T BLEU of ground truth / stage-2 motion / mean pose
	rm -f $(BT_CKPT)
	$(BT_ENV) $(SOKE) fit --config experiments/backtranslation/demo.yaml
	$(BT_ENV) $(SOKE) test --config experiments/backtranslation/demo.yaml --ckpt_path $(BT_CKPT) \
	  --trainer.logger.init_args.version test
	$(MAKE) --no-print-directory eval-backtranslation

eval-backtranslation:  ## B-T BLEU-1..4 / ROUGE-L per language: ground truth (ceiling), stage-2 generated motion, mean pose (floor)
	@test -f $(BT_CKPT) || { echo "no judge at $(BT_CKPT): run make train-backtranslation"; exit 2; }
	@if [ -f $(STAGE2_LAST) ]; then gen="--generate $(STAGE2_LAST)"; else \
	  echo "no stage-2 checkpoint at $(STAGE2_LAST) (make train-stage2): scoring ground truth and mean pose only"; fi; \
	$(BT_ENV) $(SOKE) backtranslate --model $(BT_CKPT) --store $(DEMO_DATA) --split test --mean-pose $$gen \
	  --json $(OUT)/backtranslation-demo/bt_test.json

DEMO_PRED := $(OUT)/stage2-demo/predictions
demo: $(DEMO_DATA)/store.json  ## the main job: corpus -> stage 1 -> stage 2 -> test table -> GIFs -> HTML report
	@mkdir -p $(OUT)/demo
	$(SOKE) data info $(DEMO_DATA)
	$(SOKE) baselines --store $(DEMO_DATA) --split test --json $(OUT)/demo/baselines.json
	@test -f $(STAGE1_CKPT) || $(MAKE) --no-print-directory $(STAGE1_CKPT)
	SOKE=$(SOKE) PY=$(PY) DEMO_DATA=$(DEMO_DATA) OUT=$(OUT) STAGE2_BASELINES=$(OUT)/demo/baselines.json \
	  scripts/train_stage2.sh
	OMP_NUM_THREADS=1 $(SOKE) generate --ckpt $(STAGE2_LAST) \
	  --store $(DEMO_DATA) --split test --n 1 --out $(OUT)/demo/generated
	rm -rf $(DEMO_PRED) $(OUT)/demo/backtranslation.json
	OMP_NUM_THREADS=1 $(SOKE) generate --ckpt $(STAGE2_LAST) --store $(DEMO_DATA) --split test --n 1000000 \
	  --formats npz --out $(DEMO_PRED) > $(OUT)/demo/predictions.log
	@if [ -f $(BT_CKPT) ]; then \
	  $(BT_ENV) $(SOKE) backtranslate --model $(BT_CKPT) --store $(DEMO_DATA) --split test \
	    --predictions $(DEMO_PRED) --mean-pose --json $(OUT)/demo/backtranslation.json; \
	else echo "demo: no back-translation judge at $(BT_CKPT) (make train-backtranslation): report without B-T BLEU"; fi
	OMP_NUM_THREADS=1 $(SOKE) report $(OUT)/stage2-demo --ckpt $(STAGE2_LAST) --store $(DEMO_DATA) --split test \
	  --predictions $(DEMO_PRED) --baselines $(OUT)/demo/baselines.json \
	  $$(test -f $(OUT)/demo/backtranslation.json && echo --backtranslation $(OUT)/demo/backtranslation.json)
	@echo "demo: test table in $(OUT)/stage2-demo/report.json; ground truth | generated GIFs + SMPL-X npz in $(OUT)/demo/generated;"
	@echo "      stage-1 reconstructions in $(OUT)/stage1-demo/preview; baselines in $(OUT)/demo/baselines.json;"
	@echo "      HTML report (path above, 'report: ...') from $(OUT)/stage2-demo and the generated motion in $(DEMO_PRED)"

SERVE_STAMP := $(VENV)/.serve-installed
$(SERVE_STAMP): setup.cfg | $(STAMP)
	$(VENV)/bin/pip install -q -e ".[serve]"
	touch $(SERVE_STAMP)

serve: $(SERVE_STAMP)  ## web demo on the stage-2 demo checkpoint: http://127.0.0.1:7860 (SERVE_ARGS="--port 8000 ...")
	@test -f $(STAGE2_LAST) || { echo "make serve: no stage-2 checkpoint at $(STAGE2_LAST); make one with" \
	  "\`make train-stage2\` (SynthSign demo: stage 1 + stage 2, about 10 minutes on 2 idle cores)"; exit 2; }
	GRADIO_ANALYTICS_ENABLED=False $(SOKE) serve --ckpt $(STAGE2_LAST) \
	  $$(test -f $(DEMO_DATA)/store.json && echo --store $(DEMO_DATA)) $(SERVE_ARGS)

CLAIMS_PLAN := $(if $(QUICK),quick,full)
claims: $(STAMP)  ## SOKE's claims on SynthSign (denoising pretraining, then retrieval, decoding, lambda, codebook arms; 3 seeds): outputs/claims/claims.md; QUICK=1 for the short plan; resumes
	$(SOKE) claims --plan $(CLAIMS_PLAN) --out $(OUT)/claims$(if $(QUICK),-quick)

sweep-codebook: $(STAMP)  ## stage-1 codebook-size sweep (wandb agent when a server answers, else `soke sweep`; SWEEP_RUNS=N)
	SOKE_OUT=$(OUT) DEMO_DATA=$(DEMO_DATA) VENV=$(VENV) experiments/cluster/sweep.sh experiments/sweeps/codebook.yaml \
	  $(if $(SWEEP_RUNS),--max-runs $(SWEEP_RUNS))

sweep-lambda: $(STAMP)  ## stage-2 sweep of lambda x retrieval off/on on SynthSign; first 4 points by default (run_cap), SWEEP_RUNS=10 for all
	SOKE_OUT=$(OUT) DEMO_DATA=$(DEMO_DATA) VENV=$(VENV) experiments/cluster/sweep.sh experiments/sweeps/lambda.yaml \
	  $(if $(SWEEP_RUNS),--max-runs $(SWEEP_RUNS))

FS_DATA ?= data/fingerspelling
FS_LEXICON := $(FS_DATA)/spoken_to_signed/assets/fingerspelling_lexicon
$(FS_LEXICON)/index.csv: | $(STAMP)
	mkdir -p $(FS_DATA)
	$(VENV)/bin/pip download --no-deps --dest $(FS_DATA) spoken-to-signed==0.4.0
	$(PY) -m zipfile -e $(FS_DATA)/spoken_to_signed-0.4.0-py3-none-any.whl $(FS_DATA)

fingerspelling: $(FS_LEXICON)/index.csv  ## real .pose clips (spoken-to-signed's MIT fingerspelling lexicon, ~96 MB) through both stages: $(OUT)/fingerspelling/results.json
	OMP_NUM_THREADS=1 $(PY) scripts/fingerspelling.py --lexicon $(FS_LEXICON) --out $(OUT)/fingerspelling

clean:  ## remove outputs and caches (keeps .venv and data)
	rm -rf $(OUT) .pytest_cache lightning_logs
