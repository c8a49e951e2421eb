"""Checks ``title``/``message`` templates: Jinja2 syntax in a sandbox, known variables only, bounded.

Rendering belongs to the engine's notifier; this module only says whether a
template will compile and names every variable it may use. Checking never
evaluates the template: the shared environment turns Jinja2's constant folding
off (``{{ 9 ** 10000000 }}`` would otherwise be computed while compiling), and
the constant parts of a template are *weighed* instead — a literal that would
build a string, list or number larger than the render limits
(:data:`TEMPLATE_LIMITS`) is a problem with its line, found without building it.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

__all__ = ["TEMPLATE_VARIABLES", "TEMPLATE_LIMITS", "TemplateLimits", "template_problems", "sandbox",
           "no_folding_generator"]

TEMPLATE_VARIABLES = {
    "rule": "the rule's name",
    "severity": "critical, warning or info",
    "state": "firing or resolved",
    "value": "value of the first aggregate in the firing condition (at resolution: its value then)",
    "values": "canonical aggregate text → value",
    "labels": "group tags plus the `labels` clause",
    "started_at": "when the alert started firing (RFC 3339)",
    "evaluated_at": "the evaluation time (RFC 3339)",
    "condition": "the firing condition's canonical text",
    "description": "the rule's `description`, or an empty string",
    "escalated": "true for the firing notice `escalate to` sends (nobody acknowledged the alert in time)",
}


@dataclass(frozen=True)
class TemplateLimits:
    """Bounds on one render; the engine's sandbox enforces them, checking weighs constants against them."""

    output_bytes: int = 64 * 1024
    seconds: float = 1.0
    value_size: int = 256 * 1024
    total_size: int = 8 * 1024 * 1024
    int_bits: int = 4096


TEMPLATE_LIMITS = TemplateLimits()


def _no_folding_generator():
    from jinja2 import nodes
    from jinja2.compiler import CodeGenerator

    class _NoFolding(CodeGenerator):
        """Never turn an output expression into a constant at compile time."""

        def _output_child_to_const(self, node, frame, finalize):
            if isinstance(node, nodes.TemplateData):
                return super()._output_child_to_const(node, frame, finalize)
            raise nodes.Impossible()

    return _NoFolding


@functools.cache
def no_folding_generator():
    """Jinja2's code generator without constant folding (built on first use: jinja2 loads lazily)."""
    return _no_folding_generator()


_generator = no_folding_generator


def _undeclared_variables(tree) -> set[str]:
    """``jinja2.meta.find_undeclared_variables`` without its optimizer (which folds constants)."""
    from jinja2.compiler import CodeGenerator
    from jinja2.meta import TrackingCodeGenerator

    class _Tracking(TrackingCodeGenerator, _generator()):
        def __init__(self, environment) -> None:
            CodeGenerator.__init__(self, environment, "<introspection>", "<introspection>", optimized=False)
            self.undeclared_identifiers = set()

    codegen = _Tracking(tree.environment)
    codegen.visit(tree)
    return codegen.undeclared_identifiers


