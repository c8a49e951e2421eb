"""Answering a tick's queries: each query asked once, and a failure kept to the terms that cause it.

One query of a plan answers several scans (a merged query) and each scan
several terms, for the rules of many users. :class:`Answerer` asks it and
reads the answer into each scan's rows. When the source refuses the query for
what is in it (an error of kind ``not_found``, ``query`` or ``bad_data``, or
one the source did not classify), nobody else's rule may pay for it:

- A name the source does not know: the measurement's columns are read from
  the source's schema (kept for ``schema_ttl`` seconds). A measurement never
  written is the empty window for each scan of it; columns it lacks (a tag or
  a field never written there) are compiled as such — the tag reads ``""``,
  the field has no points — and the query is asked again. What a measurement
  lacks is remembered for the same time, so later ticks ask the right query
  at once.
- Anything else: the query is split — a merged query into halves of its
  scans, a scan into its terms — and the parts asked again, until each
  failing term stands alone. Those terms are *failed* (``ScanRows.failed``:
  the term's text and the source's message); every other term is answered.
  ``k`` failing scans among ``n`` cost about ``2 k log2 n`` more queries
  once; for ``suspect_for`` seconds afterwards those scans are asked apart
  from the merged query (one more query each, and one per term), then the
  merged query is tried whole again.

A scan with a ``count_series`` is asked with the measurement's tags, read
from the same schema (so a series is a combination of every tag).

A source that is away (unreachable, timed out, refusing the token, not
configured) fails the whole query: splitting would only ask it more. Those
errors propagate to the caller.

:func:`answer_plan` answers every query of a plan with at most
``max_in_flight`` in flight (a thread pool) and a deadline each: a query that
fails or runs past its deadline fails each scan it answers, and a hung query
never holds up the tick.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable

from monitors_dsl.sql import sql_for_terms

from .plan import Plan, Query, Scan, sub_query
from .rows import ScanRows, split_rows

__all__ = ["Answerer", "answer_plan", "query_specific", "describe_error"]

log = logging.getLogger(__name__)

#: error kinds that say something about the query itself (the rest say the source is away or refuses us)
_QUERY_KINDS = frozenset({"not_found", "query", "bad_data"})


def query_specific(error: BaseException) -> bool:
    """Whether ``error`` is about what a query asks (so asking its parts may succeed)."""
    kind = getattr(error, "kind", None)
    if kind is None:
        return not isinstance(error, (TimeoutError, ConnectionError, MemoryError))
    if kind != "not_found":
        return kind in _QUERY_KINDS
    detail = str(getattr(error, "detail", "") or "").lower()
    # an unknown database or data directory is a configuration mistake, not missing data
    return "database" not in detail and "no such file" not in detail and "directory" not in detail


def describe_error(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:1000]


def _referenced(scan: Scan) -> set[str]:
    """The columns a scan's query names: group tags, filtered tags, fields."""
    names = set(scan.group_by)
    for term in scan.terms:
        names.add(term.field_name)
        names.update(f.tag for f in term.filters)
    return names


class _Columns:
    """What each measurement of the source holds, read from its schema when a query names something unknown."""

    def __init__(self, source, ttl: float, clock: Callable[[], float]) -> None:
        self.source = source
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._schema = None
        self._read_at = float("-inf")
        self.reads = 0

    def of(self, measurement: str) -> frozenset[str] | None:
        """The measurement's tags and fields; ``None`` when the source has no such measurement.
        Raises what the source raises when its schema cannot be read."""
        found = self._current().measurements.get(measurement)
        if found is None:
            return None
        return frozenset(found.fields) | frozenset(found.tags)

    def tags(self) -> dict[str, tuple[str, ...]]:
        """Every measurement's tags (what a ``count_series`` tells series apart by)."""
        return {name: tuple(sorted(m.tags)) for name, m in self._current().measurements.items()}

    def _current(self):
        """The source's schema, read again when older than ``ttl``."""
        with self._lock:
            now = self.clock()
            if self._schema is None or now - self._read_at > self.ttl:
                self._schema = self.source.schema()
                self._read_at = now
                self.reads += 1
            return self._schema

    def forget(self) -> None:
        with self._lock:
            self._schema = None


