"""A rule read aloud: one English sentence saying when it fires.

    >>> from monitors_dsl import parse
    >>> describe(parse('rule r { when last(crypto.price{symbol="BTC"}) > 70000 severity critical }')[0])
    'Fires (critical) when the last value of crypto.price where symbol is "BTC" over the past 5 minutes is above 70000, checked every minute.'

Names and strings appear as the canonical printer writes them, so the reading
quotes exactly what the rule says.
"""

from __future__ import annotations

from . import ast as a
from .printer import print_name, print_number, print_string
from .windows import describe_window

__all__ = ["describe", "describe_expr", "duration_words"]

_UNIT_WORDS = {"w": "week", "d": "day", "h": "hour", "m": "minute", "s": "second"}

_FUNCTIONS = {
    "last": "the last value of",
    "first": "the first value of",
    "min": "the minimum of",
    "max": "the maximum of",
    "avg": "the average of",
    "sum": "the sum of",
    "median": "the median of",
    "count": "the number of points of",
    "count_series": "the number of series (tag combinations) reporting",
    "stddev": "the standard deviation of",
    "spread": "the spread (maximum minus minimum) of",
    "delta": "the change in",
    "rate": "the per-second rate of change of",
    "pct_change": "the percentage change in",
}
_COMPARISONS = {">": "is above", ">=": "is at least", "<": "is below", "<=": "is at most",
                "==": "equals", "!=": "is not equal to"}
_ARITHMETIC = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
_FILTERS = {"=": "is", "!=": "is not", "=~": "matches", "!~": "does not match",
            "in": "is one of", "not in": "is none of"}


def duration_words(seconds: int, *, drop_one: bool = False) -> str:
    """``5400`` → ``"1 hour 30 minutes"``; with ``drop_one``, ``60`` → ``"minute"``."""
    if seconds == 0:
        return "0 seconds"
    parts = [f"{count} {_UNIT_WORDS[unit]}{'s' if count != 1 else ''}" for count, unit in a.duration_parts(seconds)]
    if drop_one and len(parts) == 1 and parts[0].startswith("1 "):
        return parts[0][2:]
    return " ".join(parts)


def _ordinal(value: float) -> str:
    text = print_number(value)
    if not text.isdigit():
        return f"{text}th"
    number = int(text)
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{text}{suffix}"


def _selector(selector: a.Selector) -> str:
    text = f"{print_name(selector.measurement)}.{print_name(selector.field)}"
    conditions = []
    for flt in selector.filters:
        value = (", ".join(print_string(v) for v in flt.value) if isinstance(flt.value, tuple)
                 else print_string(flt.value))
        conditions.append(f"{print_name(flt.tag)} {_FILTERS[flt.op]} {value}")
    return text + (" where " + " and ".join(conditions) if conditions else "")


def _window(node: a.Aggregate) -> str:
    window = duration_words(node.window.seconds, drop_one=True)
    if node.offset.seconds:
        return f"over the {window} ending {duration_words(node.offset.seconds)} ago"
    return f"over the past {window}"


def _aggregate(node: a.Aggregate) -> str:
    if node.function == "absent":
        return f"no point of {_selector(node.selector)} arrives {_window(node)}"
    if node.function == "zscore":
        baseline = duration_words(int(node.parameter), drop_one=True)
        return (f"how many standard deviations the average of {_selector(node.selector)} {_window(node)} "
                f"lies from its average over the {baseline} before")
    if node.function == "percentile":
        head = f"the {_ordinal(node.parameter)} percentile of"
    else:
        head = _FUNCTIONS[node.function]
    return f"{head} {_selector(node.selector)} {_window(node)}"


class _Describer(a.Visitor):
    """An expression in words: one method per node."""

    __slots__ = ()
    pass_name = "the describer"

    def grouped(self, node) -> str:
        text = self.visit(node)
        return f"({text})" if isinstance(node, a.Arithmetic) else text

    def visit_Number(self, node: a.Number) -> str:
        return print_number(node.literal) + ("%" if node.percent else "")

    def visit_Aggregate(self, node: a.Aggregate) -> str:
        return _aggregate(node)

    def visit_Abs(self, node: a.Abs) -> str:
        return f"the absolute value of {self.grouped(node.operand)}"

    def visit_Negate(self, node: a.Negate) -> str:
        return f"minus {self.grouped(node.operand)}"

    def visit_Arithmetic(self, node: a.Arithmetic) -> str:
        return f"{self.grouped(node.left)} {_ARITHMETIC[node.op]} {self.grouped(node.right)}"

    def visit_Comparison(self, node: a.Comparison) -> str:
        return f"{self.visit(node.left)} {_COMPARISONS[node.op]} {self.visit(node.right)}"

    def visit_Not(self, node: a.Not) -> str:
        return f"not ({self.visit(node.operand)})"

    def visit_Logical(self, node: a.Logical) -> str:
        parts = []
        for side in (node.left, node.right):
            text = self.visit(side)
            parts.append(f"({text})" if isinstance(side, a.Logical) and side.op != node.op else text)
        return f" {node.op} ".join(parts)


