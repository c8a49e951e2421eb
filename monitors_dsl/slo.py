"""SLO blocks: an objective and its events, expanded into multi-window, multi-burn-rate alerts.

    slo api_availability {
        bad sum(http.errors{service="api"})
        total sum(http.requests{service="api"})
        objective 99.9%
    }

is the rule (the alerts of the Google SRE workbook, chapter 5)::

    critical when (burn(1h) > 14.4 and burn(5m) > 14.4) or (burn(6h) > 6 and burn(30m) > 6)
    warning when burn(3d) > 1 and burn(6h) > 1

where ``burn(W)`` is ``sum(http.errors{service="api"}, W) / sum(http.requests{service="api"}, W) / (1 - 99.9%)``:
the share of bad events over the window, divided by the share the objective allows (the error budget).
``page``, ``slow page`` and ``ticket`` override the threshold and the windows of each alert.

The parser builds the expanded :class:`~monitors_dsl.ast.Rule` with the block in ``Rule.slo`` (the
printer prints the block as written); every pass after it sees an ordinary rule with two severities.
The checks of what only an SLO block says (its terms, objective and alerts) are here, called by the
parser's tree builder as each clause is made.
"""

from __future__ import annotations

import dataclasses

from . import ast as a
from .errors import Diagnostics
from .printer import print_duration, print_expr, print_number, print_selector

__all__ = ["SLO_CLAUSES", "SloChecks", "burn_rate", "expand", "slo_rule", "budget", "expanded_lines",
           "print_term", "ON_NO_DATA"]

#: the clauses only an slo block has, as the parser names them
SLO_CLAUSES = ("bad", "total", "objective", "page", "slow page", "ticket")
#: what a no-data result does in an slo block unless it says otherwise: the alerts resolve (see docs)
ON_NO_DATA = "ok"
#: rule clauses an slo block cannot hold: it supplies its own conditions and severities
_RULE_ONLY = ("when", "critical when", "warning when", "info when", "resolve when", "severity")
_EXAMPLE = 'slo api_availability { bad sum(http.errors{service="api"}) total sum(http.requests{service="api"}) ' \
           'objective 99.9% }'


def print_term(node: a.Aggregate) -> str:
    """``sum(http.errors{service="api"})``: an SLO term as written, without a window."""
    return f"{node.function}({print_selector(node.selector)})"


def budget(slo: a.Slo) -> a.Arithmetic:
    """``1 - objective``: the share of events allowed to be bad."""
    return a.Arithmetic("-", a.Number(1.0), slo.objective, span=slo.objective.span)


def burn_rate(slo: a.Slo, window: a.Duration):
    """The burn rate over ``window``: ``bad(window) / total(window) / (1 - objective)``."""
    bad = a.Aggregate(slo.bad.function, slo.bad.selector, window, span=slo.bad.span)
    total = a.Aggregate(slo.total.function, slo.total.selector, window, span=slo.total.span)
    return a.Arithmetic("/", a.Arithmetic("/", bad, total, span=slo.bad.span), budget(slo), span=slo.bad.span)


def _alert(slo: a.Slo, alert: a.BurnAlert):
    threshold = a.Number(alert.threshold, span=alert.span)
    long = a.Comparison(">", burn_rate(slo, alert.long), threshold, span=alert.span)
    short = a.Comparison(">", burn_rate(slo, alert.short), threshold, span=alert.span)
    return a.Logical("and", long, short, span=alert.span)


def expand(slo: a.Slo) -> tuple:
    """``(critical, warning)``: the conditions of the two pages (either fires) and of the ticket."""
    critical = a.Logical("or", _alert(slo, slo.page), _alert(slo, slo.slow_page), span=slo.span)
    return critical, _alert(slo, slo.ticket)


def slo_rule(name: str | None, slo: a.Slo, **clauses) -> a.Rule:
    """The rule an slo block stands for (``clauses``: its other clauses, as ``Rule`` fields)."""
    critical, warning = expand(slo)
    clauses.setdefault("on_no_data", ON_NO_DATA)
    return a.Rule(name=name, critical_when=critical, warning_when=warning, slo=slo, **clauses)


