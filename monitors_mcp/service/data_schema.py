"""The names the configured time-series source holds, for checking rules against the data.

When the engine's source is configured for this process (``MONITORS_ENGINE_DATA_DIR``,
or ``INFLUXDB3_HOST`` and ``INFLUXDB3_DATABASE``) and the engine is installed, the
source's schema is read through the engine's entry point (``engine_link``), lazily,
and kept for a minute; so are the values of each tag a rule filters on (up to
``CHECKED_VALUES`` of them: a tag holding more is not checked). When names cannot
be checked, ``DataNames.reason`` says why, for the caller to read; validation goes on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from monitors_dsl import Schema

from .engine_link import open_source
from .errors import ServiceError

__all__ = ["CHECKED_VALUES", "DataNames", "SCHEMA_TTL", "SOURCE_SETTINGS", "data_names", "forget", "source_configured",
           "with_tag_values"]

log = logging.getLogger(__name__)

SCHEMA_TTL = 60.0
CHECKED_VALUES = 1000
SOURCE_SETTINGS = ("set MONITORS_ENGINE_DATA_DIR (a directory of <measurement>.csv/.parquet files) or "
                   "INFLUXDB3_HOST and INFLUXDB3_DATABASE for the server")
_SOURCE_ENV = ("MONITORS_ENGINE_DATA_DIR", "INFLUXDB3_HOST", "INFLUXDB3_DATABASE")
_lock = threading.Lock()
_cache: dict[tuple, tuple[float, object]] = {}


@dataclass(frozen=True)
class DataNames:
    """The source's schema, or None and the reason names are not checked."""

    schema: Schema | None
    reason: str | None = None


def source_configured() -> tuple | None:
    values = tuple(os.environ.get(name) or "" for name in _SOURCE_ENV)
    data_dir, host, database = values
    return values if data_dir or (host and database) else None


def _cached(key: tuple, read):
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit is not None and now - hit[0] < SCHEMA_TTL:
            return hit[1]
    value = read()
    with _lock:
        if len(_cache) > 1000:
            _cache.clear()
        _cache[key] = (now, value)
    return value


def forget() -> None:
    """Drops what was read (tests, and a source whose data was just replaced)."""
    with _lock:
        _cache.clear()


def data_names() -> DataNames:
    """The configured source's schema (read at most once a minute), or why there is none."""
    config = source_configured()
    if config is None:
        return DataNames(None, f"names were not checked against data: no time-series source is configured "
                               f"({SOURCE_SETTINGS})")
    return _cached(("schema", config), _read_schema)


def _read_schema() -> DataNames:
    try:
        with open_source(query_timeout=5.0) as source:
            return DataNames(source.schema())
    except ServiceError as error:
        log.warning("reading the source's schema failed: %s", error.code)
        return DataNames(None, f"names were not checked against data: {error.message} ({error.hint})")


def with_tag_values(schema: Schema, wanted: dict[str, set[str]]) -> Schema:
    """``schema`` with every value of the wanted ``{measurement: {tag, …}}``; unchanged when the source fails."""
    config = source_configured()
    key = ("values", config, tuple(sorted((m, tuple(sorted(t))) for m, t in wanted.items())))

    def read() -> Schema:
        try:
            with open_source(query_timeout=5.0) as source:
                return source.schema_with_values(schema, wanted, CHECKED_VALUES)
        except ServiceError as error:
            log.warning("reading tag values failed: %s", error.code)
            return schema

    return _cached(key, read)
