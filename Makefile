# Every target that needs Python creates .venv first, so a fresh clone needs nothing but python3 (>= 3.11).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all venv browser test test-under-load check lint demo bench bench-1m soak clean

all: lint test

# --no-compile, then compileall without msgraph/generated: msgraph-sdk is some 400 MB of generated modules,
# compiling them all costs about 50 s, and syncd imports a few dozen of them, compiled on first use. (A
# failure to compile some package's stray file changes nothing, hence `|| true`.) Python must keep what it
# compiles: some hosts set PYTHONDONTWRITEBYTECODE, which would make every `syncd` process the tests start
# compile its imports again.
unexport PYTHONDONTWRITEBYTECODE
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 -x 'msgraph/generated' \
		"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null || true
	touch $(STAMP)

venv: $(STAMP)

# tests/browser drives Debian's Chromium through its ChromeDriver; the two binaries are this target's stamps,
# so apt runs only on a machine that lacks one (as root; anyone else is told what to install).
BROWSER := /usr/bin/chromium /usr/bin/chromedriver

$(BROWSER) &:
	@if [ "$$(id -u)" != 0 ]; then \
		echo "tests/browser needs /usr/bin/chromium and /usr/bin/chromedriver: install Debian's packages" \
			"chromium and chromium-driver (sudo apt-get install chromium chromium-driver), or run make as root" >&2; \
		exit 1; \
	fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver

browser: $(BROWSER)

# Test files are spread over PYTEST_WORKERS processes (pytest-xdist; a file stays on one worker, so its
# module fixtures are built once). Two suit a 2-core machine: most tests wait on subprocesses and servers.
# PYTEST_WORKERS=0 runs everything in this process (for pdb).
PYTEST_WORKERS ?= 2
XDIST = -n $(PYTEST_WORKERS) --dist loadfile

test: $(STAMP) $(BROWSER)
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# `make test` LOAD_RUNS times in a row (default 3) while bench/cpu_load.py keeps every core busy: the suite
# must not need a quiet machine. Stops at the first failing run; prints each run's result and time. The
# trap stops the load however the loop ends (a failure, Ctrl-C), and its workers stop by themselves if it
# is killed.
LOAD_RUNS ?= 3

test-under-load: $(STAMP) $(BROWSER)
	@$(BIN)/python bench/cpu_load.py & load=$$!; \
	trap 'kill $$load 2>/dev/null; wait $$load 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	for run in $$(seq $(LOAD_RUNS)); do \
		began=$$(date +%s); \
		if $(MAKE) --no-print-directory test; then result=passed; else result=FAILED; fi; \
		echo "test-under-load: run $$run of $(LOAD_RUNS) $$result in $$(( $$(date +%s) - began )) s"; \
		[ $$result = passed ] || exit 1; \
	done

# The inner loop while working: lint, then the tiers that need no subprocess, browser or container
# (tests/unit, tests/contract, tests/cycle); `make test` runs everything.
check: lint
	$(BIN)/python -m pytest -q $(XDIST) tests/unit tests/contract tests/cycle $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check syncd tests migrations bench
	$(BIN)/ruff format --check syncd tests migrations bench
	$(BIN)/mypy syncd
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

demo: $(STAMP)
	$(BIN)/syncd demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# The long fault soak (tests/soak/runner.py): 200 cycles of churn, faults and kill -9, then the invariants.
# `make test` runs a 12-cycle version (tests/soak/test_soak.py). SOAK_ARGS overrides, e.g. --cycles 50.
SOAK_ARGS ?= --cycles 200 --seed 7

soak: $(STAMP)
	$(BIN)/python -m tests.soak.runner $(SOAK_ARGS)

# Benchmarks run by hand (docs/benchmarks.md): whole cycles at 10k and 100k users, the 1M read, writes
# against a rate-limited account, the start-up of one-shot commands. Each prints its targets with PASS/FAIL.
bench: $(STAMP)
	$(BIN)/python bench/sync_cycles.py --users 10000 100000
	$(BIN)/python bench/sync_cycles.py --read-1m
	$(BIN)/python bench/rate_limit.py
	$(BIN)/python bench/startup.py

# The scale curve to one million users (long: run it on a quiet machine). BENCH_1M_ARGS adds options, e.g.
# --latency-ms 5 if the emulators make the 1M run too slow.
BENCH_1M_ARGS ?=
bench-1m: $(STAMP)
	$(BIN)/python bench/scale.py --users 10000 100000 1000000 $(BENCH_1M_ARGS)
