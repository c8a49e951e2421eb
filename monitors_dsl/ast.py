"""The rule language's syntax tree: frozen dataclasses, a span on every node.

Spans never take part in equality, so two trees compare equal when they mean
the same rule, wherever their text came from (``parse(canonical(r)) == r``).
Defaults are filled in when the tree is built (a window left out is ``5m``,
``every`` left out is ``1m``), so the tree always holds the effective values.

Each node class names the fields holding its sub-expressions in ``child_fields``
(its only declaration of structure): :func:`children`, :func:`walk` and
:func:`depth` read it, and every pass over the tree (printer, checker,
describer, predicate compiler, reference evaluator) is a :class:`Visitor` with
one method per node class, found by name.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import ClassVar, Sequence, Union

__all__ = [
    "Span",
    "NO_SPAN",
    "Duration",
    "Filter",
    "Selector",
    "Number",
    "Aggregate",
    "Abs",
    "Negate",
    "Arithmetic",
    "Comparison",
    "Logical",
    "Not",
    "Invalid",
    "Expr",
    "Rule",
    "Route",
    "Escalation",
    "Dependency",
    "Slo",
    "BurnAlert",
    "SLO_AGGREGATES",
    "DEFAULT_BURN_ALERTS",
    "AGGREGATES",
    "NUMERIC_AGGREGATES",
    "BOOLEAN_AGGREGATES",
    "DURATION_PARAMETER",
    "SEVERITIES",
    "NO_DATA_ACTIONS",
    "FILTER_OPS",
    "DEFAULT_WINDOW",
    "DEFAULT_EVERY",
    "DURATION_UNITS",
    "duration_parts",
    "INCOMPLETE",
    "children",
    "walk",
    "depth",
    "aggregates",
    "Visitor",
    "UnhandledNode",
]


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node sits in its text: character offsets ``start``/``end``.

    ``line``/``column`` (1-based) and ``end_line``/``end_column`` (just past the
    last character) are worked out on demand from the text's line starts, so
    building a tree costs no line arithmetic.
    """

    start: int
    end: int
    line_starts: Sequence[int] | None = field(default=None, compare=False, repr=False)

    def _position(self, offset: int) -> tuple[int, int]:
        if not self.line_starts:
            return 1, offset + 1
        line = bisect.bisect_right(self.line_starts, offset) - 1
        return line + 1, offset - self.line_starts[line] + 1

    @property
    def line(self) -> int:
        return self._position(self.start)[0]

    @property
    def column(self) -> int:
        return self._position(self.start)[1]

    @property
    def end_line(self) -> int:
        return self._position(self.end)[0]

    @property
    def end_column(self) -> int:
        return self._position(self.end)[1]


