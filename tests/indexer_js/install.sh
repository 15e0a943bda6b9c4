#!/usr/bin/env bash
# Installs the GraphQL server TFChain's indexer deploys, for the snapshot builder's tests:
# exactly the versions in package-lock.json (@subsquid/graphql-server 3.3.2 with openreader
# 3.1.7, as the indexer's own lock file pins them), from npm.
#   bash tests/indexer_js/install.sh
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null 2>&1 || { echo "npm is missing: install Debian's nodejs and npm" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error
