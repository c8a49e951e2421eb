"""The canonical printer: one standard layout for any rule tree.

``parse(print_rules(rules)) == rules`` and printing is idempotent. Keywords and
function names are lower-case, windows are always written, clauses at their
default are left out, clauses come in one fixed order, parentheses only where
precedence needs them.
"""

from __future__ import annotations

import functools
import math
import re

from . import ast as a
from .grammar import terminal_pattern

__all__ = [
    "print_rules",
    "print_rule",
    "print_expr",
    "print_selector",
    "print_duration",
    "print_string",
    "print_name",
    "print_number",
    "print_route",
    "print_dependency",
    "KEYWORDS",
]

KEYWORDS = frozenset(
    """rule when critical warning info resolve group by every for keep firing on no data
    severity labels notify repeat title message description and or not in offset""".split()
)



@functools.cache
def _identifier() -> re.Pattern:
    """A name the grammar reads bare (its ``NAME`` terminal), and nothing more."""
    return re.compile(terminal_pattern("NAME") + r"\Z")


# Binding strength; higher binds tighter.
_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7, "atom": 8}


def print_duration(duration: a.Duration | int) -> str:
    seconds = duration.seconds if isinstance(duration, a.Duration) else int(duration)
    if seconds == 0:
        return "0s"
    return "".join(f"{count}{unit}" for count, unit in a.duration_parts(seconds))


def print_name(name: str) -> str:
    """An identifier as is; anything else (or a keyword) in backticks."""
    if _identifier().match(name) and name.lower() not in KEYWORDS:
        return name
    escaped = name.replace("\\", "\\\\").replace("`", "\\`").replace("\n", "\\n").replace("\t", "\\t")
    return f"`{escaped}`"


