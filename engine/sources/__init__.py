"""Time-series sources: where the engine's SQL runs.

    Source                 the interface: query(sql) -> pyarrow.Table, schema(), ping(), close()
    ├── DataFusionSource   embedded default: CSV / Parquet files and in-memory Arrow tables
    └── InfluxDB3Source    InfluxDB 3 through influxdb3-python (Arrow Flight)
    SourceError            every failure: which source, the cause, the server's message

Both present data as InfluxDB 3 does (``time`` a zone-less ``timestamp[ns]``,
tags ``Dictionary(Int32, Utf8)``) and answer the same SQL, so a rule's query
gives the same rows on either.
"""

from ._base import SCHEMA_SQL, Source, schema_from_columns
from ._errors import SourceError
from ._time import format_rfc3339, parse_rfc3339, parse_rfc3339_datetime
from .datafusion_source import DataFusionSource
from .influxdb3_source import InfluxDB3Source

__all__ = [
    "Source",
    "SourceError",
    "DataFusionSource",
    "InfluxDB3Source",
    "SCHEMA_SQL",
    "schema_from_columns",
    "parse_rfc3339",
    "parse_rfc3339_datetime",
    "format_rfc3339",
]
