"""Tests written next to the rules: ``test NAME [for RULE] { series … expect … }``.

A document may hold ``test`` blocks beside its rules. They take no part in the
rules: the parse result keeps them apart (``parse(text).tests``), the rules
compile exactly as without them, and the engine never runs them. What is here:

- the tree of a test (:class:`Test`, its :class:`TestSeries` and expectations),
- the values notation of Prometheus's rule tests (``1 2 3+1x4 _ _x2 -0.5``),
  read with a position on every error (:func:`parse_values`),
- the tree builder's methods for test blocks (:class:`TestBuilder`, mixed into
  the parser's builder), the recovery of a broken test block, the checks
  (:func:`check_tests`) and the canonical text (:func:`print_test`),
- what running a test gives (:class:`TestResult`, :class:`TestFailure`) and
  :func:`run_tests`, which reaches the engine through its ``monitors.engine``
  entry point (this package never imports the engine).

Test time ``0m`` is :data:`TEST_EPOCH` (2024-01-01T00:00:00Z, a Monday); a rule
evaluates at the multiples of its ``every`` counted from 1970, as it does live.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from lark.exceptions import UnexpectedInput

from . import ast as a
from .errors import Diagnostics, DslError, closest
from .printer import print_duration, print_name, print_number, print_selector, print_string

__all__ = [
    "TEST_EPOCH", "TEST_EPOCH_SECONDS", "STATES", "MAX_TEST_POINTS", "ValueRun", "TestSeries", "ExpectState",
    "ExpectResolved", "ExpectNotification", "ExpectNoNotification", "Test", "Document", "parse_values",
    "expand", "check_tests", "print_test", "print_expectation", "rule_of_test", "TestResult", "TestFailure",
    "EngineUnavailable", "run_tests",
]

#: test time 0: a Monday at midnight UTC, a whole number of days after 1970
TEST_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
TEST_EPOCH_SECONDS = int(TEST_EPOCH.timestamp())
STATES = ("inactive", "pending", "firing")
#: points one `series` line may expand to
MAX_TEST_POINTS = 100_000
INSTALL = 'pip install "monitors-mcp[engine]"'


def _span() -> a.Span:
    return field(default=a.NO_SPAN, compare=False, repr=False, kw_only=True)


def _spans() -> dict:
    return field(default_factory=dict, compare=False, repr=False, kw_only=True, hash=False)


# --- the tree -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValueRun:
    """One item of the values notation. ``start`` None is missing points: ``count`` of them (``_`` is 1).
    Otherwise ``count + 1`` values ``start, start + step, …`` (a plain number has ``count`` 0)."""

    start: float | None
    step: float = 0.0
    count: int = 0

    def values(self) -> list[float | None]:
        if self.start is None:
            return [None] * self.count
        return [self.start + self.step * k for k in range(self.count + 1)]

    @property
    def size(self) -> int:
        return self.count if self.start is None else self.count + 1


@dataclass(frozen=True, slots=True)
class TestSeries:
    """``series SELECTOR every D [from D]: VALUES`` — one point every ``every`` from ``start``."""

    selector: a.Selector
    every: a.Duration
    start: a.Duration
    runs: tuple[ValueRun, ...]
    span: a.Span = _span()

    @property
    def tags(self) -> dict[str, str]:
        return {f.tag: f.value for f in self.selector.filters if f.op == "="}

    def points(self) -> list[tuple[int, float]]:
        """``(seconds since test time 0, value)`` of every point (missing ones left out)."""
        out, index = [], 0
        for run in self.runs:
            for value in run.values():
                if value is not None:
                    out.append((self.start.seconds + index * self.every.seconds, value))
                index += 1
        return out

    @property
    def size(self) -> int:
        return sum(run.size for run in self.runs)

    @property
    def end(self) -> int:
        """The time of the series' last position (a missing point counts), in seconds."""
        return self.start.seconds + max(0, self.size - 1) * self.every.seconds


