"""Grouped channels: the due notifications of one group go as one message to a real HTTP receiver, the next
after the group interval; a failed message is retried whole; two dispatchers never send a group twice; a
crash before the outcome is written sends a group again, never loses it (SQLite and MariaDB)."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from engine.notify.dispatch import Dispatcher
from engine.notify.grouping import group_due, group_key, group_labels
from engine.state.model import Notification
from monitors_mcp.store import NotificationChannel, NotificationGroup, NotificationLog, NotificationOutbox
from monitors_mcp.store.types import utcnow
from tests.support.receivers import HttpReceiver

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)


def channel_id(db, owner: int, name: str) -> int:
    with db.session() as s:
        return s.scalar(select(NotificationChannel.id).where(NotificationChannel.owner_id == owner,
                                                             NotificationChannel.name == name))


def queue(db, owner: int, channel: int, hosts, *, rule: str = "web_cpu_high", kind: str = "firing",
          at: datetime = T0, severity: str = "warning", region: str | None = None) -> list[int]:
    """Outbox rows as the engine writes them, one per host, oldest first; their ids."""
    ids = []
    with db.session() as s:
        for host in hosts:
            labels = {"host": host} | ({"region": region} if region else {})
            key = uuid.uuid4().hex
            note = Notification(kind=kind, at=at, rule_id=f"rule-{rule}", series_key=host, severity=severity,
                                started_at=at, values={"last(cpu.usage, 5m)": 95.0}, value=95.0,
                                idempotency_key=key)
            payload = {"notification": note.to_dict(),
                       "rule": {"id": f"rule-{rule}", "name": rule, "condition": "last(cpu.usage, 5m) > 90",
                                "description": None, "title": None, "message": None},
                       "labels": labels, "channel": "ops"}
            row = NotificationOutbox(idempotency_key=key, owner_id=owner, channel_id=channel, kind=kind,
                                     payload=payload, status="pending", attempts=0, created_at=utcnow())
            s.add(row)
            s.flush()
            ids.append(row.id)
    return ids


def statuses(db, ids) -> list[str]:
    with db.session() as s:
        rows = dict(s.execute(select(NotificationOutbox.id, NotificationOutbox.status)
                              .where(NotificationOutbox.id.in_(ids))).all())
    return [rows[i] for i in ids]


def logs(db, ids) -> list[tuple[int, str]]:
    with db.session() as s:
        return sorted(s.execute(select(NotificationLog.outbox_id, NotificationLog.status)
                                .where(NotificationLog.outbox_id.in_(ids))).all())


def listed(item) -> list[str]:
    """The titles a group message lists (its indented lines)."""
    text = item.data.get("message") or ""
    return [line.strip() for line in text.splitlines() if line.startswith("  ") and not line.startswith("  and ")]


def title_of(host: str, kind: str = "firing", rule: str = "web_cpu_high", region: str | None = None) -> str:
    labels = f"host={host}" + (f", region={region}" if region else "")
    if kind == "resolved":
        return f"[RESOLVED] {rule} is resolved ({labels})"
    return f"[WARNING] {rule} is firing ({labels})"


class Clock:
    """The dispatcher's clock, set by the test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, when: datetime) -> datetime:
        self.now = when
        return when


def run(dispatcher: Dispatcher, when: datetime):
    """One pass at ``when`` (the dispatcher's clock reads it too)."""
    dispatcher.clock.at(when)
    return dispatcher.dispatch()


@pytest.fixture
def hook():
    with HttpReceiver() as http:
        yield http


def grouped_channel(workspace, owner: int, hook, name: str = "ops", **policies) -> int:
    ws = workspace(owner)
    ws.channels.add(name, hook.url("json", f"/{name}"),
                    {"group_by": ["rule"], "group_wait": "30s", "group_interval": "5m", **policies})
    return channel_id(ws.channels.db, owner, name)


