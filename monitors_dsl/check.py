"""Every semantic check of the language: what the grammar lets through but the language does not.

Two stages, both here:

- :class:`NodeChecks`, called by the parser's tree builder as each node is
  made (the only checks that need what was written rather than the tree):
  which function a call names and which arguments it takes, a series or a
  duration standing where a number must, durations and numbers out of range,
  severities, no-data actions, labels, a clause given twice;
- :func:`check_rules`, after parsing: types, windows, regexes, templates,
  names against the schema and the owner's channels, rule-level consistency,
  the nesting limit.

Both add to the same diagnostics. Every check points at the text it is about,
and says how to fix it.
"""

from __future__ import annotations

import difflib

from . import ast as a
from .errors import Diagnostics, closest, did_you_mean
from .hints import function_hint
from .printer import print_duration, print_expr, print_selector
from .regexes import regex_problem
from .schema import NUMERIC_FIELD_TYPES, Schema
from .encoding import surrogate_problems
from .source import SourceText
from .templates import template_problems
from .windows import DAYS, known_zone, zone_names
from .testblocks import check_tests

__all__ = ["check_rules", "closest_value", "NodeChecks", "NUMBER", "BOOLEAN", "UNKNOWN", "MAX_NESTING",
           "MAX_DURATION_SECONDS", "FUNCTIONS"]

NUMBER, BOOLEAN, UNKNOWN = "number", "boolean", "unknown"
#: the one nesting limit: parentheses (checked before parsing) and operators (checked on the tree)
MAX_NESTING = 64
MAX_DURATION_SECONDS = 3650 * 86400

FUNCTIONS = a.AGGREGATES + ("abs",)
_FUNCTION_ALIASES = {
    "mean": "avg", "average": "avg", "quantile": "percentile", "p95": "percentile", "p99": "percentile",
    "std": "stddev", "stdev": "stddev", "latest": "last", "increase": "delta", "change": "delta",
    "diff": "delta", "deriv": "rate", "irate": "rate", "exists": "absent", "missing": "absent",
    "avg_over_time": "avg", "max_over_time": "max", "min_over_time": "min", "sum_over_time": "sum",
    "count_over_time": "count", "last_over_time": "last", "absent_over_time": "absent",
    "quantile_over_time": "percentile", "stddev_over_time": "stddev", "mad": "stddev", "total": "sum",
}
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_HINTS = {"weekdays": "write `mon-fri`", "weekday": "write `mon-fri`", "weekends": "write `sat-sun`",
              "weekend": "write `sat-sun`", "daily": "leave the days out: times alone hold every day",
              "everyday": "leave the days out: times alone hold every day"}
_SEVERITY_ALIASES = {"high": "critical", "error": "critical", "page": "critical", "fatal": "critical",
                     "warn": "warning", "medium": "warning", "low": "info", "notice": "info"}


# --- while the tree is built --------------------------------------------------------------