@dataclass(frozen=True, slots=True)
class ExpectState:
    """``expect STATE at D [labels TAG = "v", …] [severity S]``."""

    state: str
    at: a.Duration
    labels: tuple[tuple[str, str], ...] = ()
    severity: str | None = None
    span: a.Span = _span()
    spans: dict = _spans()


@dataclass(frozen=True, slots=True)
class ExpectResolved:
    """``expect resolved at D``: a series resolves (firing → inactive) at that evaluation."""

    at: a.Duration
    span: a.Span = _span()
    spans: dict = _spans()


@dataclass(frozen=True, slots=True)
class ExpectNotification:
    """``expect notification at D [to CHANNEL] [contains "text"]``."""

    at: a.Duration
    channel: str | None = None
    contains: str | None = None
    span: a.Span = _span()
    spans: dict = _spans()


@dataclass(frozen=True, slots=True)
class ExpectNoNotification:
    """``expect no notification between D and D`` (both ends included)."""

    start: a.Duration
    end: a.Duration
    span: a.Span = _span()
    spans: dict = _spans()


Expectation = ExpectState | ExpectResolved | ExpectNotification | ExpectNoNotification


@dataclass(frozen=True, slots=True)
class Test:
    """A ``test`` block: ``items`` are its series and expectations in the order written."""

    name: str
    rule: str | None
    items: tuple
    span: a.Span = _span()
    spans: dict = _spans()

    @property
    def series(self) -> tuple[TestSeries, ...]:
        return tuple(item for item in self.items if isinstance(item, TestSeries))

    @property
    def expectations(self) -> tuple:
        return tuple(item for item in self.items if not isinstance(item, TestSeries))

    @property
    def last_time(self) -> int:
        """The latest time an expectation looks at, in seconds (0 without expectations)."""
        return max((_expect_end(e) for e in self.expectations), default=0)


def _expect_end(expectation) -> int:
    return expectation.end.seconds if isinstance(expectation, ExpectNoNotification) else expectation.at.seconds


class Document(list):
    """The rules of a text (a list, as before) with its ``tests`` beside them."""

    def __init__(self, rules: Iterable = (), tests: Iterable[Test] = ()):
        super().__init__(rules)
        self.tests: list[Test] = list(tests)

    @property
    def rules(self) -> list:
        return list(self)


# --- the values notation ----------------------------------------------------------------

_NUMBER = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_UNSIGNED = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBER_AT = re.compile(_NUMBER)
_UNSIGNED_AT = re.compile(_UNSIGNED)
_COUNT_AT = re.compile(r"[0-9]+")
_ITEM = re.compile(r"\S+")
_NOTATION_HINT = "values are numbers, `a+bxn` (a, a+b, … a+n·b), `a-bxn`, `axn` (a, n+1 times), `_` (no point) or `_xn`"


def parse_values(text: str, offset: int, source, diags: Diagnostics) -> tuple[ValueRun, ...]:
    """The runs of a values text (what follows ``:``); ``offset`` is where ``text`` starts in ``source``.
    Every problem is reported at the item (or the character) it is about."""
    runs: list[ValueRun] = []
    total = 0
    for match in _ITEM.finditer(text):
        item, at = match.group(), offset + match.start()
        run = _parse_item(item, at, source, diags)
        if run is None:
            continue
        total += run.size
        if total > MAX_TEST_POINTS:
            diags.add("test-too-many-points", f"this series has more than {MAX_TEST_POINTS:,} points",
                      source.span(at, at + len(item)), "a test needs a few dozen points; use a longer `every`")
            return tuple(runs)
        runs.append(run)
    if not runs and not any(True for _ in _ITEM.finditer(text)):
        end = offset + len(text.rstrip())
        diags.add("test-no-values", "this series has no values after `:`", source.span(offset - 1, max(end, offset)),
                  "write the values after the colon, e.g. `: 1 2 3+1x4 _x2`")
    return tuple(runs)