def test_forty_of_one_rule_in_one_message_then_a_later_one_after_the_group_interval(db, workspace, new_user,
                                                                                   secrets, hook):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook)
    hosts = [f"web-{i:02d}" for i in range(40)]
    first = queue(db, owner, channel, hosts)
    dispatcher = Dispatcher(db, secrets, attempt_timeout=5, clock=Clock())

    assert run(dispatcher, T0).attempted == 0  # the group waits for others
    assert run(dispatcher, T0 + 29 * SECOND).attempted == 0 and hook.count == 0
    report = run(dispatcher, T0 + 30 * SECOND)
    assert (report.sent, report.groups) == (40, 1) and hook.wait_for(1)
    message = hook.received[0].data
    assert message["title"] == "[WARNING] 40 alerts (rule=web_cpu_high): 40 firing"
    assert listed(hook.received[0]) == [title_of(h) for h in hosts]
    assert statuses(db, first) == ["sent"] * 40
    assert logs(db, first) == [(i, "sent") for i in first]  # one log row each

    [later] = queue(db, owner, channel, ["web-40"])
    for when in (timedelta(minutes=1), timedelta(minutes=5, seconds=29)):
        assert run(dispatcher, T0 + when).attempted == 0
    report = run(dispatcher, T0 + timedelta(minutes=5, seconds=30))  # the group interval after the first
    assert (report.sent, report.groups) == (1, 1) and hook.wait_for(2)
    assert listed(hook.received[1]) == [title_of("web-40")]
    assert hook.received[1].data["title"] == "[WARNING] 1 alert (rule=web_cpu_high): 1 firing"
    assert statuses(db, [later]) == ["sent"]
    assert run(dispatcher, T0 + timedelta(hours=1)).attempted == 0 and hook.count == 2


def test_a_channels_own_group_templates_see_every_alerts_variables(db, workspace, new_user, secrets, hook):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_wait="0s", group_by=["region"],
                              group_title="{{ group.region }}: {{ firing | length }}/{{ alerts | length }}",
                              group_message="{% for a in alerts %}{{ a.rule }} {{ a.state }} {{ a.labels.host }} "
                                            "{{ a.value }} [{{ a.title }}]\n{% endfor %}")
    queue(db, owner, channel, ["h1"], region="eu")
    queue(db, owner, channel, ["h2"], region="eu", kind="resolved")
    report = Dispatcher(db, secrets, attempt_timeout=5).dispatch(T0)
    assert report.groups == 1 and hook.wait_for(1)
    assert hook.received[0].data["title"] == "eu: 1/2"
    assert hook.received[0].data["message"].splitlines() == [
        f"web_cpu_high firing h1 95.0 [{title_of('h1', region='eu')}]",
        f"web_cpu_high resolved h2 95.0 [{title_of('h2', 'resolved', region='eu')}]"]


def test_a_group_template_that_fails_fails_its_notifications_with_the_reason(db, workspace, new_user, secrets,
                                                                            hook):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_wait="0s",
                              group_message="{{ alerts[0].labels.zone }}")  # no such label: fails when rendered
    ids = queue(db, owner, channel, ["z1", "z2"])
    report = Dispatcher(db, secrets, attempt_timeout=5).dispatch(T0)
    assert (report.failed, report.sent) == (2, 0) and hook.count == 0
    assert statuses(db, ids) == ["failed", "failed"]
    assert "group message template" in report.errors[0] and "zone" in report.errors[0]


def test_a_group_quiet_for_longer_than_its_interval_starts_again_with_the_group_wait(db, workspace, new_user,
                                                                                    secrets, hook):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_wait="10s", group_interval="1m")
    dispatcher = Dispatcher(db, secrets, attempt_timeout=5, clock=Clock())
    queue(db, owner, channel, ["a"])
    run(dispatcher, T0)
    assert run(dispatcher, T0 + 10 * SECOND).groups == 1
    queue(db, owner, channel, ["b"])
    at = T0 + timedelta(minutes=10)
    assert run(dispatcher, at).attempted == 0
    assert run(dispatcher, at + 9 * SECOND).attempted == 0
    assert run(dispatcher, at + 10 * SECOND).groups == 1 and hook.wait_for(2)


def test_groups_waiting_for_nothing_are_forgotten_after_a_day(db, workspace, new_user, secrets, hook):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_wait="0s")
    queue(db, owner, channel, ["f1"])
    dispatcher = Dispatcher(db, secrets, attempt_timeout=5, clock=Clock())
    assert run(dispatcher, T0).groups == 1

    def groups() -> int:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(NotificationGroup)
                            .where(NotificationGroup.channel_id == channel))

    assert groups() == 1
    run(dispatcher, T0 + timedelta(hours=23))
    assert groups() == 1  # its last message is within a day: kept
    queue(db, owner, channel, ["f2"])
    run(dispatcher, T0 + timedelta(days=2))  # sent (due), then forgotten at a later prune
    assert hook.wait_for(2) and groups() == 1
    run(dispatcher, T0 + timedelta(days=4))
    assert groups() == 0