_DESCRIBER = _Describer()


def describe_expr(node) -> str:
    """An expression in words."""
    return _DESCRIBER.visit(node)


def _listed(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _burns(alert: a.BurnAlert) -> str:
    times = "time" if alert.threshold == 1 else "times"
    return (f"{print_number(alert.threshold)} {times} too fast over {duration_words(alert.long.seconds)} "
            f"and {duration_words(alert.short.seconds)}")


def _slo_sentence(rule: a.Rule, who: str) -> str:
    """What an slo block fires on: its pages and its ticket, in budget words."""
    slo = rule.slo

    def term(node: a.Aggregate) -> str:
        return f"{_FUNCTIONS[node.function]} {_selector(node.selector)}"

    objective = f"{print_number(slo.objective.literal)} %"
    return (f"Pages (critical){who} when the error budget of {objective} (bad events: {term(slo.bad)}, "
            f"out of {term(slo.total)}) burns {_burns(slo.page)}, or {_burns(slo.slow_page)}; "
            f"warns when it burns {_burns(slo.ticket)}")


def describe(rule: a.Rule) -> str:
    """One sentence: severity, condition(s), grouping, timing and resolution of ``rule``."""
    conditions = rule.conditions
    who = ""
    if rule.group_by:
        tags = [print_name(t) for t in rule.group_by]
        who = " for each " + (tags[0] if len(tags) == 1 else "combination of " + _listed(tags))
    if rule.slo is not None:
        first = _slo_sentence(rule, who)
    elif rule.when is not None:
        first = f"Fires ({rule.severity}){who} when {describe_expr(rule.when)}"
    else:
        levels = ", ".join(f"{level} when {describe_expr(cond)}" for level, cond in conditions)
        first = f"Fires{who}: {levels}" if who else f"Fires {levels}"
    parts = [first]
    if rule.for_.seconds:
        parts.append(f"once that has held for {duration_words(rule.for_.seconds)}")
    if rule.keep_firing_for.seconds:
        parts.append(f"staying firing for {duration_words(rule.keep_firing_for.seconds)} after it stops holding")
    if rule.resolve_when is not None:
        parts.append(f"resolving only when {describe_expr(rule.resolve_when)}")
    if rule.on_no_data == "alert":
        parts.append("firing on no data too")
    elif rule.on_no_data == "ok":
        parts.append("resolving on no data")
    if rule.active_during is not None:
        parts.append(f"only {describe_window(rule.active_during)}")
    parts.append(f"checked every {duration_words(rule.every.seconds, drop_one=True)}")
    if rule.notify:
        parts.append("notifying " + _listed([_route_words(route) for route in rule.routes]))
    if rule.mute_during is not None:
        parts.append(f"with notifications muted {describe_window(rule.mute_during)}")
    if rule.escalate is not None:
        parts.append(f"telling {_listed([print_name(n) for n in rule.escalate.channels])} too once an alert has "
                     f"fired for {duration_words(rule.escalate.after.seconds)} unacknowledged")
    if rule.depends_on is not None:
        dependency = rule.depends_on
        same = (" with the same " + _listed([print_name(t) for t in dependency.tags])) if dependency.tags else ""
        parts.append(f"holding its notifications while {print_name(dependency.rule)} fires{same}")
    return ", ".join(parts) + "."


def _route_words(route: a.Route) -> str:
    """``a and b``, or ``pager (critical only)``, ``slack (critical and warning)``."""
    channels = _listed([print_name(n) for n in route.channels])
    if not route.severities:
        return channels
    if len(route.severities) == 1:
        return f"{channels} ({route.severities[0]} only)"
    return f"{channels} ({_listed(list(route.severities))})"
