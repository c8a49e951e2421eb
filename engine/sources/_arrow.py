"""Present any Arrow table the way InfluxDB 3 presents a measurement.

InfluxDB 3's columns: ``time`` a ``timestamp[ns]`` without zone (UTC, never
null); tags ``dictionary<int32, string>``; fields ``float64``, ``int64``,
``uint64``, ``bool`` or ``string``. ``to_influx_table`` converts a table to
exactly that (zone-aware times to UTC, narrower numbers widened, string
columns to tags) or raises ``ValueError`` saying which column is wrong and why.
Columns come out sorted by name, as InfluxDB 3 lists them.
"""

from __future__ import annotations

from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from ._time import parse_rfc3339

__all__ = ["to_influx_table", "TIME", "TAG_TYPE", "TIME_TYPE", "column_role"]

TIME = "time"
TIME_TYPE = pa.timestamp("ns")
TAG_TYPE = pa.dictionary(pa.int32(), pa.string())

# InfluxDB 3 marks each column of a table it writes to Parquet with this metadata key.
_IOX_COLUMN_TYPE = b"iox::column::type"
_IOX_TAG = b"iox::column_type::tag"


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _is_text_like(kind: pa.DataType) -> bool:
    return _is_text(kind) or (pa.types.is_dictionary(kind) and _is_text(kind.value_type))


def column_role(field: pa.Field, tags: frozenset[str] | None) -> str:
    """``time``, ``tag`` or ``field`` for one column."""
    if field.name == TIME:
        return "time"
    if tags is not None:
        return "tag" if field.name in tags else "field"
    marker = (field.metadata or {}).get(_IOX_COLUMN_TYPE)
    if marker is not None:
        return "tag" if marker == _IOX_TAG else "field"
    return "tag" if _is_text_like(field.type) else "field"


def _time_column(column: pa.ChunkedArray, place) -> pa.ChunkedArray:
    kind = column.type
    if column.null_count:
        raise ValueError(f"the `{TIME}` column has {column.null_count} empty value(s)")
    if _is_text_like(kind):
        values = column.cast(pa.string()).to_pylist()
        nanos = []
        for row, text in enumerate(values):
            try:
                nanos.append(parse_rfc3339(text))
            except ValueError as error:
                raise ValueError(f"{place(row)}: the `{TIME}` column: {error}") from None
        return pa.chunked_array([pa.array(nanos, pa.int64()).cast(TIME_TYPE)])
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        try:
            if pa.types.is_timestamp(kind) and kind.tz is not None:
                column = column.cast(pa.timestamp(kind.unit, tz="UTC")).cast(pa.timestamp(kind.unit))
            return column.cast(TIME_TYPE)
        except pa.ArrowInvalid as error:
            raise ValueError(f"the `{TIME}` column does not fit nanoseconds since 1970: {error}") from None
    raise ValueError(f"the `{TIME}` column has type {kind}; expected a timestamp or RFC 3339 text")


def _tag_column(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    if not _is_text_like(column.type):
        raise ValueError(f"tag column `{name}` has type {column.type}; tags are text")
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())
    return pc.dictionary_encode(column.cast(pa.string())).cast(TAG_TYPE)


def _field_type(kind: pa.DataType) -> pa.DataType | None:
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return pa.float64()
    if pa.types.is_signed_integer(kind):
        return pa.int64()
    if pa.types.is_unsigned_integer(kind):
        return pa.uint64()
    if pa.types.is_boolean(kind):
        return pa.bool_()
    if _is_text_like(kind):
        return pa.string()
    if pa.types.is_null(kind):
        return pa.float64()
    return None


def _field_column(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    target = _field_type(column.type)
    if target is None:
        raise ValueError(f"field column `{name}` has type {column.type}; InfluxDB 3 fields are "
                         "float, integer, unsigned, boolean or string")
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column if column.type == target else column.cast(target)


def _row(index: int) -> str:
    return f"row {index + 1}"


def to_influx_table(table: pa.Table, *, tags: Iterable[str] | None = None, place=_row) -> pa.Table:
    """``table`` with InfluxDB 3's column types; ``tags`` names the tag columns (default: text columns).

    ``place(index)`` words where a bad row is ("row 3"; a CSV reader says "line 4").
    """
    names = table.column_names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"column names used twice: {', '.join(duplicates)}")
    if TIME not in names:
        shown = ", ".join(names) or "none"
        raise ValueError(f"no `{TIME}` column (columns: {shown})")
    tag_set = None if tags is None else frozenset(tags)
    if tag_set is not None:
        unknown = sorted(tag_set - set(names))
        if unknown:
            raise ValueError(f"tag columns not in the table: {', '.join(unknown)}")
        if TIME in tag_set:
            raise ValueError(f"`{TIME}` cannot be a tag")
    columns, fields = [], []
    for field in sorted(table.schema, key=lambda f: f.name):
        column = table.column(field.name)
        role = column_role(field, tag_set)
        if role == "time":
            column, kind, nullable = _time_column(column, place), TIME_TYPE, False
        elif role == "tag":
            column = _tag_column(field.name, column)
            kind, nullable = TAG_TYPE, True
        else:
            column = _field_column(field.name, column)
            kind, nullable = column.type, True
        columns.append(column)
        fields.append(pa.field(field.name, kind, nullable=nullable))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
