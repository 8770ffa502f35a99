# The two commands of the README: `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
VENV := .venv
PG_BINDIR := $(shell ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

.PHONY: help run test lint types pytest bench faults install uv system-deps clean

help:
	@echo "make run    - install, then start API, matcher, notifier and beat (embedded default)"
	@echo "make test   - install, then lint, types, migrations check and the whole test suite"
	@echo "make bench  - benchmarks, each beside a baseline measured in the same run"
	@echo "make faults - the full fault-injection run (10,000 referrals; under 20 minutes)"

uv:
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv \
		|| python3 -m pip install --quiet --break-system-packages uv

# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on CI and in the image), every
# process would otherwise compile every module it imports, about 3 s of CPU per worker started.
install: uv
	@$(UV) sync --frozen --quiet --compile-bytecode
	@$(VENV)/bin/python -m compileall -q shared services bench >/dev/null

# PostgreSQL and Redis for the tests (which start their own on loopback, on free ports), and
# Chromium for the browser test of the /ops page.
system-deps:
	@if [ -z "$(PG_BINDIR)" ] || ! command -v redis-server >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then \
		echo "installing postgresql, redis-server and chromium from Debian packages"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq postgresql redis-server chromium >/dev/null; \
	fi

run: install
	$(UV) run --frozen housingfirst up

lint: install
	$(UV) run --frozen ruff check shared services tests bench
	$(UV) run --frozen ruff format --check shared services tests bench

types: install
	$(UV) run --frozen mypy

pytest: install system-deps
	$(UV) run --frozen pytest -p no:cacheprovider

test: lint types pytest

# The full fault-injection run (`make test` runs its short version): real PostgreSQL, Redis, API,
# workers and beat on loopback, broken on purpose under load; prints the summary table.
faults: install system-deps
	HOUSINGFIRST_FAULTS=full $(UV) run --frozen pytest -p no:cacheprovider -s tests/faults

# Benchmarks beside their baselines (PostgreSQL and Redis started on loopback, free ports).
bench: install system-deps
	$(UV) run --frozen python -m bench

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