def test_groups_follow_the_channels_labels_and_firing_and_resolved_share_a_message(db, workspace, new_user,
                                                                                  secrets, hook):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_by=["rule", "region"], group_wait="0s")
    queue(db, owner, channel, ["a1", "a2"], region="eu")
    queue(db, owner, channel, ["a3"], region="eu", kind="resolved")
    queue(db, owner, channel, ["b1"], region="us")
    queue(db, owner, channel, ["c1"], rule="other", region="eu")
    report = Dispatcher(db, secrets, attempt_timeout=5).dispatch(T0)
    assert (report.sent, report.groups) == (5, 3) and hook.wait_for(3)
    by_title = {item.data["title"]: listed(item) for item in hook.received}
    assert by_title == {
        "[WARNING] 3 alerts (region=eu, rule=web_cpu_high): 2 firing, 1 resolved":
            [title_of("a1", region="eu"), title_of("a2", region="eu"), title_of("a3", "resolved", region="eu")],
        "[WARNING] 1 alert (region=us, rule=web_cpu_high): 1 firing": [title_of("b1", region="us")],
        "[WARNING] 1 alert (region=eu, rule=other): 1 firing": [title_of("c1", rule="other", region="eu")],
    }
    eu = next(item for item in hook.received if "2 firing" in item.data["title"]).data["message"]
    assert eu.index("Firing (2):") < eu.index("Resolved (1):")


def test_a_failed_group_is_retried_together_with_what_joined_it(db, workspace, new_user, secrets, hook):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_wait="0s")
    first = queue(db, owner, channel, [f"h{i}" for i in range(5)])
    dispatcher = Dispatcher(db, secrets, attempt_timeout=5, first_backoff=30, clock=Clock())
    hook.fail_next(1)
    report = run(dispatcher, T0)
    assert (report.sent, report.retried, report.groups) == (0, 5, 0) and hook.count == 0 and hook.rejected == 1
    with db.session() as s:
        retries = set(s.scalars(select(NotificationOutbox.next_attempt_at).where(NotificationOutbox.id.in_(first))))
    assert len(retries) == 1  # one time for the whole group
    assert logs(db, first) == [(i, "error") for i in first]

    joined = queue(db, owner, channel, ["h5", "h6"])
    assert run(dispatcher, T0 + 29 * SECOND).attempted == 0  # the group waits for its retry
    report = run(dispatcher, T0 + 30 * SECOND)
    assert (report.sent, report.groups) == (7, 1) and hook.wait_for(1)
    assert listed(hook.received[0]) == [title_of(f"h{i}") for i in range(7)]
    assert statuses(db, first + joined) == ["sent"] * 7
    assert logs(db, first) == sorted([(i, "error") for i in first] + [(i, "sent") for i in first])
    with db.session() as s:
        attempts = list(s.scalars(select(NotificationOutbox.attempts).where(NotificationOutbox.id.in_(first + joined))
                                  .order_by(NotificationOutbox.id)))
    assert attempts == [2] * 5 + [1] * 2


def test_a_group_past_its_deadline_fails_for_good(db, workspace, new_user, secrets, hook):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_wait="0s")
    ids = queue(db, owner, channel, ["x", "y"])
    dispatcher = Dispatcher(db, secrets, attempt_timeout=5, first_backoff=30, deadline=20)
    hook.fail_next(1)
    report = dispatcher.dispatch()
    assert (report.failed, report.retried) == (2, 0) and statuses(db, ids) == ["failed", "failed"]
    assert report.errors and "500" in report.errors[0]


def test_a_notification_that_cannot_render_fails_alone_and_the_group_goes(db, workspace, new_user, secrets, hook):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_wait="0s")
    good = queue(db, owner, channel, ["ok1", "ok2"])
    [bad] = queue(db, owner, channel, ["bad"])
    with db.session() as s:
        row = s.get(NotificationOutbox, bad)
        row.payload = {**row.payload, "notification": {"kind": "firing"}}  # a payload this version cannot read
    report = Dispatcher(db, secrets, attempt_timeout=5).dispatch(T0)
    assert (report.sent, report.failed, report.groups) == (2, 1, 1) and hook.wait_for(1)
    assert listed(hook.received[0]) == [title_of("ok1"), title_of("ok2")]
    assert statuses(db, good + [bad]) == ["sent", "sent", "failed"]


