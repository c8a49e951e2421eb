"""The alert lifecycle, decided once (``engine.repository.lifecycle.plan_tick``): the plan follows the table
of transitions to alert moves step by step through the real state machine, and every repository persists the
same plan (the in-memory one and the store, one rule at a time or in bulk)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine.evaluate import Evaluator
from engine.repository import MemoryRepository, SqlRepository
from engine.repository.base import Repository, SeriesUpdate
from engine.repository.lifecycle import StoredSeries, plan_tick, touches_alerts
from engine.rules import StoreRules, rule_from_text
from engine.runner import Runner
from engine.sources import DataFusionSource
from engine.state import FIRING, INACTIVE, PENDING, SEVERITY_RANK, Evaluation, SeriesState, Step, Transition, step
from monitors_mcp.store import Alert, AlertEvent, NotificationOutbox, RuleState
from monitors_mcp.store.lifecycle import StoredAlert, close_alerts

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)

RULE = rule_from_text(
    'rule r {\n critical when last(a.b, 1m) > 10\n warning when last(a.b, 1m) > 5\n group by h\n'
    ' for 1m\n keep firing for 1m\n repeat every 2m\n labels team = "ops"\n notify one, two\n}', id="7")


def update(key: str, labels, stepped: Step, at: datetime, values: dict | None = None) -> SeriesUpdate:
    return SeriesUpdate(key, labels, stepped, Evaluation(at=at, values=values or {}))


class PlanStore:
    """A store of nothing but applied plans (ids given in order), to feed the next tick's plan."""

    def __init__(self) -> None:
        self.alerts: list[dict] = []
        self.rows: dict[str, tuple[dict, int | None]] = {}  # series key → (labels, alert id)
        self.outbox: list[tuple[str, str, str]] = []  # (kind, channel, status)

    def stored(self, keys) -> dict[str, StoredSeries]:
        out = {}
        for key in keys:
            if key in self.rows:
                labels, alert_id = self.rows[key]
                alert = self.alerts[alert_id - 1] if alert_id else None
                out[key] = StoredSeries(key, labels, alert and StoredAlert(alert_id, alert["severity"], alert["state"],
                                                                       alert["acknowledged"]))
        return out

    def apply(self, plan) -> None:
        for opened in plan.opened:
            self.alerts.append({**opened.opened, "acknowledged": False, "events": []})
            opened.id = len(self.alerts)
        for changed in plan.changed:
            self.alerts[changed.id - 1].update(changed.changes)
        for event in plan.events:
            self.alerts[event.alert.id - 1]["events"].append((event.kind, event.at, event.from_state,
                                                              event.to_state, event.severity))
        for write in plan.series:
            self.rows[write.update.series_key] = (write.labels, write.alert.id if write.alert else None)
        for row in plan.outbox:
            assert row.payload["channel"] == row.channel and row.payload["labels"] == row.notice.labels
            self.outbox.append((row.notification.kind, row.channel, row.status))


class Reference:
    """The lifecycle table read plainly, one transition at a time; a silence holds a firing notice (sent late
    once the silence is over) but never the resolution of one that was sent."""

    def __init__(self) -> None:
        self.alerts: list[dict] = []
        self.open: dict[str, int] = {}
        self.outbox: list[tuple[str, str, str]] = []
        self.told: dict[str, str] = {}  # series key → "sent" / "held": what became of its firing notice

    def record(self, key: str, labels: dict, u: SeriesUpdate, silenced: bool) -> None:
        values = dict(u.evaluation.values)
        current = self.alerts[self.open[key] - 1] if key in self.open else None  # the alert notified about
        for t in u.step.transitions:
            if t.to_state == FIRING and t.from_state != FIRING:
                current = {"series_key": key, "labels": {**labels, "team": "ops"}, "severity": t.severity,
                           "state": "firing", "started_at": t.at, "resolved_at": None, "values_at_start": values,
                           "values_at_resolution": None, "acknowledged": False,
                           "events": [("fired", t.at, t.from_state, FIRING, t.severity)]}
                self.alerts.append(current)
                self.open[key] = len(self.alerts)
            elif t.from_state == FIRING and t.to_state == FIRING:
                up = SEVERITY_RANK[t.severity] > SEVERITY_RANK[current["severity"]]
                current["events"].append(("escalated" if up else "de-escalated", t.at, FIRING, FIRING, t.severity))
                current["severity"] = t.severity
            elif t.from_state == FIRING and t.to_state == INACTIVE:
                current.update(state="resolved", resolved_at=t.at, values_at_resolution=values)
                current["events"].append(("resolved", t.at, FIRING, INACTIVE, t.severity))
                del self.open[key]
        for n in u.step.notifications:
            told = self.told.get(key)
            if n.kind == "firing":
                kind, status, told = "firing", "silenced" if silenced else "pending", "held" if silenced else "sent"
            elif n.kind == "resolved":
                kind, status, told = "resolved", "pending" if told == "sent" else "silenced", None
            elif told == "held" and not silenced:
                kind, status, told = "firing", "pending", "sent"  # late
            else:
                kind = n.kind
                status = "silenced" if silenced else (
                    "suppressed" if n.kind == "repeat" and current and current["acknowledged"] else "pending")
            self.told[key] = told
            self.outbox += [(kind, channel, status) for channel in ("one", "two")]
        if not u.step.notifications and self.told.get(key) == "held" and not silenced \
                and u.step.state.state == FIRING:
            self.told[key] = "sent"
            self.outbox += [("firing", channel, "pending") for channel in ("one", "two")]


