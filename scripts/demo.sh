#!/usr/bin/env bash
# Installs the package with the engine into ./.venv and runs `monitors demo` (embedded defaults:
# SQLite, DataFusion over generated prices, a local webhook). Nothing to configure.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=engine
source scripts/_venv.sh
exec .venv/bin/monitors demo "$@"
