"""Hints for the mistakes people and models make most, and for requests the language cannot express.

The parser asks here when it meets an unknown function or clause word, a number
followed by a unit word (``5 m``, ``15 minutes``), a number with a suffix
(``70k``), ``=>``, ``symbol:"BTC"``, an unclosed ``{`` or an ``offset`` inside a
call. Each answer is the hint text: what to write instead, or plainly that the
language does not support it. Suggestions name only what the language has: a
function or clause that this version does not know is never offered.
"""

from __future__ import annotations

import re

from . import ast as a

__all__ = [
    "UNIT_WORDS",
    "clause_hint",
    "function_hint",
    "missing_brace",
    "number_suffix",
    "offset_inside_call",
    "spaced_duration",
]

#: unit words people write after a number, and the unit letter the language uses
UNIT_WORDS = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "wk": "w", "week": "w", "weeks": "w",
}

_TIME_OF_DAY = ("hour", "minute", "day_of_week", "day_of_month", "weekday", "dayofweek", "time", "now", "today",
                "date", "month", "year", "timestamp", "hour_of_day", "time_of_day")
_DISTINCT = ("count_distinct", "distinct", "cardinality", "count_unique", "uniq", "unique", "approx_distinct")
_UNSUPPORTED_FUNCTIONS = {
    "predict_linear": "forecasting is not supported; compare a `delta` or `rate` over a window instead",
    "forecast": "forecasting is not supported; compare a `delta` or `rate` over a window instead",
    "holt_winters": "smoothing is not supported; compare an `avg` over a longer window instead",
    "topk": "top-k is not supported; use `group by TAG` to get one alert per series",
    "bottomk": "bottom-k is not supported; use `group by TAG` to get one alert per series",
    "histogram_quantile": "write `percentile(series, 99, 5m)` over the raw values",
    "round": "rounding is not supported in conditions; compare with the threshold directly "
             "(templates may use `{{ value | round(0) }}`)",
    "floor": "rounding is not supported in conditions; compare with the threshold directly",
    "ceil": "rounding is not supported in conditions; compare with the threshold directly",
    "log": "logarithms are not supported; use `+ - * /` and `abs`",
    "sqrt": "roots are not supported; use `+ - * /` and `abs`",
    "pow": "powers are not supported; multiply instead",
    "if": "there is no `if`: a rule's condition is `when …`; combine conditions with `and` / `or`",
    "anomaly": "anomaly detection is not supported; compare with a baseline, e.g. "
               "`avg(x, 5m) > 2 * avg(x, 1h) offset 1d`",
}
_CLAUSE_WORDS = {
    "if": "when", "condition": "when", "alert": "when", "trigger": "when", "threshold": "when", "expr": "when",
    "channel": "notify", "channels": "notify", "send": "notify", "to": "notify", "alert_to": "notify",
    "receiver": "notify", "route": "notify",
    "interval": "every", "frequency": "every", "check": "every", "evaluate": "every", "period": "every",
    "duration": "for", "sustained": "for", "pending": "for", "wait": "for",
    "level": "severity", "priority": "severity", "sev": "severity",
    "tags": "labels", "label": "labels", "annotations": "labels",
    "summary": "title", "subject": "title", "body": "message", "text": "message",
    "by": "group by", "groupby": "group by", "group_by": "group by", "per": "group by",
    "renotify": "repeat every", "repeat": "repeat every", "reminder": "repeat every",
    "resolve": "resolve when", "recover": "resolve when", "clear": "resolve when",
    "nodata": "on no data", "no_data": "on no data",
    "quiet": "mute during", "mute_during": "mute during", "muted": "mute during", "snooze": "mute during",
    "active_during": "active during", "only_during": "active during",
    "escalation": "escalate", "escalate_to": "escalate", "page_after": "escalate",
    "inhibit": "depends on", "inhibited": "depends on", "unless": "depends on", "depends_on": "depends on",
    "suppress": "depends on", "requires": "depends on",
    "name": "`rule NAME { … }` (the name goes after the word rule)",
}
#: words of a service level objective written inside a rule (an objective is an `slo` block)
_OBJECTIVE_WORDS = ("sli", "slo", "target", "budget", "error_budget", "burn", "burn_rate", "availability")
_SCHEDULE_WORDS = ("schedule", "cron", "between", "during", "only", "weekdays", "weekends", "hours", "at",
                   "business_hours", "timezone", "tz", "window")


def _supported_clause(keyword: str) -> bool:
    from .parser import CLAUSE_KEYWORDS  # the parser is the one that knows its clauses

    return keyword in CLAUSE_KEYWORDS


