"""``monitors explain FILE|- [--at T]``: what each rule compiles to.

For every rule of the file: its one-sentence English reading, its terms, the
SQL that computes them at time ``T`` and the generated Python predicate. ``T``
defaults to the current time rounded down to the rule's ``every``, as the
engine would evaluate it.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from ._api import analyze
from .cli import CommandError, UsageError, format_diagnostic, read_source
from .compiler import CompiledRule
from .printer import print_rule
from .slo import expanded_lines

__all__ = ["register", "parse_time", "explain_text"]


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (``2024-05-01T12:00:00Z``, an offset, or none meaning UTC) as an aware datetime."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--at {text!r}: not a time; write it as 2024-05-01T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _default_time(compiled: CompiledRule) -> datetime:
    now = int(datetime.now(timezone.utc).timestamp())
    every = max(compiled.rule.every.seconds, 1)
    return datetime.fromtimestamp(now - now % every, timezone.utc)


def explain_text(compiled: CompiledRule, at: datetime | None = None) -> str:
    """The explanation of one compiled rule, as ``monitors explain`` prints it."""
    at = at or _default_time(compiled)
    title = f"rule {compiled.name}" if compiled.name is not None else print_rule(compiled.rule).splitlines()[0]
    lines = [f"== {title}", "", compiled.describe(), ""]
    if compiled.rule.slo is not None:  # an slo block: the rule it stands for
        title = f"slo {compiled.name}"
        lines[0] = f"== {title}"
        lines += ["-- expanded (burn rate = bad / total / (1 - objective), per window)",
                  *expanded_lines(compiled.rule), ""]
    lines.append("-- terms")
    lines += [f"{term.column}: {term.text}" for term in compiled.terms] or ["(none)"]
    lines += ["", f"-- SQL at {at.isoformat().replace('+00:00', 'Z')}", compiled.sql(at) + ";", "",
              "-- predicate (Python)", compiled.predicate_source.rstrip()]
    return "\n".join(lines)


def _run(args) -> int:
    text = read_source(args.file)
    at = parse_time(args.at) if args.at else None
    rules, diagnostics = analyze(text)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        name = "<stdin>" if args.file == "-" else args.file
        details = "\n".join(format_diagnostic(name, text, d) for d in errors)
        raise CommandError(f"{name} has errors; fix them first (see `monitors check`):\n{details}")
    if not rules:
        raise CommandError(f"{args.file}: no rule to explain")
    print("\n\n".join(explain_text(CompiledRule(rule), at) for rule in rules))
    return 0


def register(subparsers) -> None:
    """Adds ``explain`` to the ``monitors`` command."""
    parser = subparsers.add_parser(
        "explain", help="show the SQL, the predicate and an English reading of each rule",
        description="For each rule: a one-sentence reading, its terms, the InfluxDB 3 SQL computing them "
                    "at time T, and the generated Python predicate.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", metavar="FILE", help="rule file, or - for standard input")
    parser.add_argument("--at", metavar="T",
                        help="evaluation time, RFC 3339 (default: now, rounded down to each rule's `every`)")
    parser.set_defaults(handler=_run)
