#!/usr/bin/env bash
# Installs everything the suite needs into ./.venv and runs the whole test suite.
# Works on a fresh Debian machine with Python 3.11 (as root): installs python3-venv,
# mariadb-server, redis-server and prometheus (for promtool) from Debian when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRAS=engine,test
source scripts/_venv.sh

# A MariaDB server for the store tests: the one given, the one on 127.0.0.1:3306,
# or one started here from Debian's package (stopped again on exit).
eval "$(.venv/bin/python -m tests.support.mariadb ensure)"
# Redis for the replicated MCP server tests, found or started the same way.
eval "$(.venv/bin/python -m tests.support.redis_server ensure)"
trap '.venv/bin/python -m tests.support.mariadb stop >/dev/null 2>&1 || true
      .venv/bin/python -m tests.support.redis_server stop >/dev/null 2>&1 || true' EXIT

export MONITORS_REQUIRE_MYSQL=1 MONITORS_REQUIRE_REDIS=1

# promtool for the agreement test against Prometheus: Debian's prometheus package
# when it is missing (its own service is not used).
.venv/bin/python -m tests.support.prometheus ensure
export MONITORS_REQUIRE_PROMTOOL=1
.venv/bin/python -m pytest -n 2 -q "$@"
