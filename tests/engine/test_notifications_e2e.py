"""Who hears of an alert, end to end: rules stored through the service, the real runner and dispatcher over
simulated time, the store on SQLite and MariaDB, real HTTP and SMTP receivers counting what arrives.

(a) a business-hours rule over a week across the spring daylight-saving change in Paris; (b) critical to
one receiver, warning to another, with an escalation from warning to critical between them; (c) an
escalation to the on-call after 30 minutes, and one an acknowledgement cancels; (d) services depending on
their database; (e) a mute window hiding a firing and sending it late, on the rule and on the channel;
(f) a silence over the resolution of an announced alert; (g) forty series grouped into one message, then a
second message after the group interval. Around them: a restarted engine running a tick again adds nothing,
a dependency on another replica or deleted, repeats by severity and acknowledgement, a silence ended early,
held late firings and a resolution inside the group wait on a grouped channel, the tools showing why a
notification is held. docs/notifications.md draws each case's timeline.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from engine.evaluate import Evaluator
from engine.notify.dispatch import Dispatcher
from engine.repository import SqlRepository
from engine.rules import AllRules, StoreRules
from engine.runner import Runner
from engine.sources import DataFusionSource
from monitors_mcp.service import UserService, Workspace
from monitors_mcp.store import NotificationOutbox, User
from tests.support.receivers import HttpReceiver, SmtpReceiver

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
#: the message of every rule here: what a receiver got, one field per part
KEY = "{{ rule }}|{{ state }}|{{ severity }}|{{ labels.host }}|{{ evaluated_at }}"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def near_now(step: timedelta) -> datetime:
    """A whole multiple of ``step`` a little before now (silences and acknowledgements are made now)."""
    now = datetime.now(timezone.utc)
    seconds = int(step.total_seconds())
    return datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=timezone.utc)


class OwnRules(AllRules):
    """The store's rules of one owner (other tests' rules in the same database take no part); ``names``: only
    those rules (a replica holding some of them)."""

    def __init__(self, db, owner_id: int, names: frozenset[str] | None = None) -> None:
        self.inner = StoreRules(db)
        self.owner_id = owner_id
        self.names = names

    def current(self):
        return [r for r in self.inner.current()
                if r.owner_id == self.owner_id and (self.names is None or r.name in self.names)]


class Feed:
    """One measurement of the embedded source; each change registers the whole table again."""

    def __init__(self, source: DataFusionSource, name: str, field: str, tags: tuple[str, ...]) -> None:
        self.source, self.name, self.field, self.tags = source, name, field, tags
        self.rows: list[tuple] = []

    def put(self, at: datetime, value: float, **tags: str) -> None:
        self.rows.append((at, *(tags[t] for t in self.tags), float(value)))
        self.flush()

    def put_many(self, points) -> None:
        for at, value, tags in points:
            self.rows.append((at, *(tags[t] for t in self.tags), float(value)))
        self.flush()

    def flush(self) -> None:
        columns = list(zip(*self.rows))
        table = {"time": list(columns[0])}
        for i, tag in enumerate(self.tags, 1):
            table[tag] = list(columns[i])
        table[self.field] = list(columns[-1])
        self.source.add_table(self.name, pa.table(table), tags=list(self.tags))


class Row(NamedTuple):
    """An outbox row as the tests read it."""

    kind: str
    status: str
    channel: str | None
    host: str | None
    reason: str | None
    late: bool
    escalated: bool


class Rig:
    """A fresh user, the embedded source, the runner and the dispatcher on one simulated clock."""

    def __init__(self, db, secrets) -> None:
        self.db = db
        self.user = UserService(db).add_user(f"e2e-{uuid.uuid4().hex[:10]}")
        self.ws = Workspace(db, self.user, secrets)
        self.source = DataFusionSource()
        self.now: datetime | None = None
        self.waiting = False  # rows left unsent by the last dispatch
        self.runners = [Runner(OwnRules(db, self.user), SqlRepository(db), Evaluator(self.source))]
        self.dispatcher = Dispatcher(db, secrets, attempt_timeout=5, first_backoff=5, max_backoff=10,
                                     clock=lambda: self.now or datetime.now(timezone.utc))

    def replicas(self, *names: set[str]) -> None:
        """Evaluate with one runner per set of rule names, in this order at each tick (as replicas holding
        those rules would, each with its own repository)."""
        self.runners = [Runner(OwnRules(self.db, self.user, frozenset(group)), SqlRepository(self.db),
                               Evaluator(self.source)) for group in names]

    def feed(self, measurement: str, *tags: str) -> Feed:
        """``feed("disk.used", "host")``: the field ``used`` of measurement ``disk``, tagged by host."""
        name, field = measurement.split(".")
        return Feed(self.source, name, field, tags)

    def tick(self, at: datetime, *, dispatch: bool = True, again: bool = False):
        """Evaluate at ``at`` and dispatch; ``again``: then run the same tick on a new runner (an engine
        restarted after it), which must add nothing."""
        self.now = at
        queued = 0
        for runner in self.runners:
            report = runner.tick(at)
            assert not report.errors, report.errors
            queued += report.outbox_rows
        if dispatch and (queued or self.waiting):  # a quiet tick with nothing queued has nothing to send
            self.dispatch(at)
            self.waiting = self.unsent() > 0
        if again:
            rows = self.outbox()
            restarted = Runner(OwnRules(self.db, self.user), SqlRepository(self.db), Evaluator(self.source))
            repeat = restarted.tick(at)
            assert not repeat.errors and repeat.outbox_rows == 0, repeat
            assert self.outbox() == rows

    def dispatch(self, at: datetime):
        self.now = at
        return self.dispatcher.dispatch(at)

    def unsent(self) -> int:
        """How many of the user's outbox rows are still to be sent (waiting for their group or a retry)."""
        table = NotificationOutbox
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(table).where(
                table.owner_id == self.user, table.status.in_(("pending", "sending"))))

    def outbox(self) -> list[Row]:
        """The user's outbox rows, oldest first."""
        table = NotificationOutbox
        with self.db.session() as s:
            rows = s.execute(select(table.kind, table.status, table.payload, table.held_reason, table.late,
                                    table.escalated).where(table.owner_id == self.user).order_by(table.id)).all()
        return [Row(kind, status, (payload or {}).get("channel"), ((payload or {}).get("labels") or {}).get("host"),
                    reason, bool(late), bool(escalated)) for kind, status, payload, reason, late, escalated in rows]

    def close(self) -> None:
        self.source.close()
        with self.db.session() as s:  # the user's rules, alerts, channels and outbox go with it
            s.delete(s.get(User, self.user))


