"""The one place the service talks to the rule language (``monitors_dsl``).

Validation, parsing to exactly one rule, canonical text, and — when the
language package offers ``compile_rule`` — the SQL and plain-English reading.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import monitors_dsl

from ..schemas import DiagnosticOut, RuleReading, ValidationOut
from .data_schema import current_schema
from .errors import InvalidRule
from .limits import MAX_RULE_TEXT

__all__ = ["EXAMPLE_RULE", "ParsedRule", "parse_one", "validate_text"]

log = logging.getLogger(__name__)

EXAMPLE_RULE = """rule btc_above_70k {
    when last(crypto.price{symbol="BTC"}) > 70000
    every 1m
    severity critical
}"""



@dataclass(frozen=True)
class ParsedRule:
    """One rule, checked: its name (if the text gives one), canonical text and what the engine needs."""

    name: str | None
    canonical: str
    notify: tuple[str, ...]
    every_seconds: int
    warnings: tuple[DiagnosticOut, ...]


def _diag(d: Any) -> DiagnosticOut:
    return DiagnosticOut(
        severity=d.severity,
        code=d.code,
        message=d.message,
        line=d.line,
        column=d.column,
        end_line=d.end_line,
        end_column=d.end_column,
        hint=d.hint,
    )


def _too_long(text: str) -> DiagnosticOut:
    return DiagnosticOut(
        severity="error",
        code="too-long",
        message=f"the rule text is {len(text):,} characters long; the limit is {MAX_RULE_TEXT:,}",
        line=1,
        column=1,
        end_line=1,
        end_column=2,
        hint="a rule is a few lines; send one rule per call",
    )


def diagnostics(text: str) -> list[DiagnosticOut]:
    if len(text) > MAX_RULE_TEXT:
        return [_too_long(text)]
    if not text.strip():
        return [
            DiagnosticOut(
                severity="error",
                code="empty",
                message="the rule text is empty",
                line=1,
                column=1,
                end_line=1,
                end_column=1,
                hint="write a condition such as last(crypto.price{symbol=\"BTC\"}) > 70000",
            )
        ]
    return [_diag(d) for d in monitors_dsl.validate(text, schema=current_schema())]


def invalid(message: str, found: list[DiagnosticOut]) -> InvalidRule:
    """An ``InvalidRule`` whose message lists every diagnostic and ends with a valid example."""
    lines = [message]
    for d in found:
        where = f"line {d.line}, column {d.column}"
        hint = f" Hint: {d.hint}" if d.hint else ""
        lines.append(f"- {d.severity} at {where}: {d.message}.{hint}")
    lines.append("A valid rule looks like this:\n" + EXAMPLE_RULE)
    return InvalidRule(
        "\n".join(lines),
        diagnostics=[d.model_dump() for d in found],
        example=EXAMPLE_RULE,
    )


def _sql_time() -> datetime:
    """The evaluation time the shown SQL is written for: now, to the minute (SQL takes it as a parameter)."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _compiled_reading(rule: Any) -> tuple[str | None, str | None]:
    compile_rule = getattr(monitors_dsl, "compile_rule", None)
    if compile_rule is None:
        return None, None
    compiled = compile_rule(rule)
    sql = compiled.sql(_sql_time()) if callable(getattr(compiled, "sql", None)) else getattr(compiled, "sql", None)
    english = None
    for attr in ("describe", "english", "explain", "reading"):
        value = getattr(compiled, attr, None)
        if value is not None:
            english = value() if callable(value) else value
            break
    if english is None and callable(getattr(monitors_dsl, "describe", None)):
        english = monitors_dsl.describe(rule)
    return (str(sql) if sql is not None else None), (str(english) if english is not None else None)


def validate_text(text: str) -> ValidationOut:
    """Everything ``validate_alert_rule`` reports; never raises for bad input."""
    found = diagnostics(text)
    if any(d.severity == "error" for d in found):
        return ValidationOut(valid=False, diagnostics=found)
    rules = monitors_dsl.parse(text)
    readings: list[RuleReading] = []
    notes: list[str] = []
    for rule in rules:
        try:
            sql, english = _compiled_reading(rule)
        except Exception as exc:  # the compiler is newer than this code: report, do not fail validation
            log.warning("compiling a valid rule failed: %s", type(exc).__name__)
            sql, english = None, None
            notes.append(f"SQL is not available for rule {rule.name or '(unnamed)'}: {exc}")
        readings.append(RuleReading(name=rule.name, sql=sql, english=english))
    if not hasattr(monitors_dsl, "compile_rule"):
        notes.append("SQL and the English reading are not available in this version.")
    else:
        notes.append(f"The SQL is written for an evaluation at {_sql_time():%Y-%m-%dT%H:%MZ}; the engine runs it at each tick.")
    return ValidationOut(
        valid=True,
        diagnostics=found,
        canonical=monitors_dsl.canonical(text),
        rules=readings,
        notes=notes,
    )


def parse_one(text: str) -> ParsedRule:
    """Exactly one rule from ``text``, or ``InvalidRule`` saying what to change."""
    found = diagnostics(text)
    errors = [d for d in found if d.severity == "error"]
    if errors:
        count = f"{len(errors)} error{'s' if len(errors) > 1 else ''}"
        raise invalid(f"The rule has {count}; fix them and call again.", found)
    rules = monitors_dsl.parse(text)
    if len(rules) != 1:
        names = ", ".join(r.name or "(unnamed)" for r in rules)
        raise InvalidRule(
            f"The text holds {len(rules)} rules ({names}); send exactly one rule per call.",
            example=EXAMPLE_RULE,
        )
    rule = rules[0]
    every = getattr(rule, "every", None)
    every_seconds = int(getattr(every, "seconds", 60) or 60) if every is not None else 60
    return ParsedRule(
        name=rule.name,
        canonical=monitors_dsl.canonical(text),
        notify=tuple(getattr(rule, "notify", ()) or ()),
        every_seconds=every_seconds,
        warnings=tuple(d for d in found if d.severity == "warning"),
    )
