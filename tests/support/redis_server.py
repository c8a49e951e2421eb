"""A Redis server for the tests of replicated MCP servers.

    python -m tests.support.redis_server ensure   # prints: export MONITORS_TEST_REDIS_URL=...
    python -m tests.support.redis_server stop     # stops the server `ensure` started, if any

``ensure`` uses, in order: ``$MONITORS_TEST_REDIS_URL`` if it answers; the server on
127.0.0.1:6379; else it starts one — installing Debian's ``redis-server`` when it is
missing — on 127.0.0.1 and a free port, without persistence, and records its pid in
``.redis-test/state.json`` so that ``stop`` stops only that server. Tests use database
15 and keys under a prefix of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.ports import free_port
from tests.support.started import apt_install, command, first_reachable, stop_started

__all__ = ["URL_ENV", "ensure", "reachable", "server_url", "stop"]

URL_ENV = "MONITORS_TEST_REDIS_URL"
DEFAULT_URL = "redis://127.0.0.1:6379/15"
STATE = Path(__file__).resolve().parents[2] / ".redis-test" / "state.json"


def _log(message: str) -> None:
    print(f"redis: {message}", file=sys.stderr)


def reachable(url: str) -> bool:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def server_url() -> str | None:
    """The URL of a reachable test server, without starting one: the env URL, else 127.0.0.1:6379."""
    return first_reachable((os.environ.get(URL_ENV), DEFAULT_URL), reachable)


def _binary() -> str:
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if found:
        return found
    apt_install("redis-server", "redis-server", "redis")
    return shutil.which("redis-server") or "/usr/bin/redis-server"


def start() -> str:
    binary = _binary()
    workdir = Path(tempfile.mkdtemp(prefix="monitors-redis-"))
    port = free_port()
    log = open(workdir / "server.log", "ab")  # noqa: SIM115 - handed to the server process
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--protected-mode", "yes"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/15"
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps({"pid": proc.pid, "dir": str(workdir), "url": url}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"redis: the server exited at start; see {workdir / 'server.log'}")
        if reachable(url):
            _log(f"started Redis (pid {proc.pid}) on 127.0.0.1:{port}")
            return url
        time.sleep(0.1)
    stop()
    raise SystemExit("redis: the server did not answer within 30 s")


def ensure() -> str:
    return server_url() or start()


def stop() -> None:
    stop_started(STATE, "dir", "Redis", wait=10.0)


def main(argv: list[str]) -> int:
    return command("tests.support.redis_server", URL_ENV, ensure, stop, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
