#!/usr/bin/env bash
# Installs everything the suite needs into ./.venv and runs the whole test suite.
# Works on a fresh Debian machine with Python 3.11 (as root): installs python3-venv
# and mariadb-server from Debian when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
apt_install() {
    if command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq "$@" >/dev/null
    else
        echo "error: cannot install $* (no apt-get); install it and rerun" >&2
        exit 2
    fi
}

if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    echo "error: $PYTHON is not Python >= 3.11" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[engine,test]"

# A MariaDB server for the store tests: the one given, the one on 127.0.0.1:3306,
# or one started here from Debian's package (stopped again on exit).
eval "$(.venv/bin/python -m tests.support.mariadb ensure)"
trap '.venv/bin/python -m tests.support.mariadb stop >/dev/null 2>&1 || true' EXIT

export MONITORS_REQUIRE_MYSQL=1
.venv/bin/python -m pytest -n 2 -q "$@"
