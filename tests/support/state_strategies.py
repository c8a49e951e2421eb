"""Hypothesis strategies for the state machine: clauses and timelines of evaluations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from hypothesis import strategies as st
from engine.state import Clauses, Evaluation, FlapDetection


T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Tick:
    at: datetime
    evaluation: Evaluation


def _evaluation(at, kind, severity, resolve, n):
    if kind == "nodata":
        return Evaluation(at=at, no_data=True, values={"last(m.x)": None})
    return Evaluation(at=at, severity=severity if kind == "holds" else None, resolve=resolve,
                      values={"last(m.x)": float(n)}, value=float(n))


@st.composite
def timelines(draw, max_size=40):
    every = draw(st.sampled_from([15, 60]))
    size = draw(st.integers(1, max_size))
    ticks, offset = [], 0
    for n in range(size):
        # sometimes the engine was down: evaluations are skipped, not replayed
        offset += every * draw(st.sampled_from([1, 1, 1, 1, 1, 1, 2, 5]))
        kind = draw(st.sampled_from(["holds", "holds", "clear", "clear", "nodata"]))
        severity = draw(st.sampled_from(SEVERITIES))
        resolve = draw(st.sampled_from([True, False, None]))
        at = T0 + timedelta(seconds=offset)
        ticks.append(Tick(at, _evaluation(at, kind, severity, resolve, n)))
    return every, ticks


durations = st.one_of(st.just(0), st.integers(1, 400), st.sampled_from([60, 120, 300]))


@st.composite
def clauses(draw, flap=False):
    return Clauses(
        for_=draw(durations),
        keep_firing_for=draw(durations),
        has_resolve=draw(st.booleans()),
        on_no_data=draw(st.sampled_from(["ok", "alert", "keep"])),
        no_data_severity=draw(st.sampled_from(SEVERITIES)),
        repeat_every=draw(st.one_of(st.none(), st.integers(1, 600))),
        flap=FlapDetection(window=draw(st.integers(60, 1200)), high=draw(st.integers(2, 5)),
                           low=draw(st.integers(0, 1))) if flap else None,
    )