levels = st.sampled_from([None, "warning", "critical", "no data"])


@settings(max_examples=60, deadline=None)
@given(ticks=st.lists(st.tuples(levels, levels, st.booleans(), st.booleans()), min_size=1, max_size=30))
def test_the_plan_follows_the_lifecycle_table_through_the_state_machine(ticks) -> None:
    store, reference = PlanStore(), Reference()
    states = {"h=a": SeriesState(), "h=b": SeriesState()}
    group = {"h=a": {"h": "a"}, "h=b": {"h": "b"}}
    for i, (a, b, silenced, acknowledge) in enumerate(ticks):
        at = T0 + i * MIN
        updates = []
        for key, level in (("h=a", a), ("h=b", b)):
            no_data = level == "no data"
            values = {"last(a.b, 1m)": None if no_data else {None: 1, "warning": 6, "critical": 11}[level]}
            evaluation = Evaluation(at=at, severity=None if no_data else level, no_data=no_data, values=values)
            stepped = step(states[key], evaluation, RULE.clauses, rule_id=RULE.id, series_key=key)
            look = states[key].notice_at is not None and states[key].notice_at <= at  # a held firing notice
            if stepped.state is states[key] and not look:
                continue
            # a series the query no longer returns brings no labels: they come from the store
            updates.append(SeriesUpdate(key, None if no_data and key in store.rows else group[key], stepped,
                                        evaluation, states[key]))
        plan = plan_tick(RULE, updates, store.stored(u.series_key for u in updates), silenced=silenced)
        assert touches_alerts(updates) <= bool(plan.opened or plan.changed or plan.events or plan.outbox)
        for write in plan.series:
            states[write.update.series_key] = write.state
        store.apply(plan)
        for u in updates:
            reference.record(u.series_key, group[u.series_key], u, silenced)
        for write in plan.series:  # a row points at its alert while it fires, and only then
            alert_id = store.rows[write.update.series_key][1]
            assert (alert_id is not None) == (write.update.step.state.state == FIRING)
            assert alert_id is None or store.alerts[alert_id - 1]["state"] == "firing"
        if acknowledge:
            for alert_id in reference.open.values():
                reference.alerts[alert_id - 1]["acknowledged"] = store.alerts[alert_id - 1]["acknowledged"] = True
    assert store.alerts == reference.alerts
    assert store.outbox == reference.outbox
    assert {key: alert_id for key, (_, alert_id) in store.rows.items() if alert_id} == reference.open


def moved(at: datetime, *transitions: tuple[str, str, str | None]) -> Step:
    state = transitions[-1][1] if transitions else INACTIVE
    return Step(SeriesState(state=state, severity=transitions[-1][2] if state != INACTIVE else None),
                tuple(Transition(at, f, t, s) for f, t, s in transitions))


def test_labels_come_from_the_store_when_the_update_brings_none() -> None:
    stored = {"k": StoredSeries(1, {"h": "a"}, StoredAlert(9, "warning", "firing", False))}
    plan = plan_tick(RULE, [update("k", None, moved(T0, (FIRING, INACTIVE, "warning")), T0)], stored,
                     silenced=False)
    (write,) = plan.series
    assert write.labels == {"h": "a"} and write.alert_labels == {"h": "a", "team": "ops"} and write.alert is None
    (alert,) = plan.changed
    assert alert.id == 9 and alert.changes == {"state": "resolved", "resolved_at": T0, "values_at_resolution": {}}
    assert [(e.kind, e.alert.id) for e in plan.events] == [("resolved", 9)]


