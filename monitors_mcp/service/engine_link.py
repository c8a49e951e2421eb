"""The one door from the server to the engine: the object the engine registers as entry point
``monitors.engine`` → ``features`` (``engine.features`` describes what it offers).

``monitors_mcp`` never imports the engine. A plain ``pip install monitors-mcp`` has
the entry point but not the engine's packages; the engine then answers with a
``code`` of ``engine_not_installed``, and every other failure carries a stable
``code`` and a ``hint`` too. Here they become ``Unavailable`` (or ``InvalidInput``)
service errors, answered like any other tool error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar

from .errors import InvalidInput, InvalidRule, ServiceError, Unavailable

__all__ = ["ENTRY_POINT_GROUP", "INSTALL", "engine_features", "open_source", "use_engine"]

ENTRY_POINT_GROUP = "monitors.engine"
INSTALL = 'pip install "monitors-mcp[engine]"'

T = TypeVar("T")
_lock = threading.Lock()
_loaded: list[Any] = []


def _load() -> Any:
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == "features":
            return entry.load()
    return None


def engine_features() -> Any:
    """The engine's features object; ``Unavailable`` (``engine_not_installed``) when there is none."""
    with _lock:
        if not _loaded:
            try:
                _loaded.append(_load())
            except ImportError:
                _loaded.append(None)
        found = _loaded[0]
    if found is None:
        raise Unavailable("This needs the engine, which is not installed with this server.",
                          code="engine_not_installed", hint=f"install it with: {INSTALL}")
    return found


def _translate(error: BaseException) -> ServiceError:
    code = str(getattr(error, "code", "") or "engine_error")
    message = str(getattr(error, "message", "") or error)
    hint = getattr(error, "hint", None)
    if code == "invalid_rule":
        return InvalidRule(message, hint=hint)
    if code == "invalid_input":
        return InvalidInput(message, hint=hint)
    return Unavailable(message, code=code, hint=hint)


def use_engine(action: Callable[[], T]) -> T:
    """``action()``, with the engine's coded failures turned into service errors."""
    try:
        return action()
    except ServiceError:
        raise
    except Exception as error:
        if getattr(error, "code", None) is None:
            raise
        raise _translate(error) from None


def open_source(*, query_timeout: float | None = None) -> Any:
    """A handle on the engine's configured source (a context manager); coded service errors otherwise."""
    features = engine_features()
    return use_engine(lambda: features.open_source(query_timeout=query_timeout))
