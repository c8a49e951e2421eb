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
from .data_schema import DataNames, data_names, with_tag_values
from .errors import InvalidRule, ServiceError
from .limits import MAX_RULE_TEXT

__all__ = ["DATA_LATER_HINT", "EXAMPLE_RULE", "NO_CHANNEL_NOTE", "ParsedRule", "parse_one", "validate_text",
           "test_results", "failed_tests"]

log = logging.getLogger(__name__)

#: codes of names the data does not hold that stop a rule from being stored (it would never see a point)
MISSING_DATA_CODES = ("unknown-measurement", "unknown-field")
DATA_LATER_HINT = "if this data is not written yet, pass data_arrives_later=true"
NO_CHANNEL_NOTE = ("This rule has no notify clause: alerts are recorded, nobody is told. Add notify CHANNEL "
                   "(list_notification_channels) if someone should hear of them.")

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
    #: every channel the rule may notify: its notify clauses', then its escalate to clause's
    notify: tuple[str, ...]
    every_seconds: int
    warnings: tuple[DiagnosticOut, ...]
    names_note: str | None = None
    #: the rule its ``depends on`` names (a rule of the same owner), else None
    depends_on: str | None = None


def _channels(rule: Any) -> tuple[str, ...]:
    escalate = getattr(rule, "escalate", None)
    named = tuple(getattr(rule, "notify", ()) or ()) + (tuple(escalate.channels) if escalate is not None else ())
    return tuple(dict.fromkeys(named))


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


def _filtered_tags(text: str, schema: monitors_dsl.Schema) -> dict[str, set[str]]:
    """``{measurement: {tag, …}}`` of the known tags the text filters on with ``=`` or ``in``."""
    try:
        rules = monitors_dsl.parse(text)
    except (ValueError, TypeError):
        return {}
    wanted: dict[str, set[str]] = {}
    for rule in rules:
        conditions = [cond for _, cond in rule.conditions] + ([rule.resolve_when] if rule.resolve_when else [])
        for cond in conditions:
            for agg in monitors_dsl.ast.aggregates(cond):
                known = schema.measurements.get(agg.selector.measurement)
                for flt in agg.selector.filters:
                    if known is not None and flt.op in ("=", "in") and flt.tag in known.tags:
                        wanted.setdefault(agg.selector.measurement, set()).add(flt.tag)
    return wanted


def _as_error(d: DiagnosticOut) -> DiagnosticOut:
    hint = f"{d.hint}; {DATA_LATER_HINT}" if d.hint else DATA_LATER_HINT
    return d.model_copy(update={"severity": "error", "hint": hint})


def checked_diagnostics(text: str, *, channels: list[str] | None = None,
                        data_later: bool = False) -> tuple[list[DiagnosticOut], str | None]:
    """Every diagnostic, with names checked against the data when a source is configured (an unknown
    measurement or field is then an error unless ``data_later``), and why names were not checked."""
    if len(text) > MAX_RULE_TEXT:
        return [_too_long(text)], None
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
        ], None
    names: DataNames = data_names()
    schema = names.schema
    if schema is not None:
        wanted = _filtered_tags(text, schema)
        if wanted:
            schema = with_tag_values(schema, wanted)
    found = [_diag(d) for d in monitors_dsl.validate(text, schema=schema, channels=channels)]
    if schema is not None and not data_later:
        found = [_as_error(d) if d.code in MISSING_DATA_CODES else d for d in found]
    return found, names.reason


def diagnostics(text: str) -> list[DiagnosticOut]:
    return checked_diagnostics(text)[0]


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


@dataclass(frozen=True)
class TestRun:
    """One test block of a text: ``passed`` None when it was not run."""

    name: str
    passed: bool | None = None
    failures: tuple[str, ...] = ()

    def text(self) -> str:
        """``name: passed`` / ``name: not run`` / ``name: FAILED: line 9: …``: how the tools show it."""
        if self.passed is None:
            return f"{self.name}: not run"
        return f"{self.name}: passed" if self.passed else f"{self.name}: FAILED: " + " | ".join(self.failures)


