# minilog: `make run` sets up and runs it; `make test` sets up and runs every check.
SHELL := /bin/bash
CARGO ?= cargo
DATA ?= ./data
LISTEN ?= 127.0.0.1:8000
NATS_BIN = $$($(CURDIR)/scripts/ensure-nats.sh)
# Where cargo builds (CARGO_TARGET_DIR or a config may move it): asked, not assumed.
# A clean build (CI) gains nothing from incremental caches but their disk.
export CARGO_INCREMENTAL ?= 0
TARGET_DIR = $$($(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

.PHONY: run test test-rust test-browser test-python lint build fmt nats chromium postgres

nats:
	@scripts/ensure-nats.sh >/dev/null

chromium:
	@scripts/ensure-chromium.sh

# PostgreSQL's initdb and pg_ctl (Debian's package) for the import tests.
postgres:
	@scripts/ensure-postgres.sh >/dev/null

run: nats
	$(CARGO) build --release --bin minilog
	MINILOG_NATS_SERVER_BIN="$(NATS_BIN)" "$(TARGET_DIR)/release/minilog" serve --data $(DATA) --listen $(LISTEN)

build:
	$(CARGO) build --release --bin minilog

# Everything CI runs (.ci/run): formatting, lints, Rust tests, browser tests,
# the Python client's tests.
test: lint test-rust test-browser test-python

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust: nats
	MINILOG_NATS_SERVER_BIN="$(NATS_BIN)" $(CARGO) test --workspace

# Headless Chromium (Debian's package) driven by playwright-core from npm,
# against a real `minilog serve`; screenshots land in target/screenshots/.
test-browser: nats chromium
	$(CARGO) build --bin minilog
	cd e2e && npm ci --no-audit --no-fund --silent
	cd e2e && MINILOG_NATS_SERVER_BIN="$(NATS_BIN)" MINILOG_BIN="$(TARGET_DIR)/debug/minilog" npm test

# The Python client (clients/python) with pytest against a real `minilog serve`,
# in a venv under clients/python/.venv (reinstalled when pyproject.toml changes).
PYVENV := clients/python/.venv
$(PYVENV)/.installed: clients/python/pyproject.toml Makefile
	test -x $(PYVENV)/bin/python || python3 -m venv $(PYVENV)
	$(PYVENV)/bin/pip install --quiet --disable-pip-version-check -e clients/python "pytest>=7" "Django>=4.2" "sentry-sdk>=2,<3" brotli opentelemetry-sdk opentelemetry-exporter-otlp-proto-http aiosmtpd trustme
	touch $@

# django-minimal-log 0.7.2 itself, for `minilog import`'s tests: Django 3.2
# (the last its urls.py runs on), django-ipware 2 (ipware.ip2) and psycopg2,
# in a venv of its own beside the client's (which has Django >= 4.2).
DMLVENV := clients/python/.venv-dml
$(DMLVENV)/.installed: Makefile
	test -x $(DMLVENV)/bin/python || python3 -m venv $(DMLVENV)
	$(DMLVENV)/bin/pip install --quiet --disable-pip-version-check "Django>=3.2,<3.3" "django-minimal-log==0.7.2" "django-ipware>=2,<3" "psycopg2-binary>=2.9,<3"
	touch $@

test-python: nats chromium postgres $(PYVENV)/.installed $(DMLVENV)/.installed
	$(CARGO) build --bin minilog
	cd clients/python && MINILOG_NATS_SERVER_BIN="$(NATS_BIN)" MINILOG_BIN="$(TARGET_DIR)/debug/minilog" \
	  MINILOG_DML_PYTHON="$(CURDIR)/$(DMLVENV)/bin/python" MINILOG_PG_BIN="$$($(CURDIR)/scripts/ensure-postgres.sh)" .venv/bin/pytest -q

fmt:
	$(CARGO) fmt --all

# Benchmarks (issue 6): release build, a real nats-server, Debian's `hey` as
# the load generator (installed with apt-get when missing). Prints one table
# and writes it to target/bench/report.md. bench: ~3 min here; bench-quick: ~1.
.PHONY: bench bench-quick hey
BENCH_RUN = MINILOG_NATS_SERVER_BIN="$(NATS_BIN)" MINILOG_BIN="$(TARGET_DIR)/release/minilog" "$(TARGET_DIR)/release/minilog-bench"

hey:
	@command -v hey >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y hey || { $$SUDO apt-get update && $$SUDO apt-get install -y hey; }; }

bench: nats hey
	$(CARGO) build --release -p minilog -p bench
	$(BENCH_RUN)

bench-quick: nats hey
	$(CARGO) build --release -p minilog -p bench
	$(BENCH_RUN) --quick