NO_SPAN = Span(0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


# --- values -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Duration:
    """A whole number of seconds, written with units: ``90s``, ``1h30m``."""

    seconds: int
    span: Span = _span()


#: the unit letters of a duration, largest first, with their seconds
DURATION_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration_parts(seconds: int) -> list[tuple[int, str]]:
    """``5400`` → ``[(1, "h"), (30, "m")]``: whole units, largest first, none for zero."""
    parts = []
    for unit, size in DURATION_UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append((count, unit))
    return parts


DEFAULT_WINDOW = Duration(300)
DEFAULT_EVERY = Duration(60)
ZERO = Duration(0)

FILTER_OPS = ("=", "!=", "=~", "!~", "in", "not in")


@dataclass(frozen=True, slots=True)
class Filter:
    """One tag condition inside ``{…}``; ``value`` is a tuple for ``in``/``not in``."""

    tag: str
    op: str
    value: Union[str, tuple[str, ...]]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Selector:
    """``measurement.field{filters}``: the points one aggregate reads."""

    measurement: str
    field: str
    filters: tuple[Filter, ...] = ()
    span: Span = _span()


# --- expressions --------------------------------------------------------------

NUMERIC_AGGREGATES = (
    "last",
    "first",
    "min",
    "max",
    "avg",
    "sum",
    "median",
    "count",
    "count_series",
    "stddev",
    "spread",
    "percentile",
    "delta",
    "rate",
    "pct_change",
    "zscore",
)
#: aggregates whose ``parameter`` is a duration in seconds, written after the window (``zscore``'s baseline)
DURATION_PARAMETER = ("zscore",)
BOOLEAN_AGGREGATES = ("absent",)
AGGREGATES = NUMERIC_AGGREGATES + BOOLEAN_AGGREGATES


@dataclass(frozen=True, slots=True)
class Number:
    """A number as written. ``5%`` is ``Number(5, percent=True)``, worth ``0.05``."""

    child_fields: ClassVar[tuple[str, ...]] = ()

    literal: float
    percent: bool = False
    span: Span = _span()

    @property
    def value(self) -> float:
        return self.literal / 100 if self.percent else self.literal


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``function(selector[, parameter][, window]) [offset D]``.

    ``parameter`` is the percentile rank (0–100) for ``percentile``, the
    baseline in seconds for ``zscore`` (written after the window) and None
    otherwise. The term sees points with ``T - offset - window < time <= T - offset``.
    """

    child_fields: ClassVar[tuple[str, ...]] = ()

    function: str
    selector: Selector
    window: Duration = DEFAULT_WINDOW
    offset: Duration = ZERO
    parameter: float | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class _Unary:
    """An operator applied to one expression."""

    child_fields: ClassVar[tuple[str, ...]] = ("operand",)

    operand: "Expr"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class _Binary:
    """An operator ``op`` between two expressions."""

    child_fields: ClassVar[tuple[str, ...]] = ("left", "right")

    op: str
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Abs(_Unary):
    """``abs(operand)``."""


@dataclass(frozen=True, slots=True)
class Negate(_Unary):
    """``-operand`` (a negative number is a ``Number``)."""


@dataclass(frozen=True, slots=True)
class Not(_Unary):
    """``not operand``."""


@dataclass(frozen=True, slots=True)
class Arithmetic(_Binary):
    """``left op right`` with op one of ``+ - * /``."""


@dataclass(frozen=True, slots=True)
class Comparison(_Binary):
    """``left op right`` with op one of ``> >= < <= == !=``."""


@dataclass(frozen=True, slots=True)
class Logical(_Binary):
    """``left and right`` / ``left or right``."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """Stands where text could not become a node; a diagnostic already says why."""

    child_fields: ClassVar[tuple[str, ...]] = ()

    text: str
    span: Span = _span()


Expr = Union[Number, Aggregate, Abs, Negate, Arithmetic, Comparison, Logical, Not, Invalid]


# --- rules --------------------------------------------------------------------

SEVERITIES = ("critical", "warning", "info")
#: a key of ``Rule.clause_spans`` marking a rule whose text had syntax errors (rule-level checks skip it)
INCOMPLETE = "__incomplete__"
NO_DATA_ACTIONS = ("ok", "alert", "keep")


@dataclass(frozen=True, slots=True)
class Route:
    """One ``notify CHANNELS [on SEVERITIES]`` clause: its channels and the severities it covers
    (``()``: every severity)."""

    channels: tuple[str, ...]
    severities: tuple[str, ...] = ()
    span: Span = _span()

    def covers(self, severity: str) -> bool:
        """Whether a notification of ``severity`` goes to this route's channels."""
        return not self.severities or severity in self.severities


@dataclass(frozen=True, slots=True)
class Escalation:
    """``escalate to CHANNELS after DURATION``: an alert firing that long unacknowledged is told to these
    channels too, once."""

    channels: tuple[str, ...]
    after: Duration
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Dependency:
    """``depends on RULE [on TAG, …]``: this rule's notifications are held while ``rule`` has a firing
    series (with equal values of ``tags``, or any series when there are none)."""

    rule: str
    tags: tuple[str, ...] = ()
    span: Span = _span()


def _channels_of(routes) -> tuple[str, ...]:
    """The channels of ``routes``, each once, in the order first named."""
    return tuple(dict.fromkeys(channel for route in routes for channel in route.channels))


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule with every clause at its effective value.

    A bare condition is a rule with ``name=None`` and only ``when`` set.
    ``clause_spans`` maps a clause keyword (``"every"``, ``"critical when"`` …)
    to where it was written, for diagnostics; it takes no part in equality.
    """

    child_fields: ClassVar[tuple[str, ...]] = ("when", "critical_when", "warning_when", "info_when", "resolve_when")

    name: str | None = None
    when: Expr | None = None
    critical_when: Expr | None = None
    warning_when: Expr | None = None
    info_when: Expr | None = None
    resolve_when: Expr | None = None
    group_by: tuple[str, ...] = ()
    every: Duration = DEFAULT_EVERY
    for_: Duration = ZERO
    keep_firing_for: Duration = ZERO
    on_no_data: str = "keep"
    severity: str = "warning"
    labels: tuple[tuple[str, str], ...] = ()
    notify: tuple[str, ...] = ()
    repeat_every: Duration | None = None
    title: str | None = None
    message: str | None = None
    description: str | None = None
    #: the ``slo`` block this rule was written as (its conditions are that block's expansion), else None
    slo: "Slo | None" = None
    #: ``active during``: outside this window (a ``windows.TimeWindow``) every firing condition is false
    active_during: "TimeWindow | None" = None
    #: ``mute during``: notifications falling inside this window are recorded as muted, not sent
    mute_during: "TimeWindow | None" = None
    #: one ``Route`` per ``notify`` clause, in order; ``notify`` is the union of their channels
    routes: tuple[Route, ...] = ()
    escalate: Escalation | None = None
    depends_on: Dependency | None = None
    span: Span = _span()
    clause_spans: dict = field(default_factory=dict, compare=False, repr=False, kw_only=True, hash=False)

    @property
    def conditions(self) -> tuple[tuple[str, Expr], ...]:
        """Firing conditions as ``(severity, condition)``, highest severity first."""
        if self.when is not None:
            return ((self.severity, self.when),)
        pairs = (
            ("critical", self.critical_when),
            ("warning", self.warning_when),
            ("info", self.info_when),
        )
        return tuple((sev, cond) for sev, cond in pairs if cond is not None)

    def __hash__(self) -> int:  # dict fields are unhashable; hash what equality uses
        return hash((self.name, self.when, self.critical_when, self.warning_when, self.info_when,
                     self.resolve_when, self.group_by, self.every, self.for_, self.keep_firing_for,
                     self.on_no_data, self.severity, self.labels, self.notify, self.repeat_every,
                     self.title, self.message, self.description, self.slo, self.active_during,
                     self.mute_during, self.routes, self.escalate, self.depends_on))

    def __post_init__(self) -> None:
        # ``notify`` and ``routes`` say the same thing: a rule made with only ``notify=(…)`` has one
        # route covering every severity; ``notify`` is always the routes' channels, each once.
        if not self.routes and self.notify:
            object.__setattr__(self, "routes", (Route(tuple(self.notify)),))
        if self.routes:
            object.__setattr__(self, "notify", _channels_of(self.routes))


# --- SLO blocks -----------------------------------------------------------------

#: the aggregates an SLO's ``bad`` and ``total`` may use: counts of events (``count``) or sums of counts (``sum``)
SLO_AGGREGATES = ("sum", "count")


@dataclass(frozen=True, slots=True)
class BurnAlert:
    """One multi-window burn-rate alert of an SLO: fires when the burn rate is above ``threshold``
    over both the ``long`` and the ``short`` window."""

    threshold: float
    long: Duration
    short: Duration
    span: Span = _span()


#: the three alerts of the SRE workbook: two pages (critical) and a ticket (warning), by keyword
DEFAULT_BURN_ALERTS = {
    "page": BurnAlert(14.4, Duration(3600), Duration(300)),
    "slow page": BurnAlert(6.0, Duration(6 * 3600), Duration(1800)),
    "ticket": BurnAlert(1.0, Duration(3 * 86400), Duration(6 * 3600)),
}


@dataclass(frozen=True, slots=True)
class Slo:
    """An ``slo`` block as written: ``bad`` and ``total`` (aggregates whose windows the block supplies,
    held at the default window), the ``objective`` (a percentage) and the three burn-rate alerts."""

    bad: Aggregate
    total: Aggregate
    objective: Number
    page: BurnAlert = DEFAULT_BURN_ALERTS["page"]
    slow_page: BurnAlert = DEFAULT_BURN_ALERTS["slow page"]
    ticket: BurnAlert = DEFAULT_BURN_ALERTS["ticket"]
    span: Span = _span()

    @property
    def alerts(self) -> tuple[tuple[str, str, BurnAlert], ...]:
        """``(keyword, severity, alert)`` for each of the three alerts, in canonical order."""
        return (("page", "critical", self.page), ("slow page", "critical", self.slow_page),
                ("ticket", "warning", self.ticket))


# --- traversal ----------------------------------------------------------------


def children(node) -> tuple:
    """The sub-expressions of ``node``, in source order, from its class's ``child_fields``.

    A rule's children are its conditions (``when`` … ``resolve when``, those given);
    a leaf, a selector, a duration or a filter has none.
    """
    fields = getattr(node, "child_fields", ())
    if not fields:
        return ()
    return tuple(child for child in map(node.__getattribute__, fields) if child is not None)


def walk(node):
    """Yield ``node`` and every expression below it, parents before children, left to right."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        fields = getattr(current, "child_fields", ())
        for name in reversed(fields):
            child = getattr(current, name)
            if child is not None:
                stack.append(child)


def depth(node) -> int:
    """How deeply ``node`` nests (a leaf is 1), worked out without recursion."""
    deepest = 0
    stack = [(node, 1)]
    while stack:
        current, level = stack.pop()
        if level > deepest:
            deepest = level
        for name in getattr(current, "child_fields", ()):
            child = getattr(current, name)
            if child is not None:
                stack.append((child, level + 1))
    return deepest


def aggregates(node) -> list[Aggregate]:
    """Aggregate calls below ``node`` in source order (left to right)."""
    return [n for n in walk(node) if isinstance(n, Aggregate)]


class UnhandledNode(TypeError):
    """A pass over the tree met a node class it has no method for."""


class Visitor:
    """A pass over the tree: one method per node class, found by name.

    ``visit(node, *args)`` calls ``visit_<NodeClass>`` (``visit_Aggregate`` …);
    ``dispatch(family, node, *args)`` calls ``<family>_<NodeClass>``, for a pass
    with several kinds of method (the predicate compiler's ``numeric_…`` and
    ``boolean_…``). A node without a method is one :class:`UnhandledNode` error
    naming the pass (``pass_name``) and the node. Methods are looked up once
    per class and cached.
    """

    __slots__ = ()
    pass_name: ClassVar[str] = "this pass"
    _methods: ClassVar[dict]  # (family, node class) → function
    _visits: ClassVar[dict]  # node class → its ``visit_…`` function

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._methods = {}
        cls._visits = {}

    def visit(self, node, *args):
        method = self._visits.get(node.__class__)
        if method is None:
            method = self._visits[node.__class__] = self._method("visit", node.__class__)
        return method(self, node, *args)

    def dispatch(self, family: str, node, *args):
        method = self._methods.get((family, node.__class__))
        if method is None:
            method = self._method(family, node.__class__)
        return method(self, node, *args)

    @classmethod
    def _method(cls, family: str, node_class: type):
        name = f"{family}_{node_class.__name__}"
        method = getattr(cls, name, None)
        if method is None:
            raise UnhandledNode(f"{cls.pass_name} does not handle {node_class.__name__} nodes here "
                                f"(no method {cls.__name__}.{name})")
        cls._methods[(family, node_class)] = method
        return method
