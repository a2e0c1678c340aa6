# Two commands do everything on a fresh machine:
#   make demo   creates .venv if missing, installs riverbed, runs `riverbed demo`
#   make test   the same environment, then the import layers and the test suite (slow experiments skipped)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch (the `train` extra) is pinned in the same pip command as the package so pip takes
# the CPU build already on disk instead of resolving a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: venv demo test test-slow bench-smoke clean docs-figures

$(BIN)/riverbed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH) -e '.[train,dev]'
	touch $(BIN)/riverbed

venv: $(BIN)/riverbed

demo: venv
	$(BIN)/riverbed demo

# lint-imports: the package layers (pyproject.toml [tool.importlinter], docs/architecture.md).
test: venv
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -q

# Slow experiments in a bounded form (what CI runs after the default suite).
test-slow: venv
	RIVERBED_BOUNDED=1 $(BIN)/python -m pytest -q -m slow; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

# The README tables that come from commands, regenerated from those commands (tools/docs_figures.py):
# the demo table (`riverbed demo`, ~3 min) and the `predict check` table (docs/configs/predict-check.toml
# + four branches, ~4 min). Timing tables in BENCHMARKS.md come from bench/ and say their machine and load.
docs-figures: venv
	$(BIN)/python tools/docs_figures.py run demo
	$(BIN)/python tools/docs_figures.py run predict-check

# Every benchmark at a toy size (seconds each, no timing asserted): a bench that no longer runs
# fails here, so CI catches it. A new script in bench/ must take --smoke.
bench-smoke: venv
	@set -e; for f in bench/*.py; do echo "== $$f --smoke"; $(BIN)/python $$f --smoke; done
	@echo "== bench/gpu.sh --dry"; PYTHON=$(BIN)/python bench/gpu.sh --dry --out bench/out/gpu-dry.json

clean:
	rm -rf $(VENV) build src/*.egg-info
