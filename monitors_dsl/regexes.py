"""Checks tag-filter regexes against what InfluxDB 3's engine accepts (Rust ``regex``).

Rust's regex has no look-around, back-references, atomic groups, possessive
quantifiers or conditionals; those are reported by name. Everything else is
compiled with Python's ``re`` after mapping the few syntax differences, to
catch plain syntax errors (unbalanced parentheses, bad repetition …).

Rust's regex also refuses patterns that compile to more than 10 MiB
(``CompiledTooBig``) or nest more than 250 groups deep. The compiled size is
estimated from Python's parse of the pattern with per-piece costs measured
against the engine InfluxDB 3 uses (DataFusion's regex): a Unicode ``\\w`` is
about 50 KB, so ``\\w{5000}`` is far over while ``\\w{100}`` is fine. The estimate
errs on the large side, never the small one (a test compares it with the engine).
"""

from __future__ import annotations

import re
import warnings

__all__ = ["regex_problem", "compiled_size", "SIZE_LIMIT", "NEST_LIMIT"]

SIZE_LIMIT = 10 * 1024 * 1024
NEST_LIMIT = 250

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
    depth, at = _nesting(outside_classes)
    if depth > NEST_LIMIT:
        return (f"this regex nests {depth} groups deep; InfluxDB 3's regex engine allows {NEST_LIMIT}", at,
                "remove groups that hold a single piece")
    size = compiled_size(pattern)
    if size > SIZE_LIMIT:
        return (f"this regex is too large for InfluxDB 3's regex engine: it compiles to about "
                f"{size / 1024 / 1024:,.0f} MiB, more than the {SIZE_LIMIT // 1024 // 1024} MiB it allows",
                _largest_count(outside_classes),
                "use a smaller repetition count (e.g. `{1,50}` or `+`) or a narrower class "
                "(`[A-Za-z0-9_]` instead of `\\w`, `[0-9]` instead of `\\d`)")
    return None


def _nesting(pattern: str) -> tuple[int, int]:
    """The deepest nesting of groups (character classes blanked) and where it is reached."""
    depth = deepest = at = 0
    escaped = False
    for i, ch in enumerate(pattern):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "(":
            depth += 1
            if depth > deepest:
                deepest, at = depth, i
        elif ch == ")":
            depth = max(depth - 1, 0)
    return deepest, at


def _largest_count(pattern: str) -> int:
    counts = [(int(m.group(1) or 0) + int(m.group(2) or 0), m.start()) for m in
              re.finditer(r"(?<!\\)\{(\d{1,9})?(?:,(\d{1,9}))?\}", pattern)]
    return max(counts)[1] if counts else 0


# Bytes the Rust engine's compiled program takes per piece (measured with DataFusion's regex).
_LITERAL_BYTE = 32
_CATEGORY = {"CATEGORY_WORD": 50_200, "CATEGORY_NOT_WORD": 46_700, "CATEGORY_DIGIT": 5_200,
             "CATEGORY_NOT_DIGIT": 12_800, "CATEGORY_SPACE": 700, "CATEGORY_NOT_SPACE": 2_000}
_ANY = 1_000
_UNICODE_CLASS = 50_000  # \p{…} / \P{…}: the largest Unicode classes cost about as much as \w
_MARK = "\ue000"  # stands for a \p class in the pattern Python parses


def _utf8_length(code: int) -> int:
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


def _class_cost(items, ignore_case: bool) -> int:
    cost, ascii_ranges = 0, 0
    for op, value in items:
        name = str(op)
        if name == "NEGATE":
            return _ANY
        if name == "CATEGORY":
            cost += _CATEGORY.get(str(value), _ANY)
        elif name == "LITERAL":
            if value == ord(_MARK):
                cost += _UNICODE_CLASS
            elif value < 0x80:
                ascii_ranges += 1
            else:
                cost += 100 * _utf8_length(value)
        elif name == "RANGE":
            low, high = value
            if high < 0x80:
                ascii_ranges += 1
            else:
                cost += sum(100 * n for n in range(_utf8_length(low), _utf8_length(high) + 1))
    cost += (64 + 8 * ascii_ranges if ascii_ranges else 0)
    return cost * (3 if ignore_case else 1)


def _sequence_cost(parsed, ignore_case: bool) -> float:
    from re import _constants as c  # noqa: PLC2701 - the parse tree's opcodes

    total = 0.0
    for op, value in parsed:
        if op is c.LITERAL:
            if value == ord(_MARK):
                total += _UNICODE_CLASS
            else:
                letter = chr(value).isalpha()
                total += (240 if ignore_case and letter else _LITERAL_BYTE * _utf8_length(value))
        elif op is c.NOT_LITERAL or op is c.ANY:
            total += _ANY
        elif op is c.IN:
            total += _class_cost(value, ignore_case)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            low, high, inner = value
            piece = _sequence_cost(inner, ignore_case)
            if high is c.MAXREPEAT:
                total += piece * (low + 1) + 40
            else:
                total += piece * high + 40 * (high - low)
        elif op is c.SUBPATTERN:
            _, add_flags, del_flags, inner = value
            case = (ignore_case or bool(add_flags & re.IGNORECASE)) and not del_flags & re.IGNORECASE
            total += _sequence_cost(inner, case)
        elif op is c.BRANCH:
            total += sum(_sequence_cost(branch, ignore_case) + 48 for branch in value[1])
        elif op in (c.ASSERT, c.ASSERT_NOT):
            total += _sequence_cost(value[1], ignore_case)
        else:  # anchors, boundaries
            total += 4
        if total > SIZE_LIMIT * 1000:
            return total  # far over already: stop counting
    return total


def compiled_size(pattern: str) -> int:
    """About how many bytes Rust's regex compiles ``pattern`` to (0 when Python cannot parse it)."""
    from re import _parser

    marked = re.sub(r"\\[pP](\{[^}]*\}|[A-Za-z])", lambda m: _MARK, pattern)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = _parser.parse(_to_python(marked))
    except (re.error, RecursionError, OverflowError, ValueError):
        return 0
    ignore_case = bool(parsed.state.flags & re.IGNORECASE)
    return int(min(_sequence_cost(parsed, ignore_case), 2**62))
