"""Time windows: when, on the wall clock of one time zone (``mon-fri 09:00-17:00 in "Europe/Paris"``).

A window is one or more *spans* joined by ``or``, then an optional zone for
all of them (``in "ZONE"``, an IANA name; ``UTC`` when left out). A span is
days, times, or days then times:

- days: ``mon tue wed thu fri sat sun``, single or ranges (``mon-fri``;
  ``fri-mon`` wraps over the weekend), comma-separated; none = every day;
- times: ``HH:MM-HH:MM``, comma-separated; the start is inside, the end is
  not. An end at or before the start crosses midnight and belongs to the day
  it starts on (``fri 22:00-06:00`` is Friday night into Saturday morning;
  ``00:00-00:00`` is the whole day); none = the whole day.

Wall-clock times follow the zone's daylight-saving rules (``zoneinfo``): a
window holds at an instant when the zone's clock reads a time inside it, so
a time that does not exist on a spring-forward day is skipped, and a time
read twice on a fall-back day holds both times.

A :class:`TimeWindow` is worked out once into the stretches of the week it
covers (seconds since Monday 00:00 on the wall clock, merged), so
:meth:`~TimeWindow.contains` is one conversion to the zone and one binary
search, and :meth:`~TimeWindow.next_change` tries only the instants where the
clock reads a stretch's start or end, and the zone's offset changes.

Canonical text (``.text``): each span's days in week order with runs of
consecutive days as ranges (a run over Sunday into Monday stays one wrapping
range, ``fri-mon``), every day written ``mon-sun`` and left out before times;
its times sorted, each once, ``HH:MM``; spans in the order written, each once;
the zone printed unless it is ``UTC``. Two windows are equal when their
canonical texts are.
"""

from __future__ import annotations

import bisect
import functools
import heapq
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable
from zoneinfo import ZoneInfo, available_timezones

__all__ = ["TimeWindow", "WindowSpan", "parse_window", "DAYS", "DEFAULT_ZONE", "known_zone", "zone_names",
           "describe_window"]

#: the day names, Monday first (``datetime.weekday()`` order)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_WORDS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DEFAULT_ZONE = "UTC"
_DAY = 86400
_WEEK = 7 * _DAY
_UTC = timezone.utc


@functools.cache
def zone_names() -> frozenset[str]:
    """Every IANA zone name this system knows (``zoneinfo.available_timezones()``), read once."""
    return frozenset(available_timezones())


@functools.cache
def _zones_by_lower() -> dict[str, str]:
    return {name.lower(): name for name in zone_names()}


def known_zone(name: str) -> str | None:
    """The IANA spelling of zone ``name`` (matched regardless of case), or ``None`` when no zone has it."""
    exact = _zones_by_lower().get(name.lower())
    if exact is not None:
        return exact
    try:  # a zone the listing leaves out but zoneinfo reads
        ZoneInfo(name)
    except Exception:
        return None
    return name


@functools.cache
def _zone(name: str):
    return _UTC if name == "UTC" else ZoneInfo(name)


class WindowSpan(tuple):
    """One span: ``days`` (day numbers, Monday = 0, in week order; empty = every day) and ``times``
    (``(start, end)`` minutes after midnight, sorted; empty = the whole day). A tuple ``(days, times)``."""

    __slots__ = ()

    def __new__(cls, days: Iterable[int] = (), times: Iterable[tuple[int, int]] = ()):
        day_set = sorted(set(days))
        if any(not 0 <= d < 7 for d in day_set):
            raise ValueError("days are numbered 0 (Monday) to 6 (Sunday)")
        ranges = sorted(set((int(s), int(e)) for s, e in times))
        if any(not (0 <= s < 1440 and 0 <= e < 1440) for s, e in ranges):
            raise ValueError("times are minutes after midnight, 0 to 1439")
        if not day_set and not ranges:
            raise ValueError("a span needs days, times or both")
        if ranges == [(0, 0)]:  # `00:00-00:00` alone is the whole day
            ranges = []
            day_set = day_set or list(range(7))
        if len(day_set) == 7 and ranges:
            day_set = []  # every day, with times: the times alone say it
        return super().__new__(cls, (tuple(day_set), tuple(ranges)))

    def __getnewargs__(self):
        return self[0], self[1]

    @property
    def days(self) -> tuple[int, ...]:
        return self[0]

    @property
    def times(self) -> tuple[tuple[int, int], ...]:
        return self[1]

    @property
    def text(self) -> str:
        parts = []
        if self.days:
            parts.append(_days_text(self.days))
        if self.times:
            parts.append(", ".join(f"{_clock(s)}-{_clock(e)}" for s, e in self.times))
        return " ".join(parts)

    def stretches(self) -> list[tuple[int, int]]:
        """The seconds of the week (wall clock, from Monday 00:00) this span covers, as ``[start, end)``
        pairs, possibly running past the end of the week."""
        out = []
        for day in self.days or range(7):
            base = day * _DAY
            if not self.times:
                out.append((base, base + _DAY))
                continue
            for start, end in self.times:
                stop = end if end > start else end + 1440
                out.append((base + start * 60, base + stop * 60))
        return out


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _runs(days: tuple[int, ...]) -> list[tuple[int, int]]:
    """The runs of consecutive days (first, last) around the week; one run over Sunday into Monday wraps."""
    chosen = set(days)
    if len(chosen) == 7:
        return [(0, 6)]
    runs = []
    for day in sorted(chosen):
        if (day - 1) % 7 in chosen:
            continue  # inside a run that started earlier (or wraps in from Sunday)
        last = day
        while (last + 1) % 7 in chosen:
            last = (last + 1) % 7
        runs.append((day, last))
    return runs


