"""Checks tag-filter regexes against what InfluxDB 3's engine accepts (Rust ``regex``).

Rust's regex has no look-around, back-references, atomic groups, possessive
quantifiers or conditionals; those are reported by name. Everything else is
compiled with Python's ``re`` after mapping the few syntax differences, to
catch plain syntax errors (unbalanced parentheses, bad repetition …).
"""

from __future__ import annotations

import re
import warnings

__all__ = ["regex_problem"]

_UNSUPPORTED = [
    (re.compile(r"\(\?<?[=!]"), "look-around (`(?=`, `(?!`, `(?<=`, `(?<!`) is not supported by InfluxDB 3's regex engine",
     "match the text directly, or combine `=~` and `!~` filters on the same tag"),
    (re.compile(r"\\[1-9]|\\k<|\\g[<{0-9]|\(\?P="), "back-references are not supported by InfluxDB 3's regex engine",
     "list the alternatives explicitly, e.g. `^(ab|cd)$`"),
    (re.compile(r"\(\?>"), "atomic groups `(?>…)` are not supported by InfluxDB 3's regex engine", "use a plain group `(…)`"),
    (re.compile(r"(?<!\\)[*+?}]\+"), "possessive quantifiers (`*+`, `++`, `?+`) are not supported by InfluxDB 3's regex engine",
     "use a plain quantifier such as `*` or `+`"),
    (re.compile(r"\(\?\("), "conditional groups `(?(…)…)` are not supported by InfluxDB 3's regex engine", None),
    (re.compile(r"\(\?#"), "comments `(?#…)` are not supported by InfluxDB 3's regex engine", "remove the comment"),
    (re.compile(r"\\Z"), "`\\Z` is not supported by InfluxDB 3's regex engine", "use `$` or `\\z` for the end of the text"),
]


def _skip_escaped(pattern: str, match: re.Match) -> bool:
    """True when the match starts right after an odd number of backslashes (it is escaped text)."""
    count = 0
    i = match.start() - 1
    while i >= 0 and pattern[i] == "\\":
        count += 1
        i -= 1
    return count % 2 == 1


def _to_python(pattern: str) -> str:
    pattern = re.sub(r"\\[pP](\{[^}]*\}|[A-Za-z])", ".", pattern)  # unicode classes
    pattern = pattern.replace("\\z", "\\Z").replace("(?<", "(?P<").replace("(?P<=", "(?<=").replace("(?P<!", "(?<!")

    def flags(match: re.Match) -> str:
        kept = "".join(ch for ch in match.group(1) if ch in "imsx-")
        kept = kept.rstrip("-")
        return f"(?{kept}{match.group(2)}" if kept else ("(?:" if match.group(2) == ":" else "")

    return re.sub(r"\(\?([imsxuUR-]+)([:)])", flags, pattern)


def regex_problem(pattern: str) -> tuple[str, int, str | None] | None:
    """``(message, offset within the pattern, hint)`` when InfluxDB 3 would reject ``pattern``."""
    # Blank out character classes (same length, so offsets hold): `[*+]` is not possessive.
    outside_classes = re.sub(r"\\[pPx]\{[^}]*\}", lambda m: "x" * len(m.group()), pattern)
    outside_classes = re.sub(r"\[\^?\]?(?:\\.|[^\]\\])*\]", lambda m: "x" * len(m.group()), outside_classes)
    for finder, message, hint in _UNSUPPORTED:
        for match in finder.finditer(outside_classes):
            if not _skip_escaped(outside_classes, match):
                return message, match.start(), hint
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            re.compile(_to_python(pattern))
    except re.error as error:
        position = error.pos if error.pos is not None and error.pos <= len(pattern) else 0
        return f"invalid regex: {error.msg}", min(position, len(pattern)), "check brackets, parentheses and escapes"
    except (RecursionError, OverflowError, ValueError):
        return "invalid regex: too complex", 0, None
    return None
