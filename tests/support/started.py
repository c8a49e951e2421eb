"""What the test servers started here share: stopping the one this run started, and the ``ensure|stop`` command.

A server started by ``tests.support.mariadb`` or ``tests.support.redis_server`` records its pid and its
directory in a state file; :func:`stop_started` stops only that process and removes only that directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

__all__ = ["stop_started", "command", "apt_install", "first_reachable"]


def apt_install(package: str, missing: str, log: str, *, options: tuple[str, ...] = ()) -> None:
    """Installs Debian's ``package`` (``missing`` says what is missing, for the error without apt-get)."""
    if not shutil.which("apt-get"):
        raise SystemExit(f"{log}: {missing} is missing and there is no apt-get to install {package}")
    print(f"{log}: installing {package} (Debian package)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *options, package]):
        subprocess.run(cmd, check=True, env=env, stdout=sys.stderr, stderr=sys.stderr)


def first_reachable(urls, reachable: Callable[[str], bool]) -> str | None:
    """The first of ``urls`` (``None`` entries skipped) that answers."""
    for url in urls:
        if url and reachable(url):
            return url
    return None


def stop_started(state_file: Path, directory_key: str, name: str, *, wait: float = 15.0) -> None:
    """SIGTERM the server recorded in ``state_file`` (SIGKILL after ``wait`` seconds), remove its directory."""
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    pid = int(state["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(int(wait * 10)):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(state[directory_key], ignore_errors=True)
    state_file.unlink(missing_ok=True)
    print(f"{name.lower()}: stopped {name} (pid {pid})", file=sys.stderr)


def command(module: str, url_env: str, ensure: Callable[[], str], stop: Callable[[], None], argv: list[str]) -> int:
    """``python -m MODULE ensure`` prints ``export URL_ENV=…``; ``stop`` stops what ``ensure`` started."""
    if argv[:1] == ["ensure"]:
        print(f"export {url_env}={ensure()}")
        return 0
    if argv[:1] == ["stop"]:
        stop()
        return 0
    print(f"usage: python -m {module} ensure|stop", file=sys.stderr)
    return 2
