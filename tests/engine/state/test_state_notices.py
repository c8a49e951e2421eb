"""The notifier's record in the series state and the marks of a notification survive the store unchanged, and
a state written before they existed reads as "no record kept"."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.repository.base import notification_from_dict
from engine.state import FIRING, Notification, SeriesState
from engine.state.keys import idempotency_key

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

reasons = st.sampled_from(["sent", "silenced", "muted", "muted by channel pager", "suppressed by rule db"])
records = st.one_of(st.none(), st.dictionaries(st.sampled_from(["ops", "pager", "boss"]), reasons, max_size=3))
moments = st.one_of(st.none(), st.integers(0, 10**6).map(lambda us: T0 + timedelta(microseconds=us)))


@settings(max_examples=80, deadline=None)
@given(notices=records, escalation=st.sampled_from([None, "done", "cancelled"]), notice_at=moments)
def test_the_record_round_trips(notices, escalation, notice_at) -> None:
    state = SeriesState(state=FIRING, severity="warning", firing_since=T0, notified_severity="warning",
                        notices=notices, escalation=escalation, notice_at=notice_at)
    data = state.to_dict()
    assert SeriesState.from_dict(data) == state
    assert ("notices" in data) == (notices is not None)
    assert ("escalation" in data) == (escalation is not None) and ("notice_at" in data) == (notice_at is not None)


def test_a_state_written_before_the_record_reads_as_no_record_kept() -> None:
    data = SeriesState(state=FIRING, severity="critical", firing_since=T0, notified_severity="critical").to_dict()
    assert not {"notices", "escalation", "notice_at"} & set(data)
    state = SeriesState.from_dict(data)
    assert state.notices is None and state.escalation is None and state.notice_at is None


@given(late=st.booleans(), escalated=st.booleans())
def test_a_notification_keeps_its_marks_through_its_payload(late, escalated) -> None:
    n = Notification(kind="firing", at=T0, rule_id="7", series_key="k", severity="warning", started_at=T0,
                     values={"v": 1.0}, value=1.0, idempotency_key=idempotency_key("7", "k", "late", T0), late=late,
                     escalated=escalated)
    assert notification_from_dict(n.to_dict()) == n
    old = {key: value for key, value in n.to_dict().items() if key not in ("late", "escalated")}
    assert notification_from_dict(old).late is False and notification_from_dict(old).escalated is False
