#!/usr/bin/env bash
# Prints the directory of PostgreSQL's server programs (initdb, pg_ctl),
# installing Debian's postgresql package when none is found. The import
# tests (clients/python/tests/test_import_dml.py) start a throwaway server
# with them in a temporary directory.
set -euo pipefail
find_bin() {
  local d
  if [ -n "${MINILOG_PG_BIN:-}" ] && [ -x "$MINILOG_PG_BIN/initdb" ]; then echo "$MINILOG_PG_BIN"; return 0; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"; return 0
  fi
  return 1
}
if find_bin; then exit 0; fi
echo "installing Debian's postgresql for the import tests ..." >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2 \
  || { $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2; }
find_bin || { echo "postgresql installed, but no initdb found under /usr/lib/postgresql" >&2; exit 1; }
