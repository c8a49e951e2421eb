"""The interface every time-series source offers, and schema discovery.

A source runs SQL in the InfluxDB 3 dialect and answers with an Arrow table;
it describes what it holds as a ``monitors_dsl.Schema`` read from its
``information_schema.columns`` (tags are the ``Dictionary(Int32, Utf8)``
columns, ``time`` is left out, fields get the rule language's type names).
Every failure is a ``SourceError``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable, Mapping

import pyarrow as pa

from monitors_dsl.schema import MeasurementSchema, Schema

__all__ = ["Source", "SCHEMA_SQL", "schema_from_columns", "field_type_name"]

#: the query both InfluxDB 3 and the embedded source answer to describe their tables
SCHEMA_SQL = (
    "SELECT table_name, column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = 'iox' ORDER BY table_name, column_name"
)

_FIELD_TYPES = {
    "float16": "float", "float32": "float", "float64": "float",
    "int8": "integer", "int16": "integer", "int32": "integer", "int64": "integer",
    "uint8": "unsigned", "uint16": "unsigned", "uint32": "unsigned", "uint64": "unsigned",
    "boolean": "boolean",
    "utf8": "string", "largeutf8": "string", "utf8view": "string",
}


def field_type_name(data_type: str) -> str | None:
    """The rule language's field type for a DataFusion ``data_type`` text; None when not a field type."""
    return _FIELD_TYPES.get(data_type.replace(" ", "").lower())


def schema_from_columns(rows: Iterable[Mapping[str, str]]) -> Schema:
    """A ``Schema`` from ``information_schema.columns`` rows (table_name, column_name, data_type)."""
    tables: dict[str, tuple[dict[str, str], set[str]]] = {}
    for row in rows:
        table, column, data_type = row["table_name"], row["column_name"], str(row["data_type"])
        fields, tags = tables.setdefault(table, ({}, set()))
        if column == "time":
            continue
        if data_type.replace(" ", "").startswith("Dictionary("):
            tags.add(column)
            continue
        kind = field_type_name(data_type)
        if kind is not None:
            fields[column] = kind
    return Schema({name: MeasurementSchema(dict(sorted(f.items())), frozenset(t))
                   for name, (f, t) in sorted(tables.items())})


class Source(ABC):
    """Runs InfluxDB 3 SQL and describes its tables. Use as a context manager, or call ``close()``."""

    #: how the source is named in errors: "influxdb3 http://host:8181 database 'db'", "data directory ./d" …
    name: str = "source"

    @abstractmethod
    def query(self, sql: str) -> pa.Table:
        """The result of ``sql`` (InfluxDB 3 dialect) as an Arrow table; ``SourceError`` on any failure."""

    def schema(self) -> Schema:
        """Measurements, their fields with types, and their tags."""
        return schema_from_columns(self.query(SCHEMA_SQL).to_pylist())

    def ping(self) -> None:
        """Returns when the source answers a query; raises ``SourceError`` saying why it does not."""
        self.query("SELECT 1")

    @abstractmethod
    def close(self) -> None:
        """Releases connections and memory; the source is not used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