class NodeChecks:
    """The checks the tree builder calls as it makes each node, given what was written and its span.

    Each returns what the tree holds: the value to keep (a clamped duration, a known
    severity) or the node (an ``Invalid`` where the written text cannot stand).
    """

    __slots__ = ("diags",)

    def __init__(self, diags: Diagnostics):
        self.diags = diags

    # values ----------------------------------------------------------------
    def duration(self, text: str, seconds: int, span: a.Span) -> int:
        if seconds > MAX_DURATION_SECONDS:
            self.diags.add("duration-too-long", f"duration `{text}` is longer than ten years", span,
                           "use a duration of at most 3650d")
            return MAX_DURATION_SECONDS
        return seconds

    def number(self, text: str, value: float, span: a.Span) -> float:
        if value == float("inf"):
            self.diags.add("number-out-of-range", f"number `{text}` is too large", span,
                           "numbers must be below 1.8e308")
            return 0.0
        return value

    def quoted_name(self, value: str, span: a.Span) -> None:
        if not value:
            self.diags.add("empty-name", "a name in backticks cannot be empty", span)

    # expressions -------------------------------------------------------------
    def expression(self, node):
        """``node`` as an expression; a bare series or a duration is reported and replaced."""
        if isinstance(node, a.Selector):
            text = print_selector(node)
            self.diags.add(
                "bare-series",
                f"`{text}` is a series, not a number: wrap it in an aggregate",
                node.span,
                f"did you mean `last({text})` or `avg({text}, 5m)`?",
            )
            return a.Invalid(text, span=node.span)
        if isinstance(node, a.Duration):
            self.diags.add(
                "unexpected-duration",
                "a duration is only allowed as a window, an offset or a clause value, not as a number",
                node.span,
                "durations go inside an aggregate, e.g. `avg(cpu.usage, 5m)`; compare with a plain number",
            )
            return a.Invalid("duration", span=node.span)
        return node

    def call(self, written: str, args: list, offset: a.Duration | None, span: a.Span, name_span: a.Span):
        """The node for ``written(args…) [offset …]``: an aggregate, ``abs``, or ``Invalid``."""
        function = written.lower()
        if function == "abs":
            return self._abs(args, offset, span)
        if function not in a.AGGREGATES:
            unsupported = function_hint(function)
            if unsupported is not None:
                self.diags.add("unknown-function", f"unknown function `{written}`", name_span, unsupported)
                return a.Invalid(written, span=span)
            if function in _FUNCTION_ALIASES:
                hint = f"did you mean `{_FUNCTION_ALIASES[function]}`?"
            else:
                near = closest(function, FUNCTIONS + tuple(_FUNCTION_ALIASES))
                near = _FUNCTION_ALIASES.get(near, near)
                hint = f"did you mean `{near}`?" if near else None
            self.diags.add(
                "unknown-function",
                f"unknown function `{written}`",
                name_span,
                (hint + " " if hint else "") + "functions: " + ", ".join(FUNCTIONS),
            )
            return a.Invalid(written, span=span)
        return self._aggregate(function, args, offset or a.ZERO, span)

    def _abs(self, args, offset, span):
        if offset is not None:
            self.diags.add("misplaced-offset", "`offset` applies to an aggregate, not to `abs`",
                           offset.span, "put it after the aggregate inside: abs(avg(x, 5m) offset 1d)")
        if len(args) != 1:
            self.diags.add("wrong-arity", f"`abs` takes one argument, got {len(args)}", span,
                           "write abs(EXPRESSION), e.g. abs(delta(cpu.temp, 1h))")
            return a.Invalid("abs", span=span)
        return a.Abs(self.expression(args[0]), span=span)

    def _aggregate(self, function, args, offset, span):
        if function == "percentile":
            usage = f"{function}(SERIES, RANK, WINDOW), e.g. percentile(http.latency, 95, 5m)"
        elif function == "zscore":
            usage = "zscore(SERIES, WINDOW, BASELINE), e.g. zscore(http.latency, 5m, 1d)"
        else:
            usage = f"{function}(SERIES, WINDOW), e.g. {function}(cpu.usage_user, 5m)"
        if not args:
            self.diags.add("wrong-arity", f"`{function}` needs a series", span, f"write {usage}")
            return a.Invalid(function, span=span)
        selector, *rest = args
        if not isinstance(selector, a.Selector):
            self.diags.add(
                "expected-series",
                f"the first argument of `{function}` must be a series such as `cpu.usage_user{{host=\"a\"}}`",
                getattr(selector, "span", span),
                f"write {usage}",
            )
            return a.Invalid(function, span=span)
        parameter = None
        if function == "percentile":
            if not rest or not isinstance(rest[0], a.Number):
                where = rest[0].span if rest else span
                self.diags.add("expected-rank", "`percentile` needs a rank between 0 and 100 after the series",
                               where, f"write {usage}")
                return a.Invalid(function, span=span)
            rank = rest.pop(0)
            if rank.percent or not 0 <= rank.literal <= 100:
                self.diags.add("rank-out-of-range", "the percentile rank must be a number from 0 to 100",
                               rank.span, "e.g. 95 for the 95th percentile")
            parameter = rank.literal
        window = a.DEFAULT_WINDOW
        if rest:
            given = rest.pop(0)
            if isinstance(given, a.Duration):
                window = given
            else:
                hint = f"write {usage}"
                if isinstance(given, a.Number) and given.literal == int(given.literal) and given.literal > 0:
                    hint = f"write `{int(given.literal)}s` for seconds or `{int(given.literal)}m` for minutes"
                self.diags.add("expected-duration", f"the window of `{function}` must be a duration such as 5m",
                               getattr(given, "span", span), hint)
        if function == "zscore":
            parameter = self._baseline(rest, window, span, usage)
            if parameter is None:
                return a.Invalid(function, span=span)
        if rest:
            self.diags.add("wrong-arity", f"too many arguments to `{function}`", rest[0].span, f"write {usage}")
        return a.Aggregate(function, selector, window, offset, parameter, span=span)

    def _baseline(self, rest: list, window: a.Duration, span: a.Span, usage: str) -> float | None:
        """``zscore``'s baseline (seconds), taken from ``rest``: a duration longer than the window."""
        if not rest:
            self.diags.add("wrong-arity", "`zscore` needs a window and a baseline after the series", span,
                           f"write {usage}")
            return None
        given = rest.pop(0)
        if not isinstance(given, a.Duration):
            self.diags.add("expected-duration", "the baseline of `zscore` must be a duration such as 1d",
                           getattr(given, "span", span), f"write {usage}")
            return None
        if given.seconds <= window.seconds:
            self.diags.add("baseline-too-short",
                           f"the baseline of `zscore` ({print_duration(given)}) must be longer than its window "
                           f"({print_duration(window)})",
                           given.span, f"compare the window with a longer stretch before it, e.g. "
                           f"zscore(SERIES, {print_duration(window)}, {print_duration(max(window.seconds * 12, 3600))})")
            return None
        return float(given.seconds)

    # clauses ---------------------------------------------------------------
    def no_data_action(self, written: str, span: a.Span) -> str:
        value = written.lower()
        if value not in a.NO_DATA_ACTIONS:
            self.diags.add("unknown-no-data-action", f"unknown no-data action `{written}`", span,
                           (did_you_mean(value, a.NO_DATA_ACTIONS) or "") + " choose ok, alert or keep")
            return "keep"
        return value

    def severity(self, written: str, span: a.Span) -> str:
        value = written.lower()
        if value not in a.SEVERITIES:
            mapped = _SEVERITY_ALIASES.get(value)
            hint = f"did you mean `{mapped}`?" if mapped else did_you_mean(value, a.SEVERITIES)
            self.diags.add("unknown-severity", f"unknown severity `{written}`", span,
                           ((hint + " ") if hint else "") + "choose critical, warning or info")
            return "warning"
        return value

    def label(self, key: str, op: str, op_span: a.Span, value: str) -> None:
        if op != "=":
            self.diags.add("bad-label", f"labels are set with `=`, not `{op}`", op_span, f'write {key} = "{value}"')

    def labels(self, keys) -> None:
        """``keys``: each label's ``(name, span)``, in order."""
        seen = set()
        for key, span in keys:
            if key in seen:
                self.diags.add("duplicate-label", f"label `{key}` is set twice", span, "keep one value per label")
            seen.add(key)

    def route_severity(self, written: str, span: a.Span) -> str | None:
        """A severity after `notify … on`: the known one, or ``None`` (reported with the closest names)."""
        value = written.lower()
        if value in a.SEVERITIES:
            return value
        mapped = _SEVERITY_ALIASES.get(value)
        hint = f"did you mean `{mapped}`?" if mapped else did_you_mean(value, a.SEVERITIES)
        self.diags.add("unknown-severity", f"unknown severity `{written}` after `on`", span,
                       ((hint + " ") if hint else "") + "choose critical, warning or info")
        return None

    def misplaced_on(self, span: a.Span, after: str | None) -> None:
        """An `on LIST` that follows neither a `notify` nor a `depends on` clause."""
        self.diags.add("misplaced-on", "`on …` here belongs to no clause" + (f" (it follows `{after}`)" if after else ""),
                       span, "write it right after the clause it narrows: `notify CHANNELS on critical` for "
                             "severities, `depends on RULE on TAG` for tags; `on no data ok/alert/keep` says "
                             "what no data does")

    # time windows ------------------------------------------------------------
    def day(self, written: str, span: a.Span) -> int | None:
        """A day of a time window as its number (Monday = 0), or ``None`` (reported with the closest names)."""
        word = written.lower()
        if word in DAYS:
            return DAYS.index(word)
        hint = _DAY_HINTS.get(word)
        if hint is None:
            full = closest(word, _DAY_NAMES)
            near = next((d for d in DAYS if word.startswith(d)), None) or closest(word, DAYS) \
                or (full[:3] if full else None)
            hint = f"did you mean `{near}`? " if near else ""
            hint += "days are " + " ".join(DAYS) + ", single, as ranges (mon-fri) or comma-separated"
        self.diags.add("unknown-day", f"unknown day `{written}`", span, hint)
        return None

    def clock_time(self, written: str, span: a.Span) -> int | None:
        """A time of day ``HH:MM`` as minutes after midnight, or ``None`` (reported)."""
        hours, _, minutes = written.partition(":")
        hour, minute = int(hours), int(minutes)
        if hour > 23:
            self.diags.add("hour-out-of-range", f"hour {hours} in `{written}` is over 23", span,
                           "write midnight as 00:00: a range ending at or before its start runs into the next day "
                           "(22:00-00:00)" if hour == 24 and minute == 0 else "hours go from 00 to 23")
            return None
        if minute > 59:
            self.diags.add("minute-out-of-range", f"minute {minutes} in `{written}` is over 59", span,
                           "minutes go from 00 to 59")
            return None
        if len(hours) > 2 or len(minutes) != 2:
            self.diags.add("invalid-time", f"`{written}` is not a time written HH:MM", span,
                           f"write `{hour:02d}:{minute:02d}`")
            return None
        return hour * 60 + minute

    def zone(self, written: str, span: a.Span) -> str | None:
        """A window's time zone as its IANA name, or ``None`` (reported with the closest names)."""
        name = known_zone(written) if written else None
        if name is not None:
            return name
        zones = zone_names()
        near = difflib.get_close_matches(written, sorted(zones), n=3, cutoff=0.6)
        if not near:
            tail = written.rsplit("/", 1)[-1].lower().replace(" ", "_")
            near = sorted(z for z in zones if z.lower().rsplit("/", 1)[-1] == tail)[:3]
        hint = ("did you mean " + " or ".join(f'"{z}"' for z in near) + "? " if near else "") + \
            'write an IANA zone name such as "Europe/Paris", "America/New_York" or "UTC"'
        self.diags.add("unknown-zone", f'unknown time zone "{written}"', span, hint)
        return None

    def empty_span(self, span: a.Span) -> None:
        self.diags.add("empty-span", "a span of a time window needs days, times or both", span,
                       "write e.g. `sat-sun`, `22:00-06:00` or `mon-fri 09:00-17:00` on each side of `or`")

    def empty_window(self, keyword: str | None, span: a.Span) -> None:
        self.diags.add("empty-window", ("`" + keyword + "` needs a time window" if keyword else
                                        "the time window is empty"), span,
                       'write days, times or both, e.g. `mon-fri 09:00-17:00 in "Europe/Paris"` '
                       "(00:00-00:00 is the whole day)")

    def clause_once(self, keyword: str, span: a.Span, first: a.Span | None) -> bool:
        """Whether a clause may be kept: false (and reported) when ``first`` says it was given before."""
        if first is None:
            return True
        self.diags.add(
            "duplicate-clause",
            f"`{keyword}` is given twice (first on line {first.line})",
            span,
            "give each clause once" + ("; combine conditions with `and`/`or`" if "when" in keyword else ""),
        )
        return False