def _bad(diags, source, start: int, end: int, message: str, hint: str = _NOTATION_HINT) -> None:
    diags.add("test-bad-values", message, source.span(start, max(end, start + 1)), hint)


def _parse_item(item: str, at: int, source, diags: Diagnostics) -> ValueRun | None:
    end = at + len(item)
    if item.startswith("_"):
        if item == "_":
            return ValueRun(None, 0.0, 1)
        if item[1:2] != "x":
            _bad(diags, source, at + 1, end, f"`{item}` is not a value: `_` (no point) stands alone or as `_xn`")
            return None
        count = _COUNT_AT.fullmatch(item, 2)
        if count is None:
            what = "is missing" if len(item) == 2 else f"must be a whole number, not `{item[2:]}`"
            _bad(diags, source, at + 2 if len(item) > 2 else at + 1, end,
                 f"the count of missing points after `_x` {what}", "write e.g. `_x3` for three missing points")
            return None
        return ValueRun(None, 0.0, int(item[2:]))
    number = _NUMBER_AT.match(item)
    if number is None:
        word = item.lower().lstrip("+-")
        hint = "a missing point is `_`; NaN, Inf and stale markers have no place in the engine's data" \
            if word in ("nan", "inf", "stale") else _NOTATION_HINT
        _bad(diags, source, at, end, f"`{item}` is not a number", hint)
        return None
    start = float(number.group())
    if start in (float("inf"), float("-inf")):
        _bad(diags, source, at, at + number.end(), f"number `{number.group()}` is too large",
             "numbers must be below 1.8e308")
        return None
    pos = number.end()
    if pos == len(item):
        return ValueRun(start)
    sign = 1.0
    if item[pos] in "+-":
        sign = -1.0 if item[pos] == "-" else 1.0
        step = _UNSIGNED_AT.match(item, pos + 1)
        if step is None:
            _bad(diags, source, at + pos, at + pos + 1, f"`{item[pos]}` must be followed by a step",
                 f"write e.g. `{number.group()}{item[pos]}1x3`")
            return None
        step_value = float(step.group())
        pos = step.end()
    elif item[pos] == "x":
        step_value = 0.0  # `axn`: a, n+1 times
    else:
        _bad(diags, source, at + pos, end, f"unexpected `{item[pos:]}` after `{number.group()}`")
        return None
    if pos == len(item) or item[pos] != "x":
        _bad(diags, source, at if pos == len(item) else at + pos, end,
             f"`{item}` needs `x` and a count after the step" if pos == len(item)
             else f"unexpected `{item[pos:]}` in `{item}`",
             f"write e.g. `{item[:pos]}x3` for four values")
        return None
    count = _COUNT_AT.fullmatch(item, pos + 1)
    if count is None:
        if pos + 1 == len(item):
            _bad(diags, source, at + pos, at + pos + 1, f"`{item}` is missing its count after `x`",
                 f"write e.g. `{item}3`: the start and three more values")
        else:
            _bad(diags, source, at + pos + 1, end, f"the count after `x` must be a whole number, not `{item[pos + 1:]}`",
                 f"write e.g. `{item[:pos + 1]}3`")
        return None
    return ValueRun(start, sign * step_value, int(count.group()))


def expand(runs: Iterable[ValueRun]) -> list[float | None]:
    """Every position's value (None for a missing point)."""
    out: list[float | None] = []
    for run in runs:
        out.extend(run.values())
    return out


# --- building the tree (mixed into the parser's builder) ---------------------------------


