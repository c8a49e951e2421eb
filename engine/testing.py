"""Running the ``test`` blocks of a rule document: the backtest's code path over the tests' own series.

    results = run_tests(text)        # one monitors_dsl.testblocks.TestResult per test, in order

For each test, its ``series`` lines become in-memory tables of the embedded
source (one point every ``every`` from test time 0, :data:`TEST_EPOCH`), and
the document's rules run through :func:`engine.backtest.backtest` — the live
``Runner`` with an in-memory repository — from time 0 to the test's last
expectation. Every rule of the document runs (a ``depends on`` another rule of
the document holds as it would live); the expectations are about the rule the
test is for, checked at exactly the times they name. A failed expectation
says what was expected and what was seen then: each matching series' state,
severity and value, and the notifications around that time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pyarrow as pa

import monitors_dsl
from monitors_dsl import ast as a
from monitors_dsl._api import analyze
from monitors_dsl.errors import DslError
from monitors_dsl.printer import print_duration, print_number
from monitors_dsl.testblocks import (
    TEST_EPOCH,
    ExpectNoNotification,
    ExpectNotification,
    ExpectResolved,
    ExpectState,
    Test,
    TestFailure,
    TestResult,
    print_expectation,
    rule_of_test,
)

from .backtest import MAX_TICKS, BacktestResult, backtest
from .notify import RenderError
from .notify.dispatch import render_payload
from .rules import build_rule
from .sources import DataFusionSource, SourceError

__all__ = ["run_tests", "run_document_tests", "run_test", "TEST_EPOCH", "series_tables"]

#: notifications this close to a failed expectation's time (in evaluations of the rule) are shown with it
_AROUND = 3


def run_tests(text: str, *, max_evaluations: int | None = None, seconds: float | None = None) -> list[TestResult]:
    """Every test of ``text``, run; raises ``monitors_dsl.DslError`` when the text has errors.

    ``max_evaluations`` and ``seconds`` bound all of the text's tests together (a server running a caller's
    tests): a test past them ends with an ``error`` saying so, before any work when the count is known."""
    document, diagnostics = analyze(text)
    if any(d.severity == "error" for d in diagnostics):
        raise DslError(diagnostics)
    return run_document_tests(document, max_evaluations=max_evaluations, seconds=seconds)


def run_document_tests(document, *, max_evaluations: int | None = None,
                       seconds: float | None = None) -> list[TestResult]:
    """The tests of a parsed, checked document (``monitors_dsl.parse(text)``), within the bounds of
    :func:`run_tests`."""
    import time

    deadline = None if seconds is None else time.monotonic() + seconds
    left = MAX_TICKS if max_evaluations is None else max_evaluations
    results = []
    for test in getattr(document, "tests", ()):
        result = run_test(document, test, max_ticks=max(0, left), deadline=deadline)
        left -= result.evaluations
        results.append(result)
    return results


def _seconds(moment: datetime) -> int:
    return round((moment - TEST_EPOCH).total_seconds())


def _fmt(seconds: int) -> str:
    return print_duration(seconds) if seconds >= 0 else "-" + print_duration(-seconds)


def _read_by_rules(rules) -> dict[str, tuple[set[str], set[str]]]:
    """``{measurement: (fields, tags)}`` of what the rules read, so that every table they query exists."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    for rule in rules:
        for cond in a.children(rule):
            for agg in a.aggregates(cond):
                fields, tags = out.setdefault(agg.selector.measurement, (set(), set()))
                fields.add(agg.selector.field)
                tags.update(f.tag for f in agg.selector.filters)
                tags.update(rule.group_by)
    return out


def series_tables(test: Test, rules=()) -> dict[str, pa.Table]:
    """The test's series as one table per measurement: a row per (time, tags), a column per field and tag.
    Measurements and columns the rules read but the test gives no points for are there, empty."""
    measurements: dict[str, dict] = {}
    for measurement, (fields, tags) in _read_by_rules(rules).items():
        table = measurements.setdefault(measurement, {"fields": set(), "tags": set(), "rows": {}})
        table["fields"] |= fields
        table["tags"] |= tags
    for series in test.series:
        sel = series.selector
        table = measurements.setdefault(sel.measurement, {"fields": set(), "tags": set(), "rows": {}})
        tags = series.tags
        table["fields"].add(sel.field)
        table["tags"].update(tags)
        for seconds, value in series.points():
            key = (seconds, tuple(sorted(tags.items())))
            table["rows"].setdefault(key, {})[sel.field] = value
    out = {}
    for measurement, table in measurements.items():
        rows = sorted(table["rows"].items())
        tags = sorted(table["tags"] - table["fields"] - {"time"})
        epoch_ns = int(TEST_EPOCH.timestamp()) * 1_000_000_000
        columns = {"time": pa.array([epoch_ns + seconds * 1_000_000_000 for (seconds, _), _ in rows],
                                    pa.timestamp("ns"))}
        for tag in tags:
            columns[tag] = pa.array([dict(key).get(tag) for (_, key), _ in rows], pa.string())
        for name in sorted(table["fields"] - {"time"}):
            columns[name] = pa.array([values.get(name) for _, values in rows], pa.float64())
        out[measurement] = (pa.table(columns), tags)
    return out


