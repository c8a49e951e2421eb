"""Durations (``90s``, ``1h30m``, ``7d``) and points in time (ISO 8601 or a duration back from now).

Every value is checked against a range before anything is computed from it:
durations from 1 second to :data:`MAX_DURATION` (a number of at most 12
digits per unit), times from :data:`EARLIEST` to :data:`LATEST` (UTC). A value
outside its range is an ``InvalidInput`` that names the range.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import InvalidInput

__all__ = ["EARLIEST", "LATEST", "MAX_DURATION", "check_moment", "parse_duration", "parse_time", "parse_since"]

_DURATION = re.compile(r"(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?\Z", re.ASCII)
_UNITS = (7 * 86400, 86400, 3600, 60, 1)
MAX_DURATION = timedelta(days=36_500)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
_MAX_TEXT = 64


def parse_duration(what: str, text: str) -> timedelta:
    """``90s``, ``5m``, ``1h30m``, ``7d``, ``2w`` — the rule language's duration syntax, 1s to 36500d."""
    value = text.strip().lower()
    match = _DURATION.match(value) if value else None
    if not match or not any(match.groups()):
        raise InvalidInput(
            f"{what} {text[:40]!r} is not a duration: write a number with a unit s, m, h, d or w, "
            "compounds allowed (for example 30m, 2h, 1h30m, 7d).", allowed="1s to 36500d")
    if len(value) > _MAX_TEXT or any(len(g) > 12 for g in match.groups() if g):
        raise _duration_out_of_range(what)
    seconds = sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS) if g)
    if seconds <= 0:
        raise InvalidInput(f"{what} must be longer than zero.", allowed="1s to 36500d")
    if seconds > MAX_DURATION.total_seconds():
        raise _duration_out_of_range(what)
    return timedelta(seconds=seconds)


def _duration_out_of_range(what: str) -> InvalidInput:
    return InvalidInput(f"{what} is longer than any this server handles: give at most 36500d (100 years).",
                        allowed="1s to 36500d")


def check_moment(what: str, when: datetime) -> datetime:
    """``when`` if it lies between :data:`EARLIEST` and :data:`LATEST`, else ``InvalidInput``."""
    if not EARLIEST <= when <= LATEST:
        raise _time_out_of_range(what)
    return when


def _time_out_of_range(what: str) -> InvalidInput:
    return InvalidInput(
        f"{what} is outside the times this server handles: give a time from 1970-01-01T00:00:00Z "
        "to 9999-12-30T00:00:00Z.", allowed="1970-01-01T00:00:00Z to 9999-12-30T00:00:00Z")


def parse_time(what: str, text: str) -> datetime:
    """An ISO 8601 time from 1970 to 9999-12-30 UTC; a time without a zone is taken as UTC."""
    value = text.strip()
    try:
        if len(value) > _MAX_TEXT:
            raise ValueError
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{what} {text[:40]!r} is not an ISO 8601 time; write it like 2025-06-01T08:00:00Z."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        when = when.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. 9999-12-31T23:59:59-14:00 is past the last representable time
        raise _time_out_of_range(what) from None
    return check_moment(what, when)


def parse_since(text: str, now: datetime) -> datetime:
    """``since``: an ISO 8601 time, or a duration meaning that long before ``now``."""
    value = text.strip()
    if value and value[0] in "0123456789" and _DURATION.match(value.lower()):
        moment = now - parse_duration("since", value)
        return check_moment("since", moment)
    try:
        return parse_time("since", value)
    except InvalidInput as error:
        if "outside the times" in error.message:
            raise
        raise InvalidInput(
            f"since {text[:40]!r} is neither a time nor a duration: write 24h or 7d (that long ago) "
            "or an ISO 8601 time like 2025-06-01T08:00:00Z."
        ) from None
