# minilog: `make run` sets up and runs it; `make test` sets up and runs every check.
SHELL := /bin/bash
CARGO ?= cargo
DATA ?= ./data
LISTEN ?= 127.0.0.1:8000

.PHONY: run test build fmt lint nats clean-data

nats:
	@scripts/ensure-nats.sh >/dev/null

run: nats
	$(CARGO) build --release --bin minilog
	MINILOG_NATS_SERVER_BIN="$$(scripts/ensure-nats.sh)" ./target/release/minilog serve --data $(DATA) --listen $(LISTEN)

build:
	$(CARGO) build --release --bin minilog

test: nats
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	MINILOG_NATS_SERVER_BIN="$$(scripts/ensure-nats.sh)" $(CARGO) test --workspace

fmt:
	$(CARGO) fmt --all