class TestBuilder:
    """The builder's methods for test blocks; the parser's ``_Builder`` inherits them."""

    def test_series(self, meta, children):
        selector, every_token, from_token, values = children
        every = self._duration_token(every_token)
        start = self._duration_token(from_token) if from_token is not None else a.Duration(0)
        text = str(values)[1:]
        runs = parse_values(text, self.base + values.start_pos + 1, self.source, self.diags)
        return TestSeries(selector, every, start, runs, span=self._meta_span(meta))

    def expect_state(self, meta, children):
        state_token, at_token, *rest = children
        severity_token = rest.pop() if rest else None
        pairs = [item for item in rest if item is not None]
        spans = {"state": self._token_span(state_token)}
        state = str(state_token).lower()
        if state not in STATES:
            near = closest(state, STATES + ("resolved", "notification"))
            self.diags.add("test-unknown-state", f"`{state_token}` is not a state", spans["state"],
                           (f"did you mean `{near}`? " if near else "") + "expect inactive, pending or firing at D; "
                           "or expect resolved at D, expect notification at D")
            state = "firing"
        labels = []
        if pairs:
            self.checks.labels([key for key, _ in pairs])
            for index, (key, value) in enumerate(pairs):
                spans[("labels", index)] = key.span
                labels.append((key.value, value))
        severity = None
        if severity_token is not None:
            spans["severity"] = self._token_span(severity_token)
            severity = self.checks.severity(str(severity_token), spans["severity"])
        return ExpectState(state, self._duration_token(at_token), tuple(labels), severity,
                           span=self._meta_span(meta), spans=spans)

    def expect_resolved(self, meta, children):
        return ExpectResolved(self._duration_token(children[0]), span=self._meta_span(meta))

    def expect_notification(self, meta, children):
        at_token, channel, contains = children
        spans = {}
        if channel is not None:
            spans["channel"] = channel.span
        if contains is not None:
            spans["contains"] = contains[1]
        return ExpectNotification(self._duration_token(at_token), channel.value if channel is not None else None,
                                  contains[0] if contains is not None else None,
                                  span=self._meta_span(meta), spans=spans)

    def expect_no_notification(self, meta, children):
        start, end = children
        return ExpectNoNotification(self._duration_token(start), self._duration_token(end), span=self._meta_span(meta))

    def test_block(self, meta, children):
        name, rule, *items = children
        spans = {"name": name.span}
        if rule is not None:
            spans["rule"] = rule.span
        return Test(name.value, rule.value if rule is not None else None,
                    tuple(item for item in items if item is not None), span=self._meta_span(meta), spans=spans)


# --- recovery of a broken test block ----------------------------------------------------

_LINE_WORDS = ("series", "expect")