@pytest.fixture
def rig(db, secrets):
    made = Rig(db, secrets)
    yield made
    made.close()


@pytest.fixture
def hook():
    with HttpReceiver() as http:
        yield http


def got(receiver) -> list[tuple[str, ...]]:
    """What an HTTP or SMTP receiver got, as the fields of :data:`KEY`."""
    out = []
    for item in list(receiver.received):
        text = (item.data.get("message") or item.data.get("body") or "").strip()
        out.append(tuple(text.split("|")))
    return out


# --- (a) business hours across a daylight-saving change ---------------------------------------------------


def test_a_business_hours_rule_over_a_week_across_the_spring_change_in_paris(rig, hook) -> None:
    rig.ws.channels.add("desk", hook.url("json", "/desk"))
    rig.ws.rules.create(
        'rule support_queue_long {\n  when last(support.queue{host="helpdesk"}, 2h) > 20\n  group by host\n'
        '  every 1h\n  active during mon-fri 09:00-17:00 in "Europe/Paris"\n  notify desk\n'
        f'  message "{KEY}"\n}}')
    start = utc("2024-03-28T00:00:00Z")  # Thursday; Paris moves from UTC+1 to UTC+2 on Sunday 31 March
    feed = rig.feed("support.queue", "host")
    feed.put_many((start + i * HOUR, 50, {"host": "helpdesk"}) for i in range(7 * 24))  # always long
    for i in range(7 * 24):
        rig.tick(start + i * HOUR)
    assert hook.wait_for(10)
    assert [(state, at) for _, state, _, _, at in got(hook)] == [
        ("firing", "2024-03-28T08:00:00Z"), ("resolved", "2024-03-28T16:00:00Z"),  # 09:00–17:00 CET
        ("firing", "2024-03-29T08:00:00Z"), ("resolved", "2024-03-29T16:00:00Z"),
        ("firing", "2024-04-01T07:00:00Z"), ("resolved", "2024-04-01T15:00:00Z"),  # 09:00–17:00 CEST
        ("firing", "2024-04-02T07:00:00Z"), ("resolved", "2024-04-02T15:00:00Z"),
        ("firing", "2024-04-03T07:00:00Z"), ("resolved", "2024-04-03T15:00:00Z"),
    ]
    assert {row.status for row in rig.outbox()} == {"sent"}


def test_a_business_hours_rule_across_the_autumn_change_in_paris(rig, hook) -> None:
    rig.ws.channels.add("desk", hook.url("json", "/desk"))
    rig.ws.rules.create(
        'rule support_queue_long {\n  when last(support.queue{host="helpdesk"}, 2h) > 20\n  group by host\n'
        '  every 1h\n  active during mon-fri 09:00-17:00 in "Europe/Paris"\n  notify desk\n'
        f'  message "{KEY}"\n}}')
    start = utc("2024-10-25T00:00:00Z")  # Friday; Paris moves from UTC+2 back to UTC+1 on Sunday 27 October
    feed = rig.feed("support.queue", "host")
    feed.put_many((start + i * HOUR, 50, {"host": "helpdesk"}) for i in range(4 * 24))
    for i in range(4 * 24):
        rig.tick(start + i * HOUR)
    assert [(state, at) for _, state, _, _, at in got(hook)] == [
        ("firing", "2024-10-25T07:00:00Z"), ("resolved", "2024-10-25T15:00:00Z"),  # 09:00–17:00 CEST
        ("firing", "2024-10-28T08:00:00Z"), ("resolved", "2024-10-28T16:00:00Z"),  # 09:00–17:00 CET
    ]