def _days_text(days: tuple[int, ...]) -> str:
    return ", ".join(DAYS[a] if a == b else f"{DAYS[a]}-{DAYS[b]}" for a, b in _runs(days))


def _merge(stretches: list[tuple[int, int]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Stretches of the week folded into ``[0, WEEK)`` and merged: (starts, ends), sorted."""
    folded = []
    for start, end in stretches:
        if end - start >= _WEEK:
            return (0,), (_WEEK,)
        length = end - start
        start %= _WEEK
        end = start + length
        if end > _WEEK:
            folded += [(start, _WEEK), (0, end - _WEEK)]
        else:
            folded.append((start, end))
    folded.sort()
    starts: list[int] = []
    ends: list[int] = []
    for start, end in folded:
        if ends and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return tuple(starts), tuple(ends)


class TimeWindow:
    """A time window: spans joined by ``or`` in one zone. Immutable, hashable, equal when the canonical
    texts (``.text``) are.

    ``TimeWindow(spans, zone)`` takes :class:`WindowSpan` values (or ``(days, times)`` pairs) and an IANA
    zone name; :func:`parse_window` reads one from text.
    """

    __slots__ = ("spans", "zone", "text", "_tz", "_starts", "_ends", "_always", "_boundaries")

    def __init__(self, spans: Iterable, zone: str = DEFAULT_ZONE):
        unique: list[WindowSpan] = []
        for span in spans:
            span = span if isinstance(span, WindowSpan) else WindowSpan(*span)
            if span not in unique:
                unique.append(span)
        if not unique:
            raise ValueError("a window needs at least one span")
        name = known_zone(zone)
        if name is None:
            raise ValueError(f"unknown time zone {zone!r}")
        stretches = [s for span in unique for s in span.stretches()]
        starts, ends = _merge(stretches)
        text = " or ".join(span.text for span in unique)
        if name != DEFAULT_ZONE:
            text += ' in "' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        set_ = object.__setattr__
        set_(self, "spans", tuple(unique))
        set_(self, "zone", name)
        set_(self, "text", text)
        set_(self, "_tz", _zone(name))
        set_(self, "_starts", starts)
        set_(self, "_ends", ends)
        set_(self, "_always", starts == (0,) and ends == (_WEEK,))
        boundaries = sorted({s % _WEEK for s in starts} | {e % _WEEK for e in ends})
        # per weekday, the times of day (timedeltas from midnight) where a stretch starts or ends
        set_(self, "_boundaries", tuple(tuple(timedelta(seconds=b - day * _DAY) for b in boundaries
                                              if day * _DAY <= b < (day + 1) * _DAY) for day in range(7)))

    def __setattr__(self, name, value):
        raise AttributeError("a TimeWindow cannot be changed")

    def __delattr__(self, name):
        raise AttributeError("a TimeWindow cannot be changed")

    def __eq__(self, other):
        return isinstance(other, TimeWindow) and other.text == self.text

    def __hash__(self):
        return hash(("TimeWindow", self.text))

    def __reduce__(self):
        return TimeWindow, (self.spans, self.zone)

    def __repr__(self) -> str:
        return f"TimeWindow({self.text!r})"

    def __str__(self) -> str:
        return self.text

    @property
    def always(self) -> bool:
        """Whether the window covers the whole week (it then never changes)."""
        return self._always

    # --- reading it ---------------------------------------------------------------------
    def _position(self, local: datetime) -> float:
        """Seconds since Monday 00:00 of the wall-clock time ``local``."""
        return (local.weekday() * _DAY + local.hour * 3600 + local.minute * 60 + local.second
                + local.microsecond / 1e6)

    def _holds_at(self, position: float) -> bool:
        index = bisect.bisect_right(self._starts, position) - 1
        return index >= 0 and position < self._ends[index]

    def contains(self, instant: datetime) -> bool:
        """Whether the window holds at ``instant`` (an aware datetime; a naive one is read as UTC)."""
        if self._always:
            return True
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=_UTC)
        return self._holds_at(self._position(instant.astimezone(self._tz)))

    def next_change(self, instant: datetime) -> datetime | None:
        """The first instant strictly after ``instant`` where :meth:`contains` changes (in UTC), or
        ``None`` when it never does (a window covering the whole week)."""
        if self._always:
            return None
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=_UTC)
        instant = instant.astimezone(_UTC)
        now = self.contains(instant)
        # The candidates are the instants where the zone's clock reads a stretch's start or end, and the
        # instants where its offset changes, taken local day by local day. A day's instants may run past
        # the next day's first ones (a fall-back repeat over midnight), never past the day after: a
        # candidate is tried once the day after its own is in too.
        first = instant.astimezone(self._tz).date() - timedelta(days=1)
        heap: list[tuple[datetime, int]] = []
        loaded = -1
        while loaded < _HORIZON_DAYS:
            if not heap or heap[0][1] + 1 > loaded:
                loaded += 1
                for moment in self._day_candidates(first + timedelta(days=loaded), instant):
                    heapq.heappush(heap, (moment, loaded))
                continue
            moment, _ = heapq.heappop(heap)
            if self.contains(moment) != now:
                return moment
        return None

    def _day_candidates(self, day: date, instant: datetime) -> list[datetime]:
        """The instants after ``instant`` of local day ``day`` where the window may start or stop holding."""
        tz = self._tz
        midnight = datetime.combine(day, time())
        found = [moment for offset in self._boundaries[day.weekday()]
                 for moment in _instants_of(midnight + offset, tz) if moment > instant]
        if tz is not _UTC:
            for utc_day in (day - timedelta(days=1), day, day + timedelta(days=1)):
                for moment in _day_transitions(self.zone, utc_day):
                    if moment > instant and moment.astimezone(tz).date() == day:
                        found.append(moment)
        return found


#: how many local days ahead `next_change` looks (a week, the margin a zone's clock changes can take, and more)
_HORIZON_DAYS = 40


def _instants_of(wall: datetime, tz) -> list[datetime]:
    """The UTC instants at which the zone's clock reads ``wall`` (naive): none in a spring-forward gap,
    two in a fall-back repeat, else one."""
    if tz is _UTC:
        return [wall.replace(tzinfo=_UTC)]
    early = tz.utcoffset(wall)
    late = tz.utcoffset(wall.replace(fold=1))
    if early == late:
        return [(wall - early).replace(tzinfo=_UTC)]
    out = []
    for offset in (early, late):
        moment = (wall - offset).replace(tzinfo=_UTC)
        if moment.astimezone(tz).replace(tzinfo=None) == wall and moment not in out:
            out.append(moment)
    return sorted(out)


_STEP = timedelta(hours=6)


@functools.lru_cache(maxsize=8192)
def _day_transitions(zone: str, day: date) -> tuple[datetime, ...]:
    """The instants of UTC day ``day`` at which ``zone``'s offset changes (found to the second)."""
    tz = _zone(zone)
    out = []
    at = datetime.combine(day, time(), _UTC)
    for _ in range(4):
        after = at + _STEP
        before_offset = at.astimezone(tz).utcoffset()
        if after.astimezone(tz).utcoffset() != before_offset:
            low, high = at, after  # offset(low) == before_offset != offset(high)
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle <= low:
                    middle = low + timedelta(seconds=1)
                if middle.astimezone(tz).utcoffset() == before_offset:
                    low = middle
                else:
                    high = middle
            out.append(high)
        at = after
    return tuple(out)


def parse_window(text: str) -> TimeWindow:
    """The window written in ``text`` (``mon-fri 09:00-17:00 in "Europe/Paris"``).

    Raises :class:`~monitors_dsl.errors.DslError` listing every problem, each with its position in
    ``text`` (unknown day or zone with the closest names, hour over 23, minute over 59, an empty span or
    window, a syntax error).
    """
    from .errors import Diagnostics, DslError
    from .parser import parse_window_text

    diags = Diagnostics()
    if not isinstance(text, str):
        diags.add("not-text", f"expected a time window (a string), got {type(text).__name__}", None)
        raise DslError(diags.sorted())
    window = parse_window_text(text, diags)
    if window is None or diags.has_errors:
        raise DslError(diags.sorted())
    return window


# --- in words -------------------------------------------------------------------------------


def _days_words(days: tuple[int, ...]) -> str:
    parts = []
    for a, b in _runs(days):
        if a == b:
            parts.append(_DAY_WORDS[a])
        elif (a, b) == (0, 4):
            parts.append("weekdays")
        elif (a, b) == (5, 6):
            parts.append("weekends")
        else:
            parts.append(f"{_DAY_WORDS[a]} to {_DAY_WORDS[b]}")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _times_words(times: tuple[tuple[int, int], ...]) -> str:
    words = []
    for start, end in times:
        if start == end == 0:
            words.append("all day")
        else:
            words.append(f"{_clock(start)} to {_clock(end)}" + (" the next day" if end <= start else ""))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe_window(window: TimeWindow) -> str:
    """The window in words: ``weekdays 09:00 to 17:00 (Europe/Paris time)``."""
    parts = []
    for span in window.spans:
        if span.days and span.times:
            parts.append(f"{_days_words(span.days)} {_times_words(span.times)}")
        elif span.days:
            parts.append("every day" if len(span.days) == 7 else _days_words(span.days))
        else:
            parts.append("every day " + _times_words(span.times))
    return " or ".join(parts) + f" ({window.zone} time)"
