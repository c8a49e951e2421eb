"""Loads the Lark grammar once per process and hands out the shared parser and its terminals.

The grammar is the one place that knows how literals are written (strings,
numbers, durations, names): code that scans text without parsing it (the
parser's pre-scans and recovery, the rule shapes) builds its scanners from
:func:`terminal_pattern` rather than from regular expressions of its own.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark

__all__ = ["grammar_path", "parser", "terminal_pattern", "ignored_terminals", "START_SYMBOLS"]

START_SYMBOLS = ["start", "clause", "window", "test_block", "test_line"]
_GRAMMAR_FILE = "monitors.lark"


def grammar_path() -> Path:
    """The grammar file: inside the installed package, else the source tree's ``grammars/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_grammars" / _GRAMMAR_FILE, here.parent / "grammars" / _GRAMMAR_FILE):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"grammar file {_GRAMMAR_FILE} is missing from the installation")


@functools.cache
def parser() -> Lark:
    """The LALR parser, built on first use and reused (building costs ~50 parses)."""
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        start=START_SYMBOLS,
        propagate_positions=True,
        maybe_placeholders=True,
    )


@functools.cache
def _terminal_patterns() -> dict[str, str]:
    return {terminal.name: terminal.pattern.to_regexp() for terminal in parser().terminals}


def terminal_pattern(name: str) -> str:
    """The regular expression of the grammar's terminal ``name`` (``NUMBER``, ``STRING``, ``LPAR`` …)."""
    return _terminal_patterns()[name]


def ignored_terminals() -> tuple[str, ...]:
    """The terminals the grammar skips between tokens (whitespace, comments)."""
    return tuple(parser().ignore_tokens)
