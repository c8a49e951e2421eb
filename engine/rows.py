"""Rows of answered queries: each scan's rows read once, merged rows split back, scans joined for rules.

:class:`ScanRows` is one scan's answer, read once from Arrow into Python lists
(NaN becomes ``None``, no data): the group values of each row and one list per
term column, and the terms the source refused (``failed``: column → why).
:func:`split_rows` reads each member scan's rows out of a merged query's rows
(``engine.plan``); :func:`join_rows` joins the scans a rule reads on the group
tag values — the union of the series, a term missing for a series reads
``None``, a grouped ``absent`` reads ``False`` (its scan does not watch that
series) — as the rule's own query would.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .plan import Plan, Query, Scan

__all__ = ["ScanRows", "split_rows", "join_rows", "series_key", "JoinedRows", "vacant_row"]


def series_key(labels: Mapping[str, str]) -> str:
    """A series' identity within a rule: hex SHA-256 of its group tag values (64 characters)."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vacant_row(terms: Iterable, grouped: bool) -> dict:
    """The row of a series none of whose terms has a point: no data, and a grouped ``absent`` false (its
    scan does not watch the series), as the joined rows give it."""
    return {t.column: (False if grouped and t.function == "absent" else None) for t in terms}


class _SeriesKeys:
    """``series_key`` of the labels ``zip(groups, key)``, remembered (the same series recur every tick)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._found: dict[tuple, str] = {}

    def __call__(self, groups: tuple[str, ...], key: tuple) -> str:
        cache_key = (groups, key)
        found = self._found.get(cache_key)
        if found is None:
            if len(self._found) > self.limit:
                self._found.clear()
            found = self._found[cache_key] = series_key(dict(zip(groups, key)))
        return found


_series_key = _SeriesKeys()


@dataclass
class ScanRows:
    """One scan's answer, read once: group values per row, each term column as a list, refused terms."""

    groups: tuple[str, ...]
    keys: list[tuple]
    columns: dict[str, list]
    #: column → why the source refused that term (its values read ``None``; rules reading it are in error)
    failed: dict[str, str] = field(default_factory=dict)

    @classmethod
    def empty(cls, scan: Scan) -> ScanRows:
        """What the query gives when no point exists at all: one row without group tags
        (``count`` and ``count_series`` 0, ``absent`` true, the rest no data), no rows with them."""
        if scan.group_by:
            return cls(tuple(sorted(scan.group_by)), [], {column: [] for column in scan.columns})
        values = {"count": 0, "count_series": 0, "absent": True}
        return cls((), [()], {t.column: [values.get(t.function)] for t in scan.terms})

    @classmethod
    def failed_scan(cls, scan: Scan, failed: dict[str, str]) -> ScanRows:
        """A scan none of whose terms could be answered: every term ``failed``."""
        rows = cls.empty(scan)
        rows.columns = {column: [None] * len(rows.keys) for column in rows.columns}
        rows.failed = dict(failed)
        return rows

    @classmethod
    def from_table(cls, scan: Scan, table) -> ScanRows:
        groups = tuple(sorted(scan.group_by))
        names = set(table.column_names)
        n = table.num_rows
        if groups:
            tag_lists = [table.column(tag).to_pylist() if tag in names else [""] * n for tag in groups]
            keys = [tuple("" if v is None else str(v) for v in values) for values in zip(*tag_lists)]
        else:
            keys = [()] * min(n, 1)
        columns = {}
        for column in scan.columns:
            values = table.column(column).to_pylist() if column in names else [None] * n
            columns[column] = [None if (v.__class__ is float and v != v) else v for v in values]
        return cls(groups, keys, columns)

    @classmethod
    def combine(cls, scan: Scan, parts: Iterable[ScanRows]) -> ScanRows:
        """One scan's rows from answers to parts of its terms (each part with its own series)."""
        parts = list(parts)
        groups = tuple(sorted(scan.group_by))
        failed: dict[str, str] = {}
        for part in parts:
            failed.update(part.failed)
        if not groups:
            columns = {}
            for part in parts:
                for column, values in part.columns.items():
                    columns[column] = values[:1] if values else [None]
            return cls((), [()], {c: columns.get(c, [None]) for c in scan.columns}, failed)
        order: dict[tuple, int] = {}
        for part in parts:
            for key in part.keys:
                order.setdefault(key, len(order))
        keys = list(order)
        defaults = {t.column: (False if t.function == "absent" else None) for t in scan.terms}
        columns = {column: [defaults[column]] * len(keys) for column in scan.columns}
        for part in parts:
            for column, values in part.columns.items():
                target = columns[column]
                for key, value in zip(part.keys, values):
                    target[order[key]] = value
        for column in failed:
            columns[column] = [None] * len(keys)
        return cls(groups, keys, columns, failed)