def test_a_channel_that_stops_grouping_sends_one_message_each(db, workspace, new_user, secrets, hook):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook)
    ids = queue(db, owner, channel, ["p", "q"])
    dispatcher = Dispatcher(db, secrets, attempt_timeout=5)
    assert dispatcher.dispatch(T0).attempted == 0
    workspace(owner).channels.update("ops", policies={"group_by": None})
    report = dispatcher.dispatch(T0)
    assert (report.sent, report.groups) == (2, 0) and hook.wait_for(2)
    assert sorted(item.data["title"] for item in hook.received) == sorted([title_of("p"), title_of("q")])
    assert statuses(db, ids) == ["sent", "sent"]


def test_two_dispatchers_never_send_one_group_twice(db, workspace, new_user, secrets, hook):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_wait="0s")
    hook.delay = 0.2  # a slow receiver: the second dispatcher comes while the first is sending
    rules = [f"rule_{n}" for n in range(4)]
    ids = []
    for rule in rules:
        ids += queue(db, owner, channel, [f"{rule}-h{i}" for i in range(10)], rule=rule)
    dispatchers = [Dispatcher(db, secrets, attempt_timeout=5, replica=f"engine-{n}") for n in range(2)]
    for _ in range(3):
        barrier = threading.Barrier(len(dispatchers))
        errors = []

        def run(dispatcher):
            barrier.wait()
            try:
                dispatcher.dispatch(T0)
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
    assert hook.wait_for(4)
    assert hook.count == 4  # one message per rule, from one dispatcher or the other
    lines = [line for item in hook.received for line in listed(item)]
    assert sorted(lines) == sorted(title_of(f"{r}-h{i}", rule=r) for r in rules for i in range(10))
    assert statuses(db, ids) == ["sent"] * 40
    with db.session() as s:
        sent_logs = s.scalar(select(func.count()).select_from(NotificationLog)
                             .where(NotificationLog.outbox_id.in_(ids), NotificationLog.status == "sent"))
        claims = s.scalars(select(NotificationGroup.claimed_by).where(NotificationGroup.channel_id == channel)).all()
    assert sent_logs == 40 and claims == [None] * 4


def test_a_dispatcher_that_read_a_group_before_another_sent_it_waits_the_group_interval(db, workspace, new_user,
                                                                                       secrets, hook, monkeypatch):
    """B reads the group's rows and timing; meanwhile A sends the group and a new notification arrives. B,
    claiming the group after that, sees A's message and leaves the new one for the group interval."""
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_wait="0s", group_interval="1m")
    first = queue(db, owner, channel, ["s1", "s2", "s3"])
    a = Dispatcher(db, secrets, attempt_timeout=5, replica="engine-a", clock=Clock())
    b = Dispatcher(db, secrets, attempt_timeout=5, replica="engine-b", clock=Clock())
    read_states = b._group_states
    late: list[int] = []

    def meanwhile(*args):
        states = read_states(*args)
        if not late:
            assert run(a, T0).groups == 1
            late.extend(queue(db, owner, channel, ["s4"]))
        return states

    monkeypatch.setattr(b, "_group_states", meanwhile)
    assert run(b, T0).attempted == 0
    assert hook.wait_for(1) and hook.count == 1 and statuses(db, first + late) == ["sent"] * 3 + ["pending"]
    assert run(b, T0 + 59 * SECOND).attempted == 0
    assert run(b, T0 + 60 * SECOND).groups == 1 and hook.wait_for(2)
    assert listed(hook.received[1]) == [title_of("s4")]


def test_a_crash_between_the_answer_and_the_commit_sends_the_group_again(db, workspace, new_user, secrets, hook,
                                                                        monkeypatch):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_wait="0s")
    ids = queue(db, owner, channel, ["m1", "m2", "m3"])
    crashing = Dispatcher(db, secrets, attempt_timeout=5, replica="engine-0")

    def crash(*_args, **_kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(crashing, "_finish_group", crash)
    with pytest.raises(RuntimeError):
        crashing.dispatch(T0)
    assert hook.wait_for(1) and statuses(db, ids) == ["sending"] * 3
    other = Dispatcher(db, secrets, attempt_timeout=5, replica="engine-1")
    assert other.dispatch(T0 + 10 * SECOND).attempted == 0  # the claim has not run out
    report = other.dispatch(T0 + timedelta(minutes=2))
    assert (report.sent, report.groups) == (3, 1) and hook.wait_for(2)
    assert listed(hook.received[0]) == listed(hook.received[1]) == [title_of(h) for h in ("m1", "m2", "m3")]
    assert statuses(db, ids) == ["sent"] * 3


def test_a_restarted_replica_takes_its_group_back_at_once(db, workspace, new_user, secrets, hook, monkeypatch):
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_wait="0s")
    ids = queue(db, owner, channel, ["r1", "r2"])
    crashing = Dispatcher(db, secrets, attempt_timeout=5, replica="engine-7")
    monkeypatch.setattr(crashing, "_finish_group", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError):
        crashing.dispatch(T0)
    restarted = Dispatcher(db, secrets, attempt_timeout=5, replica="engine-7")
    report = restarted.dispatch(T0 + SECOND)
    assert (report.sent, report.groups) == (2, 1) and statuses(db, ids) == ["sent", "sent"]


