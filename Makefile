# Two commands on a fresh machine: `make demo` and `make test`. Each sets up its own virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install demo test test-fast chaos up lint clean simulate-rescans chromium overhead bench bench-smoke

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

# The dashboard's browser test drives Debian's chromium (Playwright never downloads a browser here).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium; }

test: $(STAMP) chromium
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e"

# Full-size chaos scenarios (kills, outages, poison); the last line printed is a JSON summary.
chaos: $(STAMP)
	SLUICE_CHAOS_FULL=1 $(BIN)/python -m pytest -m chaos tests/chaos -p no:cacheprovider

# 10,000 watched items over 30 simulated days: scans and change-detection delay per rescan strategy.
simulate-rescans: $(STAMP)
	$(BIN)/python -m services.scheduler.simulate

# Throughput with tracing on vs off (real services, a loopback OTLP receiver); prints a JSON summary.
overhead: $(STAMP)
	$(BIN)/python -m tests.perf.tracing_overhead

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
	$(BIN)/ruff check services shared sluice tests

clean:
	rm -rf $(VENV) .sluice .pytest_cache