# --- (b) severity routing ---------------------------------------------------------------------------------


def test_b_critical_to_the_pager_warnings_to_chat_and_the_escalation_between(rig, hook) -> None:
    with SmtpReceiver(user="alerts", password="mail-s3cret") as pager:
        rig.ws.channels.add("pager", pager.url(to="oncall@example.com"))
        rig.ws.channels.add("chat", hook.url("json", "/chat"))
        rig.ws.rules.create(
            "rule disk_full {\n  critical when last(disk.used{host=\"db1\"}, 5m) > 95\n"
            "  warning when last(disk.used{host=\"db1\"}, 5m) > 85\n  group by host\n"
            f"  notify pager on critical\n  notify chat on warning\n  message \"{KEY}\"\n}}")
        feed = rig.feed("disk.used", "host")
        t0 = utc("2024-05-01T12:00:00Z")
        for i, used in enumerate((80, 90, 91, 97, 97, 50)):
            feed.put(t0 + i * MIN, used, host="db1")
            rig.tick(t0 + i * MIN)
            if i == 2:  # warning only: the pager has heard nothing
                assert hook.wait_for(1) and pager.count == 0
        assert hook.wait_for(3) and pager.wait_for(2)
        assert [(state, severity, at) for _, state, severity, _, at in got(hook)] == [
            ("firing", "warning", "2024-05-01T12:01:00Z"),
            ("firing", "critical", "2024-05-01T12:03:00Z"),  # the severity change, as chat was told
            ("resolved", "critical", "2024-05-01T12:05:00Z"),  # the severity that was firing
        ]
        assert "escalated from warning to critical" in hook.received[1].data["title"]
        assert [(state, severity, at) for _, state, severity, _, at in got(pager)] == [
            ("firing", "critical", "2024-05-01T12:03:00Z"),  # newly covered: a firing notice
            ("resolved", "critical", "2024-05-01T12:05:00Z"),  # it was told, so it hears the end
        ]
        assert "is firing" in pager.received[0].data["subject"]
        assert "is resolved" in pager.received[1].data["subject"]


# --- (c) escalation after 30 minutes, and one an acknowledgement cancels -------------------------------------


def test_c_escalates_to_the_on_call_after_30_minutes_unless_acknowledged(rig, hook) -> None:
    with HttpReceiver() as oncall:
        rig.ws.channels.add("team", hook.url("json", "/team"))
        rig.ws.channels.add("oncall", oncall.url("json", "/oncall"))
        rule = rig.ws.rules.create(
            "rule api_errors {\n  when last(api.errors, 5m) > 5\n  group by host\n  every 5m\n  severity critical\n"
            f"  notify team\n  escalate to oncall after 30m\n  message \"{KEY}\"\n}}")
        feed = rig.feed("api.errors", "host")
        step = 5 * MIN
        t0 = near_now(step) - 3 * step  # the acknowledgement, made now, falls before the 30 minutes
        for i in range(13):
            at = t0 + i * step
            for host in ("a", "b"):
                feed.put(at, 50 if i < 10 else 0, host=host)
            rig.tick(at)
            if i == 2:
                assert hook.wait_for(2)
                alerts = {a.labels["host"]: a.id for a in rig.ws.alerts.list(rule=rule.name).alerts}
                rig.ws.alerts.acknowledge(alerts["b"])  # b is seen to; a is not
            if i == 5:  # 25 minutes: nobody called yet
                assert oncall.count == 0
            if i == 6:  # 30 minutes: the on-call hears of a, once
                assert oncall.wait_for(1)
        assert hook.wait_for(4) and oncall.wait_for(2)
        firing_at, ended_at = t0.strftime("%Y-%m-%dT%H:%M:%SZ"), (t0 + 10 * step).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert sorted((host, state, at) for _, state, _, host, at in got(hook)) == [
            ("a", "firing", firing_at), ("a", "resolved", ended_at),
            ("b", "firing", firing_at), ("b", "resolved", ended_at)]
        assert [(host, state) for _, state, _, host, _ in got(oncall)] == [("a", "firing"), ("a", "resolved")]
        assert got(oncall)[1][4] == ended_at
        called = [(row.kind, row.host, row.status, row.escalated) for row in rig.outbox() if row.channel == "oncall"]
        assert called == [("firing", "a", "sent", True), ("resolved", "a", "sent", False)]


# --- (d) services depending on their database ----------------------------------------------------------------


