"""A PNG chart of a backtest: each series' value, the thresholds, and when it fired.

One panel per rule. Lines are the value the templates call ``value`` (the
first aggregate of the firing condition) for every series; dashed lines are
the thresholds that condition compares it with, coloured by severity; shaded
spans are the times each series was firing.
"""

from __future__ import annotations

import io
from datetime import datetime

from monitors_dsl import ast as a

from .backtest import BacktestResult

__all__ = ["render_chart", "thresholds"]

_SEVERITY_COLOURS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4", None: "#7f7f7f"}


def thresholds(rule) -> list[tuple[str, float]]:
    """``(severity, number)`` for each comparison of the value aggregate with a constant."""
    ast_rule = rule.compiled.rule
    found = []
    for severity, condition in ast_rule.conditions:
        first = a.aggregates(condition)
        if not first:
            continue
        value_node = first[0]
        for node in a.walk(condition):
            if isinstance(node, a.Comparison):
                sides = (node.left, node.right)
                if value_node in sides:
                    other = sides[1] if sides[0] == value_node else sides[0]
                    if isinstance(other, a.Number):
                        found.append((severity, other.value))
    return found


def _label(labels: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(all)"


def render_chart(result: BacktestResult) -> bytes:
    """The chart as PNG bytes (needs matplotlib, part of the engine's packages)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rules = list(result.rules)
    figure, axes = plt.subplots(len(rules) or 1, 1, figsize=(10, 3.2 * max(1, len(rules))), squeeze=False)
    try:
        for axis, rule in zip(axes[:, 0], rules):
            points = result.history.get(rule.id, [])
            series: dict[str, list] = {}
            for point in points:
                series.setdefault(_label(point.labels), []).append(point)
            for name, items in sorted(series.items()):
                xs = [p.at for p in items if p.value is not None]
                ys = [p.value for p in items if p.value is not None]
                if xs:
                    axis.plot(xs, ys, linewidth=1.2, label=name)
            for severity, value in thresholds(rule):
                axis.axhline(value, linestyle="--", linewidth=1, color=_SEVERITY_COLOURS.get(severity),
                             label=f"{severity} threshold {value:g}")
            for start, end, severity in _firing_spans(result, rule):
                axis.axvspan(start, end, alpha=0.15, color=_SEVERITY_COLOURS.get(severity))
            axis.set_title(rule.name or rule.condition, fontsize=10, loc="left")
            axis.set_xlim(result.start, result.end)
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=7, loc="upper left")
            axis.grid(alpha=0.3)
        figure.autofmt_xdate()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()
    finally:
        plt.close(figure)


def _firing_spans(result: BacktestResult, rule) -> list[tuple[datetime, datetime, str | None]]:
    spans = []
    open_since: dict[str, tuple[datetime, str | None]] = {}
    for recorded in result.repository.transitions:
        if recorded.rule_id != rule.id:
            continue
        t = recorded.transition
        key = recorded.series_key
        if t.from_state == "firing" and key in open_since:  # resolved, or a severity change
            start, severity = open_since.pop(key)
            spans.append((start, t.at, severity))
        if t.to_state == "firing":
            open_since[key] = (t.at, t.severity)
    spans += [(start, result.end, severity) for start, severity in open_since.values()]
    return spans