@dataclass
class _Seen:
    """What one test's run shows about its rule."""

    rule: object
    result: BacktestResult
    rule_id: str

    def __post_init__(self) -> None:
        repo = self.result.repository
        self.transitions = [t for t in repo.transitions if t.rule_id == self.rule_id]
        self.points = self.result.history.get(self.rule_id, [])
        self.notifications = []
        for recorded in repo.notifications:
            if recorded.rule_id != self.rule_id:
                continue
            note = recorded.notification
            prefix = f"{note.idempotency_key}:"
            rows = [row for key, row in repo.outbox.items() if key.startswith(prefix)]
            channels = tuple(row["channel"] for row in rows if row["status"] == "pending") if rows else (
                tuple(recorded.channels) if recorded.status == "pending" else ())
            try:
                rendered = render_payload(recorded.payload)
                title, body = rendered.title, rendered.body
            except RenderError as error:
                title, body = "(template error)", str(error)
            self.notifications.append({"at": _seconds(note.at), "kind": note.kind, "status": recorded.status,
                                       "sent": recorded.status == "pending", "channels": channels,
                                       "labels": dict(recorded.labels), "title": title, "message": body})

    def _alert_labels(self, group_labels: dict) -> dict:
        labels = dict(group_labels)
        labels.update(dict(self.rule.labels))
        return labels

    def states_at(self, seconds: int) -> dict[tuple, tuple[dict, str, str | None]]:
        """``{series: (alert labels, state, severity)}`` after the evaluation at ``seconds``."""
        out: dict[tuple, tuple[dict, str, str | None]] = {}
        for point in self.points:
            if _seconds(point.at) <= seconds:
                labels = self._alert_labels(point.labels)
                out.setdefault(tuple(sorted(labels.items())), (labels, "inactive", None))
        for t in self.transitions:
            if _seconds(t.transition.at) <= seconds:
                labels = dict(t.labels)
                out[tuple(sorted(labels.items()))] = (labels, t.transition.to_state, t.transition.severity
                                                      if t.transition.to_state != "inactive" else None)
        return out

    def value_at(self, seconds: int, labels: dict) -> str:
        for point in self.points:
            if _seconds(point.at) == seconds and self._alert_labels(point.labels) == labels:
                return "no data" if point.value is None else print_number(point.value)
        return "not evaluated"

    def sent(self):
        return [n for n in self.notifications if n["sent"]]

    def around(self, start: int, end: int | None = None) -> str:
        every = max(1, self.rule.every.seconds)
        end = start if end is None else end
        near = [n for n in self.notifications if start - _AROUND * every <= n["at"] <= end + _AROUND * every]
        if not near:
            return f"no notification from {_fmt(max(0, start - _AROUND * every))} to {_fmt(end + _AROUND * every)}"
        return "notifications: " + "; ".join(_note_text(n) for n in near)


def _note_text(note: dict) -> str:
    where = f" to {', '.join(note['channels'])}" if note["channels"] else ""
    held = "" if note["sent"] else f" ({note['status']}, not sent)"
    labels = ", ".join(f"{k}={v}" for k, v in sorted(note["labels"].items()))
    return f"{_fmt(note['at'])} {note['kind']}{where}{held} {note['title']!r}" + (f" [{labels}]" if labels else "")


def _labels_text(labels) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in labels)


def _state_text(labels: dict, state: str, severity: str | None, seen: _Seen, at: int) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    text = state + (f" ({severity})" if severity else "")
    return (f"{{{shown}}} " if shown else "") + f"{text}, value {seen.value_at(at, labels)}"