@pytest.mark.parametrize("replicas", ["one engine", "two replicas"])
def test_d_services_depend_on_their_database_by_host(rig, hook, replicas) -> None:
    if replicas == "two replicas":  # the database's rule elsewhere: its firing alerts are read from the store
        rig.replicas({"db_down"}, {"service_errors"})
    rig.ws.channels.add("ops", hook.url("json", "/ops"))
    rig.ws.rules.create("rule db_down {\n  when last(db.up, 5m) < 1\n  group by host\n  notify ops\n"
                        "  message \"{{ rule }}|{{ state }}|{{ labels.host }}\"\n}")
    rig.ws.rules.create(
        "rule service_errors {\n  when last(svc.errors, 5m) > 5\n  group by host, service\n"
        "  depends on db_down on host\n  notify ops\n"
        "  message \"{{ rule }}|{{ state }}|{{ labels.host }}|{{ labels.service }}\"\n}")
    db, svc = rig.feed("db.up", "host"), rig.feed("svc.errors", "host", "service")
    t0 = utc("2024-05-01T12:00:00Z")
    #   db: h1, h2   services: (h1, api), (h1, web), (h1, worker), (h2, api)   what the receiver gets at the tick
    timeline = [
        ((1, 1), (9, 0, 0, 0), [("service_errors", "firing", "h1", "api")]),
        ((0, 1), (9, 9, 9, 9), [("db_down", "firing", "h1"),  # web and worker on h1 held, api on h2 told
                                ("service_errors", "firing", "h2", "api")]),
        ((0, 1), (0, 9, 0, 9), [("service_errors", "resolved", "h1", "api")]),  # told of its firing: told
        ((1, 1), (0, 9, 0, 9), [("db_down", "resolved", "h1"),  # the database is back and web still fires:
                                ("service_errors", "firing", "h1", "web")]),  # its firing, late, once
        ((1, 1), (0, 0, 0, 0), [("service_errors", "resolved", "h1", "web"),
                                ("service_errors", "resolved", "h2", "api")]),
        ((1, 1), (0, 0, 0, 0), []),
    ]
    services = (("h1", "api"), ("h1", "web"), ("h1", "worker"), ("h2", "api"))
    for i, (up, errors, expected) in enumerate(timeline):
        at = t0 + i * MIN
        before = hook.count
        for host, value in zip(("h1", "h2"), up):
            db.put(at, value, host=host)
        for (host, service), value in zip(services, errors):
            svc.put(at, value, host=host, service=service)
        rig.tick(at, again=True)
        assert sorted(got(hook)[before:]) == sorted(expected), (at, got(hook)[before:])
    assert not any("worker" in m for m in got(hook))  # held all its life (12:01–12:02): nothing at all
    listed = rig.ws.alerts.list(rule="service_errors").alerts
    shown = {a.labels["service"] + "@" + a.labels["host"]: [(n.kind, n.status, n.reason) for n in a.notifications]
             for a in listed}
    assert shown["worker@h1"] == [("resolved", "suppressed", "suppressed by rule db_down"),  # newest first
                                  ("firing", "suppressed", "suppressed by rule db_down")], shown
    assert shown["web@h1"] == [("resolved", "sent", None), ("firing", "sent", None),  # the late firing
                               ("firing", "suppressed", "suppressed by rule db_down")], shown
    rows = rig.outbox()
    held = sorted((row.kind, row.host, row.status, row.reason) for row in rows if row.status != "sent")
    assert held == [("firing", "h1", "suppressed", "suppressed by rule db_down")] * 2 + [  # web's and worker's
        ("resolved", "h1", "suppressed", "suppressed by rule db_down")], held  # worker's end: recorded, not sent
    (late,) = [row for row in rows if row.late]
    assert (late.kind, late.host, late.status) == ("firing", "h1", "sent")


# --- (e) a mute window hides a firing and sends it late ----------------------------------------------------


@pytest.mark.parametrize("where", ["rule", "channel"])
def test_e_a_mute_window_hides_a_firing_and_sends_it_late(rig, hook, where) -> None:
    night = "22:00-06:00"
    rig.ws.channels.add("ops", hook.url("json", "/ops"))
    if where == "channel":
        rig.ws.channels.update("ops", policies={"mute_during": night})
    rig.ws.rules.create(
        "rule batch_lagging {\n  when last(batch.lag, 1h) > 600\n  group by host\n  every 30m\n"
        + (f"  mute during {night}\n" if where == "rule" else "")
        + "  notify ops\n  message \"{{ rule }}|{{ state }}|{{ labels.host }}|{{ evaluated_at }}\"\n}")
    feed = rig.feed("batch.lag", "host")
    t0 = utc("2024-05-01T21:00:00Z")
    step = 30 * MIN
    nightly = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}  # 22:30 → 06:30 lagging
    hourly = {5, 6, 7, 8, 9}  # 23:30 → 01:30, all inside the window
    arrivals = {}
    for i in range(24):  # 21:00 → 08:30
        at = t0 + i * step
        feed.put(at, 900 if i in nightly else 0, host="nightly")
        feed.put(at, 900 if i in hourly else 0, host="hourly")
        before = hook.count
        rig.tick(at, again=True)
        for m in got(hook)[before:]:
            arrivals[m[:3]] = at.strftime("%H:%M")
    assert arrivals == {("batch_lagging", "firing", "nightly"): "06:00",  # the window's end: told late, once
                        ("batch_lagging", "resolved", "nightly"): "07:00"}
    assert hook.count == 2
    rows = rig.outbox()
    reason = "muted" if where == "rule" else "muted by channel ops"
    held = [row for row in rows if row.status != "sent"]
    assert {(row.kind, row.host, row.status, row.reason) for row in held} == {
        ("firing", "nightly", "muted", reason), ("firing", "hourly", "muted", reason),
        ("resolved", "hourly", "muted", reason)}, rows  # its firing was held, so its end is not sent either
    assert [(row.kind, row.host, row.late) for row in rows if row.status == "sent"] == [
        ("firing", "nightly", True), ("resolved", "nightly", False)]


