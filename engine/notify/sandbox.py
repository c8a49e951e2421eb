"""A Jinja2 sandbox with a time and size budget per render.

:class:`BoundedSandbox` is the shared ``monitors_dsl.templates.sandbox()``
(``ImmutableSandboxedEnvironment``, ``StrictUndefined``) with the same filters,
tests and globals, plus guards so that no template can hold the engine:

- **time**: every loop step, call, filter, operator and output checks a
  deadline (``for`` loops are rewritten to iterate through a guard);
- **size of one value**: a string, list or dict may hold at most
  ``Limits.value_size`` characters/items (counted through nested containers),
  checked *before* the value is built wherever it can grow fast — ``*``,
  ``+``, ``~``, ``%``, ``**``, ``center``/``indent``/``replace``/``join``/
  ``format``/``wordwrap``/``tojson`` and the ``str`` methods that pad,
  replace or join;
- **total size**: everything built or written over one render (including
  ``{% set %}`` blocks and macros, whose output never reaches the caller
  directly) counts against ``Limits.total_size``;
- ``translate``/``maketrans`` and format fields with nested or ``*`` widths
  are refused; ``lipsum`` is clamped; ``range`` keeps the sandbox's own cap.

A guard that trips raises :class:`LimitExceeded`; the render module turns it
into a clear error for that notification. Guards only work inside
:func:`budget` — outside one they refuse, so nothing is folded at compile time.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import operator
import re
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from jinja2 import nodes
from jinja2.filters import do_round
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.utils import _PassArg, generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

from monitors_dsl.templates import TemplateLimits, no_folding_generator

__all__ = ["Limits", "LimitExceeded", "BoundedSandbox", "bounded_sandbox", "budget", "weight", "text_size"]


Limits = TemplateLimits  # one set of bounds: checking weighs constants against them, rendering enforces them


class LimitExceeded(Exception):
    """A template went over its time or size budget."""


class _Budget:
    __slots__ = ("limits", "deadline", "used")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.used = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"took longer than {self.limits.seconds:g} s")

    def allow(self, size: int, what: str = "a value") -> None:
        """Refuse to build something of ``size`` characters/items."""
        if size > self.limits.value_size:
            raise LimitExceeded(f"would build {what} of {size:,} characters or items "
                                f"(limit {self.limits.value_size:,})")

    def charge(self, size: int) -> None:
        self.used += size
        if self.used > self.limits.total_size:
            raise LimitExceeded(f"built more than {self.limits.total_size:,} characters in total")


_CURRENT: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


@contextlib.contextmanager
def budget(limits: Limits) -> Iterator[_Budget]:
    """Run a render under ``limits`` (the guards read it from a context variable)."""
    token = _CURRENT.set(_Budget(limits))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


def _current() -> _Budget:
    current = _CURRENT.get()
    if current is None:
        raise LimitExceeded("templates are only evaluated while rendering")
    current.tick()
    return current


def weight(value: Any, cap: int) -> int:
    """Characters plus items, through nested containers; stops counting past ``cap``."""
    total, stack = 0, [value]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, (str, bytes, bytearray)):
            total += len(item)
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif not isinstance(item, Undefined):
            total += 1
    return total


def text_size(value: Any, cap: int) -> int:
    """About how many characters ``str(value)`` has, without building it; stops counting past ``cap``.

    Strings count their length (plus quotes inside a container), numbers their
    digits, containers their brackets and separators around their items.
    """
    total, stack = 0, [(value, False)]
    while stack and total <= cap:
        item, inside = stack.pop()
        if isinstance(item, str):
            total += len(item) + (2 if inside else 0)
        elif isinstance(item, (bytes, bytearray)):
            total += 4 * len(item) + 3
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() * 0.302 + 2 if item.bit_length() > 64 else 21
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            stack.extend((child, True) for child in item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend((child, True) for child in item.keys())
            stack.extend((child, True) for child in item.values())
        elif isinstance(item, Undefined):
            total += 0
        else:
            total += 64  # an object's repr, e.g. a range or a loop
    return int(total)


def _weigh_text(value: Any, what: str) -> None:
    """Refuse to turn ``value`` into text when the text would be over the value limit."""
    current = _current()
    current.allow(text_size(value, current.limits.value_size), what)


def _accept(value: Any, what: str = "a value") -> Any:
    current = _current()
    size = weight(value, current.limits.value_size)
    current.allow(size, what)
    current.charge(size)
    return value


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (str, bytes, list, tuple))


# --- format strings -------------------------------------------------------------

_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[a-zA-Z%]")


def _check_percent_format(fmt: str, args: Any, current: _Budget) -> None:
    directives = _PERCENT.findall(fmt)
    for width, precision in directives:
        for number in (width, precision):
            if number == "*":
                raise LimitExceeded("`*` widths are not allowed in format strings")
            if number:
                current.allow(int(number), "a formatted field")
    current.allow(len(fmt) + len(directives) * text_size(args, current.limits.value_size), "a formatted string")


def _check_brace_format(fmt: str, args: Any, current: _Budget) -> None:
    fields = 0
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format will raise its own error
    for _, field, spec, _ in parsed:
        if field is None:
            continue
        fields += 1
        if spec and "{" in spec:
            raise LimitExceeded("nested format specifications are not allowed")
        for number in re.findall(r"\d+", spec or ""):
            current.allow(int(number), "a formatted field")
    current.allow(len(fmt) + fields * text_size(args, current.limits.value_size), "a formatted string")


# --- operators and str methods ------------------------------------------------------


def _check_binop(op: str, left: Any, right: Any, current: _Budget) -> None:
    limits = current.limits
    if op == "*":
        if isinstance(left, int) and _is_sequence(right):
            left, right = right, left
        if _is_sequence(left) and isinstance(right, int):
            current.allow(weight(left, limits.value_size) * max(right, 0))
        elif isinstance(left, int) and isinstance(right, int):
            if abs(left).bit_length() + abs(right).bit_length() > limits.int_bits:
                raise LimitExceeded(f"would build a number of more than {limits.int_bits} bits")
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if right * abs(left).bit_length() > limits.int_bits:
                raise LimitExceeded(f"would build a number of more than {limits.int_bits} bits")
    elif op == "+":
        if _is_sequence(left) and _is_sequence(right):
            current.allow(weight(left, limits.value_size) + weight(right, limits.value_size))
    elif op == "%" and isinstance(left, str):
        _check_percent_format(left, right, current)


_MAX_INDENT = 16
_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})
_REFUSED_METHODS = frozenset({"translate", "maketrans"})


def _check_str_method(name: str, text: str | bytes, args: tuple, kwargs: dict, current: _Budget):
    """Pre-check a ``str``/``bytes`` method call; return replacement ``args`` (or None)."""
    size = current.limits.value_size
    if name in _REFUSED_METHODS:
        raise LimitExceeded(f"`{name}` is not allowed in notification templates")
    if name in _WIDTH_METHODS and args and isinstance(args[0], int):
        current.allow(args[0])
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tab, int):
            current.allow(len(text) + text.count("\t" if isinstance(text, str) else b"\t") * max(tab, 0))
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        hits = len(text) + 1 if not old else text.count(old)
        current.allow(len(text) + hits * weight(new, size))
    elif name == "join" and args:
        items = list(_guard_iter(args[0]))
        current.allow(weight(items, size) + len(text) * len(items))
        return (items, *args[1:])
    elif name in ("format", "format_map") and isinstance(text, str):
        _check_brace_format(text, (args, kwargs), current)
    return None


# --- filters ----------------------------------------------------------------------


# Filters that never turn their input into text (the rest are weighed as text before they run).
_NOT_STRINGIFYING = frozenset({"length", "count", "first", "last", "default", "d", "round", "int", "float",
                               "abs", "boolean", "attr", "random", "min", "max", "filesizeformat", "join",
                               "tojson", "batch", "slice", "map", "select", "reject", "selectattr",
                               "rejectattr", "sort", "unique", "reverse", "dictsort", "groupby", "items",
                               "list", "sum"})


def _filter_check(name: str, value: Any, args: tuple, kwargs: dict, current: _Budget):
    """Pre-check a filter call; return a replacement ``value`` (or None)."""
    size = current.limits.value_size
    if name not in _NOT_STRINGIFYING:
        current.allow(text_size(value, size), f"text for `{name}`")

    def arg(index: int, key: str, default: Any) -> Any:
        return args[index] if len(args) > index else kwargs.get(key, default)

    if name == "center":
        width = arg(0, "width", 80)
        if isinstance(width, int):
            current.allow(width)
    elif name == "indent" and isinstance(value, str):
        width = arg(0, "width", 4)
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        current.allow(len(value) + (value.count("\n") + 1) * max(pad, 0))
    elif name == "wordwrap" and isinstance(value, str):
        wrap = arg(3, "wrapstring", None) or "\n"
        current.allow(len(value) * (1 + weight(wrap, size)))
    elif name == "replace" and isinstance(value, str) and len(args) >= 2:
        old, new = args[0], args[1]
        hits = len(value) + 1 if not old else value.count(str(old))
        current.allow(len(value) + hits * weight(new, size))
    elif name == "join" and not isinstance(value, (str, dict)):
        items = list(_guard_iter(value))
        current.allow(weight(items, size) + weight(arg(0, "d", ""), size) * len(items))
        return items
    elif name == "format" and isinstance(value, str):
        _check_percent_format(value, (args, kwargs), current)
    elif name == "tojson":
        indent = arg(0, "indent", None)
        pad = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
        if pad > _MAX_INDENT:
            raise LimitExceeded(f"`tojson` indents by at most {_MAX_INDENT}")
        current.allow(weight(value, size) * (2 + pad) * 4, "JSON text")
    return None


def _guard_filter(name: str, func):
    offset = 1 if _PassArg.from_obj(func) is not None else 0

    @functools.wraps(func)
    def guarded(*args, **kwargs):
        current = _current()
        if len(args) > offset:
            replacement = _filter_check(name, args[offset], args[offset + 1:], kwargs, current)
            if replacement is not None:
                args = (*args[:offset], replacement, *args[offset + 1:])
        return _accept(func(*args, **kwargs), f"the result of `{name}`")

    return guarded


def _round(value, precision=0, method="common"):
    """Jinja's ``round``, letting ``None`` (no data) through."""
    return None if value is None else do_round(value, precision, method)


