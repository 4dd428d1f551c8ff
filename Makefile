# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   installs everything, then proves and verifies a bundled model (locally and on a local chain)
#   make test   installs what is missing, then runs the test suite
# Installs are idempotent: a stamp file marks each finished step.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.vcompute-installed
NPM_STAMP := contracts/node_modules/.vcompute-installed
RAY_STAMP := $(VENV)/.vcompute-ray-installed
PYTEST_ARGS ?=

.PHONY: setup demo test test-all clean-cache lock

setup: $(STAMP) $(NPM_STAMP)

# torch first, pinned to the CPU build these machines carry; an unpinned torch would pull
# several GB of CUDA packages. pyproject's torch>=2.11 is then already satisfied. Everything else
# installs at the versions constraints.txt records (the Python side's lockfile).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,bench]'
	touch $@

# Ray (the [ray] extra, ~80 MB wheel) only for `make test-all`: `make test` and CI stay without it.
$(RAY_STAMP): $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[ray]'
	touch $@

# solc (solcjs), anvil and hardhat, exactly as the lockfile pins them.
$(NPM_STAMP): contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(VENV)/bin/vcompute prove circuits/mlp/model.onnx --input circuits/mlp/input.json --out out/mlp
	$(VENV)/bin/vcompute verify out/mlp
	$(VENV)/bin/vcompute verify out/mlp --onchain

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# every marker: slow, gpu (skips without one), hardhat and ray (a two-node Ray cluster on loopback)
test-all: setup $(RAY_STAMP)
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

# refresh constraints.txt from the current venv (after upgrading on purpose and running the suite)
lock: $(STAMP)
	{ sed -n '/^#/p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v -E '^(torch|pyflakes)=='; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean-cache:
	rm -rf "$${VCOMPUTE_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/vcompute}"
