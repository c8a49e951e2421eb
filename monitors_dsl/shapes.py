"""Rule shapes: rules that differ only in the numbers they compare with share one compiled form.

A stored rule's canonical text splits into

- its *conditions* (``when`` / ``critical when`` / … / ``resolve when`` /
  ``group by`` lines), whose numbers compared directly with something are
  replaced by placeholders: the *skeleton*;
- the numbers taken out (the rule's *parameters*);
- the other clauses (``for``, ``notify``, ``title`` …), as text: the *meta*.

:func:`split_canonical` does that with one pass of a scanner made of the
grammar's own string, name and number terminals, without parsing; the
numbers of a shape's first rule are its parsed ``Number`` nodes, found by
their spans in the canonical text. A :class:`Shape` is compiled once, from the first rule of its
skeleton (parsed and checked in full): its terms, and one generated predicate
taking the parameters as arguments (:class:`~monitors_dsl.predicate.ShapePredicate`).
Every other rule of the skeleton is then a :class:`BoundRule`: the shape, a
tuple of floats and the canonical text — the same interface as
``CompiledRule`` (``terms``, ``decide``, ``condition``, ``sql`` …), with the
syntax tree parsed again only when someone asks for it.

Only numbers that are a direct operand of a comparison become parameters
(so ``x / 0`` or a percentile's rank stay part of the skeleton); a shape's
``thresholds`` say, for rules whose every firing condition is ``term OP
number``, which column, operator and parameter decide it, so the engine can
find the rules that hold for a value with a binary search.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import datetime
from typing import Mapping

from . import ast as a
from .compiled import rule_columns, value_column
from .grammar import terminal_pattern
from .predicate import Decision, ShapePredicate, decision_of, generate_source
from .sql import Term, sql_for_terms

__all__ = ["Split", "Shape", "BoundRule", "split_canonical", "compile_shape", "number_value", "FLIPPED"]



@functools.cache
def _tokens() -> re.Pattern:
    """A string or a quoted name (skipped), or a number standing on its own (group 1: not part of a name,
    a duration or a string), written as the grammar's terminals write them; a negative number's ``-`` is
    part of its text, as the printer writes it."""
    number, percent = terminal_pattern("NUMBER"), terminal_pattern("PERCENT")
    # PERCENT is NUMBER then `%`: one optional `%` scans faster than trying both terminals
    either = f"(?:{number})%?" if percent == number + "%" else f"(?:{percent}|{number})"
    return re.compile(
        f'{terminal_pattern("STRING")}|{terminal_pattern("QUOTED_NAME")}|(?<![\\w.`])(-?{either})(?![\\w.])')


_CONDITION_PREFIXES = ("when ", "critical when ", "warning when ", "info when ", "resolve when ", "group by ")
_CLAUSE_PREFIXES = _CONDITION_PREFIXES + (
    "every ", "for ", "keep firing for ", "on no data ", "severity ", "labels ", "notify ", "repeat every ",
    "title ", "message ", "description ", "active during ", "mute during ", "escalate to ", "depends on ")

#: ``k OP x`` is ``x FLIPPED[OP] k``
FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}


class Split:
    """A canonical text cut into skeleton, parameter texts and meta (see the module docstring)."""

    __slots__ = ("skeleton", "numbers", "meta", "severity", "offsets", "conditions")

    def __init__(self, skeleton: str, numbers: tuple[str, ...], meta: str, severity: str,
                 offsets: tuple[int, ...], conditions: tuple[str, ...]):
        self.skeleton = skeleton  # the condition lines with ``§`` for each number
        self.numbers = numbers  # the numbers' texts, in order
        self.meta = meta  # the other clause lines
        self.severity = severity  # the ``severity`` clause (it is what a plain ``when`` fires with)
        self.offsets = offsets  # where each number starts in the canonical text
        self.conditions = conditions  # (start, end) pairs of the condition lines in the canonical text, flattened


def number_value(text: str) -> float | None:
    """The value a number's text stands for (``5%`` is 0.05); ``None`` when not a finite number."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def split_canonical(text: str) -> Split | None:
    """Skeleton, numbers and meta of a canonical rule text; ``None`` for texts this does not handle."""
    if '"""' in text or "§" in text:
        return None
    if text.endswith("\n"):
        text = text[:-1]
    if text.startswith("rule "):
        header = text.find("\n")
        if header < 0 or not text.endswith("\n}") or not text[:header].endswith(" {"):
            return None
        start = header + 1
        lines = text[start:-2].split("\n")
        indent = 4
    else:
        start = 0
        lines = text.split("\n")
        indent = 0
        if len(lines) == 1 and not lines[0].startswith(_CLAUSE_PREFIXES):  # a bare condition
            lines = [lines[0]]
            bare = True
        else:
            bare = False
    if indent:
        bare = False
    position = start
    tokens = _tokens()
    skeleton_parts: list[str] = []
    numbers: list[str] = []
    offsets: list[int] = []
    conditions: list[int] = []
    count = 0
    for line in lines:
        body = line[indent:]
        if not bare and not body.startswith(_CONDITION_PREFIXES):
            break
        line_start = position + indent
        conditions += (line_start, line_start + len(body))
        last = 0
        for match in tokens.finditer(body):
            if match.group(1) is None:
                continue
            skeleton_parts.append(body[last:match.start()])
            skeleton_parts.append("§")
            numbers.append(match.group(1))
            offsets.append(line_start + match.start())
            last = match.end()
        skeleton_parts.append(body[last:])
        skeleton_parts.append("\n")
        position += len(line) + 1
        count += 1
    if count == 0:
        return None
    meta_lines = [line[indent:] for line in lines[count:]]
    severity = "warning"
    for line in meta_lines:
        if line.startswith("severity "):
            severity = line[9:].strip()
    return Split("".join(skeleton_parts), tuple(numbers), "\n".join(meta_lines), severity, tuple(offsets),
                 tuple(conditions))


