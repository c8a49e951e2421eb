"""RFC 3339 times read to the nanosecond."""

from datetime import datetime, timezone

import pytest

from engine.sources import format_rfc3339, parse_rfc3339, parse_rfc3339_datetime

SECOND = 1_000_000_000


@pytest.mark.parametrize(
    "text, nanos",
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:01z", SECOND),
        ("2024-05-01T12:00:00Z", 1714564800 * SECOND),
        ("2024-05-01T14:00:00+02:00", 1714564800 * SECOND),
        ("2024-05-01T07:30:00-04:30", 1714564800 * SECOND),
        ("2024-05-01 12:00:00", 1714564800 * SECOND),
        ("2024-05-01T12:00:00.123456789Z", 1714564800 * SECOND + 123456789),
        ("2024-05-01T12:00:00.5Z", 1714564800 * SECOND + 500_000_000),
        ("2024-05-01", 1714521600 * SECOND),
        ("1969-12-31T23:59:59Z", -SECOND),
    ],
)
def test_parse(text, nanos):
    assert parse_rfc3339(text) == nanos


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z",
                                  "2024-05-01T25:00:00Z", "2024-05-01T12:00:00.1234567890Z",
                                  "2024-05-01T12:00:00+25:00", "1714564800"])
def test_rejects(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_datetime_is_utc_and_round_trips():
    moment = parse_rfc3339_datetime("2024-05-01T14:00:00.250+02:00")
    assert moment == datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
    assert format_rfc3339(parse_rfc3339("2024-05-01T12:00:00.25Z")) == "2024-05-01T12:00:00.25Z"
    assert format_rfc3339(0) == "1970-01-01T00:00:00Z"