# --- after parsing ------------------------------------------------------------------------


class _Checker(a.Visitor):
    """The semantic checks of parsed rules; ``visit_…`` gives a node's type (number, boolean, unknown)."""

    pass_name = "the checker"

    def __init__(self, source: SourceText, diags: Diagnostics, schema: Schema | None,
                 channels: frozenset[str] | None = None):
        self.source = source
        self.diags = diags
        self.schema = schema
        self.channels = channels

    # --- expressions: the type of each node, reporting type errors below it once -------
    def type_of(self, node) -> str:
        """The node's type, reporting type errors below it once."""
        return self.visit(node)

    def visit_Number(self, node: a.Number) -> str:
        return NUMBER

    def visit_Invalid(self, node: a.Invalid) -> str:
        return UNKNOWN

    def visit_Aggregate(self, node: a.Aggregate) -> str:
        self.check_aggregate(node)
        return BOOLEAN if node.function in a.BOOLEAN_AGGREGATES else NUMBER

    def _unary_number(self, node, what: str) -> str:
        inner = self.visit(node.operand)
        if inner == BOOLEAN:
            self.diags.add("arithmetic-on-boolean", f"{what} needs a number, but this is a true/false condition",
                           node.operand.span, "apply it to a number such as `delta(cpu.temp, 1h)`")
            return UNKNOWN
        return inner

    def visit_Abs(self, node: a.Abs) -> str:
        return self._unary_number(node, "abs()")

    def visit_Negate(self, node: a.Negate) -> str:
        return self._unary_number(node, "`-`")

    def visit_Arithmetic(self, node: a.Arithmetic) -> str:
        left, right = self.visit(node.left), self.visit(node.right)
        for side, kind in ((node.left, left), (node.right, right)):
            if kind == BOOLEAN:
                self.diags.add("arithmetic-on-boolean", f"`{node.op}` needs numbers on both sides, "
                               "but this side is a true/false condition", side.span,
                               "arithmetic works on aggregates and numbers; combine conditions with and/or")
        if node.op == "/" and isinstance(node.right, a.Number) and node.right.value == 0:
            self.diags.warn("division-by-zero", "dividing by zero always gives no data", node.right.span,
                            "divide by a non-zero number")
        return NUMBER if left != BOOLEAN and right != BOOLEAN and UNKNOWN not in (left, right) else UNKNOWN

    def visit_Comparison(self, node: a.Comparison) -> str:
        return self.check_comparison(node)

    def visit_Logical(self, node: a.Logical) -> str:
        for side in (node.left, node.right):
            if self.visit(side) == NUMBER:
                self.diags.add("logic-on-number", f"`{node.op}` joins conditions, but this side is a number",
                               side.span, f"compare it first, e.g. `{_short(side, self.source)} > 0`")
        return BOOLEAN

    def visit_Not(self, node: a.Not) -> str:
        if self.visit(node.operand) == NUMBER:
            self.diags.add("logic-on-number", "`not` needs a condition, but this is a number", node.operand.span,
                           f"compare it first, e.g. `not {_short(node.operand, self.source)} > 0`")
        return BOOLEAN

    def check_comparison(self, node: a.Comparison) -> str:
        left, right = self.type_of(node.left), self.type_of(node.right)
        if BOOLEAN in (left, right):
            side = node.left if left == BOOLEAN else node.right
            self.diags.add("compare-booleans", f"`{node.op}` compares numbers, but this side is a true/false condition",
                           side.span, "to combine conditions use `and` / `or`; to negate one use `not`")
            return BOOLEAN
        for frac_side, other in ((node.left, node.right), (node.right, node.left)):
            if (_is_fraction(frac_side) and isinstance(other, a.Number) and not other.percent
                    and abs(other.value) > 1):
                suggestion = f"{a.Number(other.literal, True).literal:g}%"
                what = "pct_change" if isinstance(frac_side, a.Aggregate) else f"`{_short(frac_side, self.source)}`"
                self.diags.warn("pct-change-scale", f"{what} is a fraction (5% = 0.05), so {other.literal:g} "
                                f"means {other.literal * 100:g}%", other.span, f"did you mean `{suggestion}`?")
        if isinstance(node.left, a.Number) and isinstance(node.right, a.Number):
            self.diags.warn("constant-condition", "this comparison has no series in it, so it never changes",
                            node.span, "compare an aggregate with a number, e.g. `last(cpu.usage) > 90`")
        return BOOLEAN

    def check_aggregate(self, node: a.Aggregate) -> None:
        if node.window.seconds <= 0:
            self.diags.add("duration-not-positive", "the window must be longer than 0s", node.window.span,
                           "e.g. 5m")
        for flt in node.selector.filters:
            if flt.op in ("=~", "!~"):
                self.check_regex(flt)
        if self.schema is not None:
            self.check_selector_schema(node)

    def check_regex(self, flt: a.Filter) -> None:
        problem = regex_problem(flt.value)
        if problem is None:
            return
        message, offset, hint = problem
        text = self.source.text
        quote = next((i for i in range(flt.span.start, flt.span.end) if text[i] in "\"'"), None)
        if quote is None:
            span = flt.span
        else:
            start = min(quote + 1 + offset, flt.span.end - 1)
            span = self.source.span(start, start + 1)
        self.diags.add("invalid-regex", message, span, hint)

    def check_selector_schema(self, node: a.Aggregate) -> None:
        selector = node.selector
        measurements = self.schema.measurements
        span = selector.span
        measurement = measurements.get(selector.measurement)
        if measurement is None:
            near = closest(selector.measurement, measurements)
            known = ", ".join(sorted(measurements)[:20])
            self.diags.warn("unknown-measurement", f"measurement `{selector.measurement}` is not in the data source",
                            self.source.span(span.start, span.start + len(selector.measurement)),
                            (f"did you mean `{near}`? " if near else "") + (f"known: {known}" if known else
                                                                           "the source has no measurements yet"))
            return
        if selector.field not in measurement.fields:
            if selector.field in measurement.tags:
                self.diags.add("tag-as-field", f"`{selector.field}` is a tag of `{selector.measurement}`, not a field",
                               span, f"aggregate a field ({', '.join(sorted(measurement.fields)[:10])}) and filter "
                                     f"on the tag inside {{…}}")
            else:
                near = closest(selector.field, measurement.fields)
                self.diags.warn("unknown-field", f"`{selector.measurement}` has no field `{selector.field}`", span,
                                (f"did you mean `{near}`? " if near else "")
                                + "fields: " + ", ".join(sorted(measurement.fields)[:20]))
        else:
            ftype = measurement.fields[selector.field]
            if ftype not in NUMERIC_FIELD_TYPES and node.function not in ("count", "absent"):
                self.diags.add("non-numeric-field", f"field `{selector.field}` holds {ftype} values; "
                               f"`{node.function}` needs numbers", span, "use count(…) or absent(…) on it, or pick a numeric field")
        for flt in selector.filters:
            if flt.tag not in measurement.tags:
                near = closest(flt.tag, measurement.tags)
                what = "a field" if flt.tag in measurement.fields else "not a tag"
                self.diags.warn("unknown-tag", f"`{flt.tag}` is {what} of `{selector.measurement}`", flt.span,
                                (f"did you mean `{near}`? " if near else "")
                                + "tags: " + (", ".join(sorted(measurement.tags)[:20]) or "none"))
            elif flt.op in ("=", "in") and flt.tag in measurement.tag_values:
                self.check_tag_value(selector.measurement, flt, measurement.tag_values[flt.tag])

    def check_tag_value(self, measurement: str, flt: a.Filter, known: tuple[str, ...]) -> None:
        values = (flt.value,) if isinstance(flt.value, str) else flt.value
        for value in values:
            if value in known:
                continue
            near = closest_value(value, known)
            shown = ", ".join(f'"{v}"' for v in known[:10]) + (", …" if len(known) > 10 else "")
            self.diags.warn("unknown-tag-value", f"`{measurement}` has no point with {flt.tag}=\"{value}\"",
                            self._value_span(flt, value),
                            (f'did you mean "{near}"? ' if near else "")
                            + (f"known values: {shown}" if known else f"`{flt.tag}` holds no values yet"))

    def _value_span(self, flt: a.Filter, value: str) -> a.Span:
        text = self.source.text[flt.span.start:flt.span.end]
        for quote in ('"', "'"):
            at = text.find(quote + value + quote)
            if at >= 0:
                return self.source.span(flt.span.start + at, flt.span.start + at + len(value) + 2)
        return flt.span

    def check_condition(self, cond, clause: str) -> None:
        kind = self.type_of(cond)
        if kind == NUMBER:
            self.diags.add("condition-not-boolean", ("this condition" if clause == "when" else f"the `{clause}` condition") + " is a number, not true/false",
                           cond.span, f"did you mean `{_short(cond, self.source)} > …`?")
        if kind != UNKNOWN and not a.aggregates(cond) and not any(isinstance(n, a.Invalid) for n in a.walk(cond)):
            self.diags.warn("no-series", "this condition reads no series, so it never changes", cond.span,
                            "compare an aggregate with a threshold, e.g. `last(cpu.usage) > 90`")

    # --- rules ----------------------------------------------------------------
    def check_rule(self, rule: a.Rule) -> None:
        spans = rule.clause_spans
        for keyword, cond in (("when", rule.when), ("critical when", rule.critical_when),
                              ("warning when", rule.warning_when), ("info when", rule.info_when),
                              ("resolve when", rule.resolve_when)):
            if cond is not None:
                self.check_condition(cond, keyword)
        for keyword in ("title", "message"):
            value = getattr(rule, keyword)
            if value is not None:
                self.check_template(keyword, value, spans.get((keyword, 0)) or spans.get(keyword))
        for keyword, duration in (("every", rule.every), ("repeat every", rule.repeat_every)):
            if duration is not None and duration.seconds <= 0:
                self.diags.add("duration-not-positive", f"`{keyword}` must be longer than 0s", duration.span,
                               "e.g. 1m")
        self.check_names(rule)
        self.check_dependency(rule)
        if a.INCOMPLETE in spans:
            return
        has_severity_whens = any(c is not None for c in (rule.critical_when, rule.warning_when, rule.info_when))
        if rule.when is None and not has_severity_whens:
            where = spans.get("name") or rule.span
            self.diags.add("missing-when", "this rule has no condition", where,
                           "add `when CONDITION`, or `critical when …` / `warning when …`")
        if rule.when is not None and has_severity_whens:
            keyword = next(k for k in ("critical when", "warning when", "info when") if k in spans)
            self.diags.add("conflicting-when", "a rule uses either `when` or severity-specific `… when` clauses, not both",
                           spans[keyword], "turn `when` into `warning when` (or the severity you mean)")
        if "severity" in spans and has_severity_whens and rule.when is None:
            self.diags.warn("severity-unused", "`severity` only applies to a plain `when`", spans["severity"],
                            "the severity comes from `critical when` / `warning when` / `info when`; remove this clause")

    def check_names(self, rule: a.Rule) -> None:
        spans = rule.clause_spans
        seen: dict[str, int] = {}
        for index, tag in enumerate(rule.group_by):
            if tag in seen:
                self.diags.add("duplicate-group-tag", f"`{tag}` is listed twice in `group by`",
                               spans.get(("group by", index)), "list each tag once")
            seen[tag] = index
            if self.schema is not None:
                self.check_group_tag(rule, tag, spans.get(("group by", index)))
        label_keys = {k for k, _ in rule.labels}
        for tag in set(rule.group_by) & label_keys:
            index = [k for k, _ in rule.labels].index(tag)
            self.diags.warn("label-shadows-tag", f"label `{tag}` has the same name as a `group by` tag",
                            spans.get(("labels", index)), "the group tag's value wins; rename the label")
        self.check_routes(rule)
        if not rule.notify:
            for keyword in ("repeat every",):
                if keyword in spans:
                    self.diags.warn(f"{keyword.split()[0]}-without-channel",
                                    f"`{keyword}` has nobody to tell: this rule notifies no channel", spans[keyword],
                                    "add `notify CHANNEL` (list_notification_channels shows yours), or remove "
                                    f"`{keyword}`")

    def check_channel_known(self, channel: str, span) -> None:
        if self.channels is None or channel in self.channels:
            return
        near = closest(channel, self.channels)
        known = ", ".join(sorted(self.channels)[:20])
        self.diags.warn("unknown-channel", f"you have no notification channel named `{channel}`", span,
                        (f"did you mean `{near}`? " if near else "")
                        + (f"your channels: {known}" if known else "add it with add_notification_channel")
                        + "; until then its alerts are only recorded")

    def check_routes(self, rule: a.Rule) -> None:
        """`notify … [on …]` (channels once across the clauses, severities the rule fires at) and
        `escalate to … after …`."""
        spans = rule.clause_spans
        fires = {severity for severity, _ in rule.conditions}
        first_seen: dict[str, int] = {}
        for r, route in enumerate(rule.routes):
            for i, channel in enumerate(route.channels):
                where = spans.get(("route", r, "channel", i))
                if channel in first_seen:
                    earlier = first_seen[channel]
                    if earlier == r:
                        self.diags.warn("duplicate-channel", f"channel `{channel}` is listed twice", where,
                                        "list each channel once")
                    else:
                        self.diags.warn("duplicate-channel",
                                        f"channel `{channel}` is already in an earlier `notify` clause", where,
                                        "name each channel in one `notify` clause; list every severity it should "
                                        f"hear there: `notify {channel} on critical, warning`")
                    continue
                first_seen[channel] = r
                self.check_channel_known(channel, where)
            seen: set[str] = set()
            for j, severity in enumerate(route.severities):
                where = spans.get(("route", r, "severity", j))
                if severity in seen:
                    self.diags.warn("duplicate-severity", f"severity `{severity}` is listed twice", where,
                                    "list each severity once")
                elif fires and severity not in fires and a.INCOMPLETE not in spans:
                    self.diags.warn("severity-never-fires",
                                    f"this rule never fires at `{severity}`, so this `notify` never sends for it",
                                    where, "it fires at " + ", ".join(s for s in a.SEVERITIES if s in fires)
                                    + ("; give `severity " + severity + "` for a plain `when`" if rule.when is not None
                                       else "; add `" + severity + " when …`"))
                seen.add(severity)
        escalation = rule.escalate
        if escalation is None:
            return
        if escalation.after.seconds <= 0:
            self.diags.add("duration-not-positive", "`escalate … after` must be longer than 0s",
                           escalation.after.span, "e.g. `after 30m`: how long an alert fires unacknowledged first")
        seen = set()
        for i, channel in enumerate(escalation.channels):
            where = spans.get(("escalate", i))
            if channel in seen:
                self.diags.warn("duplicate-channel", f"channel `{channel}` is listed twice", where,
                                "list each channel once")
                continue
            seen.add(channel)
            covering = [route for route in rule.routes if channel in route.channels]
            if covering and fires and all(any(route.covers(s) for route in covering) for s in fires):
                self.diags.warn("escalate-channel-notified",
                                f"channel `{channel}` is already told of every alert of this rule, so escalating "
                                "to it adds nothing", where,
                                "escalate to a channel that is not told at first (e.g. a pager), or narrow its "
                                "`notify` with `on critical`")
            else:
                self.check_channel_known(channel, where)

    def check_dependency(self, rule: a.Rule) -> None:
        """`depends on RULE [on TAG, …]`: not itself; tags the rule's alerts carry."""
        dependency = rule.depends_on
        if dependency is None:
            return
        spans = rule.clause_spans
        if rule.name is not None and dependency.rule == rule.name:
            self.diags.add("depends-on-itself", f"rule `{rule.name}` cannot depend on itself",
                           spans.get(("depends on", 0)) or spans.get("depends on"),
                           "name the rule whose firing should hold this one's notifications (e.g. `depends on "
                           "db_down`)")
        label_keys = {key for key, _ in rule.labels}
        seen: set[str] = set()
        for k, tag in enumerate(dependency.tags):
            where = spans.get(("depends on", 1 + k))
            if tag in seen:
                self.diags.warn("duplicate-tag", f"tag `{tag}` is listed twice", where, "list each tag once")
                continue
            seen.add(tag)
            if tag not in rule.group_by and tag not in label_keys and a.INCOMPLETE not in spans:
                self.diags.add("depends-tag-not-grouped",
                               f"`{tag}` is not a tag of this rule's alerts, so no series of "
                               f"`{dependency.rule}` can match it and nothing would ever be held", where,
                               (f"add `group by {tag}`" + (f" (it groups by {', '.join(rule.group_by)})"
                                                           if rule.group_by else "")
                                + f", or a label `labels {tag} = \"…\"`; or leave `on {tag}` out to hold on any "
                                  f"firing series of `{dependency.rule}`"))

    def check_group_tag(self, rule: a.Rule, tag: str, span) -> None:
        selectors = {agg.selector.measurement for _, cond in rule.conditions for agg in a.aggregates(cond)}
        for measurement in sorted(selectors):
            known = self.schema.measurements.get(measurement)
            if known is not None and tag not in known.tags:
                near = closest(tag, known.tags)
                self.diags.warn("unknown-tag", f"`{measurement}` has no tag `{tag}` to group by", span,
                                (f"did you mean `{near}`? " if near else "")
                                + "tags: " + (", ".join(sorted(known.tags)[:20]) or "none"))

    def check_template(self, keyword: str, template: str, span: a.Span | None) -> None:
        if span is None:
            return
        for code, line, message, hint in template_problems(template):
            if line <= 1:
                where = span
            else:
                target = span.line + line - 1
                start = self.source._line_starts[min(target, len(self.source._line_starts)) - 1]
                end = self.source.text.find("\n", start)
                where = self.source.span(start, end if end >= 0 else len(self.source.text))
            self.diags.add(code, f"{keyword}: {message}", where, hint)


