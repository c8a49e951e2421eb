"""The live engine against its plain definition, tick by tick: generated cases, the two runs, the comparison.

A *case* (:func:`make_case`, from a seed) is a rule set, data over time and the rule changes made between
ticks. Rules are built from the compiler tests' random rules (``tests.support.compiler_strategies``: every function,
``absent``, ``not``/``and``/``or``, arithmetic between terms, offsets, filters of every kind) and from
families sharing one term with different thresholds and clauses (so they share scans and shapes and are
decided in cohorts), with ``group by``, several severities, ``resolve when``, ``for``, ``keep firing for``,
``on no data`` of the three kinds and ``repeat every``, and the clauses of who hears of it: ``notify … on``
routes to two channels, ``active during`` and ``mute during`` windows of a few minutes inside the case's
hour in one of a few zones (so that they start or end between ticks), ``escalate to … after`` and
``depends on`` (with and without tags) an earlier rule of the case; one channel has a mute window. The data has series that appear and vanish, gaps,
points on window edges, equal times, points a day old (the 24-hour look-back of known series), and
sometimes a measurement without one of the tags or fields the rules name. Values are small integers, so
that SQL computes every function to the last bit as the reference does but the sample deviation (which
the plain run flags where it decides on a near tie: ``Outcome.ties``).

:func:`run_engine` runs the real thing: rules stored through the rule service in a SQLite store,
``StoreRules`` → ``Runner`` with ``Evaluator`` over DataFusion and ``SqlRepository`` (layouts, cohorts,
skipped rules, ``values_every``, batched writes), one ``tick`` per minute, rule changes through the service
between ticks. :func:`run_plain` runs ``tests.support.plain_engine``. :func:`differences` compares what
both decided — transitions, alerts (with their values at start and resolution, and their events),
notifications, the final series states, and rule errors — and describes the first differences.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy import update as sa_update

import monitors_dsl
from engine.evaluate import Evaluator
from engine.repository import SqlRepository
from engine.rules import RuleBuilder, StoreRules
from engine.runner import Runner
from engine.sources import DataFusionSource
from engine.state import INACTIVE, FlapDetection, SeriesState
from monitors_dsl import ast as a
from monitors_dsl.windows import TimeWindow, parse_window
from monitors_dsl.printer import print_rule
from tests.support.compiler_harness import to_table
from tests.support.compiler_strategies import (FLOAT_FIELDS, INT_FIELDS, MEASUREMENTS, TAG_VALUES, TAGS, RandomRules,
                                              baseline_choices)

from .plain_engine import CLOSED_BY_CHANGE, PlainEngine

__all__ = ["Case", "Outcome", "make_case", "case_from", "points_every", "store_ids", "run_engine", "run_plain", "differences", "describe"]

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
S = 10**9
MIN = timedelta(minutes=1)
CHANNEL = "hook"
#: the channels of every case: rules notify hook (perhaps on some severities) and page on some, escalate to
#: boss or page
CHANNELS = ("hook", "page", "boss")
#: zones of the generated windows: UTC, one ahead by an hour, one behind by five, one ahead by five and a half
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata")
_VALUES = [0, 1, 2, 3, 5, 7, 10]
_THRESHOLDS = [0, 1, 2, 2.5, 3, 5, 6, 7.5, 10]


@dataclass
class Case:
    """A rule set, data and the changes made between ticks (see the module docstring)."""

    seed: int
    rules: list[tuple[str, a.Rule]]  # (name, rule) at the start
    changes: dict[int, list[tuple]]  # tick index → [("add" | "change", name, rule) | ("delete", name)]
    points: dict[str, list[dict]]
    columns: dict[str, tuple[list[str], list[str], list[str]]]  # measurement → (tags, float, int fields)
    ticks: list[datetime]
    values_every: float
    flap: FlapDetection | None = None  # the engine's flap detection (off unless configured)
    restart: int | None = None  # before this tick the engine restarts (states read back from the store)
    channel_windows: dict[str, str] = field(default_factory=dict)  # channel → its mute_during text
    acks: dict[int, list[str]] = field(default_factory=dict)  # tick index → rules whose firing alerts are acknowledged before it

    def texts(self) -> str:
        """Everything a person needs to replay the case by hand."""
        lines = [f"seed {self.seed}, values_every {self.values_every:g}, flap detection {self.flap}, ticks "
                 f"{self.ticks[0]:%H:%M}–{self.ticks[-1]:%H:%M}, engine restarted before tick {self.restart}, "
                 f"channel mute windows {self.channel_windows}, acknowledged before ticks {self.acks}"]
        lines += [monitors_dsl.canonical(print_rule(rule)) for _, rule in self.rules]
        for index, changes in sorted(self.changes.items()):
            for change in changes:
                what = change[0] + " " + change[1]
                if change[0] != "delete":
                    what += ": " + monitors_dsl.canonical(print_rule(change[2]))
                lines.append(f"before tick {index}: {what}")
        return "\n".join(lines)


# --- cases --------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.random_rules = RandomRules(seed)
        self.count = 0
        self.scans: list[tuple] = []
        self.start = T0  # the case's first tick

    # terms and conditions

    def aggregate(self, function: str | None = None) -> a.Aggregate:
        """A random aggregate: most of the time one of the case's few scans (selector, window and offset,
        so that rules share them) with a random function, else anything the compiler tests generate."""
        rng = self.rng
        node = self.random_rules.aggregate(function)
        if rng.randrange(5):
            if not self.scans:
                for _ in range(rng.randint(2, 4)):
                    other = self.random_rules.aggregate()
                    self.scans.append((other.selector, a.Duration(rng.choice([30, 60, 90, 120, 300])),
                                       a.Duration(rng.choice([0, 0, 0, 60, 120]))))
            selector, window, offset = rng.choice(self.scans)
            parameter = node.parameter
            if node.function in a.DURATION_PARAMETER:  # a baseline longer than the shared window
                parameter = float(rng.choice(baseline_choices(window.seconds)))
            node = a.Aggregate(node.function, selector, window, offset, parameter)
        return node

    def threshold(self) -> a.Number:
        return a.Number(float(self.rng.choice(_THRESHOLDS)))

    def condition(self, depth: int = 2):
        """A random condition (the compiler tests' generator), its aggregates over shorter windows."""
        rng = self.rng
        kind = rng.randrange(8) if depth > 1 else rng.randrange(4)
        if kind == 0:
            return self.aggregate("absent")
        if kind in (1, 2):
            return a.Comparison(rng.choice([">", ">=", "<", "<=", "==", "!="]), self.numeric(1), self.threshold())
        if kind == 3:
            return self.random_rules.condition(depth)
        if kind == 4:
            return a.Not(self.condition(depth - 1))
        return a.Logical(rng.choice(["and", "or"]), self.condition(depth - 1), self.condition(depth - 1))

    def numeric(self, depth: int):
        rng = self.rng
        kind = rng.randrange(6) if depth > 0 else 0
        if kind <= 2:
            return self.aggregate()
        if kind == 3:
            return self.random_rules.numeric(depth)
        if kind == 4:
            return a.Arithmetic(rng.choice("+-*/"), self.numeric(depth - 1), self.numeric(depth - 1))
        return a.Abs(a.Negate(self.numeric(depth - 1))) if rng.randrange(2) else a.Negate(self.numeric(depth - 1))

    # clauses

    def window(self) -> TimeWindow:
        """A window of one to six minutes starting within the case's ticks (or just before), on the clock of
        one of ``ZONES``: on Fridays (the case's day), on every day, or on days that never come."""
        rng = self.rng
        zone = rng.choice(ZONES)
        first = (self.start + timedelta(minutes=rng.randint(-3, 9))).astimezone(ZoneInfo(zone))
        last = first + timedelta(minutes=rng.randint(1, 6))
        times = f"{first:%H:%M}-{last:%H:%M}"
        if rng.randrange(4) == 0:  # a second stretch of times later in the hour
            later = last + timedelta(minutes=rng.randint(1, 4))
            times += f", {later:%H:%M}-{later + timedelta(minutes=rng.randint(1, 3)):%H:%M}"
        days = rng.choice(["", "", "fri ", "thu-sat ", "sat-sun "])
        text = days + times
        if rng.randrange(6) == 0:
            text += " or sat-sun"
        return parse_window(text + (f' in "{zone}"' if zone != "UTC" else ""))

    def clauses(self, rule: a.Rule) -> a.Rule:
        rng = self.rng
        self.count += 1
        labels = (("team", rng.choice(["a", "b"])),) if rng.randrange(5) == 0 else ()
        routes = [a.Route((CHANNEL,), (rng.choice(a.SEVERITIES),) if rng.randrange(6) == 0 else ())]
        if rng.randrange(3) == 0:
            routes.append(a.Route(("page",), tuple(rng.sample(a.SEVERITIES, rng.randint(1, 2)))))
        escalate = None
        if rng.randrange(5) == 0:
            escalate = a.Escalation(rng.choice([("boss",), ("page",), ("boss", "page")]),
                                    a.Duration(rng.choice([60, 120, 180])))
        return replace(
            rule, name=f"r{self.count}",
            every=a.Duration(rng.choice([60, 60, 60, 120, 180])),
            for_=a.Duration(rng.choice([0, 0, 60, 120, 180])),
            keep_firing_for=a.Duration(rng.choice([0, 0, 0, 60, 120])),
            on_no_data=rng.choice(a.NO_DATA_ACTIONS),
            repeat_every=rng.choice([None, None, a.Duration(120), a.Duration(180)]),
            labels=labels, notify=tuple(dict.fromkeys(c for route in routes for c in route.channels)),
            routes=tuple(routes), escalate=escalate,
            active_during=self.window() if rng.randrange(4) == 0 else None,
            mute_during=self.window() if rng.randrange(6) == 0 else None)

    def dependencies(self, rules: list[a.Rule]) -> list[a.Rule]:
        """Some rules made to depend on an earlier one (so never in a cycle), on one of their group tags or
        on none."""
        rng = self.rng
        out = []
        for i, rule in enumerate(rules):
            if i and rng.randrange(3) == 0:
                tags = (rng.choice(rule.group_by),) if rule.group_by and rng.randrange(2) else ()
                rule = replace(rule, depends_on=a.Dependency(rng.choice(rules[:i]).name, tags))
            out.append(rule)
        return out

    def group_by(self) -> tuple[str, ...]:
        return self.rng.choice([(), (), ("host",), ("host",), ("host", "régión"), ("régión",)])

    def general(self) -> a.Rule:
        """A rule of random conditions: one or several severities, perhaps a resolve condition."""
        rng = self.rng
        fields: dict = {"group_by": self.group_by()}
        if rng.randrange(3) == 0:
            for severity in rng.sample(a.SEVERITIES, rng.randint(1, 3)):
                fields[f"{severity}_when"] = self.condition(2)
        else:
            fields["when"] = self.condition(2)
            fields["severity"] = rng.choice(a.SEVERITIES)
        if rng.randrange(4) == 0:
            fields["resolve_when"] = self.condition(1)
        return self.clauses(a.Rule(**fields))

    def family(self) -> list[a.Rule]:
        """Rules on one term differing in thresholds (and clauses): one shape, decided in a cohort."""
        rng = self.rng
        term = self.aggregate(rng.choice(["last", "last", "avg", "max", "min", "count", "sum", "delta", "rate",
                                          "percentile", "spread", "zscore"]))
        group_by = self.group_by()
        severities = rng.randrange(3) == 0
        op = rng.choice([">", ">=", "<", "<=", "==", ">"])
        resolve = rng.randrange(4) == 0
        # sometimes one rule per value of a tag (`symbol = "S"` for each symbol): one merged query
        per_value = rng.choice([None, None, rng.choice(TAGS)])
        shared = term
        out = []
        for _ in range(rng.randint(2, 6)):
            if per_value is not None:
                kept = tuple(f for f in shared.selector.filters if f.tag != per_value)
                value = rng.choice(TAG_VALUES[:4])
                term = replace(shared, selector=replace(shared.selector,
                                                        filters=kept + (a.Filter(per_value, "=", value),)))
            fields: dict = {"group_by": group_by}
            if severities:
                high, low = sorted(rng.sample(_THRESHOLDS, 2), reverse=op.startswith("<"))
                fields["critical_when"] = a.Comparison(op, term, a.Number(float(high)))
                fields["warning_when"] = a.Comparison(op, term, a.Number(float(low)))
            elif rng.randrange(5) == 0:  # the number on the left
                fields["when"] = a.Comparison(rng.choice(["<", ">"]), self.threshold(), term)
            else:
                fields["when"] = a.Comparison(op, term, self.threshold())
            if resolve:
                fields["resolve_when"] = a.Comparison(rng.choice(["<", ">"]), term, self.threshold())
            out.append(self.clauses(a.Rule(**fields)))
        return out

    def rethreshold(self, rule: a.Rule) -> a.Rule:
        """The rule with the first number it compares with changed."""
        def swap(node):
            if isinstance(node, a.Comparison) and isinstance(node.right, a.Number):
                return replace(node, right=self.threshold()), True
            if isinstance(node, (a.Comparison, a.Logical, a.Arithmetic)):
                left, done = swap(node.left)
                if done:
                    return replace(node, left=left), True
                right, done = swap(node.right)
                return (replace(node, right=right), True) if done else (node, False)
            if isinstance(node, (a.Not, a.Negate, a.Abs)):
                inner, done = swap(node.operand)
                return (replace(node, operand=inner), True) if done else (node, False)
            return node, False

        for name in ("when", "critical_when", "warning_when", "info_when"):
            condition = getattr(rule, name)
            if condition is not None:
                changed, done = swap(condition)
                if done:
                    return replace(rule, **{name: changed})
        return replace(rule, for_=a.Duration(rule.for_.seconds + 60))

    # data

    def points(self, ticks: list[datetime]) -> dict[str, list[dict]]:
        rng = self.rng
        first, last = _ns(ticks[0]), _ns(ticks[-1])
        tick_times = [_ns(t) for t in ticks]
        data = {}
        for measurement in MEASUREMENTS:
            points: list[dict] = []
            times: list[int] = []
            for _ in range(rng.randint(1, 4)):
                tags = {tag: rng.choice([None] + TAG_VALUES[:3] * 3 + TAG_VALUES) for tag in TAGS}
                begin = first + rng.choice([-3 * 3600, -600, -120, 0, 180, 420]) * S
                end = rng.choice([last, last + 60 * S, first + rng.randint(2, 12) * 60 * S])
                step = rng.choice([20, 30, 45, 60, 90])
                level = rng.choice(_VALUES)
                time = begin
                while time <= end:
                    if time < first - 600 * S:
                        time += 1200 * S  # older history is sparse
                    if rng.randrange(6):  # else a gap
                        at = time
                        choice = rng.randrange(10)
                        if choice == 0 and times:
                            at = rng.choice(times)  # an equal time
                        elif choice == 1:
                            at = rng.choice(tick_times) - rng.choice([0, 0, 60 * S, 30 * S])  # on a window edge
                        points.append(self.point(at, tags, level))
                        times.append(at)
                        if rng.randrange(4) == 0:
                            level = rng.choice(_VALUES)
                    time += rng.randint(1, step) * S
            for _ in range(rng.choice([0, 0, 1, 3])):  # a day old: known only for a while
                tags = {tag: rng.choice(TAG_VALUES[:3]) for tag in TAGS}
                at = first - 24 * 3600 * S + rng.randint(-5, len(ticks) + 3) * 60 * S - rng.choice([0, 30 * S])
                points.append(self.point(at, tags, rng.choice(_VALUES)))
            data[measurement] = points
        return data

    def point(self, at: int, tags: dict, level: int) -> dict:
        rng = self.rng
        point: dict = {"time": at}
        point.update((tag, value) for tag, value in tags.items() if value is not None)
        for name in FLOAT_FIELDS + INT_FIELDS:
            if rng.randrange(7):
                value = level + rng.choice([0, 0, 0, 1, -1, 2])
                point[name] = int(value) if name in INT_FIELDS else float(value)
        return point

    def columns(self, points: list[dict]) -> tuple[list[str], list[str], list[str]]:
        """The table's columns: every tag and field, or (sometimes) without one that no point has."""
        rng = self.rng
        tags, floats, ints = list(TAGS), list(FLOAT_FIELDS), list(INT_FIELDS)
        if rng.randrange(8) == 0:
            for names in (tags, floats, ints):
                for name in list(names):
                    if not any(name in p for p in points) and rng.randrange(2):
                        names.remove(name)
        return tags, floats, ints


def make_case(seed: int, *, ticks: int = 10, rules: int = 7, changes: int | None = None) -> Case:
    """A case from ``seed``: about ``rules`` rules at the start, ``changes`` ticks (0 to 3 when ``None``)
    before which the rule set changes."""
    b = _Builder(seed)
    rng = b.rng
    start = b.start = T0 + rng.randrange(0, 60) * MIN
    times = [start + i * MIN for i in range(ticks)]
    initial: list[a.Rule] = []
    while len(initial) < rules:
        initial.extend(b.family() if rng.randrange(2) else [b.general()])
    initial = b.dependencies(initial)
    named = [(rule.name, rule) for rule in initial]
    count = rng.choice([0, 1, 2, 3]) if changes is None else min(changes, ticks - 1)
    changes = {}
    live = dict(named)
    for index in sorted(rng.sample(range(1, ticks), count)):
        kind = rng.choice(["add", "add", "change", "change", "delete", "relabel"])
        if kind == "delete" and len(live) > 1:
            name = rng.choice(sorted(live))
            del live[name]
            changes.setdefault(index, []).append(("delete", name))
        elif kind in ("change", "relabel") and live:
            name = rng.choice(sorted(live))
            old = live[name]
            new = b.rethreshold(old) if kind == "change" else replace(old, labels=(("team", "c"),))
            live[name] = new
            changes.setdefault(index, []).append(("change", name, new))
        else:
            if rng.randrange(2) and live:  # the terms of a rule already there, another threshold
                template = live[rng.choice(sorted(live))]
                b.count += 1
                new = replace(b.rethreshold(template), name=f"r{b.count}")
            else:
                new = b.general()
            live[new.name] = new
            changes.setdefault(index, []).append(("add", new.name, new))
    points = b.points(times)
    columns = {m: b.columns(p) for m, p in points.items()}
    if rng.randrange(12) == 0:  # a measurement never written
        gone = rng.choice(MEASUREMENTS)
        points[gone], columns[gone] = [], None
    flap = FlapDetection(window=600, high=3, low=1) if rng.randrange(6) == 0 else None
    restart = rng.randrange(1, ticks) if rng.randrange(4) == 0 else None
    windows = {"page": b.window().text} if rng.randrange(3) == 0 else {}
    acks: dict[int, list[str]] = {}
    notified = [name for name, rule in named if rule.escalate is not None or rule.repeat_every is not None]
    for index in rng.sample(range(1, ticks), rng.choice([0, 1, 2])) if notified else ():
        acks[index] = rng.sample(notified, min(len(notified), rng.randint(1, 2)))
    return Case(seed, named, changes, points, columns, times, rng.choice([0.0, 120.0, 300.0]), flap, restart,
                windows, acks)


def points_every(measurement: str, tags: dict, start: datetime, seconds: int, values: list,
                 field: str = "usage") -> dict[str, list[dict]]:
    """``{measurement: points}``: one point of ``field`` every ``seconds`` from ``start``, ``None`` for none."""
    out = []
    for i, value in enumerate(values):
        if value is not None:
            out.append({"time": _ns(start) + i * seconds * S, **tags, field: float(value)})
    return {measurement: out}


def case_from(texts: list[str], points: dict[str, list[dict]], ticks: list[datetime], *,
              columns: dict | None = None, changes: dict[int, list[tuple]] | None = None,
              values_every: float = 0.0) -> Case:
    """A case written by hand: rule texts (named ``rule NAME {…}``), points and the ticks; ``columns``
    (measurement → tags, float and int fields) defaults to every tag and field of the schema; ``changes``
    gives texts where generated cases give rules."""
    def rule(text: str) -> a.Rule:
        (parsed,) = monitors_dsl.parse(text)
        return parsed

    data = {m: list(points.get(m, [])) for m in MEASUREMENTS}
    data.update(points)
    full = (list(TAGS), list(FLOAT_FIELDS), list(INT_FIELDS))
    chosen = {m: full for m in data}
    chosen.update(columns or {})
    moves = {index: [(c[0], c[1]) + ((rule(c[2]),) if len(c) > 2 else ()) for c in listed]
             for index, listed in (changes or {}).items()}
    return Case(-1, [(r.name, r) for r in map(rule, texts)], moves, data, chosen, ticks, values_every)


# --- the plain run ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a run decided, by rule name."""

    transitions: list = field(default_factory=list)  # (rule, series key, at, from, to, severity)
    notifications: list = field(default_factory=list)  # (rule, series key, at, kind, the notification's dict)
    alerts: list = field(default_factory=list)  # (rule, series key, started at, the alert's record)
    states: dict = field(default_factory=dict)  # (rule, series key) → SeriesState.to_dict(), non-default only
    errors: list = field(default_factory=list)  # (tick, rule, error)
    #: the engine's run only: how often each fast path was taken (rules skipped, rules decided in cohorts,
    #: merged queries, rule sets laid out from the last layout, rules written by a shared store write)
    fast_paths: dict = field(default_factory=dict)
    #: the plain run only: (rule, time) of decisions on a near tie of a value SQL rounds otherwise
    ties: list = field(default_factory=list)


def store_ids(case: Case) -> dict[str, str]:
    """The id each rule gets in a fresh store: in the order the rules are created."""
    names = [name for name, _ in case.rules]
    names += [c[1] for _, changes in sorted(case.changes.items()) for c in changes if c[0] == "add"]
    return {name: str(i) for i, name in enumerate(names, start=1)}


def run_plain(case: Case) -> Outcome:
    plain = PlainEngine(case.values_every, case.flap,
                        {name: parse_window(text) for name, text in case.channel_windows.items()})
    ids = store_ids(case)
    names = {i: name for name, i in ids.items()}
    for name, rule in case.rules:
        plain.put(ids[name], _text(rule))
    for index, at in enumerate(case.ticks):
        for change in case.changes.get(index, ()):
            if change[0] == "delete":
                plain.delete(ids[change[1]])
            else:
                plain.put(ids[change[1]], _text(change[2]))
        for name in case.acks.get(index, ()):
            if ids[name] in plain.rules:
                plain.acknowledge(ids[name])
        plain.tick(at, case.points)
    out = Outcome()
    out.transitions = sorted((names[t[0]],) + t[1:] for t in plain.transitions)
    out.notifications = sorted(_delivery(names[rule_id], channel, status, reason, n)
                               for rule_id, _, channel, status, reason, n in plain.deliveries)
    out.alerts = sorted(((names[al.rule_id], al.series_key, al.started_at,
                          _alert(al.labels, al.severity, al.state, al.resolved_at, al.values_at_start,
                                 al.values_at_resolution, al.events)) for al in plain.alerts), key=lambda x: x[:3])
    for rule_id, known in plain.states.items():
        for key, state in known.items():
            settled = _settled(case, state)
            if settled is not None:
                out.states[(names[rule_id], key)] = settled
    out.ties = [(names[rule_id], at) for rule_id, at in plain.ties]
    return out


def _settled(case: Case, state: SeriesState) -> dict | None:
    """A series state as compared (``None`` for the initial state). The times of recent changes that an
    inactive, non-flapping series keeps are bookkeeping its next step prunes to the flap window, whenever that
    comes: both runs' are pruned to the window at the last tick."""
    if case.flap is not None and state.state == INACTIVE and not state.flapping and state.changes:
        horizon = case.ticks[-1] - timedelta(seconds=case.flap.window)
        state = replace(state, changes=tuple(t for t in state.changes if t > horizon))
    if state == SeriesState() or state == replace(SeriesState(), notice_at=state.notice_at):
        return None
    data = state.to_dict()
    data.pop("notice_at", None)  # when the notifier looks again: the engine's bookkeeping
    return data


def _text(rule: a.Rule) -> str:
    return monitors_dsl.canonical(print_rule(rule))


def _delivery(rule: str, channel: str, status: str, reason: str | None, data: dict) -> tuple:
    """A notification on one channel as compared: what it says, and its outbox status and held reason. The
    idempotency key is the engine's own business (a firing notice the notifier makes has one of its own)."""
    data = dict(data)
    data["rule_id"] = rule
    data.pop("idempotency_key", None)
    return (rule, data["series_key"], data["at"], data["kind"], channel, status, reason or None, data)


def _alert(labels, severity, state, resolved_at, at_start, at_resolution, events) -> dict:
    return {"labels": dict(labels), "severity": severity, "state": state, "resolved_at": resolved_at,
            "values_at_start": at_start, "values_at_resolution": at_resolution, "events": list(events)}


# --- the engine run ---------------------------------------------------------------------------


class _Recording(SqlRepository):
    """The store repository, noting every series update the runner hands it."""

    def __init__(self, db) -> None:
        super().__init__(db)
        self.updates: list[tuple[str, object]] = []
        self.shared_failures: list[str] = []  # shared writes that failed (their rules then written one by one)
        self.shared = 0  # rules written by shared writes

    def record_many(self, at, entries, **given):
        for rule, updates, _ in entries:
            self.updates.extend((rule.id, u) for u in updates)
        return super().record_many(at, entries, **given)

    def _record_states(self, entries):
        return self._noted(super()._record_states, entries)

    def _record_alerts(self, entries):
        return self._noted(super()._record_alerts, entries)

    def _noted(self, write, entries):
        try:
            written = write(entries)
        except Exception as error:
            self.shared_failures.append(f"{type(error).__name__}: {error}")
            raise
        self.shared += len(entries)
        return written


_TEMPLATE: list[tuple[Path, int]] = []


def _template() -> tuple[Path, int]:
    """A migrated SQLite store with one user and its channels, made once per process and copied for every
    case."""
    if not _TEMPLATE:
        from monitors_mcp.service import ChannelService, UserService
        from monitors_mcp.store import Database
        from monitors_mcp.store.secrets import SecretBox

        folder = Path(tempfile.mkdtemp(prefix="engine-differential-"))
        path = folder / "template.db"
        db = Database(f"sqlite:///{path}")
        db.migrate()
        user = UserService(db).add_user("differential")
        channels = ChannelService(db, user, SecretBox.generate())
        for name in CHANNELS:  # never dispatched: the outbox rows are what is compared
            channels.add(name, "json://receiver.example/")
        db.dispose()
        _TEMPLATE.append((path, user))
    return _TEMPLATE[0]


_SOURCE: list[DataFusionSource] = []


def _source(case: Case) -> DataFusionSource:
    if not _SOURCE:
        _SOURCE.append(DataFusionSource(name="generated data"))
    source = _SOURCE[0]
    for measurement in source.measurements:
        source.remove_table(measurement)
    for measurement, points in case.points.items():
        columns = case.columns.get(measurement)
        if columns is None:
            continue  # never written: no table
        tags, floats, ints = columns
        source.add_table(measurement, to_table(points, tags, floats, ints), tags=tags)
    return source


def run_engine(case: Case) -> Outcome:
    from monitors_mcp.service.alerts import AlertService
    from monitors_mcp.service.rules import RuleService
    from monitors_mcp.store import Alert, AlertEvent, Database, NotificationOutbox, RuleState

    template, user = _template()
    path = template.with_name(f"case-{case.seed}-{random.getrandbits(32):08x}.db")
    shutil.copyfile(template, path)
    db = Database(f"sqlite:///{path}")
    try:
        if case.channel_windows:
            from monitors_mcp.store import NotificationChannel

            with db.session() as session:
                for name, text in case.channel_windows.items():
                    session.execute(sa_update(NotificationChannel).where(NotificationChannel.name == name)
                                    .values(mute_during=text))
        service = RuleService(db, user)
        alerts = AlertService(db, user)
        expected = store_ids(case)
        ids: dict[str, int] = {}

        def create(name: str, rule: a.Rule) -> None:
            ids[name] = service.create(_text(rule)).id
            assert str(ids[name]) == expected[name], "the store gave ids in another order than expected"

        for name, rule in case.rules:
            create(name, rule)
        source = _source(case)

        def start(updates: list) -> tuple[_Recording, Runner]:
            repository = _Recording(db)
            repository.updates = updates
            rules = StoreRules(db, RuleBuilder(case.flap))
            return repository, Runner(rules, repository, Evaluator(source), values_every=case.values_every)

        repository, runner = start([])
        out = Outcome()
        counts = out.fast_paths = dict.fromkeys(("skipped", "in cohorts", "merged queries", "laid out from the last",
                                                 "written together", "outside active during"), 0)
        last = None
        shared = 0
        for index, at in enumerate(case.ticks):
            if index == case.restart:
                shared += repository.shared
                repository, runner = start(repository.updates)
            for change in case.changes.get(index, ()):
                if change[0] == "delete":
                    service.delete(ids[change[1]])
                elif change[0] == "add":
                    create(change[1], change[2])
                else:
                    service.update(ids[change[1]], _text(change[2]))
            for name in case.acks.get(index, ()):
                with db.session() as session:
                    firing = list(session.scalars(select(Alert.id).where(Alert.rule_id == ids[name],
                                                                         Alert.state == "firing")))
                for alert_id in firing:
                    alerts.acknowledge(alert_id)
            report = runner.tick(at)
            evaluation = report.evaluation
            if evaluation is not None:
                counts["skipped"] += evaluation.skipped
                counts["in cohorts"] += sum(1 for r in evaluation.results if r.candidates is not None)
                counts["merged queries"] += sum(1 for q in evaluation.plan.queries if q.tag is not None)
                counts["outside active during"] += sum(1 for r in evaluation.results if not r.active)
                if last is not None and last.rules != evaluation.rules and last.plan.scans is evaluation.plan.scans:
                    counts["laid out from the last"] += 1
                last = evaluation
            out.errors.extend((index, rule_id, error) for rule_id, error in sorted(report.errors.items()))
            out.errors.extend((index, "(shared write)", error) for error in repository.shared_failures)
            repository.shared_failures.clear()
        counts["written together"] = shared + repository.shared
        names = {str(i): name for name, i in ids.items()}
        out.errors = [(index, names.get(rule_id, rule_id), error) for index, rule_id, error in out.errors]
        out.transitions = sorted((names[rule_id], u.series_key, t.at, t.from_state, t.to_state, t.severity)
                                 for rule_id, u in repository.updates for t in u.step.transitions)
        with db.session() as session:
            for row in session.scalars(select(NotificationOutbox)):
                n = row.payload["notification"]
                out.notifications.append(_delivery(names[n["rule_id"]], row.payload.get("channel"), row.status,
                                                   row.held_reason, n))
            events: dict[int, list] = {}
            for e in session.scalars(select(AlertEvent).order_by(AlertEvent.id)):
                if e.kind not in ("closed", "acknowledged"):  # the service's, at the wall clock
                    events.setdefault(e.alert_id, []).append((e.kind, _utc(e.at), e.from_state, e.to_state,
                                                              e.severity, e.values))
            for al in session.scalars(select(Alert)):
                closed = al.state == "resolved" and al.values_at_resolution is None and not any(
                    kind == "resolved" for kind, *_ in events.get(al.id, []))
                resolved_at = CLOSED_BY_CHANGE if closed else _utc(al.resolved_at)
                out.alerts.append((names[str(al.rule_id)], al.series_key, _utc(al.started_at),
                                   _alert(al.labels, al.severity, al.state, resolved_at, al.values_at_start,
                                          al.values_at_resolution, events.get(al.id, []))))
            deleted = {c[1] for changes in case.changes.values() for c in changes if c[0] == "delete"}
            live = {str(i) for name, i in ids.items() if name not in deleted}
            for row in session.scalars(select(RuleState)):
                if str(row.rule_id) in live and row.machine:
                    settled = _settled(case, SeriesState.from_dict(row.machine))
                    if settled is not None:
                        out.states[(names[str(row.rule_id)], row.series_key)] = settled
        out.notifications.sort()
        out.alerts.sort(key=lambda x: x[:3])
        return out
    finally:
        db.dispose()
        path.unlink(missing_ok=True)


def _utc(moment):
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * S


# --- the comparison ---------------------------------------------------------------------------


def _close(x, y) -> bool:
    """Equal, numbers within 1e-9 relative (sums, means and deviations are rounded differently in SQL)."""
    if isinstance(x, bool) or isinstance(y, bool):
        return x is y
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return x == y or abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1e-300) or (math.isnan(x) and math.isnan(y))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_close(i, j) for i, j in zip(x, y))
    return x == y


