"""The engine's configuration: a TOML or JSON file, then the environment, then defaults.

    # engine.toml (every key optional)
    database_url = "mysql+pymysql://monitors:…@db/monitors"   # or $MONITORS_DATABASE_URL
    data_dir = "./data"                    # embedded source (CSV / Parquet); or $MONITORS_ENGINE_DATA_DIR
    influxdb3_host = "http://influxdb:8181"   # or $INFLUXDB3_HOST
    influxdb3_database = "metrics"            # or $INFLUXDB3_DATABASE
    influxdb3_token = "…"                     # or $INFLUXDB3_AUTH_TOKEN (better: the environment)
    query_timeout = 60                     # seconds per query
    max_queries_in_flight = 4
    evaluation_delay = 0                   # seconds to wait after a due time before evaluating it
    dispatch_batch = 100                   # outbox rows per dispatch pass
    delivery_deadline = 3600               # seconds from a notification's creation to give up
    attempt_timeout = 30                   # seconds per delivery attempt
    first_backoff = 10                     # seconds before the first retry (doubling, at most max_backoff)
    max_backoff = 600
    flap_detection = false                 # hold notifications of series that change too often
    values_every = 300                     # seconds: a firing series whose values alone changed has them
                                           # written once per such period (0: every evaluation);
                                           # or $MONITORS_ENGINE_VALUES_EVERY
    http_host = "127.0.0.1"                # health and metrics server; or $MONITORS_ENGINE_HTTP_HOST
    http_port = 9464                       # or $MONITORS_ENGINE_HTTP_PORT; 0 turns the server off
    replica = "engine-0"                   # this replica's identity; or $MONITORS_ENGINE_REPLICA
                                           # (default: hostname-pid)
    lease_duration = 30                    # seconds a rule's lease lasts unless renewed;
                                           # or $MONITORS_ENGINE_LEASE_DURATION
    log_format = "json"                    # json or text; or $MONITORS_ENGINE_LOG_FORMAT
                                           # (default: json unless stderr is a terminal)

The environment wins over the file. The encryption key of channel URLs comes
from ``$MONITORS_SECRET_KEY`` (see ``monitors_mcp.store.secrets``). Exactly
one source is used: ``data_dir`` if given, else InfluxDB 3.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

__all__ = ["EngineConfig", "ConfigError", "load_config"]

_ENV = {
    "database_url": "MONITORS_DATABASE_URL",
    "data_dir": "MONITORS_ENGINE_DATA_DIR",
    "influxdb3_host": "INFLUXDB3_HOST",
    "influxdb3_database": "INFLUXDB3_DATABASE",
    "influxdb3_token": "INFLUXDB3_AUTH_TOKEN",
    "http_host": "MONITORS_ENGINE_HTTP_HOST",
    "http_port": "MONITORS_ENGINE_HTTP_PORT",
    "replica": "MONITORS_ENGINE_REPLICA",
    "lease_duration": "MONITORS_ENGINE_LEASE_DURATION",
    "log_format": "MONITORS_ENGINE_LOG_FORMAT",
    "values_every": "MONITORS_ENGINE_VALUES_EVERY",
}


class ConfigError(ValueError):
    """The configuration is missing something or holds a wrong value; the message says which."""


@dataclass(frozen=True)
class EngineConfig:
    database_url: str | None = None
    data_dir: str | None = None
    influxdb3_host: str | None = None
    influxdb3_database: str | None = None
    influxdb3_token: str | None = None
    query_timeout: float = 60.0
    max_queries_in_flight: int = 4
    evaluation_delay: float = 0.0
    dispatch_batch: int = 100
    delivery_deadline: float = 3600.0
    attempt_timeout: float = 30.0
    first_backoff: float = 10.0
    max_backoff: float = 600.0
    flap_detection: bool = False
    values_every: float = 300.0
    http_host: str = "127.0.0.1"
    http_port: int = 9464
    replica: str | None = None
    lease_duration: float = 30.0
    log_format: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.http_port <= 65535:
            raise ConfigError("http_port must be a port number (0 turns the server off)")
        if self.log_format not in (None, "json", "text"):
            raise ConfigError("log_format must be json or text")
        if self.replica is not None and not 0 < len(self.replica) <= 128:
            raise ConfigError("replica must be 1 to 128 characters")
        for name in ("lease_duration", "query_timeout", "attempt_timeout", "delivery_deadline", "first_backoff", "max_backoff"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        if self.evaluation_delay < 0:
            raise ConfigError("evaluation_delay must not be negative")
        if self.values_every < 0:
            raise ConfigError("values_every must not be negative (0 writes a firing series' values at every "
                              "evaluation)")
        for name in ("max_queries_in_flight", "dispatch_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")

    @property
    def source_kind(self) -> str:
        if self.data_dir:
            return "data"
        if self.influxdb3_host:
            return "influxdb3"
        raise ConfigError("no time-series source: set data_dir (or MONITORS_ENGINE_DATA_DIR) for the embedded "
                          "source, or influxdb3_host and influxdb3_database (or INFLUXDB3_HOST, INFLUXDB3_DATABASE)")

    def open_source(self):
        """The configured source (``engine.sources``)."""
        from .sources import DataFusionSource, InfluxDB3Source

        if self.source_kind == "data":
            return DataFusionSource(self.data_dir)
        return InfluxDB3Source(self.influxdb3_host, self.influxdb3_database or "", self.influxdb3_token,
                               timeout=self.query_timeout)


def _read_file(path: str) -> dict:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the configuration file {path}: {error.strerror or error}") from None
    try:
        if file.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path} is not valid {'JSON' if file.suffix.lower() == '.json' else 'TOML'}: "
                          f"{error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a table of settings")
    return data


def _coerce(name: str, value, kind):
    if kind is bool or kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{name} must be true or false")
    if kind in (int, float, "int", "float"):
        caster = int if kind in (int, "int") else float
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a number")
        try:
            return caster(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number") from None
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be text")
    return value


def load_config(path: str | None = None, env: Mapping[str, str] | None = None, **overrides) -> EngineConfig:
    """The configuration from ``path`` (TOML, or JSON by extension), the environment and ``overrides``."""
    env = os.environ if env is None else env
    data = _read_file(path) if path else {}
    known = {f.name: f.type for f in fields(EngineConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown setting{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
                          f"(known: {', '.join(known)})")
    for name, variable in _ENV.items():
        if env.get(variable):
            data[name] = env[variable]
    data.update({k: v for k, v in overrides.items() if v is not None})
    kinds = {"bool": bool, "int": int, "float": float}
    values = {}
    for name, value in data.items():
        type_text = str(known[name])
        kind = next((k for t, k in kinds.items() if type_text.startswith(t)), str)
        values[name] = _coerce(name, value, kind)
    return EngineConfig(**values)
