"""Helpers for the fault and health tests: ``monitors-engine run`` subprocesses, HTTP probes, a TCP proxy
that can be cut, receipts counted by notification key. No tests here."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.ports import free_port

__all__ = ["ENGINE", "ROOT", "EngineProcess", "free_port", "http_get", "wait_until", "TcpProxy", "receipts",
           "MESSAGE", "rule_text"]

ENGINE = [sys.executable, "-m", "engine.main"]
ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000
#: a message naming the notification: rule, state, series and evaluation time (the idempotency key's parts)
MESSAGE = "key={{ rule }}|{{ state }}|{{ labels.symbol }}|{{ evaluated_at }}"


def rule_text(name: str, measurement: str = "crypto", threshold: float = 100, every: str = "2s",
              channels: str = "hook", window: str = "1h") -> str:
    return (f"rule {name} {{\n  when last({measurement}.price, {window}) > {threshold}\n  group by symbol\n"
            f"  every {every}\n  notify {channels}\n  message \"{MESSAGE}\"\n}}")




def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def receipts(receiver) -> collections.Counter:
    """How many times each notification key reached ``receiver``."""
    out: collections.Counter = collections.Counter()
    for item in list(receiver.received):
        message = item.data.get("message") or item.data.get("body") or ""
        out[message.strip()] += 1
    return out


class EngineProcess:
    """A ``monitors-engine run`` subprocess with its stderr in a file; always ``close()`` it."""

    def __init__(self, env: dict, log_path: Path, *args: str, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.env = dict(env, MONITORS_ENGINE_HTTP_PORT=str(self.port))
        self.log_path = log_path
        self.args = list(args)
        self.process: subprocess.Popen | None = None

    def start(self) -> "EngineProcess":
        self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(ENGINE + ["run", "--log-format", "json", *self.args], env=self.env,
                                        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log)
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        return http_get(self.url(path), timeout=3)

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def metric(self, name: str) -> float:
        status, text = self.get("/metrics")
        if status != 200:
            return float("nan")
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return float("nan")

    def lines(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"message": line, "raw": True})
        return out

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def __enter__(self) -> "EngineProcess":
        return self.start()

    def __exit__(self, *_) -> None:
        self.close()


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; ``down()`` refuses and cuts every connection, ``up()`` restores."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut while this one was being set up
                    client.close()
                    server.close()
                    return
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "TcpProxy":
        self.up()
        return self

    def __exit__(self, *_) -> None:
        self.down()


def base_env(database_url: str, secret_key: str, influx) -> dict:
    env = dict(os.environ, MONITORS_DATABASE_URL=database_url, MONITORS_SECRET_KEY=secret_key,
               INFLUXDB3_HOST=influx.flight_url, INFLUXDB3_DATABASE="markets",
               INFLUXDB3_AUTH_TOKEN=influx.token or "", PYTHONPATH=str(ROOT),
               MONITORS_ENGINE_LEASE_DURATION="3")
    env.pop("MONITORS_ENGINE_DATA_DIR", None)
    return env