# --- the timing, over generated arrivals ------------------------------------------------------------------

STEP = 5  # seconds between dispatcher passes


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrivals=st.lists(st.tuples(st.integers(0, 120), st.sampled_from(["eu", "us"])), min_size=1, max_size=12),
       wait=st.sampled_from([0, 10, 30]), interval=st.sampled_from([30, 60, 120]))
def test_every_notification_is_in_exactly_one_message_and_none_waits_too_long(db, workspace, new_user, secrets,
                                                                              hook, arrivals, wait, interval):
    """Arrivals at multiples of STEP (passes run every STEP seconds): each notification reaches the receiver
    in exactly one message; a message of a group goes no sooner than group_wait after its oldest notification
    was first seen, nor sooner than group_interval after the group's previous message; and none waits longer
    than max(group_wait, group_interval) after it was first seen."""
    owner = new_user()
    channel = grouped_channel(workspace, owner, hook, group_by=["region"], group_wait=f"{wait}s",
                              group_interval=f"{interval}s")
    dispatcher = Dispatcher(db, secrets, attempt_timeout=5, clock=Clock())
    start = hook.count
    arrivals = sorted((tick * STEP, region) for tick, region in arrivals)
    seen: dict[str, tuple[int, str]] = {}  # host → (pass it arrived before, region)
    sent_at: dict[str, int] = {}
    messages: dict[str, list[int]] = {"eu": [], "us": []}
    pending = list(arrivals)
    end = arrivals[-1][0] + max(wait, interval) + 2 * STEP
    number = 0
    for second in range(0, end + 1, STEP):
        while pending and pending[0][0] <= second:
            _, region = pending.pop(0)
            host = f"n{number}"
            number += 1
            queue(db, owner, channel, [host], region=region)
            seen[host] = (second, region)
        before = hook.count
        run(dispatcher, T0 + second * SECOND)
        for item in hook.received[before:]:
            region = "eu" if "region=eu" in item.data["title"] else "us"
            messages[region].append(second)
            for line in listed(item):
                host = re.search(r"host=(n\d+)", line).group(1)
                assert host not in sent_at, f"{host} sent twice"
                sent_at[host] = second
    assert sorted(sent_at) == sorted(seen)  # every notification in exactly one message
    assert hook.count - start == sum(len(times) for times in messages.values())
    for host, (arrived, region) in seen.items():
        assert sent_at[host] - arrived <= max(wait, interval), (host, arrived, sent_at[host])
    for region, times in messages.items():
        for earlier, later in zip(times, times[1:]):
            assert later - earlier >= interval
        if times:
            oldest = min(arrived for arrived, r in seen.values() if r == region)
            assert times[0] - oldest >= wait


def test_group_keys_and_due_times():
    payload = {"labels": {"host": "a", "region": "eu"}, "rule": {"name": "r"}}
    assert group_labels(("rule", "region", "zone"), payload) == {"rule": "r", "region": "eu", "zone": ""}
    one = group_key(group_labels(("rule", "region"), payload), ("rule", "region"))
    other = group_key(group_labels(("rule", "region"), {**payload, "labels": {"region": "us"}}), ("rule", "region"))
    assert len(one) == 64 and one != other
    assert group_due(T0, None, wait_seconds=None, interval_seconds=None) == T0 + 30 * SECOND
    assert group_due(T0, T0 - SECOND, wait_seconds=0, interval_seconds=None) == T0 + 299 * SECOND
    assert group_due(T0, T0 - timedelta(hours=1), wait_seconds=10, interval_seconds=60) == T0 + 10 * SECOND
