"""Time windows: contains and next_change against a minute-by-minute reading over generated windows and zones
(across daylight-saving changes), the canonical text, and every error with its position (table-driven)."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitors_dsl import DslError, TimeWindow, parse_window
from monitors_dsl.windows import DAYS

from tests.support.dsl_strategies import WINDOW_ZONES, window_spans

UTC = timezone.utc
MINUTE = timedelta(minutes=1)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: a day before each 2026 clock change of the zones (UTC), so two days of minutes cross it
CHANGES = {
    "UTC": [datetime(2026, 3, 1, tzinfo=UTC)],
    "Europe/Paris": [datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 10, 24, tzinfo=UTC)],
    "America/New_York": [datetime(2026, 3, 7, tzinfo=UTC), datetime(2026, 10, 31, tzinfo=UTC)],
    "Australia/Lord_Howe": [datetime(2026, 4, 4, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC)],
    "Pacific/Chatham": [datetime(2026, 4, 4, tzinfo=UTC), datetime(2026, 9, 26, tzinfo=UTC)],
}


def reading(spans, zone: str, instant: datetime) -> bool:
    """The window read the long way: the zone's clock at ``instant``, each span's days and times as written."""
    local = instant.astimezone(ZoneInfo(zone))
    day = local.weekday()
    minute = local.hour * 60 + local.minute + local.second / 60
    for days, times in spans:
        days = set(days) or set(range(7))
        if not times and day in days:
            return True
        for start, end in times:
            if end > start:
                if day in days and start <= minute < end:
                    return True
            elif (day in days and minute >= start) or ((day - 1) % 7 in days and minute < end):
                return True
    return False


def window_text(spans, zone: str) -> str:
    """Text for ``spans`` as a person might write it: days in the order given, times as given."""
    parts = []
    for days, times in spans:
        words = [DAYS[d] for d in days]
        clock = [f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in times]
        parts.append(" ".join(filter(None, [", ".join(words), ", ".join(clock)])))
    return " or ".join(parts) + ("" if zone == "UTC" else f' in "{zone}"')


@st.composite
def windows_at(draw):
    spans = draw(st.lists(window_spans(), min_size=1, max_size=3))
    zone = draw(st.sampled_from(WINDOW_ZONES))
    base = draw(st.sampled_from(CHANGES[zone])) + draw(st.integers(0, 24 * 60)) * MINUTE
    return spans, zone, base


@PROPERTY
@given(windows_at())
def test_contains_agrees_with_the_minute_by_minute_reading(case) -> None:
    spans, zone, base = case
    window = parse_window(window_text(spans, zone))
    for step in range(0, 2 * 24 * 60):
        at = base + step * MINUTE
        assert window.contains(at) == reading(spans, zone, at), (window.text, at)


@PROPERTY
@given(windows_at(), st.integers(0, 59))
def test_next_change_is_the_first_minute_where_contains_changes(case, seconds) -> None:
    spans, zone, base = case
    window = TimeWindow(spans, zone)
    now = reading(spans, zone, base)
    expected = None
    for step in range(1, 9 * 24 * 60):
        at = base + step * MINUTE
        if reading(spans, zone, at) != now:
            expected = at
            break
    assert window.next_change(base) == expected, window.text
    # From inside the minute the answer is the same: changes happen on whole minutes.
    assert window.next_change(base + timedelta(seconds=seconds, microseconds=1)) == expected
    if expected is not None:
        assert window.contains(expected) != window.contains(expected - timedelta(microseconds=1))


@PROPERTY
@given(st.lists(window_spans(), min_size=1, max_size=3), st.sampled_from(WINDOW_ZONES))
def test_canonical_text_round_trips(spans, zone) -> None:
    window = TimeWindow(spans, zone)
    assert parse_window(window.text) == window
    assert parse_window(window.text).text == window.text
    assert parse_window(window_text(spans, zone)) == window
    assert hash(parse_window(window.text)) == hash(window)
    assert pickle.loads(pickle.dumps(window)) == window


def at(text: str, zone: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(("window", "instant", "holds"), [
    ("09:00-17:00", "2026-12-01T09:00:00", True),
    ("09:00-17:00", "2026-12-01T16:59:59.999999", True),
    ("09:00-17:00", "2026-12-01T17:00:00", False),
    ("09:00-17:00", "2026-12-01T08:59:59", False),
    ("fri 22:00-06:00", "2026-12-05T05:59:00", True),  # Saturday morning belongs to Friday night
    ("fri 22:00-06:00", "2026-12-05T06:00:00", False),
    ("fri 22:00-06:00", "2026-12-04T05:00:00", False),  # Friday morning is Thursday night's
    ("fri-mon", "2026-12-07T23:59:00", True),  # Monday
    ("fri-mon", "2026-12-08T00:00:00", False),  # Tuesday
    ("00:00-00:00", "2026-12-01T13:00:00", True),
    ("sat-sun or mon-fri 22:00-07:00", "2026-12-02T06:59:00", True),
    ("sat-sun or mon-fri 22:00-07:00", "2026-12-02T07:00:00", False),
    ("sun 23:00-01:00", "2026-12-07T00:30:00", True),  # into Monday, across the week's end
    ("mon 09:00-12:00, 13:00-17:00", "2026-11-30T12:30:00", False),
])
def test_worked_examples(window, instant, holds) -> None:
    assert parse_window(window).contains(at(instant)) is holds


def test_a_naive_instant_is_read_as_utc() -> None:
    window = parse_window('09:00-17:00 in "Europe/Paris"')
    assert window.contains(datetime(2026, 12, 1, 8, 0)) is True  # 09:00 in Paris
    assert window.next_change(datetime(2026, 12, 1, 8, 0)) == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


def test_a_time_skipped_by_spring_forward_never_holds_that_day() -> None:
    window = parse_window('02:00-02:30 in "Europe/Paris"')  # on 29 March 2026 clocks go 02:00 → 03:00
    day = datetime(2026, 3, 29, tzinfo=UTC)
    assert not any(window.contains(day + k * MINUTE) for k in range(24 * 60))
    assert window.contains(at("2026-03-30T02:10", "Europe/Paris"))
    # A window starting in the gap starts when the clock jumps over it.
    late = parse_window('02:30-04:00 in "Europe/Paris"')
    assert late.next_change(datetime(2026, 3, 29, 0, 30, tzinfo=UTC)) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_a_repeated_time_holds_both_times() -> None:
    window = parse_window('02:00-02:30 in "Europe/Paris"')  # on 25 October 2026 clocks go 03:00 → 02:00
    first = datetime(2026, 10, 25, 0, 15, tzinfo=UTC)  # 02:15 summer time
    second = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 02:15 winter time
    assert window.contains(first) and window.contains(second)
    assert not window.contains(datetime(2026, 10, 25, 0, 45, tzinfo=UTC))  # 02:45 summer time
    assert window.next_change(first) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert window.next_change(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)) == datetime(2026, 10, 25, 1, 0, tzinfo=UTC)


def test_a_window_covering_the_week_never_changes() -> None:
    for text in ("mon-sun", "00:00-00:00", "sat-sun or mon-fri", "fri-thu", '12:00-12:00 in "Pacific/Chatham"'):
        window = parse_window(text)
        assert window.always and window.next_change(datetime(2026, 3, 29, tzinfo=UTC)) is None, text


def test_next_change_does_not_walk_minutes() -> None:
    import time as clock

    window = parse_window('mon-fri 09:00-17:00 in "America/New_York"')
    start = clock.perf_counter()
    at_ = datetime(2026, 3, 6, 23, 0, tzinfo=UTC)  # Friday night before the spring change
    for _ in range(200):
        at_ = window.next_change(at_)
    elapsed = clock.perf_counter() - start
    assert at_.year in (2026, 2027) and elapsed < 2.0, elapsed


@pytest.mark.parametrize(("written", "canonical"), [
    ("Mon-Fri 09:00-17:00", "mon-fri 09:00-17:00"),
    ("fri, thu, wed, mon, tue", "mon-fri"),
    ("sat, sun", "sat-sun"),
    ("fri-mon", "fri-mon"),
    ("sun, mon, wed", "wed, sun-mon"),
    ("mon-sun 09:00-17:00", "09:00-17:00"),
    ("mon-sun", "mon-sun"),
    ("00:00-00:00", "mon-sun"),
    ("mon 00:00-00:00", "mon"),
    ("13:00-17:00, 9:00-12:00, 13:00-17:00", "09:00-12:00, 13:00-17:00"),
    ('sat or sat in "UTC"', "sat"),
    ('mon in "europe/paris"', 'mon in "Europe/Paris"'),
    ('22:00-06:00 IN "Asia/Tokyo"', '22:00-06:00 in "Asia/Tokyo"'),
])
def test_canonical_text(written, canonical) -> None:
    assert parse_window(written).text == canonical
    assert parse_window(canonical).text == canonical


def test_a_window_is_a_value() -> None:
    window = parse_window('mon-fri 09:00-17:00 in "Europe/Paris"')
    assert window.zone == "Europe/Paris" and str(window) == window.text
    assert window == parse_window('fri,mon-thu 09:00-17:00 in "Europe/Paris"')
    assert window != parse_window("mon-fri 09:00-17:00")
    assert len({window, parse_window(window.text)}) == 1
    with pytest.raises(AttributeError):
        window.zone = "UTC"


# text, code, column, end column (1-based, on line 1), words the hint holds
ERRORS = [
    ("", "empty-window", 1, 1, "mon-fri 09:00-17:00"),
    ('in "Europe/Paris"', "empty-window", 1, 18, "00:00-00:00 is the whole day"),
    ("mon or", "empty-span", 5, 7, "each side of `or`"),
    ("or mon", "empty-span", 1, 3, "each side of `or`"),
    ("sat or or sun", "empty-span", 5, 7, "each side of `or`"),
    ("mnday", "unknown-day", 1, 6, "did you mean `mon`?"),
    ("monday-friday", "unknown-day", 1, 7, "did you mean `mon`?"),
    ("mon-fryday", "unknown-day", 5, 11, "did you mean `fri`?"),
    ("weekdays 09:00-17:00", "unknown-day", 1, 9, "mon-fri"),
    ("mon 24:00-01:00", "hour-out-of-range", 5, 10, "write midnight as 00:00"),
    ("25:00-26:00", "hour-out-of-range", 1, 6, "00 to 23"),
    ("09:00-17:60", "minute-out-of-range", 7, 12, "00 to 59"),
    ("09:0-17:00", "invalid-time", 1, 5, "write `09:00`"),
    ('mon in "Europe/Pariss"', "unknown-zone", 8, 23, '"Europe/Paris"'),
    ('mon in "Paris"', "unknown-zone", 8, 15, '"Europe/Paris"'),
    ('mon in "Mars/Olympus"', "unknown-zone", 8, 22, "IANA zone name"),
    ("mon 9-17", "syntax-error", 5, 6, "HH:MM-HH:MM"),
    ("mon 09:00", "unexpected-end", 9, 10, "`-`"),
    ("mon-", "unexpected-end", 4, 5, "a name"),
    ("mon and tue", "syntax-error", 5, 8, "`or`"),
]


@pytest.mark.parametrize(("text", "code", "column", "end_column", "hint"), ERRORS, ids=[e[0] or "empty" for e in ERRORS])
def test_each_error_has_its_code_and_position(text, code, column, end_column, hint) -> None:
    with pytest.raises(DslError) as raised:
        parse_window(text)
    found = [d for d in raised.value.diagnostics if d.code == code]
    assert found, [str(d) for d in raised.value.diagnostics]
    d = found[0]
    assert (d.line, d.column, d.end_column, d.severity) == (1, column, end_column, "error"), str(d)
    assert hint in (d.hint or ""), d.hint


def test_every_error_of_a_window_is_reported_at_once() -> None:
    with pytest.raises(DslError) as raised:
        parse_window('mnday 25:00-09:75 in "Nowhere/City"')
    assert [d.code for d in raised.value.diagnostics] == ["unknown-day", "hour-out-of-range", "minute-out-of-range",
                                                         "unknown-zone"]


def test_a_window_must_be_text() -> None:
    with pytest.raises(DslError) as raised:
        parse_window(None)
    assert raised.value.diagnostics[0].code == "not-text"