# --- (f) a silence over the resolution of an announced alert ----------------------------------------------


def test_f_the_resolution_of_an_announced_alert_goes_through_a_silence(rig, hook) -> None:
    rig.ws.channels.add("ops", hook.url("json", "/ops"))
    rule = rig.ws.rules.create(
        "rule queue_stuck {\n  when last(queue.depth, 5m) > 100\n  group by host\n  notify ops\n"
        "  message \"{{ rule }}|{{ state }}|{{ labels.host }}|{{ evaluated_at }}\"\n}")
    feed = rig.feed("queue.depth", "host")
    t0 = near_now(MIN) + MIN  # evaluations from the next minute on; the silence from t0 + 3m to t0 + 13m
    rig.ws.silences.add(rule.name, start=iso(t0 + 3 * MIN), until=iso(t0 + 13 * MIN), comment="maintenance")
    # announced fires before the silence and resolves inside it; quiet fires and ends inside it;
    # late fires inside it and still fires when it ends
    announced, quiet, late = range(0, 5), range(4, 7), range(5, 20)
    timeline = []
    for i in range(22):
        at = t0 + i * MIN
        for host, span in (("announced", announced), ("quiet", quiet), ("late", late)):
            feed.put(at, 500 if i in span else 0, host=host)
        before = hook.count
        rig.tick(at, again=True)
        timeline += [(i, m[1], m[2]) for m in got(hook)[before:]]
    assert timeline == [
        (0, "firing", "announced"),  # before the silence
        (5, "resolved", "announced"),  # inside it: its firing was delivered, so its end is too
        (13, "firing", "late"),  # the silence is over and it still fires: told then, once
        (20, "resolved", "late"),
    ]
    assert all(host != "quiet" for _, _, host in timeline)
    rows = rig.outbox()
    assert [(row.kind, row.host, row.late) for row in rows if row.status == "sent"] == [
        ("firing", "announced", False), ("resolved", "announced", False), ("firing", "late", True),
        ("resolved", "late", False)]
    assert {(row.host, row.status, row.reason) for row in rows if row.status != "sent"} == {
        ("quiet", "silenced", "silenced"), ("late", "silenced", "silenced")}


# --- (g) forty series in one message, then a second one after the group interval ---------------------------


def titles_in(item) -> list[str]:
    """The alerts' titles a group message lists (one line each)."""
    text = item.data.get("message") or item.data.get("body") or ""
    return [line.strip() for line in text.splitlines() if line.count("|") == 2]


def test_g_forty_series_of_one_rule_in_one_message_then_the_next_after_the_group_interval(rig, hook) -> None:
    rig.ws.channels.add("ops", hook.url("json", "/ops"))
    rig.ws.channels.update("ops", policies={"group_by": ["rule"], "group_wait": "30s", "group_interval": "5m"})
    rig.ws.rules.create('rule web_cpu_high {\n  when last(cpu.usage, 5m) > 90\n  group by host\n  notify ops\n'
                        '  title "{{ rule }}|{{ state }}|{{ labels.host }}"\n}')
    feed = rig.feed("cpu.usage", "host")
    hosts = [f"web-{i:02d}" for i in range(40)]
    t0 = utc("2024-05-01T12:00:00Z")
    feed.put_many((t0, 99, {"host": h}) for h in hosts)
    rig.tick(t0)
    assert hook.count == 0  # the group waits for the others
    rig.dispatch(t0 + timedelta(seconds=20))
    assert hook.count == 0
    rig.dispatch(t0 + timedelta(seconds=30))
    assert hook.count == 1  # one message for the forty
    assert sorted(titles_in(hook.received[0])) == sorted(f"web_cpu_high|firing|{h}" for h in hosts)

    feed.put_many((t0 + MIN, 10, {"host": h}) for h in hosts)
    rig.tick(t0 + MIN)  # all forty resolve: they wait for the group interval since the first message
    for later in (timedelta(minutes=2), timedelta(minutes=5)):
        rig.dispatch(t0 + later)
        assert hook.count == 1
    rig.dispatch(t0 + timedelta(minutes=5, seconds=30))
    assert hook.count == 2
    assert sorted(titles_in(hook.received[1])) == sorted(f"web_cpu_high|resolved|{h}" for h in hosts)
    rig.dispatch(t0 + timedelta(minutes=20))
    assert hook.count == 2
    assert [row.status for row in rig.outbox()] == ["sent"] * 80