def differences(engine: Outcome, plain: Outcome, limit: int = 6) -> list[str]:
    """The first differences between the engine's run and the plain one, each described."""
    out = []
    for index, rule, error in engine.errors[:limit]:
        out.append(f"tick {index}: rule {rule} in error: {error}")
    for name in ("transitions", "notifications", "alerts"):
        mine, theirs = getattr(engine, name), getattr(plain, name)
        if _close(mine, theirs):
            continue
        only_engine = [x for x in mine if not any(_close(x, y) for y in theirs)]
        only_plain = [y for y in theirs if not any(_close(x, y) for x in mine)]
        for x in only_engine[:limit]:
            out.append(f"{name}: the engine has {describe(x)}")
        for y in only_plain[:limit]:
            out.append(f"{name}: the plain definition has {describe(y)}")
        if not only_engine and not only_plain:
            out.append(f"{name}: the same records, counted differently ({len(mine)} vs {len(theirs)})")
    keys = sorted(set(engine.states) | set(plain.states))
    for key in keys:
        if not _close(engine.states.get(key), plain.states.get(key)):
            out.append(f"state of {key[0]} {key[1][:8]}: engine {engine.states.get(key)} vs plain "
                       f"{plain.states.get(key)}")
            if len(out) > 4 * limit:
                break
    return out


def describe(record) -> str:
    parts = []
    for item in record:
        if isinstance(item, datetime):
            parts.append(f"{item:%H:%M:%S}")
        elif isinstance(item, str) and len(item) == 64:
            parts.append(item[:8])
        else:
            parts.append(repr(item))
    return " ".join(parts)
