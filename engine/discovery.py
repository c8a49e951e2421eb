"""What a source holds, for a person (or a model) about to write a rule: measurements, fields, tags, values.

Everything is read with SQL both InfluxDB 3 and the embedded source answer:
``information_schema.columns`` for the names and types (``Source.schema``), then
per measurement ``MAX(time)`` for when it was last written, and for each tag a
bounded ``GROUP BY`` giving its most frequent values (at most ``limit`` of them,
plus one row to tell whether there are more). Names in the SQL are quoted with the
compiler's own quoting, so no name can change the shape of a query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from monitors_dsl.schema import MeasurementSchema, Schema
from monitors_dsl.sql import quote_identifier

from .sources import Source

__all__ = ["MeasurementFacts", "TagFacts", "VALUES_SHOWN", "describe_measurement", "schema_with_values", "tag_values"]

#: how many of a tag's values a description lists, most frequent first
VALUES_SHOWN = 50


@dataclass(frozen=True)
class TagFacts:
    """A tag's most frequent values (most frequent first) and whether the data holds others too."""

    name: str
    values: tuple[str, ...]
    more: bool


@dataclass(frozen=True)
class MeasurementFacts:
    name: str
    fields: dict[str, str]
    tags: tuple[TagFacts, ...] = ()
    last_written_at: datetime | None = None


def tag_values(source: Source, measurement: str, tag: str, limit: int = VALUES_SHOWN) -> TagFacts:
    """At most ``limit`` values of ``tag`` in ``measurement``, most frequent first (ties by value)."""
    column, table = quote_identifier(tag), quote_identifier(measurement)
    sql = (f"SELECT CAST({column} AS VARCHAR) AS value, COUNT(*) AS points FROM {table} "
           f"WHERE {column} IS NOT NULL GROUP BY {column} ORDER BY points DESC, value LIMIT {int(limit) + 1}")
    rows = source.query(sql).to_pylist()
    values = tuple(str(row["value"]) for row in rows[:limit])
    return TagFacts(tag, values, len(rows) > limit)


def _last_written(source: Source, measurement: str) -> datetime | None:
    rows = source.query(f'SELECT MAX("time") AS last FROM {quote_identifier(measurement)}').to_pylist()
    last = rows[0]["last"] if rows else None
    if last is None:
        return None
    if hasattr(last, "to_pydatetime"):
        last = last.to_pydatetime()
    return last if last.tzinfo else last.replace(tzinfo=timezone.utc)


def describe_measurement(source: Source, name: str, known: MeasurementSchema,
                         limit: int = VALUES_SHOWN) -> MeasurementFacts:
    """Fields with types, each tag with its most frequent values, and when ``name`` was last written."""
    tags = tuple(tag_values(source, name, tag, limit) for tag in sorted(known.tags))
    return MeasurementFacts(name=name, fields=dict(sorted(known.fields.items())), tags=tags,
                            last_written_at=_last_written(source, name))


def schema_with_values(schema: Schema, source: Source, wanted: dict[str, set[str]], limit: int) -> Schema:
    """``schema`` with the complete value lists of the wanted ``{measurement: {tag, …}}`` (tags holding
    more than ``limit`` values are left out: their filters cannot be checked)."""
    measurements = dict(schema.measurements)
    for name, tags in wanted.items():
        known = measurements.get(name)
        if known is None:
            continue
        values = dict(known.tag_values)
        for tag in sorted(set(tags) & known.tags):
            facts = tag_values(source, name, tag, limit)
            if not facts.more:
                values[tag] = facts.values
        measurements[name] = MeasurementSchema(known.fields, known.tags, values)
    return Schema(measurements)