def test_g_a_failed_group_message_is_retried_whole_and_each_group_has_its_own(rig, hook) -> None:
    rig.ws.channels.add("ops", hook.url("json", "/ops"))
    rig.ws.channels.update("ops", policies={"group_by": ["region"], "group_wait": "30s", "group_interval": "5m"})
    rig.ws.rules.create('rule web_cpu_high {\n  when last(cpu.usage, 5m) > 90\n  group by region, host\n'
                        '  notify ops\n  title "{{ rule }}|{{ state }}|{{ labels.host }}"\n}')
    feed = rig.feed("cpu.usage", "region", "host")
    hosts = {"eu": [f"eu-{i}" for i in range(4)], "us": ["us-0", "us-1"]}
    t0 = utc("2024-05-01T12:00:00Z")
    feed.put_many((t0, 99, {"region": region, "host": h}) for region, names in hosts.items() for h in names)
    rig.tick(t0)
    hook.fail_next(1)  # one of the two messages fails: its notifications are retried together
    rig.dispatch(t0 + timedelta(seconds=30))
    assert hook.count == 1 and hook.rejected == 1
    rig.dispatch(t0 + timedelta(seconds=40))  # the retry, first_backoff later
    assert hook.count == 2
    assert sorted(sorted(titles_in(item)) for item in hook.received) == sorted(
        sorted(f"web_cpu_high|firing|{h}" for h in names) for names in hosts.values())
    rig.dispatch(t0 + timedelta(minutes=10))
    assert hook.count == 2
    assert [row.status for row in rig.outbox()] == ["sent"] * 6


def test_f_a_severity_change_under_a_silence_is_held_and_the_end_still_goes(rig, hook) -> None:
    rig.ws.channels.add("ops", hook.url("json", "/ops"))
    rule = rig.ws.rules.create(
        "rule disk_full {\n  critical when last(disk.used, 5m) > 95\n  warning when last(disk.used, 5m) > 85\n"
        "  group by host\n  notify ops\n  message \"{{ rule }}|{{ state }}|{{ severity }}\"\n}")
    feed = rig.feed("disk.used", "host")
    t0 = near_now(MIN) + MIN
    rig.ws.silences.add(rule.name, start=iso(t0 + MIN), duration="30m")
    arrivals = []
    for i, used in enumerate((90, 97, 97, 50)):  # told at warning; critical and the end under the silence
        at = t0 + i * MIN
        feed.put(at, used, host="db1")
        before = hook.count
        rig.tick(at)
        arrivals += [(i, m[1], m[2]) for m in got(hook)[before:]]
    assert arrivals == [(0, "firing", "warning"), (3, "resolved", "critical")]
    assert [(row.kind, row.status, row.reason) for row in rig.outbox()] == [
        ("firing", "sent", None), ("escalation", "silenced", "silenced"), ("resolved", "sent", None)]


def test_f_a_silence_ended_early_lets_the_held_firing_out_at_the_next_evaluation(rig, hook) -> None:
    rig.ws.channels.add("ops", hook.url("json", "/ops"))
    rule = rig.ws.rules.create(
        "rule queue_stuck {\n  when last(queue.depth, 5m) > 100\n  group by host\n  notify ops\n"
        "  message \"{{ rule }}|{{ state }}|{{ labels.host }}|{{ evaluated_at }}\"\n}")
    silence = rig.ws.silences.add(rule.name, duration="1h")
    feed = rig.feed("queue.depth", "host")
    t0 = near_now(MIN) + 2 * MIN  # inside the silence
    arrivals = []
    for i, depth in enumerate((500, 500, 500, 500, 0)):
        at = t0 + i * MIN
        if i == 2:
            rig.ws.silences.end(silence.id)
        feed.put(at, depth, host="q1")
        before = hook.count
        rig.tick(at)
        arrivals += [(i, m[1]) for m in got(hook)[before:]]
    assert arrivals == [(2, "firing"), (4, "resolved")]
    assert [(row.kind, row.status, row.reason, row.late) for row in rig.outbox()] == [
        ("firing", "silenced", "silenced", False), ("firing", "sent", None, True), ("resolved", "sent", None, False)]


