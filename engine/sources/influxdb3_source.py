"""InfluxDB 3 as a source, through the official ``influxdb3-python`` client (Arrow Flight).

Configuration comes from the arguments or, for each one left out, from the
environment: ``INFLUXDB3_HOST`` (``http://localhost:8181``; a host without a
scheme is reached over TLS), ``INFLUXDB3_DATABASE``, ``INFLUXDB3_AUTH_TOKEN``
(may be empty for a server started without authentication). Each query has a
deadline (``timeout`` seconds). Every failure becomes a ``SourceError`` whose
``kind`` says what went wrong — ``unreachable``, ``unauthorized``,
``forbidden``, ``not_found`` (unknown database, table or column), ``timeout``,
``query`` — and whose ``detail`` is the server's own message.
"""

from __future__ import annotations

import math
import os
import re
import urllib.parse
from typing import Mapping

import pyarrow as pa
import pyarrow.flight as flight

from ._base import Source
from ._errors import SourceError

__all__ = ["InfluxDB3Source", "ENV_HOST", "ENV_DATABASE", "ENV_TOKEN", "DEFAULT_TIMEOUT"]

ENV_HOST, ENV_DATABASE, ENV_TOKEN = "INFLUXDB3_HOST", "INFLUXDB3_DATABASE", "INFLUXDB3_AUTH_TOKEN"
DEFAULT_TIMEOUT = 30.0

_KINDS = (
    (flight.FlightUnavailableError, "unreachable"),
    (flight.FlightUnauthenticatedError, "unauthorized"),
    (flight.FlightUnauthorizedError, "forbidden"),
    (flight.FlightTimedOutError, "timeout"),
)
_CONTEXT = re.compile(r"\.? gRPC client debug context:|\. Client context:")
_FLIGHT_PREFIX = re.compile(r"^Flight returned [\w ]+ error, with message: ")
_DETAIL_SUFFIX = re.compile(r"\. Detail: [\w ]+$")
_NOT_FOUND = re.compile(r"not found|no field named|does not exist|unknown (database|table|column)", re.I)
_READ_ONLY = re.compile(r"(DDL|DML|Statement) not supported|read.only", re.I)
_DEADLINE = re.compile(r"deadline exceeded", re.I)
_UNREACHABLE = re.compile(r"failed to connect|connection refused|unavailable|name resolution|DNS resolution", re.I)


def server_message(error: BaseException) -> str:
    """The server's own words inside a Flight error's long text (gRPC's debug context left out)."""
    text = str(error).strip()
    text = _CONTEXT.split(text, maxsplit=1)[0].strip()
    text = _FLIGHT_PREFIX.sub("", text)
    text = _DETAIL_SUFFIX.sub("", text).strip()
    return text or type(error).__name__


def _root_cause(error: BaseException) -> BaseException:
    """The Arrow / Flight error the client wrapped (it re-raises without ``from``)."""
    seen = error
    while not isinstance(seen, pa.ArrowException):
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            return error
        seen = nxt
    return seen


def classify(error: BaseException) -> tuple[str, str]:
    """(kind, the server's message) for anything the client raised while querying."""
    cause = _root_cause(error)
    detail = server_message(cause)
    for kind_type, kind in _KINDS:
        if isinstance(cause, kind_type):
            return kind, detail
    if _DEADLINE.search(detail):
        return "timeout", detail
    if _NOT_FOUND.search(detail):
        return "not_found", detail
    if _READ_ONLY.search(detail):
        return "read_only", detail
    if isinstance(cause, flight.FlightError) and _UNREACHABLE.search(detail):
        return "unreachable", detail
    return "query", detail


_CAUSES = {"not_found": "unknown database, table or column", "timeout": "timed out",
           "read_only": "refused: queries only read"}


class InfluxDB3Source(Source):
    """InfluxDB 3 Core / Enterprise / Cloud, queried in SQL over Arrow Flight."""

    def __init__(
        self,
        host: str | None = None,
        database: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ):
        env = os.environ if env is None else env
        host = host if host is not None else env.get(ENV_HOST, "")
        database = database if database is not None else env.get(ENV_DATABASE, "")
        token = token if token is not None else env.get(ENV_TOKEN, "")
        self.host, self.database = str(host).strip(), str(database).strip()
        self.name = name or " ".join(["influxdb3", self.host, f"database {self.database}" if self.database else ""]
                                     ).strip()
        if not self.host:
            raise SourceError(self.name, "config", f"give the host or set {ENV_HOST}", cause="no host configured")
        if not self.database:
            raise SourceError(self.name, "config", f"give the database or set {ENV_DATABASE}",
                              cause="no database configured")
        try:
            self.timeout = float(timeout)
        except (TypeError, ValueError):
            self.timeout = math.nan
        if not self.timeout > 0:
            raise SourceError(self.name, "config", f"timeout must be a positive number of seconds, got {timeout!r}")
        url = self.host if "://" in self.host else f"https://{self.host}"
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SourceError(self.name, "config", f"host must look like http://host:8181, got {self.host!r}",
                              cause="bad host")
        try:
            from influxdb_client_3 import InfluxDBClient3

            self._client = InfluxDBClient3(
                host=url, database=self.database, token=token or "",
                query_timeout=int(self.timeout * 1000),
            )
        except Exception as error:  # the client validates its arguments with plain exceptions
            raise SourceError(self.name, "config", str(error) or type(error).__name__) from None

    def query(self, sql: str) -> pa.Table:
        if not isinstance(sql, str):
            raise SourceError(self.name, "query", f"expected SQL text, got {type(sql).__name__}")
        if self._client is None:
            raise SourceError(self.name, "config", "the source is closed", cause="closed")
        try:
            return self._client.query(sql, language="sql", mode="all")
        except Exception as error:
            kind, detail = classify(error)
            if kind == "timeout":
                detail = f"no answer within {self.timeout:g}s ({detail})"
            raise SourceError(self.name, kind, detail, cause=_CAUSES.get(kind)) from None

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing must not fail a shutdown
                pass
