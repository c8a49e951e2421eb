"""Hypothesis strategies that build valid rule trees directly (not text)."""

from __future__ import annotations

from hypothesis import strategies as st

from monitors_dsl import ast as a
from monitors_dsl.printer import KEYWORDS
from monitors_dsl.windows import TimeWindow

__all__ = ["time_windows", "window_spans", "routing_clauses", "WINDOW_ZONES", "names", "expressions", "conditions", "rules", "documents", "selectors", "numeric", "slos",
           "slo_documents"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_IDENT = st.tuples(st.sampled_from(_LETTERS), st.text(alphabet=_LETTERS + "0123456789", max_size=7)).map("".join)
names = st.one_of(
    _IDENT,
    st.sampled_from(sorted(KEYWORDS)),
    # words that are keywords only where the grammar takes them, so names spelled like them stay bare
    st.sampled_from(["active", "mute", "during", "escalate", "to", "after", "depends", "mon", "fri", "UTC"]),
    st.text(min_size=1, max_size=8),
)
strings = st.text(max_size=12)
_SAFE_REGEX = st.sampled_from(["^web-", "a|b", "^[0-9]+$", r"\d+", "(?i)prod", "x.*y", ".*", "^$"])
durations = st.integers(min_value=1, max_value=30 * 86400).map(a.Duration)
offsets = st.one_of(st.just(a.ZERO), durations)


@st.composite
def filters(draw):
    op = draw(st.sampled_from(a.FILTER_OPS))
    tag = draw(names)
    if op in ("in", "not in"):
        value = tuple(draw(st.lists(strings, min_size=1, max_size=3)))
    elif op in ("=~", "!~"):
        value = draw(_SAFE_REGEX)
    else:
        value = draw(strings)
    return a.Filter(tag, op, value)


selectors = st.builds(a.Selector, names, names, st.lists(filters(), max_size=3).map(tuple))


@st.composite
def aggregates(draw, function=None):
    function = function or draw(st.sampled_from(a.NUMERIC_AGGREGATES))
    parameter = None
    if function == "percentile":
        parameter = draw(st.one_of(st.integers(0, 100).map(float), st.floats(0, 100, allow_nan=False)))
    window = draw(durations)
    if function in a.DURATION_PARAMETER:  # a baseline longer than the window
        parameter = float(window.seconds + draw(st.integers(1, 30 * 86400)))
    return a.Aggregate(function, draw(selectors), window, draw(offsets), parameter)


numbers = st.builds(
    a.Number,
    st.one_of(st.integers(-10**6, 10**12).map(float), st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
              st.floats(1e-9, 1e-3)),
    st.booleans(),
)


def _numeric_extend(inner):
    return st.one_of(
        st.builds(a.Abs, inner),
        st.builds(a.Negate, inner.filter(lambda n: not isinstance(n, a.Number))),
        st.builds(a.Arithmetic, st.sampled_from("+-*/"), inner, inner),
    )


_NUMERIC = st.recursive(st.one_of(numbers, aggregates()), _numeric_extend, max_leaves=6)
_COMPARISON = st.builds(a.Comparison, st.sampled_from([">", ">=", "<", "<=", "==", "!="]), _NUMERIC, _NUMERIC)


def _condition_extend(inner):
    return st.one_of(
        st.builds(a.Not, inner),
        st.builds(a.Logical, st.sampled_from(["and", "or"]), inner, inner),
    )


_CONDITIONS = st.recursive(st.one_of(_COMPARISON, aggregates("absent")), _condition_extend, max_leaves=5)


def numeric(depth: int = 3):
    return _NUMERIC


def conditions(depth: int = 3):
    return _CONDITIONS


expressions = st.one_of(numeric(), conditions())
_templates = st.one_of(
    st.text(max_size=20).filter(lambda s: "{" not in s and "}" not in s),
    st.sampled_from(["{{ value }}", "{{ rule }} is {{ state }}", "{% if value > 1 %}high{% endif %}",
                     "{{ labels.host | default('?') }}\nline two", "{{ values | length }} terms"]),
)


# --- time windows and the clauses of who hears of a rule --------------------------------

#: zones with daylight saving of every kind: none, an hour, half an hour (Lord Howe), at :45 (Chatham)
WINDOW_ZONES = ("UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham")
#: minutes of the day, often those where clocks change
window_minutes = st.one_of(st.sampled_from([0, 60, 90, 105, 120, 135, 150, 165, 180, 210, 540, 1020, 1320, 1439]),
                           st.integers(0, 1439))


@st.composite
def window_spans(draw):
    """``(days, times)`` of one span: day numbers (Monday 0, any order, repeats allowed) and (start, end)
    minutes; never both empty."""
    days = draw(st.lists(st.integers(0, 6), max_size=8))
    times = draw(st.lists(st.tuples(window_minutes, window_minutes), min_size=0 if days else 1, max_size=3))
    return days, times


time_windows = st.builds(lambda spans, zone: TimeWindow(spans, zone), st.lists(window_spans(), min_size=1, max_size=3),
                         st.sampled_from(WINDOW_ZONES))
route_values = st.builds(a.Route, st.lists(names, min_size=1, max_size=3, unique=True).map(tuple),
                         st.lists(st.sampled_from(a.SEVERITIES), max_size=3, unique=True).map(tuple))


@st.composite
def routing_clauses(draw, rule_name, group_by, label_keys):
    """Some of `active during`, `mute during`, several `notify … on`, `escalate to`, `depends on … on` for a
    rule named ``rule_name`` (tags of `depends on` among its group tags and labels, so the text is valid)."""
    fields = {}
    if draw(st.booleans()):
        fields["active_during"] = draw(time_windows)
    if draw(st.booleans()):
        fields["mute_during"] = draw(time_windows)
    if draw(st.booleans()):
        fields["routes"] = tuple(draw(st.lists(route_values, min_size=1, max_size=3)))
    if draw(st.booleans()):
        fields["escalate"] = a.Escalation(tuple(draw(st.lists(names, min_size=1, max_size=2, unique=True))),
                                          draw(durations))
    if draw(st.booleans()):
        tags = sorted(set(group_by) | set(label_keys))
        fields["depends_on"] = a.Dependency(draw(names.filter(lambda n: n != rule_name)),
                                            tuple(draw(st.lists(st.sampled_from(tags), unique=True, max_size=3)))
                                            if tags else ())
    return fields


@st.composite
def rules(draw, name=st.none()):
    rule_name = draw(name)
    severity_form = draw(st.booleans())
    fields = {}
    if severity_form:
        chosen = draw(st.lists(st.sampled_from(a.SEVERITIES), min_size=1, max_size=3, unique=True))
        for severity in chosen:
            fields[f"{severity}_when"] = draw(conditions(2))
    else:
        fields["when"] = draw(conditions(3))
        fields["severity"] = draw(st.sampled_from(a.SEVERITIES))
    if draw(st.booleans()):
        fields["resolve_when"] = draw(conditions(2))
    fields["group_by"] = tuple(draw(st.lists(names, max_size=3, unique=True)))
    fields["every"] = draw(durations)
    fields["for_"] = draw(st.one_of(st.just(a.ZERO), durations))
    fields["keep_firing_for"] = draw(st.one_of(st.just(a.ZERO), durations))
    fields["on_no_data"] = draw(st.sampled_from(a.NO_DATA_ACTIONS))
    fields["labels"] = tuple(draw(st.dictionaries(names, strings, max_size=3)).items())
    fields["notify"] = tuple(draw(st.lists(names, max_size=3, unique=True)))
    fields["repeat_every"] = draw(st.one_of(st.none(), durations))
    fields["title"] = draw(st.one_of(st.none(), _templates))
    fields["message"] = draw(st.one_of(st.none(), _templates))
    fields["description"] = draw(st.one_of(st.none(), st.text(max_size=30)))
    if draw(st.booleans()):
        fields.update(draw(routing_clauses(rule_name, fields["group_by"], [k for k, _ in fields["labels"]])))
    if rule_name is None and draw(st.booleans()):
        return a.Rule(when=draw(conditions(3)))  # a bare condition
    return a.Rule(name=rule_name, **fields)


@st.composite
def documents(draw):
    if draw(st.booleans()):
        return [draw(rules())]
    rule_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    return [draw(rules(st.just(n))) for n in rule_names]


# --- slo blocks ---------------------------------------------------------------------------

_burn_alerts = st.builds(
    lambda threshold, short, extra: a.BurnAlert(threshold, a.Duration(short + extra), a.Duration(short)),
    st.one_of(st.sampled_from([14.4, 6.0, 1.0, 2.0, 0.5]), st.floats(1e-6, 1e6)),
    st.integers(1, 3 * 86400), st.integers(1, 3 * 86400))


@st.composite
def slos(draw, name=names):
    """Rules written as slo blocks: any sum/count terms, objective, overrides and rule clauses they take."""
    from monitors_dsl.slo import slo_rule

    def term():
        return a.Aggregate(draw(st.sampled_from(a.SLO_AGGREGATES)), draw(selectors))

    objective = draw(st.one_of(st.sampled_from([99.9, 99.0, 99.99, 95.0, 50.0]), st.floats(1e-6, 99.999)))
    alerts = {key: draw(st.one_of(st.just(a.DEFAULT_BURN_ALERTS[word]), _burn_alerts))
              for key, word in (("page", "page"), ("slow_page", "slow page"), ("ticket", "ticket"))}
    slo = a.Slo(term(), term(), a.Number(objective, percent=True), **alerts)
    fields = {
        "group_by": tuple(draw(st.lists(names, max_size=3, unique=True))),
        "every": draw(durations),
        "for_": draw(st.one_of(st.just(a.ZERO), durations)),
        "on_no_data": draw(st.sampled_from(a.NO_DATA_ACTIONS)),
        "labels": tuple(draw(st.dictionaries(names, strings, max_size=3)).items()),
        "notify": tuple(draw(st.lists(names, max_size=3, unique=True))),
        "repeat_every": draw(st.one_of(st.none(), durations)),
        "title": draw(st.one_of(st.none(), _templates)),
        "description": draw(st.one_of(st.none(), st.text(max_size=30))),
    }
    return slo_rule(draw(name), slo, **fields)


@st.composite
def slo_documents(draw):
    """Documents mixing slo blocks and rules, each with its own name."""
    block_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    return [draw(slos(st.just(n))) if draw(st.booleans()) else draw(rules(st.just(n))) for n in block_names]
