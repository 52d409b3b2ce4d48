# Bootstrap, demo, tests and benchmarks on a fresh Debian / Raspberry Pi OS machine (Python 3.11+).
# Quick start: `make demo`, then `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FACE_DATA ?= $(or $(KIOSK_FACE_DATA),../shared/faces)
# On Raspberry Pi OS set SYSTEM_SITE_PACKAGES=1 so the venv sees python3-picamera2 from apt.
SYSTEM_SITE_PACKAGES ?= 0
VENV_FLAGS := $(if $(filter 1,$(SYSTEM_SITE_PACKAGES)),--system-site-packages,)
STAMP := $(VENV)/.installed

.PHONY: venv demo test imports mutate stress-test bench lint clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + ")")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[hub,dev,opencv-zoo]'
	@# insightface's metadata asks for the GUI OpenCV build (needs libGL/X); its real
	@# dependencies are in setup.cfg with opencv-python-headless, so install it alone.
	$(BIN)/python -m pip install --quiet -c constraints.txt --no-deps insightface==2.1
	./scripts/system-deps.sh faketime chromium fonts-noto-cjk
	touch $@

demo: venv
	$(BIN)/kiosk demo

# `make test` ends with a bounded mutation sample: one module a day (the date is the seed, so each comes
# round), MUTATE_SAMPLE of its mutants with only its own tests, about 2-3 minutes on 2 cores. The full run
# (`make mutate`, see below) is too slow for every change, so it is run by hand or nightly, and on a
# branch with `scripts/mutate.py --changed main` (the modules the branch touches). Only modules whose every
# survivor is killed or listed in tests/mutation-equivalent.txt are in MUTATE_GATED; add one when it is.
MUTATE_SAMPLE ?= 20
MUTATE_GATED ?= kiosk/store/punches.py hardware/nmea.py kiosk/punching/policy.py hardware/rfid_protocols.py \
    kiosk/face/vote.py kiosk/punching/record.py kiosk/time/trusted.py kiosk/face/gallery.py sync/hub/ingest.py
# pytest on every core (pytest-xdist; TEST_WORKERS=0 for one process): --dist loadgroup keeps the tests
# marked xdist_group on one worker, in file order (tests/test_ui_kiosk.py's scenario on one daemon and page;
# tests/test_liveness.py's video tests, which share their judgements with the report).
# A bare `pytest` (setup.cfg) still runs in one process: -x, --pdb and the stress and mutation scripts' runs.
TEST_WORKERS ?= auto
test: venv imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup
	nice -n 10 $(BIN)/python scripts/mutate.py --sample $(MUTATE_SAMPLE) $(addprefix --module ,$(MUTATE_GATED))

# The hardware, daemon and sync tests RUNS times under HOGS busy-loop processes; failures per test.
RUNS ?= 20
HOGS ?= 2
stress-test: venv
	$(BIN)/python scripts/stress-test.py --runs $(RUNS) --hogs $(HOGS)

# The layers and contracts in .importlinter, and no import cycle between any two of our modules.
imports: venv
	$(BIN)/lint-imports
	$(BIN)/python scripts/import-cycles.py

# Mutation testing of the punch/HR-decision core (setup.cfg [mutmut], each module with its tests from
# setup.cfg [mutate]): every mutant, the score per module and the unexplained survivors. sync/hub/ingest.py
# (777 mutants) runs against tests/test_hub_ingest.py, which calls ingest directly on a hub database (no
# HTTP), and test_sync_protocol.py: 20.5 min for the whole module (stats run included) on this 2-core
# machine shared at load 12-15 (a stress test's CPU hogs at normal priority; the run niced), 744 killed and
# 33 equivalent (23 of them SQL letter case).
# The other eight modules (~3,000 mutants, mostly unit tests) were not timed. `scripts/mutate.py --module
# PATH` runs one module.
mutate: venv
	$(BIN)/python scripts/mutate.py

bench: venv
	$(BIN)/kiosk bench store
	$(BIN)/kiosk bench startup --punches 1000000
	./scripts/bench-face.sh "$(FACE_DATA)"
	$(BIN)/kiosk bench detector
	$(BIN)/kiosk bench walkup
	$(BIN)/kiosk bench hub --punches 100000 --devices 4 --db sqlite
	$(BIN)/kiosk bench deliveries
	@if pg_isready -h 127.0.0.1 -q 2>/dev/null; then $(BIN)/kiosk bench hub --punches 100000 --devices 4 --db postgres && \
	$(BIN)/kiosk bench deliveries --db postgres; \
	else echo "PostgreSQL not reachable on 127.0.0.1: skipping the PostgreSQL hub and deliveries benchmarks"; fi

lint: venv
	$(BIN)/ruff check kiosk sync enrollment hardware tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
