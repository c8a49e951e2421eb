"""Rendering users' templates in worker processes that have a memory limit, so no template can take the engine down.

The bounded sandbox (:mod:`.sandbox`) refuses what it can see coming; this is
the wall behind it. A :class:`RenderPool` keeps a few worker processes
(``python -m engine.notify.worker``), each started with its address space
limited (``RLIMIT_AS``, :data:`DEFAULT_MEMORY_MB` MiB unless the operator sets
``MONITORS_RENDER_MEMORY_MB``). A request is one JSON line (the templates, the
variables, the limits); the answer is one JSON line (the texts, or the
:class:`~engine.notify.render.RenderError` to raise). A worker that runs out of
memory answers with the error and exits; one that does not answer within its
time limit (the render's ``seconds`` plus a grace) is killed. Either way the
caller gets a ``RenderError`` for that notification, and the next request
starts a fresh worker. Replies are JSON, never pickles: a worker is not trusted
to send the engine code; and it starts with none of the engine's environment
but what Python needs (no store URL, encryption key or token).

``MONITORS_RENDER_WORKERS`` sets how many workers run at once (default 2;
``0`` renders in the engine's own process, bounded by the sandbox only).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from .sandbox import Limits

__all__ = ["DEFAULT_MEMORY_MB", "DEFAULT_WORKERS", "RenderPool", "render_pool"]

log = logging.getLogger(__name__)

DEFAULT_MEMORY_MB = 256
DEFAULT_WORKERS = 2
_GRACE_SECONDS = 2.0
_START_SECONDS = 20.0
_PASSED_ENV = frozenset({"PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
                         "SYSTEMROOT", "TMPDIR"})


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        # Only what Python needs to start: no store URL, key or token reaches a process running users' text.
        env = {name: value for name, value in os.environ.items() if name in _PASSED_ENV}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine.notify.worker", str(memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
        self._ready = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The worker's answer, or None when it died or did not answer in time (it is then stopped)."""
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.stop()
            return None
        budget = timeout + (0 if self._ready else _START_SECONDS)
        deadline = time.monotonic() + budget
        stdout = self.process.stdout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                return {"timeout": True}
            readable, _, _ = select.select([stdout], [], [], left)
            if readable:
                break
        line = stdout.readline()
        if not line:
            self.stop()
            return None
        self._ready = True
        try:
            return json.loads(line)
        except ValueError:
            self.stop()
            return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a killed process always ends
            pass
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class RenderPool:
    """At most ``size`` worker processes, each limited to ``memory_mb`` MiB; thread-safe."""

    def __init__(self, size: int = DEFAULT_WORKERS, memory_mb: int = DEFAULT_MEMORY_MB) -> None:
        self.size = size
        self.memory_mb = memory_mb
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(size):
            self._idle.put(None)  # a slot; the worker starts on first use
        self._lock = threading.Lock()
        self._all: list[_Worker] = []

    def render(self, templates: Sequence[tuple[str, str]], variables: Mapping[str, Any],
               limits: Limits) -> list[str]:
        """The texts of ``templates`` (``(name, source)`` pairs) in order; raises ``RenderError``."""
        from .render import RenderError

        request = {"templates": [list(t) for t in templates], "variables": _jsonable(variables),
                   "limits": asdict(limits)}
        worker = self._idle.get()
        try:
            if worker is None or not worker.alive():
                try:
                    worker = self._start()
                except OSError as error:  # no process can start here: the sandbox's own bounds still hold
                    log.warning("render worker could not start (%s); rendering in this process", error)
                    from .render import render_template

                    return [render_template(source, variables, limits=limits, name=name) for name, source in templates]
            answer = worker.ask(request, limits.seconds * len(templates) + _GRACE_SECONDS)
            if answer is None or answer.get("exit") or not worker.alive():
                worker.stop()  # it ran out of memory or time: the next request gets a fresh one
                worker = None
        finally:
            self._idle.put(worker if worker is not None and worker.alive() else None)
        name = templates[0][0] if templates else "message"
        if answer is None:
            raise RenderError(name, f"rendering used more than the {self.memory_mb} MiB a render may use")
        if answer.get("timeout"):
            raise RenderError(name, f"took longer than {limits.seconds:g} s")
        if "error" in answer:
            error = answer["error"]
            raise RenderError(error.get("template", name), error.get("reason", "failed"), error.get("line"))
        return [str(text) for text in answer["texts"]]

    def _start(self) -> _Worker:
        worker = _Worker(self.memory_mb)
        with self._lock:
            self._all = [w for w in self._all if w.alive()] + [worker]
        return worker

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()


def _jsonable(value: Any) -> Any:
    """Template variables as JSON values (they are plain data: text, numbers, mappings, lists)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


_POOL: RenderPool | None = None
_POOL_LOCK = threading.Lock()


def render_pool() -> RenderPool | None:
    """The process-wide pool (``MONITORS_RENDER_WORKERS``, ``MONITORS_RENDER_MEMORY_MB``); None when set to 0."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            size = _setting("MONITORS_RENDER_WORKERS", DEFAULT_WORKERS, 0, 64)
            if size == 0:
                return None
            _POOL = RenderPool(size, _setting("MONITORS_RENDER_MEMORY_MB", DEFAULT_MEMORY_MB, 64, 1 << 20))
            import atexit

            atexit.register(_POOL.close)
        return _POOL


def _setting(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}; got {raw[:20]!r}")
    return int(raw)


# --- the worker side -----------------------------------------------------------------------------


def _serve(memory_mb: int) -> int:
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from .render import RenderError, render_template

    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            limits = Limits(**request["limits"])
            texts = [render_template(source, request["variables"], limits=limits, name=name)
                     for name, source in request["templates"]]
            answer: dict[str, Any] = {"texts": texts}
        except RenderError as error:
            reason = error.reason
            if reason == "out of memory":
                reason = f"rendering used more than the {memory_mb} MiB a render may use"
            answer = {"error": {"template": error.template, "reason": reason, "line": error.line},
                      "exit": error.reason == "out of memory"}
        except MemoryError:
            return 3  # the parent reports the memory limit; a fresh worker takes the next request
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if answer.get("exit"):
            return 3
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a subprocess by RenderPool
    sys.exit(_serve(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MEMORY_MB))
