"""The predicate compiler: a rule's conditions as Python source, compiled once.

The generated module defines two functions over a row (a mapping from term
column to value, ``None`` for no data):

- ``condition(r)``: the firing condition, ``True`` / ``False`` / ``None``
  (with several severities, true when any holds, false when none can);
- ``decide(r)``: ``(result, severity, resolve)`` for ``Decision``.

Three-valued logic as the language defines it: a comparison touching no
data is unknown (``None``); ``False and None`` is ``False``, ``True or None``
is ``True``, otherwise unknown spreads; division by zero gives no data.

The source is built from the tree alone: numbers go in through ``repr`` of a
float, row keys through ``repr`` of the term's column name, and no other text
of the rule reaches it. It runs with an empty ``__builtins__``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from . import ast as a

__all__ = ["Decision", "Predicate", "ShapePredicate", "compile_predicate", "decision_of", "generate_source"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What one evaluation of a rule says about one series.

    ``result``: the firing condition (``None``: no data). ``severity``: the
    highest severity whose condition is true, else ``None``. ``resolve``:
    whether a firing series may resolve — the ``resolve when`` condition, or,
    without that clause, ``not result`` (``None`` when unknown).
    """

    result: bool | None
    severity: str | None
    resolve: bool | None

    @property
    def no_data(self) -> bool:
        return self.result is None


class _Builder(a.Visitor):
    """Emits straight-line statements; each sub-expression becomes a (text, guards) pair.

    Two families of methods, one per node: ``numeric_…`` for a node used as a number,
    ``boolean_…`` for one used as a condition (a node the family lacks is an error).
    """

    __slots__ = ("column_of", "params", "loads", "lines", "counter")
    pass_name = "the predicate compiler"

    def __init__(self, column_of: Callable[[a.Aggregate], str], params: Mapping[int, str] | None = None):
        self.column_of = column_of
        self.params = params or {}  # id(Number node) → name of the parameter standing for it
        self.loads: dict[str, str] = {}  # column → local variable
        self.lines: list[str] = []
        self.counter = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def term(self, node: a.Aggregate) -> str:
        column = self.column_of(node)
        if column not in self.loads:
            self.loads[column] = f"x{len(self.loads)}"
        return self.loads[column]

    # Numeric nodes give (expression, guards): the value is None when any guard is true,
    # and the expression may only be evaluated when none is.
    def numeric(self, node) -> tuple[str, list[str]]:
        return self.dispatch("numeric", node)

    def numeric_Number(self, node: a.Number) -> tuple[str, list[str]]:
        param = self.params.get(id(node))
        return (param, []) if param is not None else (_number(node.value), [])

    def numeric_Aggregate(self, node: a.Aggregate) -> tuple[str, list[str]]:
        name = self.term(node)
        return name, [f"{name} is None"]

    def numeric_Negate(self, node: a.Negate) -> tuple[str, list[str]]:
        text, guards = self.numeric(node.operand)
        return f"(-{text})", guards

    def numeric_Abs(self, node: a.Abs) -> tuple[str, list[str]]:
        text, guards = self.numeric(node.operand)
        if not _is_simple(text):
            text = self.materialize(text, guards)
            guards = [f"{text} is None"] if guards else []
        return f"({text} if {text} >= 0 else -{text})", guards

    def numeric_Arithmetic(self, node: a.Arithmetic) -> tuple[str, list[str]]:
        left, left_guards = self.numeric(node.left)
        right, right_guards = self.numeric(node.right)
        guards = _merge(left_guards, right_guards)
        if node.op == "/":
            if not _is_simple(right):
                right = self.materialize(right, right_guards)
                guards = _merge(left_guards, [f"{right} is None"] if right_guards else [])
            guards = _merge(guards, [f"{right} == 0"])
        return f"({left} {node.op} {right})", guards

    def materialize(self, text: str, guards: list[str]) -> str:
        """Binds a value to a fresh variable (``None`` when a guard holds)."""
        name = self.fresh("n")
        self.lines.append(f"{name} = {_guarded(text, guards)}")
        return name

    # Conditions give a variable (or constant) holding True / False / None.
    def boolean(self, node) -> str:
        return self.dispatch("boolean", node)

    def boolean_Aggregate(self, node: a.Aggregate) -> str:  # absent(): already three-valued
        return self.term(node)

    def boolean_Comparison(self, node: a.Comparison) -> str:
        left, left_guards = self.numeric(node.left)
        right, right_guards = self.numeric(node.right)
        return self.assign(_guarded(f"{left} {node.op} {right}", _merge(left_guards, right_guards)))

    def boolean_Not(self, node: a.Not) -> str:
        inner = self.boolean(node.operand)
        return self.assign(f"None if {inner} is None else not {inner}")

    def boolean_Logical(self, node: a.Logical) -> str:
        left, right = self.boolean(node.left), self.boolean(node.right)
        if node.op == "and":
            return self.assign(f"False if ({left} is False or {right} is False) else "
                               f"(None if ({left} is None or {right} is None) else True)")
        return self.assign(f"True if ({left} is True or {right} is True) else "
                           f"(None if ({left} is None or {right} is None) else False)")

    def assign(self, text: str) -> str:
        name = self.fresh("b")
        self.lines.append(f"{name} = {text}")
        return name

    def function(self, name: str, body: list[str], result: str) -> str:
        loads = [f"{var} = r[{column!r}]" for column, var in self.loads.items()]
        body = list(body)
        if body and body[-1].startswith(f"{result} = "):  # `b = e; return b` → `return e`
            result = body.pop()[len(result) + 3:]
        lines = [f"def {name}(r):"] + ["    " + line for line in loads + body] + [f"    return {result}"]
        return "\n".join(lines)


