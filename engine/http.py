"""The health and metrics server: ``/healthz``, ``/readyz`` and ``/metrics`` on a thread of its own.

- ``GET /healthz`` — 200 while the process runs (``{"status": "alive"}``);
- ``GET /readyz`` — 200 when the engine can do its work, else 503; the JSON
  body says each check's state: ``store`` (a ``SELECT 1`` answers), ``source``
  (``source.ping()`` answers), ``rules`` (loaded at least once), ``leases``
  (renewed lately, and some held or none left to hold), ``stopping``;
- ``GET /metrics`` — the Prometheus text format of :class:`engine.metrics.EngineMetrics`.

The store and source checks run in background threads every few seconds, so
a probe never waits on a hung connection: ``/readyz`` answers from the latest
results, and a check that has not come back in time counts as failed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

__all__ = ["HealthServer", "Readiness", "Check"]

log = logging.getLogger(__name__)


@dataclass
class Check:
    """The latest result of one background check."""

    ok: bool = False
    detail: str = "not checked yet"
    at: float = 0.0  # monotonic time of the latest result


class Readiness:
    """Whether the engine is ready; see the module docstring."""

    def __init__(self, *, store: Callable[[], object], source: Callable[[], object], leases=None,
                 interval: float = 5.0, timeout: float = 10.0) -> None:
        self.probes = {"store": store, "source": source}
        self.checks = {name: Check() for name in self.probes}
        self.leases = leases
        self.interval = interval
        self.timeout = timeout
        self.stopping = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for name in self.probes:
            thread = threading.Thread(target=self._loop, args=(name,), name=f"ready-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            self.run_check(name)
            self._stop.wait(self.interval)

    def run_check(self, name: str) -> Check:
        try:
            self.probes[name]()
            result = Check(True, "ok", time.monotonic())
        except Exception as error:  # the reason, one line, no secrets
            from .notify.redact import redact

            text = " ".join(str(getattr(error, "orig", None) or error).split())[:300] or type(error).__name__
            result = Check(False, redact(text), time.monotonic())
        if result.ok != self.checks[name].ok:
            (log.info if result.ok else log.warning)("readiness: %s %s", name, "ok" if result.ok else result.detail)
        self.checks[name] = result
        return result

    def state(self) -> tuple[bool, dict]:
        """``(ready, body)``."""
        now = time.monotonic()
        body: dict = {}
        ready = True
        for name, check in self.checks.items():
            if check.at and now - check.at > self.interval + self.timeout:
                ok, detail = False, f"no answer for {now - check.at:.0f} s"
            else:
                ok, detail = check.ok, check.detail
            body[name] = detail
            ready &= ok
        leases = self.leases
        if leases is not None:
            if not leases.loaded:
                body["rules"], ready = "not loaded yet", False
            else:
                body["rules"] = f"{leases.total} enabled"
            renewed = leases.last_renewal is not None and now - leases.last_renewal <= leases.lease_duration
            if not renewed:
                body["leases"] = "not renewed" + (f": {leases.last_error}" if leases.last_error else "")
                ready = False
            elif not leases.held and leases.free_left:
                body["leases"] = f"none held of {leases.free_left} free"
                ready = False
            else:
                body["leases"] = f"{len(leases.held)} held of {leases.total} ({leases.replicas} replicas)"
        if self.stopping:
            body["stopping"] = True
            ready = False
        body["status"] = "ready" if ready else "not ready"
        return ready, body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HealthServer:
    """Serves the three endpoints on ``host:port`` from a daemon thread."""

    def __init__(self, host: str, port: int, *, readiness: Readiness, metrics) -> None:
        self.host, self.port = host, port
        self.readiness = readiness
        self.metrics = metrics
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen; raises ``OSError`` (say, the port is taken) with the address in the message."""
        try:
            self._server = _Server((self.host, self.port), self._handler())
        except OSError as error:
            raise OSError(error.errno, f"cannot serve health and metrics on {self.host}:{self.port}: "
                          f"{error.strerror or error} (set MONITORS_ENGINE_HTTP_PORT; 0 turns the server off)") \
                from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="http", daemon=True)
        self._thread.start()
        log.info("health and metrics on http://%s:%d", self.host, self.port)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._server = self._thread = None

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "monitors-engine"

            def log_message(self, *args) -> None:  # probes every few seconds: not worth a log line
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, payload: dict) -> None:
                self._send(status, json.dumps(payload).encode() + b"\n", "application/json")

            def do_GET(self) -> None:  # noqa: N802 - http.server's hook name
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/healthz":
                        self._json(200, {"status": "alive"})
                    elif path == "/readyz":
                        ready, body = outer.readiness.state()
                        self._json(200 if ready else 503, body)
                    elif path == "/metrics":
                        from .metrics import CONTENT_TYPE

                        self._send(200, outer.metrics.render(), CONTENT_TYPE)
                    else:
                        self._json(404, {"error": f"no such endpoint: {path} (try /healthz, /readyz, /metrics)"})
                except Exception as error:  # never let a probe take the thread down
                    log.warning("serving %s failed: %s", path, error)
                    self._json(500, {"error": "internal error"})

            do_HEAD = do_GET

        return Handler
