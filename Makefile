# Two commands on a fresh machine: `make demo` and `make test`. Each sets up its own virtualenv first, from the
# lock file: uv.lock through uv (installed into .sluice/uv), or requirements.lock through pip where uv can't be had.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
UV := .sluice/uv/bin/uv
# The broker `make up` and `make bench` start: tansu (memory only, no Java) or kafka (Apache Kafka; BROKERS=3 for
# a KRaft cluster).
BROKER ?= tansu
BROKERS ?= 1
STAMP := $(VENV)/.installed-$(shell cat uv.lock requirements.lock | cksum | cut -d" " -f1)

.PHONY: install demo test test-kafka chaos-kafka check test-fast chaos up lint lock clean simulate-rescans chromium overhead bench bench-smoke

$(STAMP): uv.lock requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Sluice needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	@if [ -x $(UV) ] || { $(PYTHON) -m venv .sluice/uv && .sluice/uv/bin/pip install --quiet uv==$(UV_VERSION); }; then \
		echo "UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --extra test"; \
		UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --extra test --quiet; \
	else \
		echo "uv could not be installed: installing requirements.lock with pip"; \
		$(BIN)/python -m pip install --quiet -r requirements.lock; \
	fi
	@rm -f $(VENV)/.installed-*
	@touch $@

# After changing a dependency in pyproject.toml or client/pyproject.toml: re-resolve and export both lock files.
lock:
	@[ -x $(UV) ] || { $(PYTHON) -m venv .sluice/uv && .sluice/uv/bin/pip install --quiet uv==$(UV_VERSION); }
	$(UV) lock
	$(UV) export --frozen --extra test --no-hashes --quiet -o requirements.lock

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sluice demo

# The dashboard's browser test drives Debian's chromium (Playwright never downloads a browser here).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium; }

# Style, types, layers and docs first (seconds), then the suite.
check: $(STAMP)
	$(BIN)/ruff check services shared client bench tests
	$(BIN)/ruff format --check services shared client bench tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/docs-site

# The whole suite on Tansu, then its end-to-end, chaos and broker tests again on Apache Kafka (tests/support/infra.py
# says how the broker is chosen). Where Java 17+ or Maven is missing, the Apache Kafka pass skips with the reason;
# SLUICE_REQUIRE_KAFKA=1 (.ci/run sets it) makes that a failure.
test: check chromium
	$(BIN)/python -m pytest -m "not kafka"
	$(MAKE) --no-print-directory test-kafka

test-kafka: $(STAMP)
	SLUICE_TEST_BROKER=kafka $(BIN)/python -m pytest -m "e2e or kafka or broker"

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e"

# Full-size chaos scenarios (kills, outages, poison); the last line printed is a JSON summary.
chaos: $(STAMP)
	SLUICE_CHAOS_FULL=1 $(BIN)/python -m pytest -m "chaos and not kafka" tests/chaos -p no:cacheprovider

# The same, full size, on a 3-broker Apache Kafka cluster, with the cluster scenarios (a broker killed, a rolling
# restart, the whole cluster stopped and started).
chaos-kafka: $(STAMP)
	SLUICE_CHAOS_FULL=1 SLUICE_TEST_BROKER=kafka-cluster $(BIN)/python -m pytest -m chaos tests/chaos -p no:cacheprovider

# 10,000 watched items over 30 simulated days: scans and change-detection delay per rescan strategy.
simulate-rescans: $(STAMP)
	$(BIN)/python -m services.ops.simulate_rescans

# Throughput with tracing on vs off (real services, a loopback OTLP receiver); prints a JSON summary.
overhead: $(STAMP)
	$(BIN)/python -m tests.perf.tracing_overhead

# Throughput, latency, scale-out, memory and ceilings on the embedded stack (or KAFKA_BOOTSTRAP_SERVERS,
# DATABASE_URL, REDIS_URL); sizes via SLUICE_BENCH_* or `$(BIN)/python -m bench --help`. Last line: summary JSON.
bench: $(STAMP)
	$(BIN)/python -m bench --broker $(BROKER) --brokers $(BROKERS)

bench-smoke: $(STAMP)
	$(BIN)/python -m pytest tests/e2e/test_bench_smoke.py -q -p no:cacheprovider

# The stack on this machine: `make up` (Tansu), `make up BROKER=kafka`, `make up BROKER=kafka BROKERS=3`.
up: $(STAMP)
	$(BIN)/sluice dev up --broker $(BROKER) --brokers $(BROKERS)

lint: check

clean:
	rm -rf $(VENV) .sluice .pytest_cache