@functools.cache
def sandbox():
    """The sandboxed Jinja2 environment shared by checking and rendering (no constant folding)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Sandbox(ImmutableSandboxedEnvironment):
        code_generator_class = _generator()

    return _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, optimized=False)


# --- weighing constant parts ----------------------------------------------------------------


@dataclass(frozen=True)
class _Weight:
    """What a constant expression would build: ``kind`` str/int/seq/other, its ``size`` (characters,
    bits or items+characters) and, for a small int, its ``value``."""

    kind: str
    size: float
    value: int | None = None


_UNKNOWN = None
_FORMAT_WIDTH = re.compile(r"%[-#0 +]*(\d+)?(?:\.(\d+))?|\{[^{}]*?:[^{}]*?(\d+)[^{}]*\}")
_PASS_THROUGH = frozenset({"upper", "lower", "title", "capitalize", "trim", "striptags", "e", "escape",
                           "forceescape", "string", "list", "reverse", "unique", "sort", "safe"})


def _int(value: int) -> _Weight:
    bits = abs(value).bit_length()
    return _Weight("int", bits, value if bits <= 64 else None)


def _text_size(weight: _Weight) -> float:
    if weight.kind == "int":
        return max(1.0, weight.size * math.log10(2) + 1)
    if weight.kind == "seq":
        return weight.size * 4
    return weight.size


class _Weigher:
    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.problems: list[tuple[str, int, str, str | None]] = []

    def too_big(self, node, weight: _Weight) -> bool:
        if weight.kind == "int" and weight.size > self.limits.int_bits:
            self.report(node, f"builds a number of about {_human(weight.size)} bits "
                              f"(the limit is {self.limits.int_bits:,})")
            return True
        if weight.kind != "int" and weight.size > self.limits.value_size:
            what = "a list" if weight.kind == "seq" else "a string"
            self.report(node, f"builds {what} of about {_human(weight.size)} characters or items "
                              f"(the limit is {self.limits.value_size:,})")
            return True
        return False

    def report(self, node, message: str) -> None:
        self.problems.append(("template-too-large", getattr(node, "lineno", 1) or 1, f"template {message}",
                              "notification templates format values: keep repetitions and padding small, "
                              "e.g. {{ value | round(2) }}"))

    def weigh(self, node) -> _Weight | None:  # noqa: C901 - one case per node kind
        from jinja2 import nodes

        if isinstance(node, nodes.Const):
            value = node.value
            if isinstance(value, bool) or value is None:
                return _Weight("other", 1)
            if isinstance(value, int):
                return _int(value)
            if isinstance(value, str):
                widths = [int(n) for m in _FORMAT_WIDTH.finditer(value) for n in m.groups() if n]
                return _Weight("str", len(value) + (max(widths) if widths else 0))
            return _Weight("other", 1)
        if isinstance(node, (nodes.List, nodes.Tuple)):
            items = [self.weigh(item) for item in node.items]
            if any(item is None for item in items):
                return None
            return _Weight("seq", len(items) + sum(_text_size(item) for item in items))
        if isinstance(node, nodes.Concat):
            parts = [self.weigh(part) for part in node.nodes]
            if any(part is None for part in parts):
                return None
            return _Weight("str", sum(_text_size(part) for part in parts))
        if isinstance(node, (nodes.Neg, nodes.Pos)):
            return self.weigh(node.node)
        if isinstance(node, nodes.BinExpr):
            return self.binop(node)
        if isinstance(node, nodes.Filter) and node.node is not None:
            return self.filter(node)
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range":
            stops = [self.weigh(arg) for arg in node.args]
            known = [w.value for w in stops if w is not None and w.kind == "int" and w.value is not None]
            return _Weight("seq", min(max(known, default=0), 100_000) * 2) if known else None
        return None

    def binop(self, node) -> _Weight | None:
        left, right = self.weigh(node.left), self.weigh(node.right)
        if left is None or right is None:
            return None
        op = node.operator
        if op == "*":
            if left.kind == "int" and right.kind != "int":
                left, right = right, left
            if left.kind in ("str", "seq") and right.kind == "int":
                times = right.value if right.value is not None else _magnitude(right.size)
                return _Weight(left.kind, left.size * max(times, 0) if left.size else 0)
            if left.kind == right.kind == "int":
                return _exact(left, right, lambda a, b: a * b) or _int_bits(left.size + right.size)
        if op == "**" and left.kind == right.kind == "int":
            if left.value is not None and abs(left.value) <= 1:
                return _int(1)
            exponent = right.value if right.value is not None else _magnitude(right.size)
            bits = max(exponent, 0) * left.size
            return (_exact(left, right, lambda a, b: a ** b) if bits <= 64 else None) or _int_bits(bits)
        if op == "+":
            if left.kind == right.kind and left.kind in ("str", "seq"):
                return _Weight(left.kind, left.size + right.size)
            if left.kind == right.kind == "int":
                return _exact(left, right, lambda a, b: a + b) or _int_bits(max(left.size, right.size) + 1)
        if op == "%" and left.kind == "str":
            return _Weight("str", left.size + _text_size(right))
        return _Weight("other", 1)

    def filter(self, node) -> _Weight | None:
        value = self.weigh(node.node)
        if value is None:
            return None
        args = [self.weigh(arg) for arg in node.args]
        first = args[0] if args else None
        name = node.name
        if name in _PASS_THROUGH:
            return _Weight("str" if name == "string" else value.kind, _text_size(value))
        if name in ("center", "indent") and first is not None and first.kind == "int":
            width = first.value if first.value is not None else math.inf
            lines = 1 if name == "center" else 2
            return _Weight("str", value.size + max(width, 0) * lines)
        if name == "join":
            glue = _text_size(first) if first is not None else 0
            return _Weight("str", _text_size(value) * (1 + glue))
        if name == "replace" and len(args) >= 2 and args[1] is not None:
            return _Weight("str", value.size * (1 + _text_size(args[1])) + _text_size(args[1]))
        if name == "format":
            return _Weight("str", value.size + sum(_text_size(a) for a in args if a is not None))
        return None

    def visit(self, tree) -> None:
        from jinja2 import nodes

        for node in tree.find_all(nodes.Expr):
            weight = self.weigh(node)
            if weight is not None and self.too_big(node, weight):
                return  # one finding per template is enough to fix it


def _exact(left: _Weight, right: _Weight, operation) -> _Weight | None:
    """The exact result of two small ints (both under 64 bits, so the result stays small)."""
    if left.value is None or right.value is None:
        return None
    result = operation(left.value, right.value)
    return _int(result) if isinstance(result, int) else _Weight("other", 1)


def _magnitude(bits: float) -> float:
    """The least magnitude of an int of ``bits`` bits."""
    return 2.0 ** (bits - 1) if bits < 1000 else math.inf


def _int_bits(bits: float) -> _Weight:
    return _Weight("int", bits)


def _human(size: float) -> str:
    return "infinitely many" if math.isinf(size) else f"{int(size):,}"


def template_problems(template: str, limits: TemplateLimits = TEMPLATE_LIMITS) -> list[tuple[str, int, str, str | None]]:
    """``(code, line within the template, message, hint)`` for each problem found. Evaluates nothing."""
    from jinja2 import TemplateSyntaxError
    from jinja2.exceptions import TemplateAssertionError

    env = sandbox()
    try:
        tree = env.parse(template)
    except TemplateSyntaxError as error:
        return [("template-syntax", error.lineno or 1, f"template error: {error.message}",
                 "templates use Jinja2: {{ value }}, {% if … %}…{% endif %}")]
    except RecursionError:
        return [("template-too-complex", 1, "template nests too deeply to check",
                 "write the template with fewer nested parentheses, brackets or blocks")]
    except ValueError as error:  # e.g. an integer literal of thousands of digits
        return [("template-syntax", 1, f"template error: {str(error).split(';')[0]}",
                 "write numbers with at most a few digits")]
    problems = []
    known = set(TEMPLATE_VARIABLES) | set(env.globals)
    from .errors import did_you_mean

    try:
        weigher = _Weigher(limits)
        weigher.visit(tree)
        problems.extend(weigher.problems)
        for name in sorted(_undeclared_variables(tree)):
            if name not in known:
                hint = did_you_mean(name, TEMPLATE_VARIABLES)
                problems.append(("unknown-template-variable", 1, f"unknown template variable `{name}`",
                                 (hint + " " if hint else "") + "variables: " + ", ".join(TEMPLATE_VARIABLES)))
        env.compile(tree)
    except TemplateAssertionError as error:
        problems.append(("template-syntax", error.lineno or 1, f"template error: {error.message}",
                         "see the filters Jinja2 offers: round, default, upper, lower, replace, format …"))
    except TemplateSyntaxError as error:
        problems.append(("template-syntax", error.lineno or 1, f"template error: {error.message}", None))
    except RecursionError:
        problems.append(("template-too-complex", 1, "template nests too deeply to check",
                         "write the template with fewer nested parentheses, brackets or blocks"))
    return problems