def recover_test(lexemes, i: int, source, diags: Diagnostics, builder_class, parse, report) -> tuple[Test | None, int]:
    """The test block starting at lexeme ``i`` (the word ``test``) of a document that did not parse: its
    header, then each line parsed on its own, so that every broken line is reported. Returns the test
    (None when its header is broken) and the index of the lexeme after the block."""
    start_lex = lexemes[i]
    j = i + 1
    depth, open_at = 0, None
    while j < len(lexemes):
        text = lexemes[j].text
        if text == "{":
            depth += 1
            open_at = j if open_at is None else open_at
        elif text == "}":
            depth -= 1
            if depth == 0:
                break
        elif depth == 0 and lexemes[j].kind == "word" and text.lower() in ("rule", "test", "slo"):
            break
        elif depth == 1 and lexemes[j].kind == "word" and text.lower() in ("rule", "test", "slo") \
                and j + 2 < len(lexemes) and lexemes[j + 2].text == "{":
            break
        j += 1
    closed = j < len(lexemes) and lexemes[j].text == "}"
    end = lexemes[j].end if closed else lexemes[j - 1].end
    after = j + 1 if closed else j
    if open_at is None:
        diags.add("syntax-error", "expected `{` after the test's name", source.span(start_lex.start, lexemes[j - 1].end),
                  "write `test NAME for RULE { series … expect … }`")
        return None, after
    if not closed:
        diags.add("unclosed-test", "this test block is not closed", source.span(lexemes[j - 1].start, end),
                  "add `}` at the end of the test")
    header = source.text[start_lex.start:lexemes[open_at].end] + "}"
    try:
        tree = parse(header, "test_block")
    except UnexpectedInput as error:
        report(error, start_lex.start, lexemes[open_at].end)
        return None, after
    builder = builder_class(source, diags, base=start_lex.start)
    test = builder.transform(tree)
    body = lexemes[open_at + 1:j]
    starts = [k for k, lex in enumerate(body) if lex.kind == "word" and lex.text.lower() in _LINE_WORDS
              and (k == 0 or body[k - 1].text.lower() != "no")]
    if body and (not starts or starts[0] != 0):
        first = body[0]
        diags.add("syntax-error", f"`{first.text}` does not start a test line", source.span(first.start, first.end),
                  "a test holds `series SELECTOR every D: VALUES` and `expect …` lines")
    items = []
    for n, s in enumerate(starts):
        line_start = body[s].start
        stop = starts[n + 1] if n + 1 < len(starts) else len(body)
        line_end = body[stop - 1].end
        colon = next((k for k in range(s, stop) if body[k].kind == "other" and body[k].text == ":"), None)
        if body[s].text.lower() == "series" and colon is not None:
            # The values of a series run to the end of their line; what follows them must start a line.
            newline = source.text.find("\n", body[colon].start)
            line_end = len(source.text) if newline == -1 else newline
            stray = next((lex for lex in body[colon:stop] if lex.start >= line_end), None)
            if stray is not None:
                diags.add("syntax-error", f"`{stray.text}` does not start a test line",
                          source.span(stray.start, stray.end),
                          "a test holds `series SELECTOR every D: VALUES` and `expect …` lines")
            if stray is None:
                line_end = min(line_end, body[stop - 1].end)
        try:
            line_tree = parse(source.text[line_start:line_end], "test_line")
        except UnexpectedInput as error:
            report(error, line_start, line_end)
            continue
        items.append(builder_class(source, diags, base=line_start).transform(line_tree))
    return Test(test.name, test.rule, tuple(items), span=source.span(start_lex.start, end), spans=test.spans), after


# --- checks -------------------------------------------------------------------------------


def rule_of_test(test: Test, rules) -> object | None:
    """The rule a test is for: the one its ``for`` names, or the document's only rule."""
    if test.rule is not None:
        return next((r for r in rules if r.name == test.rule), None)
    return rules[0] if len(rules) == 1 else None


def _fmt(seconds: int) -> str:
    return print_duration(seconds)


def check_tests(rules, source, diags: Diagnostics) -> None:
    """Every problem of the document's test blocks (``rules.tests``) against its rules."""
    tests = getattr(rules, "tests", ())
    seen: dict[str, Test] = {}
    for test in tests:
        if test.name in seen:
            first = seen[test.name].spans.get("name") or seen[test.name].span
            diags.add("test-duplicate-name", f"two tests are named `{test.name}` (first on line {first.line})",
                      test.spans.get("name") or test.span, "give each test its own name")
        else:
            seen[test.name] = test
        _check_test(test, rules, source, diags)


def _check_test(test: Test, rules, source, diags: Diagnostics) -> None:
    names = [r.name for r in rules if r.name is not None]
    rule = rule_of_test(test, rules)
    if rule is None:
        if test.rule is not None:
            near = closest(test.rule, names)
            diags.add("test-unknown-rule", f"no rule of this document is named `{test.rule}`",
                      test.spans.get("rule") or test.span,
                      (f"did you mean `{near}`? " if near else "") + ("rules here: " + ", ".join(names) if names
                                                                      else "write the rule in the same document"))
        elif not rules:
            diags.add("test-no-rule", f"test `{test.name}` has no rule to run: this document holds none",
                      test.spans.get("name") or test.span, "write the rule in the same document as its tests")
        else:
            diags.add("test-needs-rule", f"this document holds {len(rules)} rules: say which one test "
                      f"`{test.name}` is for", test.spans.get("name") or test.span,
                      f"write `test {test.name} for {names[0] if names else 'RULE'} {{ … }}`")
    _check_series(test, rules, diags)
    if not test.expectations:
        diags.warn("test-no-expectations", f"test `{test.name}` expects nothing, so it always passes",
                   test.spans.get("name") or test.span, "add `expect firing at 5m` or another expectation")
    if rule is not None:
        _check_expectations(test, rule, diags)


