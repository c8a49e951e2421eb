"""Prometheus and promtool for the agreement test and the side-by-side benchmark.

    python -m tests.support.prometheus ensure   # installs Debian's `prometheus` when promtool is missing

``binary(name)`` finds ``prometheus`` or ``promtool`` on ``PATH`` (or in
``/usr/bin``, where Debian's package puts them); ``install()`` installs that
package with apt-get (services are not started: the package's own service is
never used, the callers start what they need on 127.0.0.1 and stop it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.started import apt_install

__all__ = ["REQUIRE_ENV", "binary", "install", "promtool_for_tests", "version"]

#: Set to ``1`` (the test command does) to make a missing promtool a failure instead of a skip.
REQUIRE_ENV = "MONITORS_REQUIRE_PROMTOOL"


def _log(message: str) -> None:
    print(f"prometheus: {message}", file=sys.stderr)


def binary(name: str) -> str | None:
    """The path of ``prometheus`` or ``promtool``, or ``None`` when it is not installed."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path("/usr/bin") / name
    return str(candidate) if candidate.exists() else None


def version(path: str) -> tuple[int, ...]:
    """``(2, 42, 0)`` from ``prometheus --version`` / ``promtool --version``."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"version (\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    if match is None:
        raise RuntimeError(f"{path} --version printed no version: {(out.stdout + out.stderr)[:200]!r}")
    return tuple(int(part) for part in match.groups())


def promtool_for_tests() -> str:
    """promtool's path for a test: skips the test when it is missing, or fails it when ``REQUIRE_ENV`` is set
    (as the test command sets it); fails it when promtool is older than 2.42 (no ``keep_firing_for``)."""
    import pytest

    path = binary("promtool")
    if path is None:
        message = "promtool is not installed (python -m tests.support.prometheus ensure, or run scripts/test.sh)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    if version(path) < (2, 42, 0):
        pytest.fail(f"{path} is older than 2.42, which has no keep_firing_for")
    return path


def install() -> None:
    """Installs Debian's ``prometheus`` package (``prometheus`` and ``promtool``) when either is missing."""
    if binary("prometheus") and binary("promtool"):
        return
    apt_install("prometheus", "promtool", "prometheus", options=("--no-install-recommends",))
    _stop_packaged_service()


def _stop_packaged_service() -> None:
    """The package may start its own server (0.0.0.0:9090) where services can start: stop it; only servers
    started on 127.0.0.1 by the callers are used."""
    for cmd in (["systemctl", "stop", "prometheus"], ["service", "prometheus", "stop"]):
        if shutil.which(cmd[0]):
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            return


def main(argv: list[str]) -> int:
    if argv[:1] == ["ensure"]:
        install()
        promtool = binary("promtool")
        _log(f"promtool {'.'.join(map(str, version(promtool)))} at {promtool}")
        return 0
    print("usage: python -m tests.support.prometheus ensure", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