def _escape_char(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if ch == '"':
        return '\\"'
    if ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF:
        return f"\\u{ord(ch):04x}"
    return ch


def print_string(value: str) -> str:
    """A double-quoted string; text with newlines as a triple-quoted block."""
    if "\n" in value:
        out = []
        for i, ch in enumerate(value):
            if ch == "\n":
                out.append("\n")
            elif ch == '"':
                # Escape a quote that starts a run or ends the text, so no `"""` forms.
                nxt = value[i + 1] if i + 1 < len(value) else ""
                out.append('\\"' if nxt in ('"', "") else '"')
            else:
                out.append(_escape_char(ch))
        return '"""' + "".join(out) + '"""'
    return '"' + "".join(_escape_char(ch) for ch in value) + '"'


def print_number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(float(value))


def print_selector(selector: a.Selector) -> str:
    text = f"{print_name(selector.measurement)}.{print_name(selector.field)}"
    if selector.filters:
        text += "{" + ", ".join(_print_filter(f) for f in selector.filters) + "}"
    return text


def _print_filter(flt: a.Filter) -> str:
    if flt.op in ("in", "not in"):
        values = ", ".join(print_string(v) for v in flt.value)
        return f"{print_name(flt.tag)} {flt.op} ({values})"
    return f"{print_name(flt.tag)}{flt.op}{print_string(flt.value)}"


def _precedence(node) -> int:
    op = getattr(node, "op", None)
    if op is not None:  # Logical and Arithmetic bind by their operator; every comparison binds alike
        return _PRECEDENCE["cmp"] if node.__class__ is a.Comparison else _PRECEDENCE[op]
    if node.__class__ is a.Not:
        return _PRECEDENCE["not"]
    if node.__class__ is a.Negate or (node.__class__ is a.Number and node.literal < 0):
        return _PRECEDENCE["neg"]
    return _PRECEDENCE["atom"]


class _Printer(a.Visitor):
    """Canonical text of an expression: one method per node."""

    __slots__ = ()
    pass_name = "the printer"

    def wrap(self, node, minimum: int) -> str:
        text = self.visit(node)
        return f"({text})" if _precedence(node) < minimum else text

    def visit_Number(self, node: a.Number) -> str:
        text = print_number(node.literal)
        return text + "%" if node.percent else text

    def visit_Aggregate(self, node: a.Aggregate) -> str:
        args = [print_selector(node.selector)]
        if node.function in a.DURATION_PARAMETER:
            args += [print_duration(node.window), print_duration(int(node.parameter))]
        else:
            if node.parameter is not None:
                args.append(print_number(node.parameter))
            args.append(print_duration(node.window))
        text = f"{node.function}({', '.join(args)})"
        if node.offset.seconds:
            text += f" offset {print_duration(node.offset)}"
        return text

    def visit_Abs(self, node: a.Abs) -> str:
        return f"abs({self.visit(node.operand)})"

    def visit_Negate(self, node: a.Negate) -> str:
        # `- -x` would read as one token sequence either way, but keep it legible.
        return "-" + self.wrap(node.operand, _PRECEDENCE["neg"])

    def visit_Not(self, node: a.Not) -> str:
        return "not " + self.wrap(node.operand, _PRECEDENCE["not"])

    def visit_Arithmetic(self, node) -> str:
        own = _precedence(node)
        # Left-associative: the left side may share our level, the right may not.
        return f"{self.wrap(node.left, own)} {node.op} {self.wrap(node.right, own + 1)}"

    visit_Comparison = visit_Logical = visit_Arithmetic

    def visit_Invalid(self, node: a.Invalid) -> str:
        return node.text


_PRINTER = _Printer()


def print_expr(node) -> str:
    """Canonical text of one expression."""
    return _PRINTER.visit(node)


def _print_slo(rule: a.Rule) -> str:
    """An slo block as written: its own clauses, then the rule clauses it holds (``on no data`` when not
    the block's ``ok``)."""
    import dataclasses

    slo = rule.slo
    lines = [f"bad {slo.bad.function}({print_selector(slo.bad.selector)})",
             f"total {slo.total.function}({print_selector(slo.total.selector)})",
             f"objective {print_expr(slo.objective)}"]
    for keyword, _, alert in slo.alerts:
        if alert != a.DEFAULT_BURN_ALERTS[keyword]:
            lines.append(f"{keyword} {print_number(alert.threshold)} over {print_duration(alert.long)}, "
                         f"{print_duration(alert.short)}")
    if rule.on_no_data != "ok":
        lines.append(f"on no data {rule.on_no_data}")
    # the rule clauses as a rule block prints them (a multi-line string stays as it is)
    rest = print_rule(dataclasses.replace(rule, critical_when=None, warning_when=None, slo=None, on_no_data="keep"))
    clauses = rest[rest.index("\n") + 1:].removesuffix("}").rstrip("\n")
    body = "\n".join("    " + line for line in lines) + ("\n" + clauses if clauses else "")
    return f"slo {print_name(rule.name)} {{\n{body}\n}}"


def print_rule(rule: a.Rule) -> str:
    if rule.slo is not None:
        return _print_slo(rule)
    if rule.name is None and _is_bare(rule):
        return print_expr(rule.when)
    lines = []
    if rule.when is not None:
        lines.append(f"when {print_expr(rule.when)}")
    for severity, cond in (("critical", rule.critical_when), ("warning", rule.warning_when), ("info", rule.info_when)):
        if cond is not None:
            lines.append(f"{severity} when {print_expr(cond)}")
    if rule.resolve_when is not None:
        lines.append(f"resolve when {print_expr(rule.resolve_when)}")
    if rule.group_by:
        lines.append("group by " + ", ".join(print_name(t) for t in rule.group_by))
    if rule.every != a.DEFAULT_EVERY:
        lines.append(f"every {print_duration(rule.every)}")
    if rule.for_.seconds:
        lines.append(f"for {print_duration(rule.for_)}")
    if rule.keep_firing_for.seconds:
        lines.append(f"keep firing for {print_duration(rule.keep_firing_for)}")
    if rule.on_no_data != "keep":
        lines.append(f"on no data {rule.on_no_data}")
    if rule.severity != "warning":
        lines.append(f"severity {rule.severity}")
    if rule.labels:
        lines.append("labels " + ", ".join(f"{print_name(k)} = {print_string(v)}" for k, v in rule.labels))
    for route in rule.routes:
        lines.append(print_route(route))
    if rule.repeat_every is not None:
        lines.append(f"repeat every {print_duration(rule.repeat_every)}")
    for keyword in ("title", "message", "description"):
        value = getattr(rule, keyword)
        if value is not None:
            lines.append(f"{keyword} {print_string(value)}")
    if rule.active_during is not None:
        lines.append(f"active during {rule.active_during.text}")
    if rule.mute_during is not None:
        lines.append(f"mute during {rule.mute_during.text}")
    if rule.escalate is not None:
        lines.append("escalate to " + ", ".join(print_name(n) for n in rule.escalate.channels)
                     + f" after {print_signed_duration(rule.escalate.after)}")
    if rule.depends_on is not None:
        lines.append(print_dependency(rule.depends_on))
    if rule.name is None:
        return "\n".join(lines)
    body = "\n".join("    " + line for line in lines)
    return f"rule {print_name(rule.name)} {{\n{body}\n}}" if body else f"rule {print_name(rule.name)} {{\n}}"


def print_route(route: a.Route) -> str:
    """``notify a, b`` or ``notify a on critical, warning``."""
    text = "notify " + ", ".join(print_name(n) for n in route.channels)
    return text + " on " + ", ".join(route.severities) if route.severities else text


def print_dependency(dependency: a.Dependency) -> str:
    """``depends on db_down`` or ``depends on db_down on host, region``."""
    text = f"depends on {print_name(dependency.rule)}"
    return text + " on " + ", ".join(print_name(t) for t in dependency.tags) if dependency.tags else text


def print_signed_duration(duration: a.Duration) -> str:
    """A duration, with a `-` when negative (only a rule with errors holds one)."""
    return ("-" if duration.seconds < 0 else "") + print_duration(abs(duration.seconds))


def _is_bare(rule: a.Rule) -> bool:
    return rule.when is not None and rule == a.Rule(when=rule.when)


def print_rules(rules) -> str:
    """Canonical text of a list of rules, ending with a newline; a document's tests come after its rules."""
    blocks = [print_rule(r) for r in rules]
    tests = getattr(rules, "tests", ())
    if tests:
        from .testblocks import print_test

        blocks += [print_test(t) for t in tests]
    return "\n\n".join(blocks) + "\n"