def _check_series(test: Test, rules, diags: Diagnostics) -> None:
    read = {(agg.selector.measurement, agg.selector.field) for r in rules for cond in a.children(r)
            for agg in a.aggregates(cond)}
    seen: dict[tuple, TestSeries] = {}
    for series in test.series:
        sel = series.selector
        for flt in sel.filters:
            if flt.op != "=":
                diags.add("test-series-filter", f"a test series has exact tags: `{flt.op}` cannot make points",
                          flt.span, f'write {flt.tag}="value" for each tag of the series')
        key = (sel.measurement, sel.field, tuple(sorted(series.tags.items())))
        if key in seen:
            diags.add("test-duplicate-series", f"this series is given twice (first on line {seen[key].span.line})",
                      series.span, "give each series (measurement, field and tags) once; put all its values on one line")
        else:
            seen[key] = series
        if series.every.seconds <= 0:
            diags.add("duration-not-positive", "the `every` of a series must be longer than 0s", series.every.span,
                      "e.g. every 1m")
        if read and (sel.measurement, sel.field) not in read:
            known = ", ".join(sorted(f"{m}.{f}" for m, f in read))
            diags.warn("test-series-unused", f"no rule here reads `{sel.measurement}.{sel.field}`", sel.span,
                       f"the rules read {known}")


def _label_key(labels) -> frozenset:
    return frozenset(labels)


def _check_expectations(test: Test, rule, diags: Diagnostics) -> None:
    every = max(1, rule.every.seconds)
    label_names = set(rule.group_by) | {k for k, _ in rule.labels}
    series_end = max((s.end + s.every.seconds for s in test.series if s.every.seconds > 0), default=None)
    earlier: list = []
    for expectation in test.expectations:
        times = [expectation.start, expectation.end] if isinstance(expectation, ExpectNoNotification) \
            else [expectation.at]
        if isinstance(expectation, ExpectNoNotification):
            if expectation.end.seconds < expectation.start.seconds:
                diags.add("test-bad-range", f"`between {_fmt(expectation.start.seconds)} and "
                          f"{_fmt(expectation.end.seconds)}` ends before it starts", expectation.span,
                          "write the earlier time first")
        else:
            at = expectation.at.seconds
            if (TEST_EPOCH_SECONDS + at) % every:
                before = at - (TEST_EPOCH_SECONDS + at) % every
                diags.add("test-time-not-evaluated", f"rule `{rule.name or 'this rule'}` evaluates every "
                          f"{_fmt(every)}: nothing happens at {_fmt(at)}", expectation.at.span,
                          f"expect at an evaluation time, e.g. {_fmt(max(0, before))} or {_fmt(before + every)}")
        for moment in times:
            if series_end is not None and moment.seconds > series_end:
                diags.add("test-time-past-series", f"{_fmt(moment.seconds)} is after the series end "
                          f"(their last point is at {_fmt(series_end - _last_step(test))})", moment.span,
                          "extend a series with `_xN` (N missing points) to test what happens once the data stops")
        if isinstance(expectation, ExpectState):
            _check_state(expectation, rule, label_names, diags)
        if isinstance(expectation, ExpectNotification) and expectation.channel is not None \
                and expectation.channel not in _notified(rule):
            channels = _notified(rule)
            near = closest(expectation.channel, channels)
            diags.add("test-unknown-channel", f"rule `{rule.name or 'this rule'}` does not notify "
                      f"`{expectation.channel}`", expectation.spans.get("channel") or expectation.span,
                      (f"did you mean `{near}`? " if near else "")
                      + (f"it notifies {', '.join(channels)}" if channels else "it has no notify clause"))
        for other in earlier:
            reason = _contradiction(other, expectation, rule)
            if reason:
                diags.add("test-contradiction", f"this expectation contradicts line {other.span.line}: {reason}",
                          expectation.span, "a test can only pass if its expectations can all hold; remove one")
                break
        earlier.append(expectation)