class Shape:
    """What every rule of one skeleton shares: terms, group tags, the predicate, the condition's text layout."""

    __slots__ = ("key", "terms", "group_by", "predicate", "params", "fixed", "template", "value_column",
                 "has_resolve", "severities", "thresholds", "columns", "__weakref__")

    def __init__(self, key, terms, group_by, predicate, params, fixed, template, value_column, has_resolve,
                 severities, thresholds, columns):
        self.key = key
        self.terms: tuple[Term, ...] = terms
        self.group_by: tuple[str, ...] = group_by
        self.predicate: ShapePredicate = predicate
        self.params: tuple[int, ...] = params  # which of the split's numbers are parameters
        self.fixed: tuple[tuple[int, str], ...] = fixed  # the other numbers, which must read the same
        self.template: tuple = template  # the condition text: strings and parameter indices
        self.value_column: str | None = value_column
        self.has_resolve: bool = has_resolve
        self.severities: tuple[str, ...] = severities  # of the firing conditions, highest first
        # one (column, op, parameter position) per firing condition when each is `term OP number`, else None
        self.thresholds: tuple[tuple[str, str, int], ...] | None = thresholds
        self.columns: dict = columns  # aggregate node of the shape's first rule → column

    def matches(self, split: Split) -> bool:
        numbers = split.numbers
        return all(numbers[i] == text for i, text in self.fixed)

    def values(self, split: Split) -> tuple[float, ...] | None:
        numbers = split.numbers
        out = []
        for i in self.params:
            value = number_value(numbers[i])
            if value is None:
                return None
            out.append(value)
        return tuple(out)

    def condition_text(self, split: Split) -> str:
        numbers = split.numbers
        return "".join(part if part.__class__ is str else numbers[part] for part in self.template)


def _condition_template(rule: a.Rule, canonical: str, split: Split, params: set[int]) -> tuple | None:
    """The condition's text (as ``engine.rules.condition_text`` prints it), as pieces of the canonical text."""
    spans = list(zip(split.conditions[0::2], split.conditions[1::2]))
    bare = not canonical[spans[0][0]:].startswith(_CONDITION_PREFIXES)
    if bare:
        pieces = [spans[0]]
    else:
        pieces = []
        for start, end in spans:
            line = canonical[start:end]
            if line.startswith("when "):
                pieces.append((start + 5, end))
            elif line.startswith(("critical when ", "warning when ", "info when ")):
                if pieces:
                    pieces.append("; ")
                pieces.append((start, end))
    template: list = []
    for piece in pieces:
        if isinstance(piece, str):
            template.append(piece)
            continue
        start, end = piece
        cursor = start
        for index, offset in enumerate(split.offsets):
            if start <= offset < end and index in params:
                template.append(canonical[cursor:offset])
                template.append(index)
                cursor = offset + len(split.numbers[index])
        template.append(canonical[cursor:end])
    return tuple(t for t in template if t != "")


