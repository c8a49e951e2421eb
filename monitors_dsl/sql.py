"""Terms and the InfluxDB 3 SQL that computes them.

A *term* is one distinct aggregate call of a rule (function, selector, window,
offset, parameter) together with the rule's group tags. ``sql_for_terms`` turns
a set of terms sharing the same group tags into one query: one row per series,
the group tag columns, and one column per term, named ``Term.column``.

Shape of the query, for an evaluation time ``T`` given as a literal::

    WITH s0 AS (scan: rows of one measurement, filters, window and offset),
         a0 AS (aggregate: one row per group, one column per term on s0),
         r0 AS (ranks of one field of s0, for exact percentiles),
         p0 AS (aggregate: one row per group, the percentiles),
         keys AS (every group seen by any aggregate; one row without group by)
    SELECT keys' tags, each term's column FROM keys LEFT JOIN a0 … LEFT JOIN p0 …

Terms reading the same measurement with the same filters, window and offset
share one scan; a ``zscore`` reads its baseline too, so it shares its scan
with the zscores of the same window, offset and baseline. Only what InfluxDB 3 Core's SQL reference documents is used:
``first_value``/``last_value`` with ``ORDER BY``, ``min``/``max``/``avg``/``sum``/
``median``/``count``/``stddev_samp``, ``row_number()`` and ``count`` as window
functions, ``count(DISTINCT …)``, ``concat``/``character_length``,
``floor``/``ceil``/``abs``, ``CAST(… AS DOUBLE)``, ``CAST(time AS
BIGINT)``, ``CASE``, ``NULLIF``, ``COALESCE``, ``~``, ``UNION``, ``LEFT JOIN``.

Every identifier is double-quoted and every string single-quoted, each with
its quote doubled inside, so no user text can change the shape of the query.
A tag that a point lacks reads as the empty string, as in InfluxQL and PromQL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping

from . import ast as a
from .printer import print_expr

__all__ = [
    "Term",
    "terms_of",
    "watch_terms",
    "sql_for_terms",
    "quote_identifier",
    "quote_string",
    "timestamp_literal",
    "time_ns",
    "ABSENT_LOOKBACK",
]

#: how far before the window a grouped ``absent`` looks for the groups it watches (seconds)
ABSENT_LOOKBACK = 24 * 3600

_NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1)


# --- quoting ------------------------------------------------------------------------


def quote_identifier(name: str) -> str:
    """``"name"`` with ``"`` doubled: InfluxDB 3 folds unquoted names to lower case."""
    return '"' + name.replace('"', '""') + '"'


def quote_string(value: str) -> str:
    """``'value'`` with ``'`` doubled."""
    return "'" + value.replace("'", "''") + "'"


def time_ns(at: datetime | int) -> int:
    """Nanoseconds since the epoch; a naive datetime is taken as UTC, an int as nanoseconds."""
    if isinstance(at, bool):
        raise TypeError("expected a datetime or nanoseconds since the epoch")
    if isinstance(at, int):
        return at
    if not isinstance(at, datetime):
        raise TypeError(f"expected a datetime or nanoseconds since the epoch, got {type(at).__name__}")
    if at.tzinfo is not None:
        at = at.astimezone(timezone.utc).replace(tzinfo=None)
    delta = at - _EPOCH
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


def timestamp_literal(ns: int) -> str:
    """``TIMESTAMP 'YYYY-MM-DDTHH:MM:SS.fffffffff'``: a zone-less UTC timestamp, nanosecond precise."""
    seconds, fraction = divmod(ns, _NS)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"TIMESTAMP '{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}'"


