"""Who hears of a notification and what holds it (the rule language's section 10), through every repository:
the in-memory one and the store (SQLite and MariaDB), one transaction per rule and in bulk. Each case runs
the same script of evaluations through all of them, as the runner does (the state machine, the looks the
notifier asks for, the tick's dependency index), and the outbox rows must be the expected ones everywhere.
A property test then checks the invariants over generated scripts: every channel's delivered notices are
paired and no late notice goes twice."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from engine.depends import firing_index
from engine.repository import MemoryRepository, SqlRepository
from engine.repository.base import Repository, SeriesUpdate
from engine.rules import EngineRule, rule_from_text
from engine.state import Evaluation, SeriesState, step
from monitors_dsl.ast import Dependency, Duration, Escalation, Route
from monitors_dsl.windows import parse_window
from monitors_mcp.store import Alert, NotificationChannel, NotificationOutbox, Silence

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
VALUE = {None: 1.0, "warning": 6.0, "critical": 11.0}
TEXT = ('rule {name} {{\n critical when last(a.b, 1m) > 10\n warning when last(a.b, 1m) > 5\n group by host\n'
        ' notify ops\n}}')
CHANNELS = ("ops", "pager", "boss")


def at(minute: int) -> datetime:
    return T0 + minute * MIN


def make_rule(name: str, store_id: str, owner_id: int | None, copy: int, spec: dict) -> EngineRule:
    """The rule ``name`` of a case, in copy ``copy`` (``name_1``, ``name_2``: the bulk writes need two rules
    with something to write at the same tick), with its section 10 clauses."""
    fields = dict(spec)
    routes = fields.pop("routes", (Route(("ops",)),))
    channels = tuple(dict.fromkeys(c for route in routes for c in route.channels))
    if "depends_on" in fields and fields["depends_on"] is not None:
        dependency = fields["depends_on"]
        target = dependency.rule if dependency.rule == "nope" else f"{dependency.rule}_{copy}"
        fields["depends_on"] = Dependency(target, dependency.tags)
    base = rule_from_text(TEXT.format(name=f"{name}_{copy}"), id=store_id)
    if "repeat_every" in fields:
        fields["clauses"] = dataclasses.replace(base.clauses, repeat_every=fields.pop("repeat_every"))
    return dataclasses.replace(base, owner_id=owner_id, routes=routes, channels=channels, **fields)


class Backend:
    """One repository driven as the runner drives it."""

    copies = 2

    def __init__(self, repository: Repository, rules: dict[tuple[str, int], EngineRule]) -> None:
        self.repository = repository
        self.rules = rules  # (case name, copy) → rule
        self.levels: dict[tuple[str, int], dict[str, str | None]] = {key: {} for key in rules}
        self.now = at(-1)  # the last tick's time

    def tick(self, minute: int) -> None:
        self.now = now = at(minute)
        rules = list(self.rules.values())
        states = self.repository.load_states(rules)
        silenced = self.repository.silenced(rules, now)
        pending = []
        for key, rule in self.rules.items():
            known = states.get(rule.id, {})
            updates = []
            for series, severity in self.levels[key].items():
                previous = known.get(series)
                if previous is None and severity is None:
                    continue
                evaluation = Evaluation(at=now, severity=severity, values={"v": VALUE[severity]},
                                        value=VALUE[severity])
                base = previous if previous is not None else SeriesState()
                stepped = step(base, evaluation, rule.clauses, rule_id=rule.id, series_key=series)
                look = previous is not None and previous.notice_at is not None and previous.notice_at <= now
                if stepped.state is base and not look:
                    continue
                updates.append(SeriesUpdate(series, {"host": series}, stepped, evaluation, previous))
            if updates:
                pending.append((rule, updates, rule.id in silenced))
        firing = None
        if any(rule.depends_on is not None for rule, _, _ in pending):
            firing = firing_index(self.repository, [r for r, _, _ in pending if r.depends_on is not None], pending)
        outcomes = self.record(now, pending, firing)
        assert not [o for o in outcomes.values() if isinstance(o, Exception)], outcomes

    def record(self, now, pending, firing):
        return self.repository.record_many(now, pending, firing=firing)

    def rule_of(self, name: str, copy: int) -> EngineRule:
        return self.rules[(name, copy)]


class MemoryBackend(Backend):
    copies = 1

    def silence(self, name: str, start: int, end: int) -> None:
        for copy in range(1, self.copies + 1):
            self.repository.silence(self.rule_of(name, copy).id, at(start), at(end))

    def mute_channel(self, channel: str, text: str) -> None:
        self.repository.set_channel(channel, mute_during=text)

    def acknowledge(self, name: str, series: str) -> None:
        for copy in range(1, self.copies + 1):
            alert = self.repository.open_alerts[(self.rule_of(name, copy).id, series)]
            self.repository.acknowledge(alert.id)

    def rows(self, copy: int = 1) -> list[tuple]:
        names = {rule.id: key[0] for key, rule in self.rules.items() if key[1] == copy}
        return sorted(_row(names[r["rule_id"]], r["series_key"], r["channel"], r["kind"], r["severity"], r["status"],
                           r["held_reason"], r["late"], r["escalated"], r["at"])
                      for r in self.repository.outbox.values() if r["rule_id"] in names)

    def alert_rows(self) -> list[dict]:
        return [{"alert": r["alert_id"], "channel": r["channel"], "kind": r["kind"], "status": r["status"],
                 "late": r["late"], "escalated": r["escalated"], "at": r["at"], "key": r["key"]}
                for r in self.repository.outbox.values()]


class StoreBackend(Backend):
    def __init__(self, repository, rules, db, workspace) -> None:
        super().__init__(repository, rules)
        self.db = db
        self.workspace = workspace

    def silence(self, name: str, start: int, end: int) -> None:
        with self.db.session() as session:
            for copy in range(1, self.copies + 1):
                rule = self.rule_of(name, copy)
                session.add(Silence(owner_id=rule.owner_id, rule_id=rule.store_id, starts_at=at(start),
                                    ends_at=at(end)))

    def mute_channel(self, channel: str, text: str) -> None:
        with self.db.session() as session:
            session.execute(update(NotificationChannel).where(
                NotificationChannel.owner_id == self.workspace.user_id, NotificationChannel.name == channel)
                .values(mute_during=parse_window(text).text))

    def acknowledge(self, name: str, series: str) -> None:
        for copy in range(1, self.copies + 1):
            rule = self.rule_of(name, copy)
            with self.db.session() as session:
                alert_id = session.scalar(select(Alert.id).where(Alert.rule_id == rule.store_id,
                                                                 Alert.series_key == series, Alert.state == "firing"))
            self.workspace.alerts.acknowledge(alert_id)

    def rows(self, copy: int = 1) -> list[tuple]:
        names = {rule.store_id: key[0] for key, rule in self.rules.items() if key[1] == copy}
        with self.db.session() as session:
            found = session.scalars(select(NotificationOutbox).where(NotificationOutbox.rule_id.in_(list(names))))
            out = []
            for r in found:
                n = r.payload["notification"]
                assert (r.late, r.escalated) == (n["late"], n["escalated"])
                out.append(_row(names[r.rule_id], n["series_key"], r.payload["channel"], r.kind, n["severity"],
                                r.status, r.held_reason, r.late, r.escalated, datetime.fromisoformat(n["at"])))
        return sorted(out)


class OneByOneBackend(StoreBackend):
    def record(self, now, pending, firing):
        return Repository.record_many(self.repository, now, pending, firing=firing)


def _row(rule, series, channel, kind, severity, status, reason, late, escalated, moment) -> tuple:
    minute = int((moment - T0).total_seconds() // 60)
    return (minute, rule, series, channel, kind, severity, status, reason, bool(late), bool(escalated))


def memory_backend(specs: dict[str, dict]) -> MemoryBackend:
    rules = {(name, 1): make_rule(name, f"{name}_1", None, 1, spec) for name, spec in specs.items()}
    return MemoryBackend(MemoryRepository(), rules)


def store_backend(kind, db, workspace, user_id: int, specs: dict[str, dict], tag: str) -> StoreBackend:
    ws = workspace(user_id)
    for channel in CHANNELS:
        ws.channels.add(channel, f"json://127.0.0.1:9/{channel}")
    rules = {}
    for copy in (1, 2):
        for name, spec in specs.items():
            stored = ws.rules.create(TEXT.format(name=f"{name}_{copy}"), data_arrives_later=True)
            rules[(name, copy)] = make_rule(name, str(stored.id), user_id, copy, spec)
    return kind(SqlRepository(db), rules, db, ws)


def run(backend: Backend, script: list[tuple], minutes: int) -> None:
    """``script``: ``(minute, action, …)`` — ``("level", rule, series, severity)``, ``("silence", rule, start,
    end)``, ``("mute", channel, window)``, ``("ack", rule, series)``; levels hold until changed."""
    by_minute: dict[int, list[tuple]] = {}
    for entry in script:
        by_minute.setdefault(entry[0], []).append(entry[1:])
    for minute in range(minutes):
        for action, *args in by_minute.get(minute, ()):
            if action == "level":
                name, series, severity = args
                for copy in range(1, backend.copies + 1):
                    backend.levels[(name, copy)][series] = severity
            elif action == "silence":
                backend.silence(*args)
            elif action == "mute":
                backend.mute_channel(*args)
            elif action == "ack":
                backend.acknowledge(*args)
        backend.tick(minute)


P, M, SIL, SUP = "pending", "muted", "silenced", "suppressed"

CASES = {
    "a mute window hides a firing and sends it late; a resolution is never muted": (
        {"svc": {"mute_during": parse_window("12:05-12:10")}},
        [(2, "level", "svc", "a", "warning"), (6, "level", "svc", "b", "warning"), (7, "level", "svc", "c", "warning"),
         (8, "level", "svc", "a", None), (9, "level", "svc", "c", None), (12, "level", "svc", "b", None)],
        14,
        [(2, "svc", "a", "ops", "firing", "warning", P, None, False, False),
         (6, "svc", "b", "ops", "firing", "warning", M, "muted", False, False),
         (7, "svc", "c", "ops", "firing", "warning", M, "muted", False, False),
         (8, "svc", "a", "ops", "resolved", "warning", P, None, False, False),
         (9, "svc", "c", "ops", "resolved", "warning", M, "muted", False, False),
         (10, "svc", "b", "ops", "firing", "warning", P, None, True, False),
         (12, "svc", "b", "ops", "resolved", "warning", P, None, False, False)]),
    "a silence over a resolution of an announced alert delivers it; over a whole life sends nothing": (
        {"svc": {}},
        [(1, "level", "svc", "a", "warning"), (3, "silence", "svc", 3, 20), (4, "level", "svc", "b", "warning"),
         (5, "level", "svc", "a", "critical"), (5, "level", "svc", "c", "warning"), (6, "level", "svc", "b", None),
         (7, "level", "svc", "a", None), (21, "level", "svc", "c", None)],
        22,
        [(1, "svc", "a", "ops", "firing", "warning", P, None, False, False),
         (4, "svc", "b", "ops", "firing", "warning", SIL, "silenced", False, False),
         (5, "svc", "a", "ops", "escalation", "critical", SIL, "silenced", False, False),
         (5, "svc", "c", "ops", "firing", "warning", SIL, "silenced", False, False),
         (6, "svc", "b", "ops", "resolved", "warning", SIL, "silenced", False, False),
         (7, "svc", "a", "ops", "resolved", "critical", P, None, False, False),
         (20, "svc", "c", "ops", "firing", "warning", P, None, True, False),
         (21, "svc", "c", "ops", "resolved", "warning", P, None, False, False)]),
    "a dependency on tags holds a service; one announced before the db went down still gets its resolution": (
        {"db": {}, "svc": {"depends_on": Dependency("db", ("host",))},
         "orphan": {"depends_on": Dependency("nope", ())}},
        [(1, "level", "svc", "a", "warning"), (1, "level", "orphan", "a", "warning"),
         (2, "level", "db", "a", "critical"), (2, "level", "db", "b", "critical"),
         (3, "level", "svc", "b", "warning"), (3, "level", "svc", "c", "warning"), (3, "level", "svc", "a", "critical"),
         (4, "level", "svc", "a", None), (5, "level", "db", "b", None), (6, "level", "svc", "b", None),
         (6, "level", "svc", "c", None)],
        8,
        [(1, "orphan", "a", "ops", "firing", "warning", P, None, False, False),
         (1, "svc", "a", "ops", "firing", "warning", P, None, False, False),
         (2, "db", "a", "ops", "firing", "critical", P, None, False, False),
         (2, "db", "b", "ops", "firing", "critical", P, None, False, False),
         (3, "svc", "a", "ops", "escalation", "critical", SUP, "suppressed by rule db_1", False, False),
         (3, "svc", "b", "ops", "firing", "warning", SUP, "suppressed by rule db_1", False, False),
         (3, "svc", "c", "ops", "firing", "warning", P, None, False, False),
         (4, "svc", "a", "ops", "resolved", "critical", P, None, False, False),
         (5, "db", "b", "ops", "resolved", "critical", P, None, False, False),
         (5, "svc", "b", "ops", "firing", "warning", P, None, True, False),
         (6, "svc", "b", "ops", "resolved", "warning", P, None, False, False),
         (6, "svc", "c", "ops", "resolved", "warning", P, None, False, False)]),
    "an escalation goes once, its resolution follows by pairing; acknowledging cancels it": (
        {"svc": {"escalation": Escalation(("boss",), Duration(300))}},
        [(0, "level", "svc", "a", "warning"), (0, "level", "svc", "b", "warning"), (2, "ack", "svc", "b"),
         (9, "level", "svc", "a", None), (9, "level", "svc", "b", None)],
        11,
        [(0, "svc", "a", "ops", "firing", "warning", P, None, False, False),
         (0, "svc", "b", "ops", "firing", "warning", P, None, False, False),
         (5, "svc", "a", "boss", "firing", "warning", P, None, False, True),
         (9, "svc", "a", "boss", "resolved", "warning", P, None, False, False),
         (9, "svc", "a", "ops", "resolved", "warning", P, None, False, False),
         (9, "svc", "b", "ops", "resolved", "warning", P, None, False, False)]),
    "routing by severity: newly covered channels get a firing notice, told ones every change": (
        {"svc": {"routes": (Route(("pager",), ("critical",)), Route(("ops",))),
                 "escalation": Escalation(("boss",), Duration(240))}},
        [(0, "level", "svc", "a", "warning"), (0, "level", "svc", "c", "warning"), (1, "level", "svc", "a", "critical"),
         (1, "level", "svc", "c", None), (2, "level", "svc", "a", "warning"), (3, "level", "svc", "b", "critical"),
         (5, "level", "svc", "a", None), (6, "level", "svc", "b", "warning"), (8, "level", "svc", "b", None)],
        10,
        [(0, "svc", "a", "ops", "firing", "warning", P, None, False, False),
         (0, "svc", "c", "ops", "firing", "warning", P, None, False, False),
         (1, "svc", "a", "ops", "escalation", "critical", P, None, False, False),
         (1, "svc", "a", "pager", "firing", "critical", P, None, False, False),
         (1, "svc", "c", "ops", "resolved", "warning", P, None, False, False),
         (2, "svc", "a", "ops", "escalation", "warning", P, None, False, False),
         (2, "svc", "a", "pager", "escalation", "warning", P, None, False, False),
         (3, "svc", "b", "ops", "firing", "critical", P, None, False, False),
         (3, "svc", "b", "pager", "firing", "critical", P, None, False, False),
         (4, "svc", "a", "boss", "firing", "warning", P, None, False, True),
         (5, "svc", "a", "boss", "resolved", "warning", P, None, False, False),
         (5, "svc", "a", "ops", "resolved", "warning", P, None, False, False),
         (5, "svc", "a", "pager", "resolved", "warning", P, None, False, False),
         (6, "svc", "b", "ops", "escalation", "warning", P, None, False, False),
         (6, "svc", "b", "pager", "escalation", "warning", P, None, False, False),
         (7, "svc", "b", "boss", "firing", "warning", P, None, False, True),
         (8, "svc", "b", "boss", "resolved", "warning", P, None, False, False),
         (8, "svc", "b", "ops", "resolved", "warning", P, None, False, False),
         (8, "svc", "b", "pager", "resolved", "warning", P, None, False, False)]),
    "a channel's mute window holds only that channel, which is told late": (
        {"svc": {"routes": (Route(("ops", "pager")),)}},
        [(0, "mute", "pager", "12:00-12:03"), (1, "level", "svc", "a", "warning"), (4, "level", "svc", "a", None)],
        6,
        [(1, "svc", "a", "ops", "firing", "warning", P, None, False, False),
         (1, "svc", "a", "pager", "firing", "warning", M, "muted by channel pager", False, False),
         (3, "svc", "a", "pager", "firing", "warning", P, None, True, False),
         (4, "svc", "a", "ops", "resolved", "warning", P, None, False, False),
         (4, "svc", "a", "pager", "resolved", "warning", P, None, False, False)]),
    "holds apply to escalation notices too, which then go late": (
        {"svc": {"escalation": Escalation(("boss",), Duration(120)), "mute_during": parse_window("12:01-12:04")}},
        [(0, "level", "svc", "a", "warning"), (6, "level", "svc", "a", None)],
        8,
        [(0, "svc", "a", "ops", "firing", "warning", P, None, False, False),
         (2, "svc", "a", "boss", "firing", "warning", M, "muted", False, True),
         (4, "svc", "a", "boss", "firing", "warning", P, None, True, True),
         (6, "svc", "a", "boss", "resolved", "warning", P, None, False, False),
         (6, "svc", "a", "ops", "resolved", "warning", P, None, False, False)]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_memory_repository_gives_the_expected_notices(case: str) -> None:
    specs, script, minutes, expected = CASES[case]
    backend = memory_backend(specs)
    run(backend, script, minutes)
    assert backend.rows() == sorted(_expected(expected, 1))


@pytest.mark.parametrize("kind", [StoreBackend, OneByOneBackend], ids=["bulk", "one-by-one"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_store_gives_the_same_notices(db, workspace, new_user, case: str, kind) -> None:
    specs, script, minutes, expected = CASES[case]
    backend = store_backend(kind, db, workspace, new_user("holds"), specs, case)
    run(backend, script, minutes)
    assert backend.rows(1) == sorted(_expected(expected, 1))
    assert backend.rows(2) == sorted(_expected(expected, 2))


def _expected(rows: list[tuple], copy: int) -> list[tuple]:
    return [row[:7] + ((row[7].replace("db_1", f"db_{copy}") if row[7] else row[7]),) + row[8:] for row in rows]


def test_a_series_looked_at_for_a_hold_that_goes_on_is_not_written_again(db, workspace, new_user) -> None:
    backend = store_backend(StoreBackend, db, workspace, new_user("quiet"), {"svc": {}}, "quiet")
    run(backend, [(0, "silence", "svc", 0, 30), (1, "level", "svc", "a", "warning")], 3)
    states = backend.repository.load_states(list(backend.rules.values()))
    rule = backend.rule_of("svc", 1)
    held = states[rule.id]["a"]
    assert held.notices == {"ops": "silenced"} and held.notice_at == at(1) + timedelta(microseconds=1)
    with db.session() as session:
        from monitors_mcp.store import RuleState

        row = session.scalars(select(RuleState).where(RuleState.rule_id == rule.store_id)).one()
        assert row.machine["notices"] == {"ops": "silenced"}
        written = row.last_evaluated_at
    run(backend, [], 3)  # still held: looked at, nothing changes, nothing written
    with db.session() as session:
        assert session.scalars(select(RuleState).where(RuleState.rule_id == rule.store_id)).one() \
            .last_evaluated_at == written


def test_a_state_written_before_the_record_existed_pairs_as_if_every_channel_was_told() -> None:
    backend = memory_backend({"svc": {"routes": (Route(("ops", "pager")),)}})
    rule = backend.rule_of("svc", 1)
    run(backend, [(0, "level", "svc", "a", "warning")], 1)
    legacy = dataclasses.replace(backend.repository.states[rule.id]["a"], notices=None)
    assert "notices" not in legacy.to_dict() and SeriesState.from_dict(legacy.to_dict()) == legacy
    backend.repository.states[rule.id]["a"] = legacy
    backend.levels[("svc", 1)]["a"] = None
    backend.tick(1)
    assert [r for r in backend.rows() if r[0] == 1] == [
        (1, "svc", "a", "ops", "resolved", "warning", P, None, False, False),
        (1, "svc", "a", "pager", "resolved", "warning", P, None, False, False)]


def test_templates_see_escalated() -> None:
    from engine.notify.dispatch import render_payload

    backend = memory_backend({"svc": {"escalation": Escalation(("boss",), Duration(60))}})
    backend.rules[("svc", 1)] = dataclasses.replace(
        backend.rule_of("svc", 1), title="{{ 'ESCALATED' if escalated else 'plain' }} {{ state }}")
    run(backend, [(0, "level", "svc", "a", "warning")], 2)
    titles = {(r["channel"], render_payload(r["payload"]).title) for r in backend.repository.outbox.values()}
    assert titles == {("ops", "plain firing"), ("boss", "ESCALATED firing")}


# -- the invariants over generated scripts -----------------------------------------------------------------

minutes_st = st.integers(min_value=0, max_value=14)


@st.composite
def scripts(draw):
    script = []
    for minute in range(15):
        for series in ("a", "b"):
            if draw(st.booleans()):
                script.append((minute, "level", "svc", series, draw(st.sampled_from([None, "warning", "critical"]))))
        if draw(st.integers(0, 5)) == 0:
            script.append((minute, "level", "db", "a", draw(st.sampled_from([None, "critical"]))))
        if draw(st.integers(0, 7)) == 0:
            script.append((minute, "silence", "svc", minute, minute + draw(st.integers(1, 4))))
        if draw(st.integers(0, 7)) == 0:
            script.append((minute, "ack", "svc", draw(st.sampled_from(["a", "b"]))))
    mute = None
    if draw(st.booleans()):
        start, length = draw(minutes_st), draw(st.integers(1, 6))
        mute = parse_window(f"12:{start:02d}-12:{min(59, start + length):02d}")
    channel = None
    if draw(st.booleans()):
        start, length = draw(minutes_st), draw(st.integers(1, 6))
        channel = f"12:{start:02d}-12:{min(59, start + length):02d}"
    return script, mute, channel


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated=scripts())
def test_every_channel_hears_of_an_alert_in_pairs_and_late_notices_go_once(generated) -> None:
    script, mute, channel_mute = generated
    specs = {"db": {}, "svc": {"routes": (Route(("pager",), ("critical",)), Route(("ops",))),
                               "escalation": Escalation(("boss",), Duration(180)), "mute_during": mute,
                               "depends_on": Dependency("db", ("host",)), "repeat_every": 120}}
    backend = memory_backend(specs)
    if channel_mute:
        script = [(0, "mute", "pager", channel_mute)] + script
    run(_AckGuard(backend), script, 18)
    repository = backend.repository
    alerts = {a.id: a for a in repository.alerts}
    rows: dict[tuple, list[dict]] = {}
    for row in sorted(backend.alert_rows(), key=lambda r: r["at"]):
        rows.setdefault((row["alert"], row["channel"]), []).append(row)
    for (alert_id, channel), mine in rows.items():
        delivered = [r for r in mine if r["status"] == "pending"]
        firings = [r for r in delivered if r["kind"] == "firing"]
        resolutions = [r for r in delivered if r["kind"] == "resolved"]
        assert len(firings) <= 1 and len(resolutions) <= 1, mine
        if delivered:
            assert delivered[0]["kind"] == "firing", mine  # nothing before the firing notice
        if resolutions:
            assert delivered[-1]["kind"] == "resolved" and firings, mine  # last, and only after a firing
        if alerts[alert_id].state == "resolved" and alert_id is not None:
            assert bool(resolutions) == bool(firings), mine  # pairing
        held_resolutions = [r for r in mine if r["kind"] == "resolved" and r["status"] != "pending"]
        assert not (held_resolutions and firings), mine  # a resolution is never held once its firing went
        assert sum(r["late"] for r in delivered) <= 1, mine
        assert all(r["escalated"] == (channel == "boss") for r in mine if r["kind"] == "firing"), mine
        if channel == "boss":  # escalated to only when nobody acknowledged the alert by then
            assert not firings or not alerts[alert_id].acknowledged or _acked_after(alerts[alert_id], mine), mine
    assert len({r["key"] for r in backend.alert_rows()}) == len(backend.alert_rows())


def _acked_after(alert, rows: list[dict]) -> bool:
    """Whether the alert was acknowledged only after its escalation went (its acknowledgement time)."""
    escalated = min(r["at"] for r in rows if r["kind"] == "firing")
    return alert.events and any(kind == "acknowledged" and when > escalated for kind, when, _ in alert.events)


class _AckGuard:
    """A backend whose acknowledgements of a series with no firing alert do nothing (the script is generated);
    each acknowledgement is written in the alert's events, with its time."""

    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend
        self.copies = backend.copies
        self.levels = backend.levels

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def acknowledge(self, name: str, series: str) -> None:
        rule = self._backend.rule_of(name, 1)
        alert = self._backend.repository.open_alerts.get((rule.id, series))
        if alert is not None and not alert.acknowledged:
            self._backend.repository.acknowledge(alert.id)
            alert.events.append(("acknowledged", self.now + timedelta(seconds=30), None))  # between two ticks