def test_c_an_escalation_falling_in_the_on_calls_mute_window_is_sent_when_it_ends(rig, hook) -> None:
    with HttpReceiver() as oncall:
        rig.ws.channels.add("team", hook.url("json", "/team"))
        rig.ws.channels.add("oncall", oncall.url("json", "/oncall"), policies={"mute_during": "00:00-01:00"})
        rig.ws.rules.create(
            "rule api_errors {\n  when last(api.errors, 15m) > 5\n  group by host\n  every 10m\n"
            f"  severity critical\n  notify team\n  escalate to oncall after 30m\n  message \"{KEY}\"\n}}")
        feed = rig.feed("api.errors", "host")
        t0 = utc("2024-05-01T00:00:00Z")
        arrivals = []
        for i in range(12):
            at = t0 + i * 10 * MIN
            feed.put(at, 50 if i < 9 else 0, host="a")
            before_team, before_oncall = hook.count, oncall.count
            rig.tick(at, again=True)
            arrivals += [("team", at.strftime("%H:%M"), m[1]) for m in got(hook)[before_team:]]
            arrivals += [("oncall", at.strftime("%H:%M"), m[1]) for m in got(oncall)[before_oncall:]]
        assert arrivals == [("team", "00:00", "firing"),
                            ("oncall", "01:00", "firing"),  # due at 00:30, muted there until 01:00
                            ("team", "01:30", "resolved"), ("oncall", "01:30", "resolved")]
        called = [(row.kind, row.status, row.reason, row.escalated) for row in rig.outbox()
                  if row.channel == "oncall"]
        assert called[0] == ("firing", "muted", "muted by channel oncall", True), called
        assert [c[:2] for c in called[1:]] == [("firing", "sent"), ("resolved", "sent")], called


def test_d_a_dependency_deleted_while_it_holds_lets_the_held_firing_out(rig, hook) -> None:
    rig.ws.channels.add("ops", hook.url("json", "/ops"))
    rig.ws.rules.create("rule db_down {\n  when last(db.up, 5m) < 1\n  group by host\n  notify ops\n"
                        "  message \"{{ rule }}|{{ state }}|{{ labels.host }}\"\n}")
    rig.ws.rules.create(
        "rule service_errors {\n  when last(svc.errors, 5m) > 5\n  group by host\n  depends on db_down on host\n"
        "  notify ops\n  message \"{{ rule }}|{{ state }}|{{ labels.host }}\"\n}")
    db, svc = rig.feed("db.up", "host"), rig.feed("svc.errors", "host")
    t0 = utc("2024-05-01T12:00:00Z")
    arrivals = []
    for i in range(4):
        at = t0 + i * MIN
        if i == 2:
            rig.ws.rules.delete("db_down")  # a dependency that does not exist holds nothing
        db.put(at, 0, host="h1")
        svc.put(at, 9, host="h1")
        before = hook.count
        rig.tick(at, again=True)
        arrivals += [(i,) + m for m in got(hook)[before:]]
    assert arrivals == [(0, "db_down", "firing", "h1"), (2, "service_errors", "firing", "h1")]
    rows = rig.outbox()
    assert [(row.kind, row.reason) for row in rows if row.status != "sent"] == [
        ("firing", "suppressed by rule db_down")]
    assert [(row.kind, row.host, row.status) for row in rows if row.late] == [("firing", "h1", "sent")]


def test_b_repeats_go_to_the_told_channels_covering_the_severity_and_stop_once_acknowledged(rig, hook) -> None:
    with HttpReceiver() as pager:
        rig.ws.channels.add("pager", pager.url("json", "/pager"))
        rig.ws.channels.add("chat", hook.url("json", "/chat"))
        rule = rig.ws.rules.create(
            "rule disk_full {\n  critical when last(disk.used, 5m) > 95\n  warning when last(disk.used, 5m) > 85\n"
            "  group by host\n  notify pager on critical\n  notify chat on warning\n  repeat every 2m\n"
            "  message \"{{ rule }}|{{ state }}|{{ severity }}\"\n}")
        feed = rig.feed("disk.used", "host")
        t0 = near_now(MIN) - 10 * MIN
        arrivals = []
        for i, used in enumerate((90, 90, 90, 97, 97, 97, 97, 97, 97)):
            at = t0 + i * MIN
            if i == 6:
                (alert,) = rig.ws.alerts.list(rule=rule.name).alerts
                rig.ws.alerts.acknowledge(alert.id)
            feed.put(at, used, host="db1")
            before_chat, before_pager = hook.count, pager.count
            rig.tick(at)
            arrivals += [(i, "chat", m[1], m[2]) for m in got(hook)[before_chat:]]
            arrivals += [(i, "pager", m[1], m[2]) for m in got(pager)[before_pager:]]
        kinds = [title.data["title"].split("] ", 1)[1].split(" (")[0] for title in hook.received]
        assert arrivals == [
            (0, "chat", "firing", "warning"),
            (2, "chat", "firing", "warning"),  # a repeat: chat covers warnings
            (3, "chat", "firing", "critical"),  # the escalation: told of the alert, it hears how it goes
            (3, "pager", "firing", "critical"),  # newly covered
            (5, "pager", "firing", "critical"),  # a repeat goes to the pager only: chat does not cover critical
        ], arrivals
        assert kinds == ["disk_full is firing", "disk_full is still firing",
                         "disk_full escalated from warning to critical"]
        held = [(row.kind, row.channel, row.status, row.reason) for row in rig.outbox() if row.status != "sent"]
        assert held == [("repeat", "pager", "suppressed", "acknowledged")], held  # 7 min: acknowledged at 6


