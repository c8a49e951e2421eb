"""What the test servers started here share: stopping the one this run started, and the ``ensure|stop`` command.

A server started by ``tests.support.mariadb`` or ``tests.support.redis_server`` records its pid and its
directory in a state file; :func:`stop_started` stops only that process and removes only that directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Callable

__all__ = ["stop_started", "command"]


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