def expanded_lines(rule: a.Rule) -> list[str]:
    """The expanded conditions as ``monitors explain`` shows them, one pair of windows per parenthesis."""
    slo = rule.slo

    def pair(alert: a.BurnAlert) -> str:
        return print_expr(_alert(slo, alert))

    return [f"critical when ({pair(slo.page)}) or ({pair(slo.slow_page)})", f"warning when {pair(slo.ticket)}"]


class SloChecks:
    """The checks of an slo block's own clauses, given what was written; each returns what the tree holds
    (``None`` where the written text cannot stand, already reported)."""

    __slots__ = ("diags",)

    def __init__(self, diags: Diagnostics):
        self.diags = diags

    def term(self, keyword: str, node) -> a.Aggregate | None:
        """``bad`` / ``total``: one ``sum`` or ``count`` of a series, without a window or an offset."""
        if isinstance(node, a.Invalid):
            return None
        if not isinstance(node, a.Aggregate):
            self.diags.add("slo-not-aggregate", f"`{keyword}` is one aggregate of a series, not an expression",
                           node.span, f"write e.g. `{keyword} sum(http.{'errors' if keyword == 'bad' else 'requests'}"
                                      '{service="api"})`; the slo block divides bad by total itself')
            return None
        usage = f"{keyword} sum({print_selector(node.selector)})"
        if node.function not in a.SLO_AGGREGATES:
            self.diags.add("slo-aggregate", f"`{node.function}` cannot count an SLO's events",
                           node.span, f"write `{usage}` (a field holding counts) or `{keyword} count(…)` "
                                      "(one point per event): a burn rate is a ratio of counts")
            return None
        if node.window.span.end > node.window.span.start:
            self.diags.add("slo-window", f"`{keyword}` takes no window: the slo block supplies its windows",
                           node.window.span, f"write `{keyword} {print_term(node)}`; change the windows with "
                                             "`page`, `slow page` or `ticket` (e.g. `page 14.4 over 1h, 5m`)")
            return None
        if node.offset.seconds:
            self.diags.add("slo-offset", f"`{keyword}` takes no offset: an SLO measures the windows up to now",
                           node.offset.span, f"write `{keyword} {print_term(node)}`")
            return None
        return a.Aggregate(node.function, node.selector, span=node.span)

    def objective(self, number: a.Number) -> a.Number | None:
        """A percentage strictly between 0% and 100%."""
        if not number.percent:
            shown = print_number(number.literal)
            hint = (f"write `objective {print_number(round(number.literal * 100, 12))}%`" if 0 < number.literal < 1
                    else f"write `objective {shown}%`" if 0 < number.literal < 100 else "e.g. `objective 99.9%`")
            self.diags.add("slo-objective", f"the objective is a percentage, not `{shown}`", number.span, hint)
            return None
        if not 0 < number.literal < 100:
            self.diags.add("slo-objective-range", "the objective must lie strictly between 0% and 100%",
                           number.span, "e.g. `objective 99.9%` (at most one bad event in a thousand)")
            return None
        return number

    def burn(self, keyword: str, threshold: a.Number, long: a.Duration | None, short: a.Duration | None,
             span: a.Span) -> a.BurnAlert | None:
        """An alert's threshold (a positive multiple) and, when given, its long and short windows."""
        default = a.DEFAULT_BURN_ALERTS[keyword]
        example = (f"`{keyword} {print_number(default.threshold)} over {print_duration(default.long)}, "
                   f"{print_duration(default.short)}`")
        if threshold.percent:
            self.diags.add("slo-threshold", "a burn-rate threshold is a multiple of the budgeted rate, "
                           "not a percentage", threshold.span, f"write e.g. {example}")
            return None
        if threshold.literal <= 0:
            self.diags.add("slo-threshold", "a burn-rate threshold must be above 0", threshold.span,
                           f"write e.g. {example}")
            return None
        if long is None:
            return a.BurnAlert(threshold.literal, default.long, default.short, span=span)
        for window in (long, short):
            if window.seconds <= 0:
                self.diags.add("slo-windows", "a burn-rate window must be longer than 0s", window.span,
                               f"write e.g. {example}")
                return None
        if short.seconds >= long.seconds:
            self.diags.add("slo-windows", f"the short window ({print_duration(short)}) must be shorter than "
                           f"the long one ({print_duration(long)})", short.span,
                           f"write the long window first, e.g. {example}")
            return None
        return a.BurnAlert(threshold.literal, long, short, span=span)

    def rule_clause(self, keyword: str, span: a.Span) -> None:
        """A rule clause an slo block cannot hold."""
        if keyword == "severity":
            hint = "the pages are critical and the ticket a warning; route them with `notify CHANNEL on critical`"
        else:
            hint = ("the block's conditions are its burn-rate alerts: change them with `page`, `slow page` or "
                    "`ticket` (e.g. `page 14.4 over 1h, 5m`), or write another condition in a `rule` block")
        self.diags.add("rule-clause-in-slo", f"an slo block has no `{keyword}` clause", span, hint)

    def slo_clause(self, keyword: str, span: a.Span) -> None:
        """An slo clause in a rule block."""
        self.diags.add("slo-clause-in-rule", f"`{keyword}` belongs in an `slo` block, not in a rule", span,
                       f"write e.g. `{_EXAMPLE}`")

    def missing(self, keywords: list[str], span: a.Span) -> None:
        self.diags.add("slo-incomplete", "this slo block has no " + " and no ".join(f"`{k}`" for k in keywords),
                       span, f"an slo block needs `bad`, `total` and `objective`, e.g. `{_EXAMPLE}`")

    def reachable(self, slo: a.Slo, spans: dict) -> None:
        """A warning for each alert whose threshold no burn rate can pass: with every event bad the burn
        rate is ``1 / (1 - objective)``."""
        highest = 1 / budget_value(slo)
        for keyword, _, alert in slo.alerts:
            if alert.threshold >= highest * (1 - 1e-12):
                where = spans.get(keyword) or spans.get("objective")
                self.diags.warn("slo-never-fires", f"`{keyword}` can never fire: with an objective of "
                                f"{print_expr(slo.objective)} the burn rate is at most {highest:.4g} "
                                f"(every event bad), not above {print_number(alert.threshold)}",
                                where, f"lower its threshold below {highest:.4g}, or raise the objective")


