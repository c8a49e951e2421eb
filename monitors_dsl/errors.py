"""Diagnostics: what is wrong with a rule, where, and how to fix it.

Error tree::

    ValueError
    └── DslError          .diagnostics: every problem found, errors first

Validation never raises for bad input; it returns ``Diagnostic`` records.
``parse``/``canonical``/``compile_rule`` raise ``DslError`` carrying the same
records when the text has errors.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Iterable

from .ast import NO_SPAN, Span

__all__ = ["Diagnostic", "DslError", "Diagnostics", "did_you_mean", "closest"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a rule text.

    ``line``/``column`` are 1-based and mark the start of the offending text;
    ``end_line``/``end_column`` mark just past its end. ``code`` is a stable
    short id (``unknown-function``, ``syntax-error`` …) that programs may match on.
    """

    severity: str
    message: str
    line: int
    column: int
    end_line: int
    end_column: int
    hint: str | None
    code: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        text = f"{self.line}:{self.column}: {self.severity}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class DslError(ValueError):
    """A rule text has errors; ``diagnostics`` lists every one found."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "error"] or self.diagnostics
        first = errors[0] if errors else None
        summary = str(first) if first else "invalid rule"
        more = len(errors) - 1
        if more > 0:
            summary += f" (and {more} more error{'s' if more > 1 else ''})"
        super().__init__(summary)


class Diagnostics:
    """Collects diagnostics while a text is parsed and checked."""

    LIMIT = 100

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self._seen: set = set()

    def add(self, code: str, message: str, span: Span | None, hint: str | None = None, *, severity: str = "error") -> None:
        span = span or NO_SPAN
        key = (code, span.start, span.end, message)
        if key in self._seen or len(self.items) >= self.LIMIT:
            return
        self._seen.add(key)
        self.items.append(
            Diagnostic(severity, message, span.line, span.column, span.end_line, span.end_column, hint, code)
        )

    def warn(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.add(code, message, span, hint, severity="warning")

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: (d.line, d.column, d.severity != "error"))


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to ``word`` (case-insensitive), or None if none is near."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    if word.lower() in lowered:
        return lowered[word.lower()]
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    match = closest(word, candidates)
    return f"did you mean `{match}`?" if match else None
