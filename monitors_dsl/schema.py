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
    """One measurement (an InfluxDB 3 table): field name → type, and its tag names."""

    fields: Mapping[str, str] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Schema:
    """Known measurements by name."""

    measurements: Mapping[str, MeasurementSchema] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Schema":
        """From plain data: ``{"cpu": {"fields": {"usage": "float"}, "tags": ["host"]}}``.

        ``fields`` may also be a list of names (type ``float`` assumed).
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
            measurements[str(name)] = MeasurementSchema(types, frozenset(str(t) for t in spec.get("tags", ())))
        return cls(measurements)

    def to_dict(self) -> dict:
        return {
            name: {"fields": dict(m.fields), "tags": sorted(m.tags)} for name, m in sorted(self.measurements.items())
        }
