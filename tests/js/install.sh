#!/usr/bin/env bash
# Installs the JavaScript SDK the sandbox's conformance tests drive it with: exactly the
# versions in package-lock.json (@stellar/stellar-sdk pinned in package.json), from npm.
#   bash tests/js/install.sh
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null 2>&1 || { echo "npm is missing: install Debian's nodejs and npm" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error