# --- terms --------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One distinct aggregate call of a rule, grouped by the rule's tags.

    ``key`` identifies what the term computes, whatever rule it comes from:
    terms with equal keys give equal values, so the engine may compute them
    once for many rules. ``column`` is the SQL column (and row key) holding
    the term's value; it is derived from ``key`` alone.
    """

    function: str
    selector: a.Selector
    window: int
    offset: int
    parameter: float | None
    group_by: tuple[str, ...]
    text: str
    key: tuple = field(init=False, repr=False)
    column: str = field(init=False)

    def __post_init__(self) -> None:
        if self.parameter is not None:  # 95 and 95.0 are one rank, one term
            object.__setattr__(self, "parameter", float(self.parameter))
        sel = self.selector
        filters = tuple(sorted({(f.tag, f.op, f.value) for f in sel.filters}, key=repr))
        key = (self.function, sel.measurement, sel.field, filters, self.window, self.offset,
               tuple(sorted(set(self.group_by))), self.parameter)
        object.__setattr__(self, "key", key)
        digest = hashlib.sha256(repr(key).encode("utf-8")).hexdigest()[:12]
        object.__setattr__(self, "column", f"{self.function}_{digest}")

    @classmethod
    def from_aggregate(cls, node: a.Aggregate, group_by: Iterable[str] = ()) -> "Term":
        return cls(node.function, node.selector, node.window.seconds, node.offset.seconds, node.parameter,
                   tuple(group_by), print_expr(node))

    @property
    def measurement(self) -> str:
        return self.selector.measurement

    @property
    def field_name(self) -> str:
        return self.selector.field

    @property
    def filters(self) -> tuple[a.Filter, ...]:
        return self.selector.filters

    def bounds(self, at: datetime | int) -> tuple[int, int]:
        """``(low, high)`` in nanoseconds: the term sees points with ``low < time <= high``."""
        high = time_ns(at) - self.offset * _NS
        return high - self.window * _NS, high

    def __eq__(self, other) -> bool:
        return isinstance(other, Term) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def terms_of(rule: a.Rule) -> tuple[Term, ...]:
    """The distinct terms of a rule, in source order (firing conditions, then ``resolve when``)."""
    from .compiled import rule_columns

    return rule_columns(rule).terms


def watch_terms(terms: Iterable[Term], group_by: Iterable[str]) -> tuple[Term, ...]:
    """Terms that list the series a grouped rule knows, beyond those in its windows.

    A series is known while it has points in the 24 hours before one of the
    rule's windows (``ABSENT_LOOKBACK``, the look-back of a grouped
    ``absent``). For each of the rule's terms, a grouped ``absent`` over the
    same selector, window and offset lists those series; the predicate reads
    none of them. A rule needs them when a known series without points must be
    decided — ``on no data alert`` (a host that stopped reporting fires), or a
    condition that holds without data; the engine decides which rules do.
    Ungrouped, a rule has one series whatever the data: none are needed.
    """
    groups = tuple(group_by)
    if not groups:
        return ()
    found: dict[tuple, Term] = {}
    own = set()
    for term in terms:
        own.add(term.key)
        aggregate = a.Aggregate("absent", term.selector, a.Duration(term.window), a.Duration(term.offset))
        watch = Term.from_aggregate(aggregate, groups)
        found.setdefault(watch.key, watch)
    return tuple(t for key, t in found.items() if key not in own)


# --- the query ----------------------------------------------------------------------


@dataclass
class _Scan:
    """One pass over a measurement: a filter set, a time range and the fields read."""

    name: str
    measurement: str
    filters: tuple[a.Filter, ...]
    low: int
    high: int
    fields: list[str] = field(default_factory=list)
    terms: list[Term] = field(default_factory=list)

    def value(self, field_name: str) -> str:
        return f'"v{self.fields.index(field_name)}"'


_NULL_TAG = "CAST(NULL AS VARCHAR)"


def _filter_sql(flt: a.Filter, missing: frozenset[str] = frozenset()) -> str:
    """One tag condition; a point without the tag is tested as if its value were ``''``."""
    column = _NULL_TAG if flt.tag in missing else quote_identifier(flt.tag)
    if flt.op in ("=~", "!~"):
        op = "~" if flt.op == "=~" else "!~"
        pattern = quote_string(flt.value)
        return f"({column} {op} {pattern} OR ({column} IS NULL AND '' {op} {pattern}))"
    if flt.op in ("in", "not in"):
        values = ", ".join(quote_string(v) for v in flt.value)
        test = f"{column} {flt.op.upper()} ({values})"
        empty_matches = ("" in flt.value) == (flt.op == "in")
    else:
        op = "=" if flt.op == "=" else "<>"
        test = f"{column} {op} {quote_string(flt.value)}"
        empty_matches = (flt.value == "") == (flt.op == "=")
    return f"({column} IS NULL OR {test})" if empty_matches else f"{test}"


def _series_key_sql(tags: Iterable[str], tag) -> str:
    """One text per tag combination: each tag's value (``''`` when the point lacks it) after its length,
    so that no two combinations give the same text."""
    parts = []
    for name in sorted(set(tags)):
        value = f"COALESCE({tag(name)}, '')"
        parts += [f"CAST(character_length({value}) AS VARCHAR)", "':'", value]
    return f"concat({', '.join(parts)})" if parts else "''"


def _scan_sql(scan: _Scan, groups: list[str], missing: frozenset[str] = frozenset(),
              series_tags: Iterable[str] | None = None) -> str:
    """The rows of one scan; a column in ``missing`` (the measurement has no such column) reads as NULL.
    With ``series_tags`` (the measurement's tags), a ``"sk"`` column names each row's series."""

    def tag(name: str) -> str:
        return _NULL_TAG if name in missing else f"CAST({quote_identifier(name)} AS VARCHAR)"

    def value(name: str) -> str:
        return "CAST(NULL AS DOUBLE)" if name in missing else f"CAST({quote_identifier(name)} AS DOUBLE)"

    columns = [f"COALESCE({tag(name)}, '') AS \"g{i}\"" for i, name in enumerate(groups)]
    if series_tags is not None:
        columns.append(f'{_series_key_sql(series_tags, tag)} AS "sk"')
    columns.append('"time" AS "t"')
    columns += [f"{value(name)} AS \"v{i}\"" for i, name in enumerate(scan.fields)]
    where = [f'"time" > {timestamp_literal(scan.low)}', f'"time" <= {timestamp_literal(scan.high)}']
    where += [_filter_sql(f, missing) for f in scan.filters]
    present = [("NULL" if name in missing else quote_identifier(name)) + " IS NOT NULL" for name in scan.fields]
    where.append(present[0] if len(present) == 1 else "(" + " OR ".join(present) + ")")
    return (f"SELECT {', '.join(columns)}\n    FROM {quote_identifier(scan.measurement)}\n    WHERE "
            + "\n      AND ".join(where))


def _ordered(v: str, single: bool, function: str) -> str:
    """``first_value``/``last_value`` of ``v`` in (time, value) order, skipping rows where ``v`` is NULL."""
    if single:
        order = f'"t", {v}'
    elif function == "first_value":
        order = f'CASE WHEN {v} IS NULL THEN 1 ELSE 0 END, "t", {v}'
    else:
        order = f'CASE WHEN {v} IS NULL THEN 0 ELSE 1 END, "t", {v}'
    return f"{function}({v} ORDER BY {order})"


def _aggregate_sql(term: Term, scan: _Scan, grouped: bool, window_low: int) -> str:
    v = scan.value(term.field_name)
    single = len(scan.fields) == 1
    first, last = _ordered(v, single, "first_value"), _ordered(v, single, "last_value")
    count = f"count({v})"
    fn = term.function
    if fn in ("min", "max", "avg", "sum", "median"):
        return f"{fn}({v})"
    if fn == "last":
        return last
    if fn == "first":
        return first
    if fn == "count":
        return f"NULLIF({count}, 0)" if grouped else count
    if fn == "stddev":
        return f"stddev_samp({v})"
    if fn == "spread":
        return f"max({v}) - min({v})"
    if fn == "delta":
        return f"CASE WHEN {count} < 2 THEN NULL ELSE {last} - {first} END"
    if fn == "pct_change":
        return f"CASE WHEN {count} < 2 OR {first} = 0 THEN NULL ELSE ({last} - {first}) / abs({first}) END"
    if fn == "rate":
        t = '"t"' if single else f'CASE WHEN {v} IS NOT NULL THEN "t" END'
        newest, oldest = f"CAST(max({t}) AS BIGINT)", f"CAST(min({t}) AS BIGINT)"
        return (f"CASE WHEN {count} < 2 OR {newest} = {oldest} THEN NULL "
                f"ELSE ({last} - {first}) / (CAST({newest} - {oldest} AS DOUBLE) / 1000000000.0) END")
    if fn == "count_series":  # distinct series keys among the rows where the field has a value
        distinct = f'count(DISTINCT CASE WHEN {v} IS NOT NULL THEN "sk" END)'
        return f"NULLIF({distinct}, 0)" if grouped else distinct
    if fn == "zscore":  # the scan reaches back over the baseline: (window_low - baseline, window_low]
        now, before = f'CASE WHEN "t" > {timestamp_literal(window_low)} THEN {v} END', \
            f'CASE WHEN "t" <= {timestamp_literal(window_low)} THEN {v} END'
        spread = f"stddev_samp({before})"
        return (f"CASE WHEN count({before}) < 2 OR {spread} = 0 THEN NULL "
                f"ELSE (avg({now}) - avg({before})) / {spread} END")
    if fn == "absent":
        if not grouped:
            return f"{count} = 0"
        inside = f'count(CASE WHEN "t" > {timestamp_literal(window_low)} THEN {v} END)'
        return f"{count} > 0 AND {inside} = 0"
    raise ValueError(f"no SQL for aggregate {fn!r}")


def _percentile_sql(parameter: float) -> str:
    """Exact percentile over ranked rows ``rn`` of ``n``: linear between closest ranks (numpy's default)."""
    fraction = repr(float(parameter) / 100.0)
    h = f'("n" - 1) * {fraction}'
    low = f'max(CASE WHEN "rn" = floor({h}) + 1 THEN "v" END)'
    high = f'max(CASE WHEN "rn" = ceil({h}) + 1 THEN "v" END)'
    return f"{low} + ({high} - {low}) * max({h} - floor({h}))"


def _constant_query(group_by: Iterable[str]) -> str:
    """A rule without aggregates: one row (of no interest) ungrouped, no series when grouped."""
    tags = list(dict.fromkeys(group_by))
    if not tags:
        return 'SELECT 1 AS "k"'
    columns = ", ".join(f"CAST(NULL AS VARCHAR) AS {quote_identifier(t)}" for t in tags)
    return f"SELECT {columns} WHERE 1 = 0"


def sql_for_terms(terms: Iterable[Term], at: datetime | int, group_by: Iterable[str] = (),
                  missing: Mapping[str, Iterable[str]] | None = None,
                  series_tags: Mapping[str, Iterable[str]] | None = None) -> str:
    """One query computing ``terms`` at time ``at``: one row per series, one column per term.

    Every term must carry the same set of group tags; the output has the tags
    (named as they are) in the order of the first term, then the terms'
    ``column``s. Without group tags there is exactly one row. ``group_by``
    only matters when there are no terms (a rule without aggregates).

    ``missing`` maps a measurement to the columns it does not have (a tag or
    a field never written there): such a tag reads as ``""`` (in filters and
    groups) and such a field has no points — what a point lacking them means
    everywhere else — instead of a query the source refuses.

    ``series_tags`` maps a measurement to every tag it has (the source's
    schema): a ``count_series`` counts the distinct combinations of those.
    Without it, a ``count_series`` tells series apart by the tags its rule
    names (group tags and filtered tags) only — what ``monitors explain``
    shows when no source is at hand; the engine passes the source's tags.
    """
    unique: dict[tuple, Term] = {}
    for term in terms:
        unique.setdefault(term.key, term)
    if not unique:
        return _constant_query(group_by)
    ordered = list(unique.values())
    groups = list(dict.fromkeys(ordered[0].group_by))
    if any(set(t.group_by) != set(groups) for t in ordered):
        raise ValueError("terms with different group tags cannot share a query")
    lacking = {name: frozenset(columns) for name, columns in (missing or {}).items() if columns}
    known = {name: tuple(tags) for name, tags in (series_tags or {}).items()}
    return _Query(groups, time_ns(at), lacking, known).build(ordered)


class _Query:
    """Builds one query: CTEs per scan, then the series joined with every aggregate."""

    def __init__(self, groups: list[str], at_ns: int, missing: Mapping[str, frozenset[str]] | None = None,
                 series_tags: Mapping[str, tuple[str, ...]] | None = None):
        self.groups = groups
        self.missing = missing or {}
        self.series_tags = series_tags or {}
        self.grouped = bool(groups)
        self.at_ns = at_ns
        self.keys = [f'"g{i}"' for i in range(len(groups))] or ['"k"']  # the series key inside the query
        self.key_list = ", ".join(self.keys)
        self.ctes: list[tuple[str, str]] = []
        self.joined: list[tuple[str, list[Term]]] = []  # aggregate CTE, the terms it holds

    def build(self, terms: list[Term]) -> str:
        for scan in self.plan(terms):
            missing = self.missing.get(scan.measurement, frozenset())
            tags = None
            if any(t.function == "count_series" for t in scan.terms):
                tags = self.series_tags.get(scan.measurement)
                if tags is None:  # the source's tags unknown: the tags the rule names
                    tags = list(self.groups) + [f.tag for f in scan.filters]
            self.ctes.append((scan.name, _scan_sql(scan, self.groups, missing, tags)))
            self.add_aggregates(scan)
            for index, field_name in enumerate(scan.fields):
                self.add_percentiles(scan, index, field_name)
        return self.select()

    def plan(self, terms: list[Term]) -> list[_Scan]:
        """One scan per measurement, filter set and time range; a grouped ``absent`` reaches further back."""
        scans: dict[tuple, _Scan] = {}
        for term in terms:
            low, high = term.bounds(self.at_ns)
            lookback = term.function == "absent" and self.grouped
            if term.function in a.DURATION_PARAMETER:  # zscore: the baseline just before the window
                lookback, scan_low = "baseline", low - int(term.parameter) * _NS
            else:
                scan_low = low - ABSENT_LOOKBACK * _NS if lookback else low
            filters = tuple(sorted(set(term.filters), key=lambda f: repr((f.tag, f.op, f.value))))
            scan_key = (term.measurement, filters, scan_low, high, lookback, low)
            scan = scans.get(scan_key)
            if scan is None:
                scan = scans[scan_key] = _Scan(f"s{len(scans)}", term.measurement, filters, scan_low, high)
            if term.field_name not in scan.fields:
                scan.fields.append(term.field_name)
            scan.terms.append(term)
        return list(scans.values())

    def aggregate_cte(self, name: str, source: str, columns: list[str], terms: list[Term],
                      having: str | None = None) -> None:
        key_select = self.key_list if self.grouped else '1 AS "k"'
        group_clause = f"\n    GROUP BY {self.key_list}" if self.grouped else ""
        if having and self.grouped:
            group_clause += f"\n    HAVING {having}"
        body = f"SELECT {key_select},\n      " + ",\n      ".join(columns) + f"\n    FROM {source}{group_clause}"
        self.ctes.append((name, body))
        self.joined.append((name, terms))

    def add_aggregates(self, scan: _Scan) -> None:
        plain = [t for t in scan.terms if t.function != "percentile"]
        if plain:
            window_low = plain[0].bounds(self.at_ns)[0]
            columns = [f"{_aggregate_sql(t, scan, self.grouped, window_low)} AS {quote_identifier(t.column)}"
                       for t in plain]
            having = None
            if plain[0].function in a.DURATION_PARAMETER:
                # a group's series are those with points in the window, not in the baseline alone
                inside = " OR ".join(f"{scan.value(name)} IS NOT NULL" for name in scan.fields)
                having = f'count(CASE WHEN "t" > {timestamp_literal(window_low)} AND ({inside}) THEN 1 END) > 0'
            self.aggregate_cte("a" + scan.name[1:], scan.name, columns, plain, having)

    def add_percentiles(self, scan: _Scan, index: int, field_name: str) -> None:
        """Exact percentiles of one field: rank its values per series, then interpolate."""
        ranked = [t for t in scan.terms if t.function == "percentile" and t.field_name == field_name]
        if not ranked:
            return
        v = scan.value(field_name)
        partition = f"PARTITION BY {self.key_list}" if self.grouped else ""
        keys = f"{self.key_list}, " if self.grouped else ""
        rank_name = f"r{scan.name[1:]}_{index}"
        self.ctes.append((rank_name, f'SELECT {keys}{v} AS "v", '
                          f'row_number() OVER ({partition}{" " if partition else ""}ORDER BY {v}) AS "rn", '
                          f'count({v}) OVER ({partition}) AS "n"\n    FROM {scan.name}\n    WHERE {v} IS NOT NULL'))
        columns = [f"{_percentile_sql(t.parameter)} AS {quote_identifier(t.column)}" for t in ranked]
        self.aggregate_cte(f"p{scan.name[1:]}_{index}", rank_name, columns, ranked)

    def select(self) -> str:
        """Every series seen by any aggregate (one row without group by), each aggregate joined on it."""
        if self.grouped:
            union = "\n    UNION\n    ".join(f"SELECT {self.key_list} FROM {name}" for name, _ in self.joined)
            self.ctes.append(("keys", union))
        else:
            self.ctes.append(("keys", 'SELECT 1 AS "k"'))
        out = [f"keys.{col} AS {quote_identifier(tag)}" for col, tag in zip(self.keys, self.groups)]
        joins = []
        for name, held in self.joined:
            for t in held:
                column = f"{name}.{quote_identifier(t.column)}"
                # A grouped `absent` is false for a series its scan does not watch.
                out.append(f"COALESCE({column}, false) AS {quote_identifier(t.column)}"
                           if t.function == "absent" and self.grouped else column)
            on = " AND ".join(f"{name}.{col} = keys.{col}" for col in self.keys)
            joins.append(f"LEFT JOIN {name} ON {on}")
        lines = ["WITH " + ",\n".join(f"{name} AS (\n    {body}\n)" for name, body in self.ctes),
                 "SELECT " + ",\n  ".join(out), "FROM keys", *joins]
        if self.grouped:
            lines.append("ORDER BY " + ", ".join(f"keys.{col}" for col in self.keys))
        return "\n".join(lines)
