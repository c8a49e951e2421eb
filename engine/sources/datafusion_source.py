"""The embedded source: Apache DataFusion (InfluxDB 3's own SQL engine) over local data.

Data comes from a directory of ``<measurement>.csv`` / ``<measurement>.parquet``
files, a single such file, or Arrow tables added in memory. It is presented
as InfluxDB 3 presents it (see ``_arrow``) in a session configured as InfluxDB 3
configures its own: information_schema on, catalog ``public``, schema ``iox``
(so ``"cpu"`` and ``public.iox."cpu"`` name the same table), and read-only —
DDL, DML and ``SET`` statements are refused.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Mapping

import pyarrow as pa
from datafusion import SessionConfig, SessionContext, SQLOptions

from ._arrow import to_influx_table
from ._base import Source
from ._errors import SourceError
from ._files import DATA_SUFFIXES, data_files, read_data_file

__all__ = ["DataFusionSource", "influx_session"]

CATALOG, SCHEMA = "public", "iox"

_NOT_FOUND = re.compile(r"table '[^']*' not found|no field named|not found|does not exist", re.IGNORECASE)
_READ_ONLY = re.compile(r"(DDL|DML|Statement) not supported")


def influx_session() -> tuple[SessionContext, SQLOptions]:
    """A DataFusion session set up as InfluxDB 3 sets up its own, and the read-only SQL options."""
    config = (
        SessionConfig()
        .with_information_schema(True)
        .with_create_default_catalog_and_schema(True)
        .with_default_catalog_and_schema(CATALOG, SCHEMA)
    )
    options = SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)
    return SessionContext(config), options


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_PREFIX = re.compile(r"^(?:DataFusion error: |Error during planning: |Execution error: )+")


def _detail(error: BaseException) -> str:
    """DataFusion's message without its generic prefixes."""
    return _PREFIX.sub("", str(error).strip()) or type(error).__name__


class DataFusionSource(Source):
    """The embedded source. ``DataFusionSource(path)`` loads a data directory or file; ``add_table`` adds more."""

    def __init__(self, data: str | Path | None = None, *, name: str | None = None):
        self._context, self._options = influx_session()
        self._lock = threading.RLock()
        self._closed = False
        self._tables: dict[str, pa.Table] = {}
        if data is None:
            self.name = name or "in-memory tables"
            return
        path = Path(data)
        if path.is_file() or path.suffix.lower() in DATA_SUFFIXES:
            self.name = name or f"data file {path}"
            self._tables[path.stem] = read_data_file(path)
        else:
            self.name = name or f"data directory {path}"
            for measurement, file in data_files(path).items():
                self._tables[measurement] = read_data_file(file)
        for measurement, table in self._tables.items():
            self._register(measurement, table)

    @property
    def measurements(self) -> list[str]:
        """The measurement (table) names, sorted."""
        return sorted(self._tables)

    def table(self, name: str) -> pa.Table:
        """One measurement's data as the source holds it."""
        return self._tables[name]

    def add_table(self, name: str, table: pa.Table, *, tags=None) -> pa.Table:
        """Adds (or replaces) measurement ``name``; ``tags`` names its tag columns (default: text columns).

        Returns the table as it is held, with InfluxDB 3's types. Raises ``SourceError`` when it has no
        usable ``time`` column or a column of a type InfluxDB 3 cannot hold.
        """
        if not isinstance(name, str) or not name:
            raise SourceError(self.name, "bad_data", f"a measurement name must be non-empty text, got {name!r}")
        if not isinstance(table, pa.Table):
            raise SourceError(self.name, "bad_data", f"measurement {name!r}: expected a pyarrow.Table, "
                              f"got {type(table).__name__}")
        try:
            held = to_influx_table(table, tags=tags)
        except (ValueError, pa.ArrowException) as error:
            raise SourceError(self.name, "bad_data", f"measurement {name!r}: {error}") from None
        with self._lock:
            self._check_open()
            self._tables[name] = held
            self._register(name, held)
        return held

    def remove_table(self, name: str) -> None:
        """Forgets measurement ``name`` (no error when it is unknown)."""
        with self._lock:
            if self._tables.pop(name, None) is not None:
                self._context.deregister_table(_quote(name))

    def _register(self, name: str, table: pa.Table) -> None:
        batches = table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
        quoted = _quote(name)  # DataFusion parses the name: quoting keeps case, dots and quotes as they are
        with self._lock:
            if self._context.table_exist(quoted):
                self._context.deregister_table(quoted)
            self._context.register_record_batches(quoted, [batches])

    def _check_open(self) -> None:
        if self._closed:
            raise SourceError(self.name, "config", "the source is closed", cause="closed")

    def query(self, sql: str, *, params: Mapping[str, object] | None = None) -> pa.Table:
        """The result of ``sql``; ``params`` fills ``$name`` placeholders, as InfluxDB 3's query parameters do."""
        if not isinstance(sql, str):
            raise SourceError(self.name, "query", f"expected SQL text, got {type(sql).__name__}")
        self._check_open()
        try:
            frame = self._context.sql(sql, options=self._options, param_values=dict(params) if params else None)
            return frame.to_arrow_table()
        except Exception as error:  # DataFusion raises plain Exception / ValueError subclasses
            detail = _detail(error)
            if _READ_ONLY.search(detail):
                raise SourceError(self.name, "read_only", detail, cause="refused: the source is read-only") from None
            if _NOT_FOUND.search(detail):
                raise SourceError(self.name, "not_found", detail, cause="unknown table or column") from None
            raise SourceError(self.name, "query", detail) from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._tables.clear()
            self._context = None
