# cvas — one command a target. Run from the repository root.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CVAS := $(VENV)/bin/cvas

.PHONY: help install demo daily backfill test test-fast bench bench-backfill clean luigid luigid-stop

# List the targets and what each does (this text).
help:
	@awk '/^# /{doc=substr($$0, 3); next} /^[a-z][a-z-]*:/{split($$0, t, ":"); if (doc != "") printf "make %-12s %s\n", t[1], doc} {doc=""}' $(firstword $(MAKEFILE_LIST))

# Build the virtual environment and install cvas with its pinned dependencies.
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
# byte-compile the checkout as pip does an installed package: every cvas process would
# otherwise compile ~70 modules from source where PYTHONDONTWRITEBYTECODE is set
	$(PY) -m compileall -q cvas tasks
	touch $@

# Simulate ~30 days of Nova, build them all and print a summary.
demo: install
	$(CVAS) demo

# Build yesterday, or DATE=YYYY-MM-DD.
daily: install
	$(CVAS) daily $(if $(DATE),--date $(DATE))

# Build every missing or stale day of START..END, inclusive.
backfill: install
	@test -n "$(START)" -a -n "$(END)" || { echo "usage: make backfill START=YYYY-MM-DD END=YYYY-MM-DD"; exit 2; }
	$(CVAS) backfill --start $(START) --end $(END)

# Install what the tests need (openssh-server, PostgreSQL, Chromium when absent) and run the whole suite; fails if it changed the checkout (git status).
test: install
	bash scripts/ensure_test_deps.sh
	PYTHONDONTWRITEBYTECODE=1 scripts/unchanged.sh $(PY) -m pytest -q -p no:cacheprovider

# The tests that need no server, no cvas process and no year of history (under a minute), for the inner loop.
test-fast: install
	PYTHONDONTWRITEBYTECODE=1 scripts/unchanged.sh $(PY) -m pytest -q -p no:cacheprovider -m "not slow"

# Print the benchmark figures (runs for about 30 minutes).
bench: install
	$(PY) -m bench

# Only the backfill figures: a year (and BENCH_BATCH_YEARS years) from drops vs one bare DuckDB pass, with the profile.
bench-backfill: install
	$(PY) -m bench backfill

# Start the central scheduler and visualiser (http://127.0.0.1:8082/) in the background, state in var/luigid.
luigid: install
	scripts/luigid.sh start

# Stop the central scheduler; its state is saved and reloaded at the next start.
luigid-stop:
	scripts/luigid.sh stop

# Remove generated data (not the virtual environment); stops luigid first.
clean: luigid-stop
	rm -rf data var
