# Two commands on a fresh machine: `make demo` and `make test`. Each sets up its own virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install demo test test-fast chaos up lint clean bench bench-smoke

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Sluice needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sluice demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e"

# Full-size chaos scenarios (kills, outages, poison); the last line printed is a JSON summary.
chaos: $(STAMP)
	SLUICE_CHAOS_FULL=1 $(BIN)/python -m pytest -m chaos tests/chaos -p no:cacheprovider

# Throughput, latency, scale-out, memory and ceilings on the embedded stack (or KAFKA_BOOTSTRAP_SERVERS,
# DATABASE_URL, REDIS_URL); sizes via SLUICE_BENCH_* or `$(BIN)/python -m bench --help`. Last line: summary JSON.
bench: $(STAMP)
	$(BIN)/python -m bench

bench-smoke: $(STAMP)
	$(BIN)/python -m pytest tests/e2e/test_bench_smoke.py -q -p no:cacheprovider

up: $(STAMP)
	$(BIN)/sluice dev up

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff
	$(BIN)/ruff check services shared tests

clean:
	rm -rf $(VENV) .sluice .pytest_cache
