"""Durations (``90s``, ``1h30m``, ``7d``) and points in time (ISO 8601 or a duration back from now)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import InvalidInput

__all__ = ["parse_duration", "parse_time", "parse_since"]

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?\Z")
_UNITS = (7 * 86400, 86400, 3600, 60, 1)


def parse_duration(what: str, text: str) -> timedelta:
    """``90s``, ``5m``, ``1h30m``, ``7d``, ``2w`` — the rule language's duration syntax."""
    value = text.strip().lower()
    match = _DURATION.match(value) if value else None
    if not match or not any(match.groups()):
        raise InvalidInput(
            f"{what} {text[:40]!r} is not a duration: write a number with a unit s, m, h, d or w, "
            "compounds allowed (for example 30m, 2h, 1h30m, 7d)."
        )
    seconds = sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS) if g)
    if seconds <= 0:
        raise InvalidInput(f"{what} must be longer than zero.")
    return timedelta(seconds=seconds)


def parse_time(what: str, text: str) -> datetime:
    """An ISO 8601 time; a time without a zone is taken as UTC."""
    value = text.strip()
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{what} {text[:40]!r} is not an ISO 8601 time; write it like 2025-06-01T08:00:00Z."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_since(text: str, now: datetime) -> datetime:
    """``since``: an ISO 8601 time, or a duration meaning that long before ``now``."""
    value = text.strip()
    if value and value[0].isdigit() and _DURATION.match(value.lower()):
        return now - parse_duration("since", value)
    try:
        return parse_time("since", value)
    except InvalidInput:
        raise InvalidInput(
            f"since {text[:40]!r} is neither a time nor a duration: write 24h or 7d (that long ago) "
            "or an ISO 8601 time like 2025-06-01T08:00:00Z."
        ) from None