def _last_step(test: Test) -> int:
    latest = max(test.series, key=lambda s: s.end + s.every.seconds)
    return latest.every.seconds


def _notified(rule) -> tuple[str, ...]:  # noqa: ANN001 - a monitors_dsl.ast.Rule
    """The channels a rule may notify: its ``notify`` clauses', then those of its ``escalate to``."""
    escalate = getattr(rule, "escalate", None)
    escalated = tuple(c for c in (escalate.channels if escalate is not None else ()) if c not in rule.notify)
    return tuple(rule.notify) + escalated


def _check_state(expectation: ExpectState, rule, label_names: set, diags: Diagnostics) -> None:
    if expectation.state == "inactive" and expectation.severity is not None:
        diags.add("test-inactive-severity", "an inactive series has no severity",
                  expectation.spans.get("severity") or expectation.span,
                  "drop `severity …`, or expect pending or firing")
    for index, (key, _) in enumerate(expectation.labels):
        if key not in label_names:
            known = ", ".join(sorted(label_names))
            near = closest(key, label_names)
            diags.add("test-unknown-label", f"the alerts of rule `{rule.name or 'this rule'}` have no label `{key}`",
                      expectation.spans.get(("labels", index)) or expectation.span,
                      (f"did you mean `{near}`? " if near else "")
                      + (f"their labels: {known}" if known else "the rule has no `group by` and no `labels`"))


def _contradiction(first, second, rule) -> str | None:
    """Why two expectations cannot both hold, or None."""
    if isinstance(first, ExpectNoNotification) or isinstance(second, ExpectNoNotification):
        quiet, note = (first, second) if isinstance(first, ExpectNoNotification) else (second, first)
        if isinstance(note, ExpectNotification) and quiet.start.seconds <= note.at.seconds <= quiet.end.seconds:
            return f"a notification at {_fmt(note.at.seconds)} and none between {_fmt(quiet.start.seconds)} " \
                   f"and {_fmt(quiet.end.seconds)}"
        return None
    if not hasattr(first, "at") or not hasattr(second, "at") or first.at.seconds != second.at.seconds:
        return None
    when = _fmt(first.at.seconds)
    one_series = not rule.group_by
    if isinstance(first, ExpectState) and isinstance(second, ExpectState):
        identified = one_series or set(rule.group_by) <= {k for k, _ in first.labels}
        same = _label_key(first.labels) == _label_key(second.labels)
        states = {first.state, second.state}
        if first.state != second.state and "inactive" in states:
            inactive, active = (first, second) if first.state == "inactive" else (second, first)
            if _label_key(inactive.labels) <= _label_key(active.labels):
                return f"{active.state} and inactive at {when}"
        elif first.state != second.state and same and identified:
            return f"{first.state} and {second.state} at {when}"
        elif first.state == second.state and same and identified and first.severity and second.severity \
                and first.severity != second.severity:
            return f"severity {first.severity} and {second.severity} at {when}"
        return None
    resolved = first if isinstance(first, ExpectResolved) else second if isinstance(second, ExpectResolved) else None
    state = first if isinstance(first, ExpectState) else second if isinstance(second, ExpectState) else None
    if resolved is not None and state is not None and state.state != "inactive" and one_series:
        return f"resolved and {state.state} at {when}"
    return None


# --- canonical text -----------------------------------------------------------------------