def split_rows(plan: Plan, query: Query, answered: ScanRows) -> dict[int, ScanRows]:
    """Each member scan's rows, read from the rows of the merged ``query`` (see ``engine.plan``)."""
    position = answered.groups.index(query.tag)
    by_value: dict[str, list[int]] = {}
    for row, key in enumerate(answered.keys):
        by_value.setdefault(key[position], []).append(row)
    merged_columns = answered.columns
    out: dict[int, ScanRows] = {}
    for split in query.splits:
        scan = plan.scans[split.index]
        found = by_value.get(split.value, [])
        if not scan.group_by:
            if not found:
                out[split.index] = ScanRows.empty(scan)
                continue
            row = found[0]
            columns = {}
            for column, (merged, read) in split.columns.items():
                value = merged_columns[merged][row]
                if read == "count":
                    value = 0 if value is None else value
                elif read == "absent":
                    value = value is None or value == 0
                columns[column] = [value]
            out[split.index] = ScanRows((), [()], columns)
            continue
        groups = tuple(sorted(scan.group_by))
        if query.tag in scan.group_by:
            keys = [answered.keys[row] for row in found]
        else:
            keys = [key[:position] + key[position + 1:] for key in (answered.keys[row] for row in found)]
        columns = {}
        for column, (merged, _read) in split.columns.items():
            values = merged_columns[merged]
            columns[column] = [values[row] for row in found]
        out[split.index] = ScanRows(groups, keys, columns)
    return out


@dataclass
class JoinedRows:
    """The rows of a set of scans joined on group values: ``(series key, labels, row)`` each, and the terms
    the source refused among them (column → why)."""

    rows: list[tuple[str, dict, dict]]
    failed: dict[str, str]
    _index: dict[str, int] | None = field(default=None, repr=False)

    def index(self) -> dict[str, int]:
        """Series key → position in ``rows`` (built on first use)."""
        if self._index is None:
            self._index = {key: position for position, (key, _, _) in enumerate(self.rows)}
        return self._index

    def refused(self, terms: Iterable) -> str | None:
        """Why the first of ``terms`` the source refused was refused; ``None`` when it answered them all."""
        failed = self.failed
        if failed:
            for term in terms:
                why = failed.get(term.column)
                if why is not None:
                    return why
        return None


def join_rows(group_by: Iterable[str], indices: Iterable[int], scan_rows: Mapping[int, ScanRows],
              plan: Plan) -> JoinedRows:
    """The rows of a set of scans joined on group values (see the module docstring)."""
    indices = tuple(indices)
    groups = tuple(sorted(group_by))
    if not indices:  # a rule without aggregates: one series when ungrouped, none when grouped
        return JoinedRows([] if groups else [(series_key({}), {}, {})], {})
    failed: dict[str, str] = {}
    by_key: dict[tuple, dict] = {}
    order: list[tuple] = []
    for i in indices:
        part = scan_rows[i]
        if part.failed:
            failed.update(part.failed)
        columns = list(part.columns.items())
        for position, key in enumerate(part.keys):
            row = by_key.get(key)
            if row is None:
                row = by_key[key] = {}
                order.append(key)
            for column, values in columns:
                row[column] = values[position]
    # a grouped `absent` is false for a series its scan does not watch (as in the rule's own query)
    defaults = [(t.column, False if groups and t.function == "absent" else None)
                for i in indices for t in plan.scans[i].terms]
    if not groups and not order:  # no row at all (should not happen): one series with no data
        order.append(())
        by_key[()] = {}
    out = []
    for key in order:
        row = by_key[key]
        for column, default in defaults:
            if column not in row:
                row[column] = default
        labels = dict(zip(groups, key))
        out.append((_series_key(groups, key), labels, row))
    return JoinedRows(out, failed)