def function_hint(name: str) -> str | None:
    """What to write instead of the unknown function ``name``, when the language cannot do what it names."""
    word = name.lower()
    if word in _TIME_OF_DAY:
        if _supported_clause("active during"):
            return "conditions cannot read the clock; limit the rule with `active during mon-fri 09:00-17:00`"
        return ("conditions on the time of day are not supported: a rule is evaluated at every `every` "
                "around the clock; silence it for the hours it should keep quiet (silence_alert_rule)")
    if word in _DISTINCT:
        if "count_series" in a.AGGREGATES:
            return ("write `count_series(series, 5m)` for the number of distinct series (tag combinations) "
                    "with a point in the window; `group by TAG` gives one alert per value")
        return ("counting distinct values is not supported; `group by TAG` gives one alert per value, "
                "`count(series, 5m)` counts points")
    if word in ("zscore", "z_score", "stddev_from_mean", "deviation"):
        if "zscore" in a.AGGREGATES:
            return "write `zscore(series, 5m, 1d)`: the average over 5m in standard deviations from the day before"
        return "z-scores are not supported; compare with `stddev`, e.g. `last(x) > avg(x, 1h) + 3 * stddev(x, 1h)`"
    return _UNSUPPORTED_FUNCTIONS.get(word)


def clause_hint(word: str) -> str | None:
    """What to write instead of ``word`` at the start of a clause, or that the language has no such clause."""
    lowered = word.lower()
    if lowered in _OBJECTIVE_WORDS:
        return ("an objective is an `slo` block beside the rules: `slo NAME { bad sum(…) total sum(…) "
                "objective 99.9% }` alerts when its error budget burns too fast")
    if lowered in _SCHEDULE_WORDS:
        if _supported_clause("active during"):
            return "write `active during mon-fri 09:00-17:00` to limit when the rule can fire"
        return ("schedules are not supported: a rule is evaluated at every `every` (default 1m) around the "
                "clock; to keep it quiet for a while, silence it (silence_alert_rule)")
    if lowered in ("escalate", "escalation") and not _supported_clause("escalate"):
        return "escalation is not supported; use `critical when …` and `warning when …` for two thresholds"
    if lowered in ("depends", "inhibit", "unless") and not _supported_clause("depends on"):
        return "dependencies between rules are not supported; combine the conditions with `and not …`"
    if lowered in ("mute", "quiet") and not _supported_clause("mute during"):
        return "mute windows are not supported; silence the rule for a span with silence_alert_rule"
    target = _CLAUSE_WORDS.get(lowered)
    if target is None:
        return None
    return f"did you mean {target}?" if target.startswith("`") else f"did you mean `{target}`?"


def spaced_duration(text: str, start: int) -> tuple[int, int, str] | None:
    """``(begin, end, suggestion)`` when the number ending just before the space(s) at or before ``start``
    and the word at ``start`` read as a duration written with a space (``5 m``, ``15 minutes``)."""
    match = re.match(r"[A-Za-z]+", text[start:])
    if match is None or match.group(0).lower() not in UNIT_WORDS:
        return None
    before = re.search(r"(\d+)\s+$", text[:start])
    if before is None:
        return None
    unit = UNIT_WORDS[match.group(0).lower()]
    return before.start(1), start + match.end(), f"{before.group(1)}{unit}"


_SUFFIXES = {"k": 1_000, "K": 1_000, "M": 1_000_000, "B": 1_000_000_000, "b": 1_000_000_000,
             "G": 1_000_000_000, "T": 1_000_000_000_000}


def number_suffix(text: str, start: int) -> tuple[int, int, str] | None:
    """``(begin, end, number)`` for ``70k``, ``1.5M``, ``2B`` whose suffix starts at ``start``."""
    match = re.match(r"([kKMBbGT])(?![A-Za-z0-9_])", text[start:])
    before = re.search(r"(\d+(?:_\d+)*(?:\.\d+)?)$", text[:start])
    if match is None or before is None:
        return None
    value = float(before.group(1).replace("_", "")) * _SUFFIXES[match.group(1)]
    written = f"{int(value)}" if value == int(value) else f"{value:g}"
    return before.start(1), start + 1, written


def missing_brace(text: str, base: int, start: int) -> str | None:
    """The filters written so far (``{host="web-1"}``) when a ``{`` opened before ``start`` is not closed."""
    depth, opened, i = 0, None, base
    while i < start:
        char = text[i]
        if char in "\"'":
            end = text.find(char, i + 1)
            while end > 0 and text[end - 1] == "\\":
                end = text.find(char, end + 1)
            i = (end if end > 0 else start) + 1
            continue
        if char == "{":
            depth, opened = depth + 1, i
        elif char == "}":
            depth = max(0, depth - 1)
        i += 1
    if depth == 0 or opened is None:
        return None
    filters = text[opened + 1:start].rstrip().rstrip(",").rstrip()
    return "{" + filters + "}"


def offset_inside_call(text: str, start: int) -> str | None:
    """The call rewritten with its ``offset`` after the ``)`` (``avg(x, 5m) offset 1d``), for an ``offset``
    at ``start`` inside the call's parentheses."""
    close = text.find(")", start)
    depth, paren = 0, None
    for i in range(start - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            if depth == 0:
                paren = i
                break
            depth -= 1
    if close < 0 or paren is None:
        return None
    name = re.search(r"[A-Za-z_][A-Za-z0-9_]*\s*$", text[:paren])
    if name is None:
        return None
    inner = text[paren + 1:start].rstrip().rstrip(",").rstrip()
    offset = " ".join(text[start:close].split())
    return f"{name.group(0).strip()}({inner}) {offset}"
