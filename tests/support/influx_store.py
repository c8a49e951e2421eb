"""What the test InfluxDB 3 endpoint holds: databases of measurements, written as line protocol.

Each measurement keeps its columns' kinds (tag, or a field type fixed by the
first write, as in InfluxDB 3) and its rows keyed by series and time, so a
second write of the same series at the same time merges into the first (last
value wins), as InfluxDB 3 deduplicates. ``Database.source()`` gives a
``DataFusionSource`` over the current data, rebuilt only after a write.
"""

from __future__ import annotations

import threading

import pyarrow as pa

from engine.sources import DataFusionSource

from .line_protocol import LineError, Point, Unsigned

__all__ = ["Database", "Store", "field_kind"]

_ARROW = {"float": pa.float64(), "integer": pa.int64(), "unsigned": pa.uint64(),
          "boolean": pa.bool_(), "string": pa.string()}
_SHOWN = {"float": "Float", "integer": "Integer", "unsigned": "UInteger", "boolean": "Boolean", "string": "String"}


def field_kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Unsigned):
        return "unsigned"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    return "string"


class _Measurement:
    def __init__(self):
        self.kinds: dict[str, str] = {}  # column → "tag" or a field kind
        self.rows: dict[tuple, dict] = {}  # (sorted tag items, time) → field values

    def problem(self, point: Point) -> str | None:
        for key in point.tags:
            if key == "time":
                return "`time` cannot be a tag"
            if self.kinds.get(key, "tag") != "tag":
                return f"`{key}` is a field of {point.measurement!r}, not a tag"
        for key, value in point.fields.items():
            if key == "time":
                return "`time` cannot be a field"
            kind, known = field_kind(value), self.kinds.get(key)
            if known == "tag":
                return f"`{key}` is a tag of {point.measurement!r}, not a field"
            if known is not None and known != kind:
                return (f"invalid column type for column '{key}', expected {_SHOWN[known]}, "
                        f"got {_SHOWN[kind]}")
        return None

    def add(self, point: Point, time_ns: int) -> None:
        for key in point.tags:
            self.kinds[key] = "tag"
        for key, value in point.fields.items():
            self.kinds.setdefault(key, field_kind(value))
        key = (tuple(sorted(point.tags.items())), time_ns)
        self.rows.setdefault(key, {}).update({k: (int(v) if isinstance(v, Unsigned) else v)
                                              for k, v in point.fields.items()})

    def table(self) -> tuple[pa.Table, list[str]]:
        tags = sorted(k for k, kind in self.kinds.items() if kind == "tag")
        fields = sorted(k for k, kind in self.kinds.items() if kind != "tag")
        keys = list(self.rows)
        columns = {"time": pa.array([t for _, t in keys], pa.int64()).cast(pa.timestamp("ns"))}
        for tag in tags:
            columns[tag] = pa.array([dict(series).get(tag) for series, _ in keys], pa.string())
        for name in fields:
            columns[name] = pa.array([self.rows[k].get(name) for k in keys], _ARROW[self.kinds[name]])
        return pa.table(columns), tags


class Database:
    """One database: measurements by name."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._measurements: dict[str, _Measurement] = {}
        self._source: DataFusionSource | None = None

    def write(self, points: list[Point], times: list[int]) -> list[LineError]:
        """Adds each point (its time in ns given beside it); the points that conflict come back as errors."""
        errors = []
        with self._lock:
            for point, time_ns in zip(points, times):
                measurement = self._measurements.get(point.measurement) or _Measurement()
                problem = measurement.problem(point)
                if problem:
                    errors.append(LineError(point.line_number, problem, ""))
                    continue
                self._measurements[point.measurement] = measurement
                measurement.add(point, time_ns)
            if len(errors) < len(points):
                self._source = None
        return errors

    def source(self) -> DataFusionSource:
        """A DataFusion source over the data as it is now."""
        with self._lock:
            if self._source is None:
                source = DataFusionSource(name=f"database {self.name!r}")
                for name, measurement in self._measurements.items():
                    table, tags = measurement.table()
                    source.add_table(name, table, tags=tags)
                self._source = source
            return self._source


class Store:
    """Databases by name, created on first write as InfluxDB 3 creates them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._databases: dict[str, Database] = {}

    def database(self, name: str, *, create: bool = False) -> Database | None:
        with self._lock:
            if name not in self._databases and create:
                self._databases[name] = Database(name)
            return self._databases.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._databases)