class Answerer:
    """Asks a source the queries of plans; see the module docstring."""

    def __init__(self, source, *, schema_ttl: float = 60.0, suspect_for: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.schema_ttl = schema_ttl
        self.suspect_for = suspect_for
        self.clock = clock
        self.queries = 0  # every query asked, retries and parts included
        self._columns = _Columns(source, schema_ttl, clock) if callable(getattr(source, "schema", None)) else None
        self._lock = threading.Lock()
        self._lacking: dict[str, tuple[frozenset[str], float]] = {}  # measurement → (columns it lacks, since)
        self._suspects: dict[tuple, float] = {}  # scan key → since when its merged query failed because of it

    def _suspected(self, plan: Plan, query: Query) -> list[int]:
        """The members of a merged query that made it fail lately (asked apart for ``suspect_for`` seconds)."""
        now = self.clock()
        out = []
        with self._lock:
            for member in query.members:
                key = plan.scans[member].key
                since = self._suspects.get(key)
                if since is None:
                    continue
                if now - since > self.suspect_for:
                    del self._suspects[key]
                else:
                    out.append(member)
        return out

    # -- asking --------------------------------------------------------------------------

    def answer(self, plan: Plan, query: Query, *, _in_merged: bool = False) -> dict[int, ScanRows]:
        """The rows of each scan ``query`` answers; terms the source refuses are in ``ScanRows.failed``.
        Raises when the source is away (see the module docstring)."""
        if query.tag is not None and self._suspects:
            suspects = self._suspected(plan, query)
            if suspects:
                good = [m for m in query.members if m not in suspects]
                out = self.answer(plan, sub_query(plan, query, good)) if good else {}
                for member in suspects:
                    out.update(self.answer(plan, sub_query(plan, query, [member])))
                return out
        lacking = self._lacking_in(query.scan)
        try:
            return self._ask(plan, query, lacking)
        except Exception as error:
            if not query_specific(error):
                raise
            if _in_merged and query.tag is None:  # this scan made its merged query fail: ask it apart a while
                with self._lock:
                    self._suspects[query.scan.key] = self.clock()
            return self._isolate(plan, query, error, lacking)

    def _ask(self, plan: Plan, query: Query, lacking: frozenset[str]) -> dict[int, ScanRows]:
        """The answer to ``query`` asked with the columns ``lacking`` compiled as missing."""
        series_tags = None
        if self._columns is not None and any(t.function == "count_series" for t in query.scan.terms):
            series_tags = self._columns.tags()  # a series is a combination of every tag of the measurement
        sql = query.sql if not lacking and series_tags is None else sql_for_terms(
            query.scan.terms, query.at_ns, query.scan.group_by, {query.scan.measurement: lacking}, series_tags)
        with self._lock:
            self.queries += 1
        table = self.source.query(sql)
        answered = ScanRows.from_table(query.scan, table)
        if query.tag is None:
            return {query.members[0]: answered}
        return split_rows(plan, query, answered)

    def _lacking_in(self, scan: Scan) -> frozenset[str]:
        """The columns of ``scan`` its measurement is known to lack (forgotten after ``schema_ttl``)."""
        if not self._lacking:
            return frozenset()
        with self._lock:
            found = self._lacking.get(scan.measurement)
            if found is None:
                return frozenset()
            lacking, since = found
            if self.clock() - since > self.schema_ttl:
                del self._lacking[scan.measurement]  # it may have been written since: ask the plain query
                return frozenset()
        return lacking & _referenced(scan)

    # -- when a query fails ----------------------------------------------------------------

    def _isolate(self, plan: Plan, query: Query, error: BaseException, asked: frozenset[str]) -> dict[int, ScanRows]:
        """What can be answered of a query the source refused, asked with the columns ``asked`` as missing."""
        if getattr(error, "kind", None) == "not_found" and self._columns is not None:
            measurement = query.scan.measurement
            try:
                known = self._columns.of(measurement)
            except Exception:  # the schema cannot be read either: keep to splitting
                known = ...
            if known is None:  # never written: the empty window for every scan
                return {index: ScanRows.empty(plan.scans[index]) for index in query.members}
            if known is not ...:
                lacking = frozenset(_referenced(query.scan) - known)
                if lacking - asked:
                    with self._lock:
                        old = self._lacking.get(measurement, (frozenset(), 0.0))[0]
                        self._lacking[measurement] = (old | lacking, self.clock())
                    try:
                        return self._ask(plan, query, lacking | asked)
                    except Exception as again:
                        if not query_specific(again):
                            raise
                        error = again
        return self._split(plan, query, error)

    def _split(self, plan: Plan, query: Query, error: BaseException) -> dict[int, ScanRows]:
        members = query.members
        if len(members) > 1:
            half = len(members) // 2
            out: dict[int, ScanRows] = {}
            for part in (members[:half], members[half:]):
                out.update(self.answer(plan, sub_query(plan, query, part), _in_merged=True))
            return out
        index = members[0]
        if query.tag is not None:  # a merged query answering one scan: ask that scan's own query
            return self.answer(plan, sub_query(plan, query, members), _in_merged=True)
        scan = query.scan  # the scan, or the part of its terms being asked
        if len(scan.terms) == 1:
            term = scan.terms[0]
            if getattr(error, "kind", None) == "not_found" and self._columns is None:
                return {index: ScanRows.empty(scan)}  # no schema to ask: a name never written, no points
            return {index: ScanRows.failed_scan(scan, {term.column: f"{term.text}: {describe_error(error)}"})}
        parts = [self.answer(plan, sub_query(plan, query, members, terms=[term]))[index] for term in scan.terms]
        return {index: ScanRows.combine(plan.scans[index], parts)}

    def forget_schema(self) -> None:
        """Read the schema again at the next unknown name (tests, and after the source was changed)."""
        if self._columns is not None:
            self._columns.forget()
        with self._lock:
            self._lacking.clear()
            self._suspects.clear()


def answer_plan(answerer: Answerer, plan: Plan, *, max_in_flight: int = 4, timeout: float | None = 60.0,
                ) -> tuple[dict[int, ScanRows], dict[int, str], int]:
    """``(rows by scan index, error by scan index, queries asked)`` for every scan of ``plan``."""
    rows: dict[int, ScanRows] = {}
    errors: dict[int, str] = {}
    queries = plan.queries
    if not queries:
        return rows, errors, 0
    started: dict[int, float] = {}

    def run(index: int, query: Query) -> dict[int, ScanRows]:
        started[index] = time.monotonic()
        return answerer.answer(plan, query)

    def fail(query: Query, text: str) -> None:
        for member in query.members:
            errors[member] = text

    before = answerer.queries
    pool = ThreadPoolExecutor(max_workers=min(max_in_flight, len(queries)), thread_name_prefix="query")
    try:
        futures = {pool.submit(run, i, query): i for i, query in enumerate(queries)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
            for future in done:
                query = queries[futures[future]]
                try:
                    rows.update(future.result())
                except Exception as error:  # the source is away, or a bad answer: only this query's rules fail
                    fail(query, describe_error(error))
                    log.warning("query for %s failed: %s", query.scan.measurement, describe_error(error))
            if timeout is None:
                continue
            now = time.monotonic()
            for future in list(pending):
                index = futures[future]
                if index in started and now - started[index] > timeout:
                    pending.discard(future)
                    fail(queries[index], f"query timed out after {timeout:g} s")
                    log.warning("query for %s timed out", queries[index].scan.measurement)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a hung query must not hold up the tick
    for index, part in rows.items():
        for why in part.failed.values():
            log.warning("term of %s refused: %s", plan.scans[index].measurement, why)
    return rows, errors, max(len(queries), answerer.queries - before)