def compile_shape(rule: a.Rule, canonical: str, split: Split) -> Shape:
    """The shape of ``rule`` (parsed from ``canonical`` and checked), for the split of that same text."""
    by_offset: dict[int, a.Number] = {}
    expressions = [cond for _, cond in rule.conditions]
    if rule.resolve_when is not None:
        expressions.append(rule.resolve_when)
    for expr in expressions:
        _comparison_numbers(expr, by_offset)
    params: dict[int, str] = {}  # id(node) → k<n>
    positions: list[int] = []
    fixed: list[tuple[int, str]] = []
    for index, (offset, text) in enumerate(zip(split.offsets, split.numbers)):
        node = by_offset.get(offset)
        if node is not None and number_value(text) == node.value:
            params[id(node)] = f"k{len(positions)}"
            positions.append(index)
        else:
            fixed.append((index, text))
    found = rule_columns(rule)
    columns = dict(found.columns)
    source = generate_source(rule, columns.__getitem__, params) if params else None
    predicate = ShapePredicate(source if source else _constant_source(rule, columns), "<shape>")
    param_set = set(positions)
    template = _condition_template(rule, canonical, split, param_set)
    thresholds = _thresholds(rule, columns, params, positions, split)
    return Shape(split.skeleton, found.terms, tuple(rule.group_by), predicate, tuple(positions), tuple(fixed),
                 template, value_column(rule, columns), rule.resolve_when is not None,
                 tuple(severity for severity, _ in rule.conditions), thresholds, columns)


def _constant_source(rule: a.Rule, columns: dict) -> str:
    """A shape without parameters still binds through ``make()``."""
    body = generate_source(rule, columns.__getitem__)
    indented = "\n".join("    " + line for line in body.splitlines())
    return f"def make():\n{indented}\n    return condition, decide\n"


def _comparison_numbers(node, out: dict[int, a.Number]) -> None:
    for current in a.walk(node):
        if current.__class__ is a.Comparison:
            for side in (current.left, current.right):
                if side.__class__ is a.Number:
                    out[side.span.start] = side


def _thresholds(rule, columns, params, positions, split) -> tuple | None:
    out = []
    for _, cond in rule.conditions:
        if not isinstance(cond, a.Comparison) or cond.op == "!=":
            return None
        left, right, op = cond.left, cond.right, cond.op
        if isinstance(left, a.Number) and isinstance(right, a.Aggregate):
            left, right, op = right, left, FLIPPED[op]
        if not (isinstance(left, a.Aggregate) and isinstance(right, a.Number) and id(right) in params):
            return None
        if left.function in a.BOOLEAN_AGGREGATES:
            return None
        out.append((columns[left], op, int(params[id(right)][1:])))
    return tuple(out)


class BoundRule:
    """One rule of a shape: the shape, its parameter values and its canonical text.

    It is a :class:`~monitors_dsl.compiled.Compiled`, as a ``CompiledRule`` is;
    ``rule`` (the syntax tree) is parsed again from the canonical text on first
    use only. ``condition_text`` is the rule's own (the shape's template with
    its numbers), given by whoever split the text.
    """

    __slots__ = ("shape", "params", "canonical", "name", "condition_text", "_functions", "_rule")

    def __init__(self, shape: Shape, params: tuple[float, ...], canonical: str, name: str | None = None,
                 condition_text: str = ""):
        self.shape = shape
        self.params = params
        self.canonical = canonical
        self.name = name
        self.condition_text = condition_text
        self._functions = None
        self._rule = None

    @property
    def value_column(self) -> str | None:
        return self.shape.value_column

    @property
    def terms(self) -> tuple[Term, ...]:
        return self.shape.terms

    @property
    def group_by(self) -> tuple[str, ...]:
        return self.shape.group_by

    @property
    def rule(self) -> a.Rule:
        if self._rule is None:
            from ._api import parse

            self._rule = parse(self.canonical)[0]
        return self._rule

    def _bound(self):
        functions = self._functions
        if functions is None:
            functions = self._functions = self.shape.predicate.bind(self.params)
        return functions

    @property
    def condition(self):
        return self._bound()[0]

    @property
    def predicate_source(self) -> str:
        return self.shape.predicate.source

    def decide(self, row: Mapping) -> Decision:
        return decision_of(self._bound()[1](row))

    def column(self, node: a.Aggregate) -> str:
        return Term.from_aggregate(node, self.shape.group_by).column

    def sql(self, at: datetime | int) -> str:
        return sql_for_terms(self.shape.terms, at, self.shape.group_by)

    def describe(self) -> str:
        from .describe import describe

        return describe(self.rule)

    def __repr__(self) -> str:
        return f"<BoundRule {self.canonical.splitlines()[0]!r} {self.params}>"