def test_results(text: str, *, run: bool = True) -> tuple[list[TestRun], str | None]:
    """The text's ``test`` blocks, run by the engine (``run=False``: listed, not run), and why they were not
    run when the engine could not (else None)."""
    try:
        document = monitors_dsl.parse(text)
    except (ValueError, TypeError):
        return [], None
    tests = list(getattr(document, "tests", ()))
    if not tests:
        return [], None
    if not run:
        return [TestRun(t.name) for t in tests], None
    from .engine_link import engine_features, use_engine
    from .limits import preview_bounds

    evaluations, seconds = preview_bounds()  # a caller's tests may use what a preview may
    try:
        features = engine_features()
        results = use_engine(lambda: features.run_tests(text, max_evaluations=evaluations, seconds=seconds))
    except ServiceError as error:
        return [TestRun(t.name) for t in tests], f"The tests were not run: {error.message} ({error.hint})"
    return [TestRun(r.name, r.passed, tuple(f"line {f.line}: {f.expectation}: expected {f.expected}; seen {f.seen}"
                                            for f in r.failures) + ((r.error,) if r.error else ()))
            for r in results], None


def failed_tests(tests: list[TestRun]) -> InvalidRule | None:
    """The error refusing a rule whose tests fail, listing every failure; None when none failed."""
    failed = [t for t in tests if t.passed is False]
    if not failed:
        return None
    lines = [f"{len(failed)} of {len(tests)} tests of the rule failed; nothing was stored."]
    for test in failed:
        lines += [f"- test {test.name}: {failure}" for failure in test.failures]
    return InvalidRule("\n".join(lines), code="test_failed", tests=[t.text() for t in tests],
                       hint="fix the rule (or the expectation, if it was wrong) and call again; "
                            "validate_alert_rule runs the tests without storing anything")


def validate_text(text: str, *, channels: list[str] | None = None, data_later: bool = False) -> ValidationOut:
    """Everything ``validate_alert_rule`` reports; never raises for bad input."""
    found, names_note = checked_diagnostics(text, channels=channels, data_later=data_later)
    notes: list[str] = [names_note] if names_note else []
    if any(d.severity == "error" for d in found):
        return ValidationOut(valid=False, diagnostics=found, notes=notes)
    rules = monitors_dsl.parse(text)
    readings: list[RuleReading] = []
    if any(not _channels(rule) for rule in rules):
        notes.append(NO_CHANNEL_NOTE)
    for rule in rules:
        try:
            sql, english = _compiled_reading(rule)
        except Exception as exc:  # the compiler is newer than this code: report, do not fail validation
            log.warning("compiling a valid rule failed: %s", type(exc).__name__)
            sql, english = None, None
            notes.append(f"SQL is not available for rule {rule.name or '(unnamed)'}: {exc}")
        readings.append(RuleReading(name=rule.name, sql=sql, english=english))
    tests, not_run = test_results(text)
    if not_run:
        notes.append(not_run)
    failed = [t.name for t in tests if t.passed is False]
    if failed:
        notes.append(f"Tests failing: {', '.join(failed)}; create_alert_rule refuses the rule until they pass.")
    if not hasattr(monitors_dsl, "compile_rule"):
        notes.append("SQL and the English reading are not available in this version.")
    else:
        notes.append(f"The SQL is written for an evaluation at {_sql_time():%Y-%m-%dT%H:%MZ}; the engine runs it at each tick.")
    return ValidationOut(
        valid=True,
        diagnostics=found,
        canonical=monitors_dsl.canonical(text),
        rules=readings,
        tests=[t.text() for t in tests],
        notes=notes,
    )


def parse_one(text: str, *, channels: list[str] | None = None, data_later: bool = True) -> ParsedRule:
    """Exactly one rule from ``text``, or ``InvalidRule`` saying what to change. Names the data does not hold
    are errors unless ``data_later``; ``channels`` are the owner's channel names, for the notify check."""
    found, names_note = checked_diagnostics(text, channels=channels, data_later=data_later)
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
        canonical=monitors_dsl.printer.print_rules([rule]),  # the rule alone: its tests stay in the text
        notify=_channels(rule),
        every_seconds=every_seconds,
        warnings=tuple(d for d in found if d.severity == "warning"),
        names_note=names_note,
        depends_on=getattr(getattr(rule, "depends_on", None), "rule", None),
    )