def _number(value: float) -> str:
    """A float literal: ``repr`` of the float (``1e999`` stands for infinity)."""
    value = float(value)
    if value != value:
        raise ValueError("a rule's number cannot be NaN")
    if value in (float("inf"), float("-inf")):
        return "1e999" if value > 0 else "(-1e999)"
    text = repr(value)
    return f"({text})" if text.startswith("-") else text


def _is_simple(text: str) -> bool:
    """A variable name or a float literal: safe to repeat, cheap to evaluate."""
    if text.isidentifier():
        return True
    try:
        float(text.strip("()"))
    except ValueError:
        return False
    return True


def _merge(first: list[str], second: list[str]) -> list[str]:
    return first + [g for g in second if g not in first]


def _guarded(text: str, guards: list[str]) -> str:
    if not guards:
        return text
    return f"None if ({' or '.join(guards)}) else ({text})"


def _either(variables: list[str]) -> str:
    """Three-valued OR of variables, as an expression."""
    if len(variables) == 1:
        return variables[0]
    any_true = " or ".join(f"{v} is True" for v in variables)
    any_none = " or ".join(f"{v} is None" for v in variables)
    return f"True if ({any_true}) else (None if ({any_none}) else False)"


def generate_source(rule: a.Rule, column_of: Callable[[a.Aggregate], str],
                    params: Mapping[int, str] | None = None) -> str:
    """Python source defining ``condition(r)`` and ``decide(r)`` for ``rule``.

    With ``params`` (``id`` of a ``Number`` node of the rule → parameter name),
    those numbers are read from the named variables instead of being written
    in: the source then defines ``make(k0, k1, …)`` returning
    ``(condition, decide)`` for one set of values (see :class:`ShapePredicate`).
    """
    conditions = rule.conditions
    if not conditions:
        raise ValueError("the rule has no firing condition")

    builder = _Builder(column_of, params)
    names = [builder.boolean(cond) for _, cond in conditions]
    condition_src = builder.function("condition", builder.lines, _either(names))

    builder = _Builder(column_of, params)
    names = [builder.boolean(cond) for _, cond in conditions]
    builder.lines.append(f"result = {_either(names)}")
    if rule.resolve_when is not None:
        resolve = builder.boolean(rule.resolve_when)
    else:
        builder.lines.append("resolve = None if result is None else not result")
        resolve = "resolve"
    severity = "None"
    for (level, _), name in reversed(list(zip(conditions, names))):
        severity = f"{level!r} if {name} is True else {severity}"
    decide_src = builder.function("decide", builder.lines, f"(result, {severity}, {resolve})")
    if not params:
        return condition_src + "\n\n\n" + decide_src + "\n"
    names = sorted(set(params.values()), key=lambda n: int(n[1:]))
    body = "\n".join("    " + line for line in (condition_src + "\n" + decide_src).splitlines())
    return f"def make({', '.join(names)}):\n{body}\n    return condition, decide\n"


class Predicate:
    """A rule's compiled conditions: ``condition(row)``, ``decide(row) -> Decision``, and ``source``."""

    __slots__ = ("source", "condition", "_decide")

    def __init__(self, source: str, filename: str = "<rule>"):
        namespace: dict = {"__builtins__": {}}
        exec(compile(source, filename, "exec"), namespace)
        self.source = source
        self.condition: Callable[[Mapping], bool | None] = namespace["condition"]
        self._decide = namespace["decide"]

    def decide(self, row: Mapping) -> Decision:
        outcome = self._decide(row)
        decision = _DECISIONS.get(outcome)
        if decision is None:  # at most 3 × 4 × 3 of them: share the (immutable) instances
            decision = _DECISIONS[outcome] = Decision(*outcome)
        return decision


_DECISIONS: dict[tuple, Decision] = {}


def decision_of(outcome: tuple) -> Decision:
    """The shared ``Decision`` for a generated ``decide``'s ``(result, severity, resolve)``."""
    decision = _DECISIONS.get(outcome)
    if decision is None:
        decision = _DECISIONS[outcome] = Decision(*outcome)
    return decision


class ShapePredicate:
    """The compiled conditions of every rule of one shape: ``bind(params)`` gives one rule's functions.

    Rules whose trees are equal but for the numbers they compare with share
    one generated source (the numbers are parameters ``k0``, ``k1`` …) and
    one ``compile()``; binding a rule's values is a function call.
    """

    __slots__ = ("source", "_make")

    def __init__(self, source: str, filename: str = "<shape>"):
        namespace: dict = {"__builtins__": {}}
        exec(compile(source, filename, "exec"), namespace)
        self.source = source
        self._make = namespace["make"]

    def bind(self, params: tuple) -> tuple[Callable, Callable]:
        """``(condition, decide)`` of the rule with these parameter values (``decide`` gives the raw tuple)."""
        return self._make(*params)


def compile_predicate(rule: a.Rule, column_of: Callable[[a.Aggregate], str], filename: str = "<rule>") -> Predicate:
    """Generates and compiles the predicate of ``rule``; ``column_of`` names each aggregate's row key."""
    return Predicate(generate_source(rule, column_of), filename)