def _short(node, source: SourceText | None = None) -> str:
    span = getattr(node, "span", a.NO_SPAN)
    text = source.text[span.start:span.end] if source is not None and span.end > span.start else print_expr(node)
    return text if len(text) <= 60 else text[:57] + "…"


def _is_fraction(node) -> bool:
    """An expression whose value is a pct_change fraction: pct_change itself, its abs, its negation,
    and sums or differences of fractions."""
    if isinstance(node, a.Aggregate):
        return node.function == "pct_change"
    if isinstance(node, (a.Abs, a.Negate)):
        return _is_fraction(node.operand)
    if isinstance(node, a.Arithmetic) and node.op in "+-":
        return _is_fraction(node.left) and _is_fraction(node.right)
    return False


def closest_value(value: str, known: tuple[str, ...]) -> str | None:
    """The known tag value nearest to ``value``: case-insensitively equal, one the other starts with
    (``BTCUSD`` → ``BTC``), or the closest spelling."""
    lowered = value.lower()
    for candidate in known:
        if candidate.lower() == lowered:
            return candidate
    prefixed = [c for c in known if c and (lowered.startswith(c.lower()) or c.lower().startswith(lowered))]
    if prefixed:
        return max(prefixed, key=len)
    return closest(value, known)


def check_rules(rules: list[a.Rule], source: SourceText, diags: Diagnostics, schema: Schema | None = None,
                channels=None) -> None:
    """Adds every semantic problem of ``rules`` to ``diags``; ``channels`` (the names the rule's owner
    has) adds a warning for each `notify` naming another."""
    for start, end, message, hint in surrogate_problems(source.text):
        diags.add("unsendable-character", message, source.span(start, end), hint)
    checker = _Checker(source, diags, schema, None if channels is None else frozenset(channels))
    names: dict[str, a.Rule] = {}
    for rule in rules:
        too_deep = [cond for cond in a.children(rule) if a.depth(cond) > MAX_NESTING]
        for cond in too_deep:
            diags.add("too-deeply-nested", f"this condition nests more than {MAX_NESTING} operators deep",
                      cond.span, "split it into simpler conditions")
        if not too_deep:
            checker.check_rule(rule)
        if rule.name is not None:
            if rule.name in names:
                first = names[rule.name].clause_spans.get("name") or names[rule.name].span
                diags.add("duplicate-rule-name", f"two rules are named `{rule.name}` (first on line {first.line})",
                          rule.clause_spans.get("name") or rule.span, "give each rule its own name")
            else:
                names[rule.name] = rule
    check_tests(rules, source, diags)
