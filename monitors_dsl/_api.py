"""The language's public functions: validate, parse, canonical."""

from __future__ import annotations

from typing import Mapping

from . import ast as a
from .check import check_rules
from .errors import Diagnostic, Diagnostics, DslError
from .parser import parse_text
from .printer import print_rules
from .schema import Schema
from .testblocks import Document

__all__ = ["validate", "parse", "canonical", "analyze"]


def _as_schema(schema) -> Schema | None:
    if schema is None or isinstance(schema, Schema):
        return schema
    if isinstance(schema, Mapping):
        return Schema.from_dict(schema)
    raise TypeError("schema must be a monitors_dsl.Schema or a mapping of measurement → {fields, tags}")


def analyze(text: str, *, schema=None, channels=None) -> tuple[list[a.Rule], list[Diagnostic]]:
    """Parses and checks ``text``: the rules found and every diagnostic, sorted by position."""
    schema = _as_schema(schema)
    diags = Diagnostics()
    if not isinstance(text, str):
        diags.add("not-text", f"expected rule text (a string), got {type(text).__name__}", None)
        return [], diags.sorted()
    source, rules = parse_text(text, diags)
    if not isinstance(rules, Document):
        rules = Document(rules)
    try:
        check_rules(rules, source, diags, schema, channels)
    except RecursionError:
        diags.add("too-deeply-nested", "the expression is nested too deeply", source.span(0, len(text)),
                  "simplify the expression")
    return rules, diags.sorted()


def validate(text: str, *, schema=None, channels=None) -> list[Diagnostic]:
    """Every problem in ``text`` (errors and warnings), sorted by position. Never raises for bad input.

    ``schema`` (a ``Schema`` or ``{"cpu": {"fields": {...}, "tags": [...]}}``) adds
    checks of measurement, field and tag names (and of tag values, for tags whose
    values it lists) with the closest known name. ``channels`` (names) adds a
    warning for each ``notify`` naming a channel not among them.
    """
    return analyze(text, schema=schema, channels=channels)[1]


def parse(text: str) -> list[a.Rule]:
    """The rules in ``text``; a bare condition gives one rule named None. The list's ``tests`` holds the
    document's ``test`` blocks (``monitors_dsl.testblocks.Test``), which take no part in the rules.

    Raises ``DslError`` (a ``ValueError``) listing every problem when the text has errors.
    """
    rules, diagnostics = analyze(text)
    if any(d.severity == "error" for d in diagnostics):
        raise DslError(diagnostics)
    return rules


def canonical(text: str) -> str:
    """``text`` printed in the one standard layout (raises ``DslError`` when it has errors)."""
    return print_rules(parse(text))
