"""A MariaDB server for the store tests.

    python -m tests.support.mariadb ensure   # prints: export MONITORS_TEST_MYSQL_URL=...
    python -m tests.support.mariadb stop     # stops the server `ensure` started, if any

``ensure`` uses, in order: ``$MONITORS_TEST_MYSQL_URL`` if it answers; the server on
127.0.0.1:3306 (root, empty password; database ``monitors_test`` is created); else it
starts one — installing Debian's ``mariadb-server`` when ``mariadbd`` is missing —
with its data in a temporary directory, on 127.0.0.1 and a free port, and records
its pid in ``.mariadb-test/state.json`` so that ``stop`` stops only that server.

Tests get per-worker databases from ``test_database_url`` (see ``tests/support/store.py``).
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
from urllib.parse import urlsplit

__all__ = ["URL_ENV", "database_url", "drop_database", "ensure", "reachable", "server_url", "stop"]

URL_ENV = "MONITORS_TEST_MYSQL_URL"
DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/monitors_test"
STATE = Path(__file__).resolve().parents[2] / ".mariadb-test" / "state.json"


def _log(message: str) -> None:
    print(f"mariadb: {message}", file=sys.stderr)


def _connect(url: str, database: bool = False, timeout: float = 3.0):  # noqa: ANN202
    import pymysql

    parts = urlsplit(url.replace("mysql+pymysql://", "mysql://", 1))
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=(parts.path.lstrip("/") or None) if database else None,
        connect_timeout=timeout,
        charset="utf8mb4",
    )


def reachable(url: str) -> bool:
    try:
        _connect(url).close()
        return True
    except Exception:
        return False


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path="/" + name).geturl()


def _create_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    if not name:
        return
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        conn.commit()
    finally:
        conn.close()


def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.commit()
    finally:
        conn.close()


def database_url(base_url: str, name: str) -> str:
    """A fresh, empty database ``name`` on the server of ``base_url`` (dropped first if it exists)."""
    url = _with_database(base_url, name)
    drop_database(url)
    _create_database(url)
    return url


def server_url() -> str | None:
    """The URL of a reachable test server, without starting one: the env URL, else 127.0.0.1:3306."""
    return first_reachable((os.environ.get(URL_ENV), DEFAULT_URL), reachable)


def _install() -> None:
    if shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists():
        return
    apt_install("mariadb-server", "mariadbd", "mariadb")


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _start() -> str:
    _install()
    datadir = Path(tempfile.mkdtemp(prefix="monitors-mariadb-"))
    port = free_port()
    as_root = ["--user=root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    subprocess.run(
        [
            _binary("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *as_root,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )
    log = open(datadir / "server.log", "ab")  # noqa: SIM115 - handed to the server process
    proc = subprocess.Popen(
        [
            _binary("mariadbd"),
            "--no-defaults",
            f"--datadir={datadir}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket={datadir / 'mariadb.sock'}",
            f"--pid-file={datadir / 'mariadb.pid'}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=128M",
            "--innodb-flush-log-at-trx-commit=2",
            *as_root,
        ],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"mysql+pymysql://root@127.0.0.1:{port}/monitors_test"
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps({"pid": proc.pid, "datadir": str(datadir), "url": url}))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mariadb: the server exited at start; see {datadir / 'server.log'}")
        if reachable(url):
            _log(f"started MariaDB (pid {proc.pid}) on 127.0.0.1:{port}, data in {datadir}")
            return url
        time.sleep(0.3)
    stop()
    raise SystemExit("mariadb: the server did not answer within 60 s")


def ensure() -> str:
    url = server_url()
    if url is None:
        url = _start()
    _create_database(url)
    return url


def stop() -> None:
    stop_started(STATE, "datadir", "MariaDB", wait=15.0)


def main(argv: list[str]) -> int:
    return command("tests.support.mariadb", URL_ENV, ensure, stop, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