def test_g_late_firings_released_by_a_mute_window_go_out_as_one_group_message(rig, hook) -> None:
    rig.ws.channels.add("ops", hook.url("json", "/ops"))
    rig.ws.channels.update("ops", policies={"group_by": ["rule"], "group_wait": "30s", "group_interval": "5m"})
    rig.ws.rules.create('rule web_cpu_high {\n  when last(cpu.usage, 15m) > 90\n  group by host\n  every 10m\n'
                        '  notify ops\n  mute during 00:00-01:00\n'
                        '  title "{{ rule }}|{{ state }}|{{ labels.host }}"\n}')
    feed = rig.feed("cpu.usage", "host")
    hosts = [f"web-{i}" for i in range(5)]
    t0 = utc("2024-05-01T00:00:00Z")
    for i in range(8):
        at = t0 + i * 10 * MIN
        feed.put_many((at, 99 if 1 <= i <= 7 else 10, {"host": h}) for h in hosts)
        feed.put(at, 99 if i == 5 else 10, host="brief")  # fires at 00:50 and ends at 01:00, inside the hold
        rig.tick(at)
        rig.dispatch(at + timedelta(seconds=40))
        assert hook.count == (1 if i >= 6 else 0), (at, hook.count)
    assert sorted(titles_in(hook.received[0])) == sorted(f"web_cpu_high|firing|{h}" for h in hosts)
    assert "5 alerts" in hook.received[0].data["title"]
    assert sorted(row.late for row in rig.outbox() if row.status == "sent") == [True] * 5


def test_g_a_firing_and_its_resolution_within_the_group_wait_share_one_message(rig, hook) -> None:
    rig.ws.channels.add("ops", hook.url("json", "/ops"))
    rig.ws.channels.update("ops", policies={"group_by": ["rule"], "group_wait": "30s", "group_interval": "5m"})
    rig.ws.rules.create('rule blip {\n  when last(cpu.usage, 10s) > 90\n  group by host\n  every 10s\n'
                        '  notify ops\n  title "{{ rule }}|{{ state }}|{{ labels.host }}"\n}')
    feed = rig.feed("cpu.usage", "host")
    t0 = utc("2024-05-01T12:00:00Z")
    for i, value in enumerate((99, 10, 10)):
        at = t0 + i * timedelta(seconds=10)
        feed.put(at, value, host="web-1")
        rig.tick(at)
    assert hook.count == 0
    rig.dispatch(t0 + timedelta(seconds=30))
    assert hook.count == 1
    message = hook.received[0].data["message"]
    assert titles_in(hook.received[0]) == ["blip|firing|web-1", "blip|resolved|web-1"], message
    assert message.index("Firing") < message.index("Resolved")


@pytest.mark.anyio
async def test_e_through_the_tools_a_channel_muted_at_night_shows_why_and_sends_late(rig, hook) -> None:
    from mcp import Client

    from monitors_mcp.server import build_server, fixed_user

    async with Client(build_server(rig.db, rig.ws.channels.secrets, fixed_user(rig.user))) as client:
        added = await client.call_tool("add_notification_channel", {
            "name": "ops", "apprise_url": hook.url("json", "/ops"), "policies": {"mute_during": "22:00-06:00"}})
        assert not added.is_error, added.content
        created = await client.call_tool("create_alert_rule", {"rule": (
            "rule batch_lagging {\n  when last(batch.lag, 1h) > 600\n  every 30m\n  notify ops\n}"),
            "data_arrives_later": True})
        assert not created.is_error, created.content
        feed = rig.feed("batch.lag")
        t0 = utc("2024-05-01T23:00:00Z")
        for i in range(3):  # 23:00 fires (muted), 23:30, 00:00 still inside the window
            feed.put(t0 + i * 30 * MIN, 900)
            rig.tick(t0 + i * 30 * MIN)
        listed = await client.call_tool("list_alerts", {"state": "firing"})
        (alert,) = listed.structured_content["alerts"]
        assert [(n["channel"], n["kind"], n["status"], n["reason"]) for n in alert["notifications"]] == [
            ("ops", "firing", "muted", "muted by channel ops")]
        assert hook.count == 0
        for i in range(3, 16):  # to 06:30: the window ends at 06:00
            feed.put(t0 + i * 30 * MIN, 900)
            rig.tick(t0 + i * 30 * MIN)
        assert hook.count == 1 and "is firing" in hook.received[0].data["title"]
        listed = await client.call_tool("list_alerts", {"state": "firing"})
        (alert,) = listed.structured_content["alerts"]
        assert [(n["kind"], n["status"]) for n in alert["notifications"]] == [("firing", "sent"), ("firing", "muted")]