def test_a_move_of_an_alert_the_series_does_not_have_is_skipped() -> None:
    stored = {"k": StoredSeries(1, {"h": "a"}, None)}
    plan = plan_tick(RULE, [update("k", {"h": "a"}, moved(T0, (FIRING, FIRING, "critical")), T0)], stored,
                     silenced=False)
    assert plan.events == [] and plan.changed == [] and plan.opened == []
    assert plan.series[0].alert is None


def test_an_alert_opened_and_escalated_in_one_step_is_inserted_as_it_ends() -> None:
    stepped = moved(T0, (PENDING, FIRING, "warning"), (FIRING, FIRING, "critical"))
    plan = plan_tick(RULE, [update("k", {"h": "a"}, stepped, T0, {"v": 11})], {}, silenced=False)
    (alert,) = plan.opened
    assert alert.id is None and alert.opened["severity"] == "critical" and alert.opened["values_at_start"] == {"v": 11}
    assert plan.changed == [] and [e.kind for e in plan.events] == ["fired", "escalated"]
    assert plan.series[0].alert is alert and plan.series[0].stored is None


def test_a_state_only_step_writes_the_state_and_keeps_the_firing_alert() -> None:
    firing = SeriesState(state=FIRING, severity="warning", firing_since=T0)
    stored = {"k": StoredSeries(3, None, StoredAlert(4, "warning", "firing", True)),
              "gone": StoredSeries(5, None, StoredAlert(6, "warning", "resolved", False))}
    updates = [update("k", {"h": "a"}, Step(firing, values_only=True), T0),
               update("gone", {"h": "b"}, Step(SeriesState(state=PENDING, severity="warning")), T0),
               update("new", {"h": "c"}, Step(SeriesState(state=PENDING, severity="warning")), T0)]
    assert not touches_alerts(updates)
    plan = plan_tick(RULE, updates, stored, silenced=False)
    assert [(w.values_only, w.alert and w.alert.id) for w in plan.series] == [(True, 4), (False, None),
                                                                              (False, None)]
    assert not (plan.opened or plan.changed or plan.events or plan.notifications or plan.outbox)


def test_outbox_status_follows_silences_and_acknowledgements() -> None:
    firing = SeriesState(state=FIRING, severity="warning", firing_since=T0, notified_severity="warning",
                         notified_started_at=T0, last_notified_at=T0, last_evaluated_at=T0)
    for silenced, acknowledged, expected in ((True, True, "silenced"), (False, True, "suppressed"),
                                             (False, False, "pending")):
        runs = step(firing, Evaluation(at=T0 + 5 * MIN, severity="warning", values={"v": 7}), RULE.clauses,
                    rule_id=RULE.id, series_key="k")
        assert [n.kind for n in runs.notifications] == ["repeat"]
        stored = {"k": StoredSeries(1, {"h": "a"}, StoredAlert(2, "warning", "firing", acknowledged))}
        plan = plan_tick(RULE, [SeriesUpdate("k", None, runs, Evaluation(at=T0 + 5 * MIN))], stored,
                         silenced=silenced)
        assert [(row.channel, row.status, row.notice.alert.id) for row in plan.outbox] == [
            ("one", expected, 2), ("two", expected, 2)]


def test_closing_moves_only_firing_alerts_and_records_why() -> None:
    events = close_alerts([StoredAlert(1, "critical", "firing", True), StoredAlert(2, "warning", "resolved", False)],
                          T0, "rule deleted")
    (event,) = events
    assert event.alert.changes == {"state": "resolved", "resolved_at": T0}
    assert event.row() == {"alert_id": 1, "at": T0, "kind": "closed", "from_state": "firing",
                           "to_state": "inactive", "severity": "critical", "values": {"reason": "rule deleted"}}


# -- every repository persists the same plan ------------------------------------------------------------------

PRICES = {"A": [10, 12, 12, 25, 9, 9, 12, 12, 30, 30], "B": [5, 5, 6, 7, 8, 8, 2, 2, 2, 9]}
TEXTS = [
    'rule {name} {{ when last(crypto.price{{symbol="A"}}, 1m) > 11\n for 2m\n notify hook }}',
    'rule {name} {{ critical when last(crypto.price, 1m) > 20\n warning when last(crypto.price, 1m) > 6\n'
    ' group by symbol\n on no data ok\n labels team = "x"\n notify hook, nowhere }}',
    'rule {name} {{ when last(crypto.price{{symbol="B"}}, 1m) > 4\n keep firing for 2m\n repeat every 2m\n'
    ' notify hook }}',
]