# -- from rule text, through the runner ------------------------------------------------------------------


def test_rules_written_in_the_language_route_and_hold_as_the_cases_say() -> None:
    text = ('rule svc_1 {\n critical when last(a.b, 1m) > 10\n warning when last(a.b, 1m) > 5\n group by host\n'
            ' notify pager on critical\n notify ops\n escalate to boss after 4m\n}')
    parsed = rule_from_text(text, id="svc_1")
    specs, script, minutes, expected = CASES["routing by severity: newly covered channels get a firing notice, "
                                              "told ones every change"]
    made = make_rule("svc", "svc_1", None, 1, specs["svc"])
    assert (parsed.routes, parsed.channels, parsed.escalation) == (made.routes, made.channels, made.escalation)
    backend = MemoryBackend(MemoryRepository(), {("svc", 1): parsed})
    run(backend, script, minutes)
    assert backend.rows() == sorted(expected)


def test_the_runner_sends_a_muted_firing_late_when_the_window_ends() -> None:
    import pyarrow as pa

    from engine.evaluate import Evaluator
    from engine.runner import Runner, StaticRules
    from engine.sources import DataFusionSource

    values = [1, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 1, 1]  # warning from 12:01 to 12:11
    source = DataFusionSource()
    source.add_table("a", pa.table({"time": [at(i) for i in range(len(values))], "host": ["x"] * len(values),
                                    "b": [float(v) for v in values]}))
    rule = rule_from_text('rule svc {\n warning when last(a.b, 1m) > 5\n group by host\n notify ops\n'
                          ' mute during 12:00-12:05\n}', id="svc")
    repository = MemoryRepository()
    runner = Runner(StaticRules([rule]), repository, Evaluator(source), values_every=0)
    try:
        for minute in range(len(values)):
            assert runner.tick(at(minute) + timedelta(seconds=30), all_rules=True).errors == {}
    finally:
        source.close()
    rows = sorted((r["at"], r["kind"], r["status"], r["held_reason"], r["late"]) for r in repository.outbox.values())
    assert rows == [(at(1) + timedelta(seconds=30), "firing", "muted", "muted", False),
                    (at(5) + timedelta(seconds=30), "firing", "pending", None, True),
                    (at(12) + timedelta(seconds=30), "resolved", "pending", None, False)]


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(generated=scripts())
def test_generated_scripts_give_the_store_the_memory_repository_s_notices(db, workspace, new_user, generated) -> None:
    script, mute, channel_mute = generated
    specs = {"db": {}, "svc": {"routes": (Route(("pager",), ("critical",)), Route(("ops",))),
                               "escalation": Escalation(("boss",), Duration(180)), "mute_during": mute,
                               "depends_on": Dependency("db", ("host",)), "repeat_every": 120}}
    if channel_mute:
        script = [(0, "mute", "pager", channel_mute)] + script
    memory = memory_backend(specs)
    run(_AckGuard(memory), script, 18)
    store = store_backend(StoreBackend, db, workspace, new_user("gen"), specs, "generated")
    run(_StoreAckGuard(store), script, 18)
    expected = memory.rows()
    assert store.rows(1) == expected
    assert store.rows(2) == _expected(expected, 2)


