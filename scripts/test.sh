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
# Two pytest workers (pytest-xdist): much of the suite waits on servers, workers and Chromium, so
# two at once fit on 2 cores (measured on an AVX2 machine: 20.8 min one at a time, 11.0-13.5 min
# two at a time; three at a time was no faster, 12.3 min against 12.4). The browser tests make two
# groups, each in one worker with its own server and Chromium (tests/browser/conftest.py), and each
# worker's torch gets one thread so that two training tests do not fight over the same cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec .venv/bin/python -m pytest -q -n "${SIGNLAB_TEST_WORKERS:-2}" --dist loadgroup --durations=25 "$@"
