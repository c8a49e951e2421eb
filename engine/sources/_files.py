"""Data files of the embedded source: ``<measurement>.csv`` and ``<measurement>.parquet``.

CSV: a header row, a ``time`` column in RFC 3339, text columns are tags,
numeric and ``true``/``false`` columns are fields, an empty cell is no value.
Parquet: any file with a ``time`` timestamp column; text columns are tags
unless InfluxDB 3's own column metadata says they are string fields.

Every problem is a ``SourceError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ._arrow import TIME, to_influx_table
from ._errors import SourceError

__all__ = ["DATA_SUFFIXES", "read_data_file", "data_files"]

DATA_SUFFIXES = (".csv", ".parquet")


def _csv(path: Path) -> pa.Table:
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(column_types={TIME: pa.string()}, strings_can_be_null=True),
    )


def _parquet(path: Path) -> pa.Table:
    return pq.read_table(path)


def read_data_file(path: Path) -> pa.Table:
    """The file's table in InfluxDB 3's presentation (see ``_arrow.to_influx_table``)."""
    source = f"data file {path}"
    suffix = path.suffix.lower()
    reader = {".csv": _csv, ".parquet": _parquet}.get(suffix)
    if reader is None:
        raise SourceError(source, "bad_data", f"unknown kind of file (expected {' or '.join(DATA_SUFFIXES)})")
    try:
        raw = reader(path)
    except FileNotFoundError:
        raise SourceError(source, "not_found", "no such file") from None
    except (pa.ArrowException, OSError) as error:
        what = "not a valid CSV file" if suffix == ".csv" else "not a valid Parquet file"
        raise SourceError(source, "bad_data", _first_line(error), cause=what) from None
    place = (lambda index: f"line {index + 2}") if suffix == ".csv" else (lambda index: f"row {index + 1}")
    try:
        return to_influx_table(raw, place=place)
    except (ValueError, pa.ArrowException) as error:
        raise SourceError(source, "bad_data", _first_line(error)) from None


def data_files(directory: Path) -> dict[str, Path]:
    """Measurement name → file, for the data files directly inside ``directory``."""
    source = f"data directory {directory}"
    if not directory.exists():
        raise SourceError(source, "not_found", "no such directory")
    if not directory.is_dir():
        raise SourceError(source, "bad_data", "not a directory")
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in DATA_SUFFIXES:
            continue
        if path.stem in found:
            raise SourceError(source, "bad_data", f"measurement {path.stem!r} has two files: "
                              f"{found[path.stem].name} and {path.name}; keep one")
        found[path.stem] = path
    if not found:
        raise SourceError(source, "bad_data", "no <measurement>.csv or <measurement>.parquet files in it",
                          cause="no data files")
    return found


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
