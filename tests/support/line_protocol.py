"""InfluxDB line protocol, parsed the way InfluxDB 3 parses it.

    measurement[,tag_key=tag_value...] field_key=field_value[,...] [timestamp]

Escapes: in a measurement ``\\,`` ``\\ `` ``\\\\``; in tag keys, tag values and
field keys also ``\\=``; a backslash before any other character is literal, and
a name may not end with one. String fields are double-quoted, with ``\\"`` and
``\\\\`` escapes (a string may span lines). Numbers: ``1.5``/``1``/``-2e3`` are
floats, ``12i`` integers, ``12u`` unsigned; booleans ``t T true True TRUE`` and
``f F false False FALSE``. The timestamp is an integer in the request's
precision. Blank lines and ``#`` comment lines are skipped.

``parse_lines(text)`` gives ``(points, errors)``: every good line as a
``Point``, every bad one as a ``LineError`` (line number, message, the line),
so a write can succeed partially as InfluxDB 3's does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Point", "LineError", "Unsigned", "parse_lines", "split_lines", "to_nanoseconds", "PRECISIONS"]

_FLOAT = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_INT = re.compile(r"-?\d+i")
_UINT = re.compile(r"\d+u")
_TIMESTAMP = re.compile(r"-?\d+")
_TRUE = ("true", "True", "TRUE", "t", "T")
_FALSE = ("false", "False", "FALSE", "f", "F")
_BOUNDARY = " \t\n"
_MAX_STRING = 65536
_I64 = (-(2**63), 2**63 - 1)

#: precision name (both the v2 and the v3 spelling) → nanoseconds per unit; "auto" guesses
PRECISIONS = {
    "ns": 1, "nanosecond": 1,
    "us": 1_000, "microsecond": 1_000,
    "ms": 1_000_000, "millisecond": 1_000_000,
    "s": 1_000_000_000, "second": 1_000_000_000,
    "auto": None,
}


@dataclass(frozen=True)
class Point:
    """One parsed line: field values are ``float``, ``int``, ``Unsigned`` (an ``int``), ``bool`` or ``str``."""

    measurement: str
    tags: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)
    timestamp: int | None = None
    line_number: int = 0


@dataclass(frozen=True)
class LineError:
    line_number: int
    error_message: str
    original_line: str

    def to_dict(self) -> dict:
        return {"error_message": self.error_message, "line_number": self.line_number,
                "original_line": self.original_line}


class _Bad(Exception):
    pass


class Unsigned(int):
    """An unsigned integer field value (``12u``)."""


def split_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` for each line, keeping newlines inside quoted string fields."""
    out, start, number, quoted, in_fields, escape = [], 0, 1, False, False, False
    first_line = 1
    equals = commas = 0
    for i, c in enumerate(text):
        if escape:
            escape = False
            continue
        if c == "\\":
            escape = True
            continue
        if c == " ":
            in_fields = True
        elif in_fields and not quoted and c == "=":
            equals += 1
        elif in_fields and not quoted and c == ",":
            commas += 1
        elif in_fields and c == '"' and equals > commas:
            quoted = not quoted
        elif c == "\n":
            if not quoted:
                out.append((first_line, text[start:i]))
                start, in_fields, equals, commas = i + 1, False, 0, 0
                first_line = number + 1
            number += 1
    out.append((first_line, text[start:]))
    return out