@pytest.fixture
def source():
    src = DataFusionSource()
    rows = [(T0 + i * MIN, symbol, float(v)) for symbol, values in PRICES.items() for i, v in enumerate(values)
            if not (symbol == "A" and 6 <= i <= 7)]  # A stops for two minutes: known series without data
    src.add_table("crypto", pa.table({"time": [r[0] for r in rows], "symbol": [r[1] for r in rows],
                                      "price": [r[2] for r in rows]}))
    yield src
    src.close()


class OneByOne(SqlRepository):
    def record_many(self, at, entries):
        return Repository.record_many(self, at, entries)


def stored_records(db, ids: list[int]):  # noqa: F811
    position = {rule_id: i for i, rule_id in enumerate(ids)}
    with db.session() as s:
        alerts = {a.id: [position[a.rule_id], a.series_key, a.labels, a.severity, a.state, a.started_at,
                         a.resolved_at, a.values_at_start, a.values_at_resolution, []]
                  for a in s.scalars(select(Alert).where(Alert.rule_id.in_(ids)))}
        for e in s.scalars(select(AlertEvent).where(AlertEvent.alert_id.in_(list(alerts))).order_by(AlertEvent.id)):
            alerts[e.alert_id][-1].append((e.kind, e.at, e.severity))
        outbox = sorted((position[o.rule_id], o.kind, o.payload["notification"]["at"], o.payload["channel"], o.status)
                        for o in s.scalars(select(NotificationOutbox).where(NotificationOutbox.rule_id.in_(ids))))
        rows = sorted((position[r.rule_id], r.series_key, r.state, repr(r.machine), r.labels,
                       r.alert_id is not None) for r in s.scalars(select(RuleState).where(RuleState.rule_id.in_(ids))))
    return sorted(alerts.values()), outbox, rows


def memory_records(repository: MemoryRepository, ids: list[int]):
    position = {str(rule_id): i for i, rule_id in enumerate(ids)}
    alerts = sorted([position[a.rule_id], a.series_key, a.labels, a.severity, a.state, a.started_at, a.resolved_at,
                     a.values_at_start, a.values_at_resolution, list(a.events)]
                    for a in repository.alerts if a.rule_id in position)
    outbox = sorted((position[r["rule_id"]], r["kind"], r["payload"]["notification"]["at"], r["payload"]["channel"],
                     "failed" if r["channel"] == "nowhere" else r["status"])  # the owner has no channel of that name
                    for r in repository.outbox.values() if r["rule_id"] in position)
    rows = sorted((position[rule_id], key, state.state, repr(state.to_dict()),
                   repository.labels.get((rule_id, key), {}), (rule_id, key) in repository.open_alerts)
                  for rule_id, states in repository.states.items() if rule_id in position
                  for key, state in states.items())
    return alerts, outbox, rows


def test_memory_and_store_repositories_persist_the_same_plan(db, workspace, alice, source) -> None:  # noqa: F811
    ws = workspace(alice)
    ws.channels.add("hook", "json://127.0.0.1:9/hook")
    ids = {kind: [ws.rules.create(text.format(name=f"same_{kind}_{i}")).id for i, text in enumerate(TEXTS)]
           for kind in ("batched", "single", "memory")}
    store_rules = StoreRules(db)
    by_id = {r.store_id: r for r in store_rules.current()}
    repositories = {"batched": SqlRepository(db), "single": OneByOne(db), "memory": MemoryRepository()}
    runners = {kind: Runner(store_rules, repository, Evaluator(source), values_every=0)
               for kind, repository in repositories.items()}
    for i in range(len(PRICES["A"])):
        for kind, runner in runners.items():
            assert runner.tick(T0 + i * MIN + timedelta(seconds=30), rules=[by_id[r] for r in ids[kind]],
                               all_rules=True).errors == {}
    expected = memory_records(repositories["memory"], ids["memory"])
    assert expected[0] and expected[1] and any(a[4] == "resolved" for a in expected[0])
    assert any(len({e[2] for e in a[-1]}) > 1 for a in expected[0])  # an alert changed severity
    assert stored_records(db, ids["batched"]) == expected
    assert stored_records(db, ids["single"]) == expected
