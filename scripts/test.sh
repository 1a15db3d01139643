#!/usr/bin/env bash
# Set up (first time) and run the whole test suite, browser tests included.
# Extra arguments go to pytest (for example: -m "not browser").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
if ! command -v chromium >/dev/null 2>&1; then
  # the browser tests drive Debian's chromium (playwright cannot download a browser here)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: install it (apt-get install chromium) or the browser tests are skipped" >&2
  fi
fi
if ! command -v initdb >/dev/null 2>&1; then
  # the run-store tests start a real PostgreSQL server (Debian keeps its binaries off the PATH)
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -n 1)
  if [ -z "$pg_bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -n 1)
  fi
  if [ -n "$pg_bin" ]; then export PATH="$PATH:$pg_bin"; else
    echo "PostgreSQL's initdb is missing: install postgresql or the PostgreSQL run-store tests are skipped" >&2
  fi
fi
exec .venv/bin/python -m pytest -q --durations=25 "$@"
