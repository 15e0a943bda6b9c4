#!/usr/bin/env bash
# Installs what the test suite needs when it is missing, runs the gates (lint, format, types),
# then runs the whole suite in parallel.
#   bash tests/run.sh [pytest arguments]     the whole suite (4 processes; -n 0 for one)
#   bash tests/run.sh --fast [arguments]     the fast tier: pure and SQLite tests, no servers
#                                            (2 processes)
# The suite starts its own PostgreSQL and Redis servers on loopback; nothing else is required.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- install ---------------------------------------------------------------------------------

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# the status page is tested in Debian's headless chromium (no browser download)
{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || need_apt+=(chromium chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} from Debian packages" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian's postgresql package may start a cluster of its own; the suite uses its own servers.

# --- the sandbox's conformance tests drive it with the JavaScript SDK: Debian's nodejs and npm,
# --- then the SDK pinned in tests/js/package-lock.json
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
[ -d tests/js/node_modules ] || bash tests/js/install.sh
# the snapshot builder's tests also run against the indexer's own GraphQL server (Subsquid's
# graphql-server, pinned in tests/indexer_js/package-lock.json) over the suite's PostgreSQL
[ -d tests/indexer_js/node_modules ] || bash tests/indexer_js/install.sh
# --- end of the JavaScript SDK block

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import payouts, pytest, hypothesis, xdist" >/dev/null 2>&1 \
   || [ ! -x .venv/bin/ruff ] || [ ! -x .venv/bin/mypy ] \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test]'
  touch .venv/.installed
fi

# --- gates -----------------------------------------------------------------------------------

gate() {
  local name=$1
  shift
  echo "gate: $name" >&2
  if ! "$@"; then
    echo "gate failed: $name (\`$*\`); fix the findings above before the tests run" >&2
    exit 1
  fi
}
gate "ruff check" .venv/bin/ruff check .
gate "ruff format" .venv/bin/ruff format --check .
gate "mypy" .venv/bin/mypy

# --- tests -----------------------------------------------------------------------------------

# Compiled modules are kept under .venv (not beside the sources), also where the environment
# says not to write them: without them every test process, and every CLI, worker and server
# process a test starts, compiles the project and rewrites the tests' asserts from source
# again (some 15 s of CPU for each test process's collection alone).
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="$PWD/.venv/pycache"

FAST="not slow and not network and not postgres and not redis and not browser"
# The whole suite mostly waits (ledgers closing, servers answering): 4 processes on 2 cores
# (6 took as long: the waits left are short, and the CPU of two cores is then the limit).
# The fast tier is CPU-bound: 2 processes (each more would only collect the suite again).
workers=4
args=()
if [ "${1:-}" = "--fast" ]; then
  shift
  workers=2
  args+=(-m "$FAST")
fi
# loadgroup keeps a module's shared server on one process; our own order hands out the longest
# modules first (tests/support/markers.py). A later -n or --dist in the arguments wins.
# pytest-benchmark measures nothing under xdist; it is told so rather than warning per process.
status=0
.venv/bin/python -m pytest -n "$workers" --dist loadgroup --no-loadscope-reorder --benchmark-disable \
  "${args[@]}" "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "no tests were collected: a test command that runs nothing fails" >&2
fi
exit "$status"