def _check(expectation, seen: _Seen) -> tuple[str, str] | None:
    """``(expected, seen)`` when the expectation does not hold, else None."""
    if isinstance(expectation, ExpectState):
        at = expectation.at.seconds
        wanted = dict(expectation.labels)
        states = [s for s in seen.states_at(at).values() if all(s[0].get(k) == v for k, v in wanted.items())]
        expected = expectation.state + (f" with {_labels_text(expectation.labels)}" if expectation.labels else "") \
            + (f", severity {expectation.severity}" if expectation.severity else "") + f" at {_fmt(at)}"
        if expectation.state == "inactive":
            holds = all(state == "inactive" for _, state, _ in states)
        else:
            holds = any(state == expectation.state and (expectation.severity is None or severity == expectation.severity)
                        for _, state, severity in states)
        if holds:
            return None
        if states:
            shown = "; ".join(_state_text(labels, state, severity, seen, at) for labels, state, severity in states[:10])
        else:
            shown = "no series" + (f" with {_labels_text(expectation.labels)}" if expectation.labels else "") \
                + " was evaluated by then"
        return expected, f"at {_fmt(at)}: {shown}; {seen.around(at)}"
    if isinstance(expectation, ExpectResolved):
        at = expectation.at.seconds
        if any(_seconds(t.transition.at) == at and t.transition.resolved for t in seen.transitions):
            return None
        states = seen.states_at(at).values()
        shown = "; ".join(_state_text(labels, state, severity, seen, at) for labels, state, severity in states) \
            or "no series"
        resolutions = [_fmt(_seconds(t.transition.at)) for t in seen.transitions if t.transition.resolved]
        also = f"; resolved at {', '.join(resolutions)}" if resolutions else "; no resolution at all"
        return f"a resolution at {_fmt(at)}", f"at {_fmt(at)}: {shown}{also}"
    if isinstance(expectation, ExpectNotification):
        at = expectation.at.seconds
        for note in seen.sent():
            if note["at"] != at:
                continue
            if expectation.channel is not None and expectation.channel not in note["channels"]:
                continue
            if expectation.contains is not None and expectation.contains not in f"{note['title']}\n{note['message']}":
                continue
            return None
        expected = f"a notification at {_fmt(at)}" + (f" to {expectation.channel}" if expectation.channel else "") \
            + (f" containing {expectation.contains!r}" if expectation.contains is not None else "")
        detail = seen.around(at)
        if expectation.contains is not None:
            texts = [f"{n['title']!r}: {n['message']!r}" for n in seen.sent() if n["at"] == at]
            if texts:
                detail += "; its text: " + " | ".join(texts)
        return expected, detail
    assert isinstance(expectation, ExpectNoNotification)
    start, end = expectation.start.seconds, expectation.end.seconds
    found = [n for n in seen.sent() if start <= n["at"] <= end]
    if not found:
        return None
    return (f"no notification from {_fmt(start)} to {_fmt(end)}",
            "notifications: " + "; ".join(_note_text(n) for n in found))


def run_test(document, test: Test, *, max_ticks: int = MAX_TICKS, deadline: float | None = None) -> TestResult:
    """One test of ``document`` (parsed and checked), run: at most ``max_ticks`` evaluations, none started
    after ``deadline`` (``time.monotonic()`` seconds)."""
    rule = rule_of_test(test, document)
    line = (test.spans.get("name") or test.span).line
    base = TestResult(test.name, rule.name if rule is not None else test.rule, line, len(test.expectations))
    if rule is None:  # the checker reports this; a caller skipping it gets the reason here
        return replace(base, error="the test names no rule of the document")
    engine_rules, rule_id = [], None
    for index, candidate in enumerate(document, start=1):
        engine_rule = build_rule(monitors_dsl.compile_rule(candidate), id=candidate.name or f"#{index}")
        engine_rules.append(engine_rule)
        if candidate is rule:
            rule_id = engine_rule.id
    source = DataFusionSource(name=f"test {test.name}")
    try:
        for measurement, (table, tags) in series_tables(test, document).items():
            source.add_table(measurement, table, tags=tags)
        end = TEST_EPOCH + timedelta(seconds=test.last_time)
        result = backtest(engine_rules, source, TEST_EPOCH, end, max_ticks=max_ticks, deadline=deadline)
    except (SourceError, ValueError) as error:
        return replace(base, error=str(error))
    finally:
        source.close()
    if result.stopped_at is not None:
        return replace(base, error=f"stopped at {_fmt(_seconds(result.stopped_at))}: the tests took longer than "
                                   "they may", evaluations=result.ticks)
    errors = [(at, message) for at, rid, message in result.errors if rid == rule_id]
    if errors:
        at, message = errors[0]
        return replace(base, error=f"at {_fmt(_seconds(at))} the rule failed: {message}", evaluations=result.ticks)
    seen = _Seen(rule, result, rule_id)
    failures = []
    for expectation in test.expectations:
        problem = _check(expectation, seen)
        if problem is not None:
            expected, shown = problem
            failures.append(TestFailure(expectation.span.line, expectation.span.column,
                                        print_expectation(expectation), expected, shown))
    return TestResult(test.name, rule.name, line, len(test.expectations), tuple(failures), None, result.ticks)
