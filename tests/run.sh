#!/usr/bin/env bash
# Installs what the test suite needs when it is missing, then runs the whole suite.
#   bash tests/run.sh [pytest arguments]
# The suite starts its own PostgreSQL and Redis servers on loopback; nothing else is required.
set -euo pipefail
cd "$(dirname "$0")/.."

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
# --- end of the JavaScript SDK block

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import payouts, pytest, hypothesis" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test]'
  touch .venv/.installed
fi

exec .venv/bin/python -m pytest "$@"
