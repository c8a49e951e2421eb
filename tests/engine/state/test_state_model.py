"""The state machine's records: the engine's fast way of building an evaluation builds the same one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from engine.state import Evaluation

values = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True, allow_infinity=True))


@given(st.integers(0, 10**9), st.sampled_from([None, "info", "warning", "critical"]),
       st.sampled_from([None, True, False]), st.booleans(),
       st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=4), values)
def test_evaluation_of_equals_the_constructor(seconds, severity, resolve, no_data, mapping, value):
    at = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)
    made = Evaluation(at=at, severity=severity, resolve=resolve, no_data=no_data, values=dict(mapping), value=value)
    fast = Evaluation.of(at, severity, resolve, no_data, dict(mapping), value)
    assert fast == made  # no NaN is left to compare unequal: both have it as None