def _lipsum(n=5, html=True, min=20, max=100):  # noqa: A002 - Jinja's own argument names
    """Jinja's ``lipsum``, clamped to five paragraphs of at most 100 words."""
    return generate_lorem_ipsum(n=_clamp(n, 5), html=html, min=_clamp(min, 100), max=_clamp(max, 100))


def _clamp(value, top):
    return value if isinstance(value, int) and 0 <= value < top else top


def _guard_iter(iterable: Any) -> Iterator[Any]:
    current = _current()
    for item in iterable:
        current.tick()
        yield item


# --- the environment ---------------------------------------------------------------


def _env_call(name: str, args: list, origin: nodes.Node, environment) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None)
    call.set_lineno(origin.lineno)
    call.set_environment(environment)
    return call


class _Guards(NodeTransformer):
    """Route loops, ``~`` and every output through the environment's guards."""

    def __init__(self, environment) -> None:
        self.environment = environment

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = _env_call("guard_iter", [node.iter], node, self.environment)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return _env_call("guard_concat", list(node.nodes), node, self.environment)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        node = self.generic_visit(node)
        node.nodes = [_env_call("guard_output", [child], child, self.environment) for child in node.nodes]
        return node


_BINOPS = {"*": operator.mul, "**": operator.pow, "+": operator.add, "%": operator.mod}


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The shared sandbox, with every render bounded in time and size (see module)."""

    intercepted_binops = frozenset(_BINOPS)
    _CACHE_SIZE = 256

    @property
    def code_generator_class(self):  # noqa: D401 - Jinja reads it as an attribute
        """Compiling never folds constants: expressions are only computed under a budget."""
        return no_folding_generator()

    def __init__(self, base=None, **options: Any) -> None:
        if base is not None:
            options.setdefault("undefined", base.undefined)
            options.setdefault("autoescape", base.autoescape)
            options.setdefault("keep_trailing_newline", base.keep_trailing_newline)
            options.setdefault("trim_blocks", base.trim_blocks)
            options.setdefault("lstrip_blocks", base.lstrip_blocks)
        options.setdefault("finalize", _finalize)
        options["optimized"] = False
        super().__init__(**options)
        if base is not None:
            self.filters.update(base.filters)
            self.tests.update(base.tests)
            self.globals.update(base.globals)
        self.filters["round"] = _round
        self.filters = {name: _guard_filter(name, func) for name, func in self.filters.items()}
        self.globals["range"] = safe_range
        self.globals["lipsum"] = _lipsum
        self._compiled: OrderedDict[str, Any] = OrderedDict()
        self._compiled_lock = threading.Lock()

    # parsing: loops, concatenation and output go through the guards
    def _parse(self, source, name, filename):
        return _Guards(self).visit(super()._parse(source, name, filename))

    def template(self, source: str):
        """``from_string(source)``, compiled once per distinct source (bounded cache)."""
        with self._compiled_lock:
            template = self._compiled.get(source)
            if template is not None:
                self._compiled.move_to_end(source)
                return template
        template = self.from_string(source)
        with self._compiled_lock:
            self._compiled[source] = template
            if len(self._compiled) > self._CACHE_SIZE:
                self._compiled.popitem(last=False)
        return template

    # guards called from compiled templates
    def guard_iter(self, iterable: Any) -> Iterator[Any]:
        return _guard_iter(iterable)

    def guard_concat(self, *parts: Any) -> str:
        current = _current()
        current.allow(sum(text_size(part, current.limits.value_size) for part in parts), "a joined string")
        texts = [str(part) for part in parts]
        current.allow(sum(len(t) for t in texts), "a joined string")
        return _accept("".join(texts))

    def guard_output(self, value: Any) -> Any:
        _weigh_text(value, "output")
        return _accept(value, "output")

    # operators and calls
    def call_binop(self, context, operator_name: str, left: Any, right: Any) -> Any:
        current = _current()
        _check_binop(operator_name, left, right, current)
        return _accept(_BINOPS[operator_name](left, right))

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        current = _current()
        if getattr(__obj, "__self__", None) is __self:
            return super().call(__context, __obj, *args, **kwargs)  # a guard: it checks itself
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(method, "__self__", None)
        if isinstance(owner, (str, bytes)):
            replacement = _check_str_method(getattr(method, "__name__", ""), owner, args, kwargs, current)
            if replacement is not None:
                args = replacement
        return _accept(super().call(__context, __obj, *args, **kwargs))


def _finalize(value: Any) -> Any:
    """``None`` (a term without data) prints as ``no data``."""
    return "no data" if value is None else value


@functools.cache
def bounded_sandbox() -> BoundedSandbox:
    """The process-wide bounded sandbox, built from ``monitors_dsl.templates.sandbox()``."""
    from monitors_dsl.templates import sandbox

    return BoundedSandbox(sandbox())
