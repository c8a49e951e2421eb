"""What the configured time-series source holds, for writing rules with names that exist.

Read through the engine's entry point (``engine_link``): the measurements, and for
one measurement its fields with their types, its tags with their most frequent
values (at most ``VALUES_SHOWN``), and when it was last written. The source is
the server's, the same for every user; nothing here reads the store.
"""

from __future__ import annotations

from ..schemas import DataOut, MeasurementOut, TagOut
from .data_schema import SOURCE_SETTINGS, source_configured
from .engine_link import open_source, use_engine
from .errors import NotFound, Unavailable
from .limits import check_length

__all__ = ["DataService", "MEASUREMENTS_SHOWN", "VALUES_SHOWN"]

VALUES_SHOWN = 50
MEASUREMENTS_SHOWN = 500


def _no_source() -> Unavailable:
    return Unavailable("No time-series source is configured for this server, so there are no names to look up.",
                       code="no_source", hint=SOURCE_SETTINGS + "; without one, rules are stored unchecked")


class DataService:
    def describe(self, measurement: str | None = None) -> DataOut:
        if measurement is not None:
            check_length("measurement", measurement, 256)
        if source_configured() is None:
            raise _no_source()
        with open_source() as source:
            schema = use_engine(source.schema)
            names = sorted(schema.measurements)
            if measurement is None:
                return DataOut(source=source.name, measurements=names[:MEASUREMENTS_SHOWN],
                               measurements_total=len(names))
            if measurement not in schema.measurements:
                from monitors_dsl.errors import closest

                near = closest(measurement, names)
                raise NotFound(
                    f"The source has no measurement {measurement[:80]!r}."
                    + (f" Did you mean {near!r}?" if near else ""),
                    code="unknown_measurement",
                    hint="known measurements: " + (", ".join(names[:30]) or "none yet")
                         + ("" if len(names) <= 30 else ", … (describe_data without measurement lists them)"))
            facts = use_engine(lambda: source.describe(measurement, VALUES_SHOWN))
        return DataOut(
            source=source.name,
            measurements=[measurement],
            measurements_total=len(names),
            measurement=MeasurementOut(
                name=facts["name"],
                fields=facts["fields"],
                tags=[TagOut(**tag) for tag in facts["tags"]],
                last_written_at=facts["last_written_at"],
            ),
        )