def print_values(runs) -> str:
    out = []
    for run in runs:
        if run.start is None:
            out.append("_" if run.count == 1 else f"_x{run.count}")
        elif run.count == 0 and run.step == 0:
            out.append(print_number(run.start))
        else:
            sign = "-" if run.step < 0 else "+"
            out.append(f"{print_number(run.start)}{sign}{print_number(abs(run.step))}x{run.count}")
    return " ".join(out)


def print_expectation(item) -> str:
    """The canonical line of one series or expectation."""
    if isinstance(item, TestSeries):
        start = f" from {print_duration(item.start)}" if item.start.seconds else ""
        return f"series {print_selector(item.selector)} every {print_duration(item.every)}{start}: " \
               f"{print_values(item.runs)}"
    if isinstance(item, ExpectState):
        text = f"expect {item.state} at {print_duration(item.at)}"
        if item.labels:
            text += " labels " + ", ".join(f"{print_name(k)} = {print_string(v)}" for k, v in item.labels)
        if item.severity is not None:
            text += f" severity {item.severity}"
        return text
    if isinstance(item, ExpectResolved):
        return f"expect resolved at {print_duration(item.at)}"
    if isinstance(item, ExpectNotification):
        text = f"expect notification at {print_duration(item.at)}"
        if item.channel is not None:
            text += f" to {print_name(item.channel)}"
        if item.contains is not None:
            text += f" contains {print_string(item.contains)}"
        return text
    return f"expect no notification between {print_duration(item.start)} and {print_duration(item.end)}"


def print_test(test: Test) -> str:
    header = f"test {print_name(test.name)}" + (f" for {print_name(test.rule)}" if test.rule is not None else "")
    body = "".join(f"    {print_expectation(item)}\n" for item in test.items)
    return f"{header} {{\n{body}}}"


# --- results, and running through the engine ----------------------------------------------


@dataclass(frozen=True)
class TestFailure:
    """One expectation that did not hold: where it is written, what it wanted, what was seen."""

    line: int
    column: int
    expectation: str
    expected: str
    seen: str

    def to_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "expectation": self.expectation,
                "expected": self.expected, "seen": self.seen}


@dataclass(frozen=True)
class TestResult:
    """One test's run: ``failures`` empty (and ``error`` None) when it passed."""

    name: str
    rule: str | None
    line: int
    expectations: int
    failures: tuple[TestFailure, ...] = ()
    error: str | None = None
    evaluations: int = 0

    @property
    def passed(self) -> bool:
        return not self.failures and self.error is None

    def to_dict(self) -> dict:
        return {"name": self.name, "rule": self.rule, "line": self.line, "passed": self.passed,
                "expectations": self.expectations, "evaluations": self.evaluations, "error": self.error,
                "failures": [f.to_dict() for f in self.failures]}


class EngineUnavailable(RuntimeError):
    """Running tests needs the engine, and it is not installed."""


def _engine_features():
    from importlib import metadata

    try:
        for entry in metadata.entry_points(group="monitors.engine"):
            if entry.name == "features":
                return entry.load()
    except ImportError as error:
        raise EngineUnavailable(f"running tests needs the engine ({error.name or error} is missing); "
                                f"install it with: {INSTALL}") from None
    raise EngineUnavailable(f"running tests needs the engine, which is not installed; install it with: {INSTALL}")


def run_tests(text: str) -> list[TestResult]:
    """Runs every test block of ``text`` against its rules with the engine; one result per test, in order.

    Raises ``DslError`` when the text has errors, ``EngineUnavailable`` (naming the ``[engine]`` extra)
    when the engine is not installed."""
    from ._api import analyze

    rules, diagnostics = analyze(text)
    if any(d.severity == "error" for d in diagnostics):
        raise DslError(diagnostics)
    features = _engine_features()
    try:
        return features.run_tests(text)
    except Exception as error:
        if getattr(error, "code", None) == "engine_not_installed":
            raise EngineUnavailable(f"{getattr(error, 'message', error)} {getattr(error, 'hint', '')}".strip()) \
                from None
        raise