def budget_value(slo: a.Slo) -> float:
    """``1 - objective`` as a number."""
    return 1.0 - slo.objective.value


def assemble(name, clauses: list, span: a.Span, diags: Diagnostics, assemble_rule, incomplete: str) -> a.Rule:
    """The rule of an slo block from its clauses (the parser's ``_Clause``s); ``assemble_rule`` assembles
    the rule clauses it shares with a rule block."""
    checks = SloChecks(diags)
    own: dict = {}
    rest = []
    for clause in clauses:
        if clause.keyword in SLO_CLAUSES:
            first = own.get(clause.keyword)
            if first is not None:
                diags.add("duplicate-clause", f"`{clause.keyword}` is given twice (first on line {first.span.line})",
                          clause.span, "give each clause once")
            else:
                own[clause.keyword] = clause
        elif clause.keyword in _RULE_ONLY:
            checks.rule_clause(clause.keyword, clause.span)
        else:
            rest.append(clause)
    rule = assemble_rule(name, rest, span, diags)
    spans = rule.clause_spans
    for keyword, clause in own.items():
        spans[keyword] = clause.span
    missing = [k for k in ("bad", "total", "objective") if k not in own]
    if missing:
        checks.missing(missing, spans.get("name") or span)
    values = {k: c.value for k, c in own.items()}
    if missing or any(values.get(k) is None for k in SLO_CLAUSES if k in own):
        spans[incomplete] = True  # reported already; the rule-level checks skip it
        return rule
    alerts = {k.replace(" ", "_"): values[k] for k in ("page", "slow page", "ticket") if k in values}
    slo = a.Slo(values["bad"], values["total"], values["objective"], span=span, **alerts)
    checks.reachable(slo, spans)
    on_no_data = rule.on_no_data if "on no data" in spans else ON_NO_DATA
    critical, warning = expand(slo)
    return dataclasses.replace(rule, critical_when=critical, warning_when=warning, on_no_data=on_no_data, slo=slo)