class _StoreAckGuard:
    """A store backend whose acknowledgements of a series with no firing alert do nothing."""

    def __init__(self, backend: StoreBackend) -> None:
        self._backend = backend
        self.copies = backend.copies
        self.levels = backend.levels

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def acknowledge(self, name: str, series: str) -> None:
        backend = self._backend
        for copy in range(1, backend.copies + 1):
            rule = backend.rule_of(name, copy)
            with backend.db.session() as session:
                alert_id = session.scalar(select(Alert.id).where(Alert.rule_id == rule.store_id,
                                                                 Alert.series_key == series, Alert.state == "firing"))
            if alert_id is not None:
                backend.workspace.alerts.acknowledge(alert_id)


@pytest.mark.parametrize("kind", ["memory", "store"])
def test_repositories_give_the_stored_group_tags_and_firing_alerts_of_a_rule(db, workspace, new_user, kind) -> None:
    specs = {"db": {}}
    backend = memory_backend(specs) if kind == "memory" else store_backend(StoreBackend, db, workspace,
                                                                           new_user("tags"), specs, "tags")
    run(backend, [(0, "level", "db", "a", "critical"), (0, "level", "db", "b", "warning"),
                  (1, "level", "db", "b", None)], 2)
    rule = backend.rule_of("db", 1)
    assert backend.repository.series_labels(rule, ["a", "b", "nope"]) == {"a": {"host": "a"}, "b": {"host": "b"}}
    assert backend.repository.firing_labels(rule.owner_id, ["db_1", "nope"]) == {"db_1": {"a": {"host": "a"}}}