class _Reader:
    def __init__(self, line: str):
        self.s, self.i = line, 0

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def name(self, what: str, stops: str, escapable: str) -> str:
        """An escaped name up to (not including) one of ``stops`` or a boundary."""
        out, s = [], self.s
        while self.i < len(s):
            c = s[self.i]
            if c == "\\" and self.i + 1 < len(s) and s[self.i + 1] in escapable:
                out.append(s[self.i + 1])
                self.i += 2
                continue
            if c in stops or c in _BOUNDARY or c == "\0":
                break
            out.append(c)
            self.i += 1
        text = "".join(out)
        if not text:
            got = self.s[self.i:self.i + 10] or "end of line"
            raise _Bad(f"expected {what}, got `{got}`" if got != "end of line" else f"expected {what}, got end of line")
        if text.endswith("\\"):
            raise _Bad("measurements, tag keys and values, and field keys may not end with a backslash")
        return text

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            got = self.s[self.i:self.i + 10] or "end of line"
            raise _Bad(f"expected {what}, got `{got}`")
        self.i += 1

    def spaces(self) -> int:
        start = self.i
        while self.peek() == " ":
            self.i += 1
        return self.i - start

    def string_value(self) -> str:
        self.i += 1  # opening quote
        out, s = [], self.s
        while self.i < len(s):
            c = s[self.i]
            if c == "\\" and self.i + 1 < len(s) and s[self.i + 1] in '"\\':
                out.append(s[self.i + 1])
                self.i += 2
            elif c == '"':
                self.i += 1
                text = "".join(out)
                if len(text.encode()) > _MAX_STRING:
                    raise _Bad("string is greater than 64KB")
                return text
            else:
                out.append(c)
                self.i += 1
        raise _Bad("unterminated string field value")

    def field_value(self):
        if self.peek() == '"':
            return self.string_value()
        rest = self.s[self.i:]
        for pattern, convert in ((_INT, lambda t: int(t[:-1])), (_UINT, lambda t: Unsigned(t[:-1]))):
            match = pattern.match(rest)
            if match:
                value = convert(match.group())
                if isinstance(value, Unsigned) and value >= 2**64:
                    raise _Bad(f"unable to parse unsigned integer value `{match.group()}`")
                if not isinstance(value, Unsigned) and not _I64[0] <= value <= _I64[1]:
                    raise _Bad(f"unable to parse integer value `{match.group()}`")
                self.i += match.end()
                return value
        match = _FLOAT.match(rest)
        if match:
            self.i += match.end()
            value = float(match.group())
            if value != value or value in (float("inf"), float("-inf")):
                raise _Bad(f"unable to parse floating-point value `{match.group()}`")
            return value
        for words, value in ((_TRUE, True), (_FALSE, False)):
            for word in words:
                if rest.startswith(word):
                    self.i += len(word)
                    return value
        raise _Bad(f"invalid field value `{rest[:10]}`")


def _parse_line(line: str, number: int) -> Point:
    r = _Reader(line)
    measurement = r.name("a measurement", ",", ", \\")
    tags: dict[str, str] = {}
    while r.peek() == ",":
        r.i += 1
        key = r.name("a tag key", "=", ",= \\")
        r.expect("=", "an equals sign")
        value = r.name("a tag value", ",", ",= \\")
        if key in tags:
            raise _Bad(f"must not contain duplicate tags, but `{key}` was repeated")
        tags[key] = value
    if not r.spaces():
        raise _Bad("expected a space before the fields")
    fields: dict[str, object] = {}
    while True:
        key = r.name("a field key", "=", ",= \\")
        r.expect("=", "an equals sign")
        value = r.field_value()
        if key in fields:
            raise _Bad(f"duplicate field `{key}`")
        fields[key] = value
        if r.peek() != ",":
            break
        r.i += 1
    timestamp = None
    if r.spaces():
        match = _TIMESTAMP.match(r.s, r.i)
        if match and r.i < len(r.s):
            timestamp = int(match.group())
            if not _I64[0] <= timestamp <= _I64[1]:
                raise _Bad(f"unable to parse timestamp value `{match.group()}`")
            r.i = match.end()
            r.spaces()
    if not r.at_end():
        raise _Bad(f"could not parse entire line; found trailing content: `{r.s[r.i:r.i + 10]}`")
    for key in tags:
        if key in fields:
            raise _Bad(f"`{key}` is both a tag and a field")
    return Point(measurement, tags, fields, timestamp, number)


def parse_lines(text: str) -> tuple[list[Point], list[LineError]]:
    """Every good line as a ``Point`` and every bad one as a ``LineError``."""
    points, errors = [], []
    for number, raw in split_lines(text):
        line = raw.lstrip(_BOUNDARY).rstrip("\r")
        if not line or line.startswith("#"):
            continue
        try:
            points.append(_parse_line(line, number))
        except _Bad as error:
            errors.append(LineError(number, str(error), raw))
    return points, errors


def to_nanoseconds(timestamp: int, precision: str) -> int:
    """A line's timestamp in nanoseconds; ``auto`` guesses the unit from the magnitude as InfluxDB 3 does."""
    scale = PRECISIONS[precision]
    if scale is None:
        magnitude = abs(timestamp)
        scale = (1_000_000_000 if magnitude < 5_000_000_000 else 1_000_000 if magnitude < 5_000_000_000_000
                 else 1_000 if magnitude < 5_000_000_000_000_000 else 1)
    return timestamp * scale
