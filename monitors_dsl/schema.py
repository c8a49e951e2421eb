"""What a time-series store holds: measurements, their fields (with types) and tags.

Given to ``validate(..., schema=)`` so unknown names get a diagnostic with the
closest known name. The engine fills it from InfluxDB 3's information_schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

__all__ = ["Schema", "MeasurementSchema", "FIELD_TYPES", "NUMERIC_FIELD_TYPES"]

FIELD_TYPES = ("float", "integer", "unsigned", "boolean", "string")
NUMERIC_FIELD_TYPES = ("float", "integer", "unsigned")


@dataclass(frozen=True)
class MeasurementSchema:
    """One measurement (an InfluxDB 3 table): field name → type, its tag names, and for some tags
    every value the data holds (``tag_values``; a tag left out there has values that were not read,
    and its filters are not checked)."""

    fields: Mapping[str, str] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    tag_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Schema:
    """Known measurements by name."""

    measurements: Mapping[str, MeasurementSchema] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Schema":
        """From plain data: ``{"cpu": {"fields": {"usage": "float"}, "tags": ["host"]}}``.

        ``fields`` may also be a list of names (type ``float`` assumed); ``tag_values`` (optional)
        maps a tag to every value it holds: ``{"host": ["a", "b"]}``.
        """
        if isinstance(data, Schema):
            return data
        measurements = {}
        for name, spec in dict(data).items():
            if isinstance(spec, MeasurementSchema):
                measurements[str(name)] = spec
                continue
            spec = dict(spec or {})
            fields = spec.get("fields", {})
            if not isinstance(fields, Mapping):
                fields = {str(f): "float" for f in fields}
            types = {}
            for fname, ftype in fields.items():
                ftype = str(ftype).lower()
                types[str(fname)] = ftype if ftype in FIELD_TYPES else "float"
            values = {str(t): tuple(str(v) for v in vs) for t, vs in dict(spec.get("tag_values") or {}).items()}
            measurements[str(name)] = MeasurementSchema(types, frozenset(str(t) for t in spec.get("tags", ())), values)
        return cls(measurements)

    def to_dict(self) -> dict:
        out = {}
        for name, m in sorted(self.measurements.items()):
            out[name] = {"fields": dict(m.fields), "tags": sorted(m.tags)}
            if m.tag_values:
                out[name]["tag_values"] = {t: list(vs) for t, vs in sorted(m.tag_values.items())}
        return out
