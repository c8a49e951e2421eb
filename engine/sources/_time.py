"""RFC 3339 timestamps, read exactly (nanoseconds) the way InfluxDB 3 stores them.

``parse_rfc3339("2024-05-01T12:00:00.5Z")`` gives nanoseconds since the Unix
epoch, UTC. An offset (``+02:00``) is applied; a time without one is read as
UTC, as InfluxDB 3 reads a zone-less time. Anything else is a ``ValueError``
whose message says what was expected.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["parse_rfc3339", "parse_rfc3339_datetime", "format_rfc3339"]

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*([Zz]|[+-]\d{2}:?\d{2})?"
)
_EPOCH = datetime(1970, 1, 1)
_EXPECTED = "expected an RFC 3339 time such as 2024-05-01T12:00:00Z"


def _parts(text: str) -> tuple[datetime, int, int]:
    """(naive wall-clock time, fraction in ns, offset in seconds) or ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"{_EXPECTED}, got {type(text).__name__}")
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r}: {_EXPECTED}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        wall = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError as error:
        raise ValueError(f"{text!r}: {error}; {_EXPECTED}") from None
    nanos = int((fraction or "").ljust(9, "0"))
    offset = 0
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise ValueError(f"{text!r}: offset {zone} out of range; {_EXPECTED}")
        offset = sign * (hours * 3600 + minutes * 60)
    return wall, nanos, offset


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since 1970-01-01T00:00:00Z (UTC) for an RFC 3339 time."""
    wall, nanos, offset = _parts(text)
    delta = wall - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds - offset
    return seconds * 1_000_000_000 + nanos


def parse_rfc3339_datetime(text: str) -> datetime:
    """An aware ``datetime`` in UTC (microsecond resolution: digits past the sixth are dropped)."""
    wall, nanos, offset = _parts(text)
    moment = wall - timedelta(seconds=offset) + timedelta(microseconds=nanos // 1000)
    return moment.replace(tzinfo=timezone.utc)


def format_rfc3339(nanos: int) -> str:
    """``2024-05-01T12:00:00Z``, with as many fraction digits as needed, for nanoseconds since the epoch."""
    seconds, fraction = divmod(int(nanos), 1_000_000_000)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"
