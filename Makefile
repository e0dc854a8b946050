# minilog: `make run` sets up and runs it; `make test` sets up and runs every check.
SHELL := /bin/bash
CARGO ?= cargo
DATA ?= ./data
LISTEN ?= 127.0.0.1:8000
NATS_BIN = $$($(CURDIR)/scripts/ensure-nats.sh)

.PHONY: run test test-rust test-browser lint build fmt nats chromium

nats:
	@scripts/ensure-nats.sh >/dev/null

chromium:
	@scripts/ensure-chromium.sh

run: nats
	$(CARGO) build --release --bin minilog
	MINILOG_NATS_SERVER_BIN="$(NATS_BIN)" ./target/release/minilog serve --data $(DATA) --listen $(LISTEN)

build:
	$(CARGO) build --release --bin minilog

# Everything CI runs (.ci/run): formatting, lints, Rust tests, browser tests.
test: lint test-rust test-browser

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
	cd e2e && MINILOG_NATS_SERVER_BIN="$(NATS_BIN)" MINILOG_BIN="$(CURDIR)/target/debug/minilog" npm test

fmt:
	$(CARGO) fmt --all
