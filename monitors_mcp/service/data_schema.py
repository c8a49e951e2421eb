"""The schema of the engine's configured time-series source, for "did you mean" on names.

When the engine's source is configured for this process (``MONITORS_ENGINE_DATA_DIR``,
or ``INFLUXDB3_HOST`` and ``INFLUXDB3_DATABASE``; see ``engine.config``) and the
engine's packages are installed, rule validation checks measurement, field and
tag names against what the source holds. The schema is read lazily, cached for a
minute, and any failure (no engine, source down) only means no schema: names are
then not checked, and validation goes on.
"""

from __future__ import annotations

import logging
import os
import threading
import time

__all__ = ["current_schema", "SCHEMA_TTL"]

log = logging.getLogger(__name__)

SCHEMA_TTL = 60.0
_SOURCE_ENV = ("MONITORS_ENGINE_DATA_DIR", "INFLUXDB3_HOST", "INFLUXDB3_DATABASE")
_lock = threading.Lock()
_cache: dict[tuple, tuple[float, object]] = {}


def _configured() -> tuple | None:
    values = tuple(os.environ.get(name) or "" for name in _SOURCE_ENV)
    data_dir, host, database = values
    return values if data_dir or (host and database) else None


def current_schema():
    """A ``monitors_dsl.Schema`` of the configured source, or None."""
    key = _configured()
    if key is None:
        return None
    now = time.monotonic()
    with _lock:
        cached = _cache.get(key)
        if cached is not None and now - cached[0] < SCHEMA_TTL:
            return cached[1]
    schema = _read_schema()
    with _lock:
        _cache.clear()
        _cache[key] = (now, schema)
    return schema


def _read_schema():
    try:
        from engine.config import load_config
    except ImportError:
        return None
    try:
        config = load_config(query_timeout=5.0)
        with config.open_source() as source:
            return source.schema()
    except Exception as error:  # a source that is down must not stop validation
        log.warning("reading the source's schema failed: %s", type(error).__name__)
        return None
