"""The runner on the store (SQLite and MariaDB): states, alerts, events and outbox in one transaction per rule;
re-run ticks add nothing; silences; rule changes without restart; the dispatcher to a real HTTP receiver."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from engine.notify.dispatch import Dispatcher
from engine.evaluate import Evaluator
from engine.repository import SqlRepository
from engine.rules import StoreRules
from engine.runner import Runner, StaticRules
from engine.sources import DataFusionSource
from monitors_mcp.store import Alert, AlertEvent, NotificationLog, NotificationOutbox, Rule, RuleState
from tests.support.receivers import HttpReceiver

MIN = timedelta(minutes=1)
# evaluations near the present, so that silences made "now" by the service cover them
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 10 * MIN


@pytest.fixture
def source():
    src = DataFusionSource()
    values = [69_000, 70_500, 71_000, 69_000, 72_000, 72_000, 69_000, 69_000, 69_000, 69_000]
    src.add_table("crypto", pa.table({"time": [T0 + i * MIN for i in range(10)], "symbol": ["BTC"] * 10,
                                      "price": [float(v) for v in values]}))
    yield src
    src.close()


@pytest.fixture
def receiver():
    with HttpReceiver() as http:
        yield http


def make_runner(db, source):  # noqa: F811
    return Runner(StoreRules(db), SqlRepository(db), Evaluator(source))


def counts(db, rule_id):  # noqa: F811
    with db.session() as s:
        alerts = s.scalar(select(func.count()).select_from(Alert).where(Alert.rule_id == rule_id))
        events = s.scalar(select(func.count()).select_from(AlertEvent).join(Alert).where(Alert.rule_id == rule_id))
        outbox = s.scalar(select(func.count()).select_from(NotificationOutbox)
                          .where(NotificationOutbox.rule_id == rule_id))
    return alerts, events, outbox


def test_fire_and_resolve_write_alerts_events_outbox_once(db, workspace, alice, source, receiver, secrets):  # noqa: F811
    ws = workspace(alice)
    ws.channels.add("hook", receiver.url("json", "/hook"))
    rule = ws.rules.create('rule btc { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n notify hook, gone }')
    runner = make_runner(db, source)
    for i in range(4):
        runner.tick(T0 + i * MIN, all_rules=True)
    assert counts(db, rule.id) == (1, 2, 4)  # fired + resolved; 2 notifications × (hook, missing channel)
    for i in range(4):  # the same ticks again: nothing new
        report = runner.tick(T0 + i * MIN, all_rules=True)
        assert report.notifications == 0 and report.outbox_rows == 0
    assert counts(db, rule.id) == (1, 2, 4)

    page = ws.alerts.list()
    (alert,) = page.alerts
    assert alert.state == "resolved" and alert.rule_name == "btc"
    assert alert.values_at_start == {'last(crypto.price{symbol="BTC"}, 1m)': 70_500.0}
    assert alert.values_at_resolution == {'last(crypto.price{symbol="BTC"}, 1m)': 69_000.0}
    with db.session() as s:
        statuses = sorted(s.scalars(select(NotificationOutbox.status).where(NotificationOutbox.rule_id == rule.id)))
        state = s.scalars(select(RuleState).where(RuleState.rule_id == rule.id)).one()
    assert statuses == ["failed", "failed", "pending", "pending"]  # the missing channel is failed, not dropped
    assert state.state == "inactive" and state.machine["last_evaluated_at"]

    dispatcher = Dispatcher(db, secrets, attempt_timeout=5)
    report = dispatcher.dispatch()
    assert report.sent == 2 and receiver.wait_for(2)
    assert dispatcher.dispatch().attempted == 0
    assert receiver.count == 2
    bodies = [r.data for r in receiver.received]
    assert "is firing" in bodies[0]["title"] and "is resolved" in bodies[1]["title"]
    assert "69000" in bodies[1]["message"]  # resolved carries the value at resolution
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(NotificationLog)
                        .join(NotificationOutbox).where(NotificationOutbox.rule_id == rule.id)) == 2


def test_failed_delivery_is_retried_with_backoff_then_sent(db, workspace, alice, source, receiver, secrets):  # noqa: F811
    ws = workspace(alice)
    ws.channels.add("hook", receiver.url("json", "/hook"))
    rule = ws.rules.create('rule btc2 { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n notify hook }')
    make_runner(db, source).tick(T0 + MIN, all_rules=True)
    receiver.fail_next(1)
    now = datetime.now(timezone.utc)
    dispatcher = Dispatcher(db, secrets, attempt_timeout=5, first_backoff=30, clock=lambda: now)
    first = dispatcher.dispatch(now)
    assert first.retried == 1 and receiver.count == 0
    assert dispatcher.dispatch(now).attempted == 0  # not due yet
    later = now + timedelta(seconds=31)
    dispatcher.clock = lambda: later
    assert dispatcher.dispatch(later).sent == 1 and receiver.count == 1
    with db.session() as s:
        row = s.scalars(select(NotificationOutbox).where(NotificationOutbox.rule_id == rule.id)).one()
        assert row.status == "sent" and row.attempts == 2
        logs = s.scalars(select(NotificationLog.status).where(NotificationLog.outbox_id == row.id)).all()
    assert sorted(logs) == ["error", "sent"]


def test_deleted_channel_fails_with_a_reason(db, workspace, alice, source, secrets):  # noqa: F811
    with HttpReceiver() as http:
        ws = workspace(alice)
        ws.channels.add("tmp", http.url("json", "/hook"))
        rule = ws.rules.create('rule btc3 { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n notify tmp }')
        make_runner(db, source).tick(T0 + MIN, all_rules=True)
        ws.channels.delete("tmp")
        assert Dispatcher(db, secrets).dispatch().failed >= 1
        assert http.count == 0
    with db.session() as s:
        row = s.scalars(select(NotificationOutbox).where(NotificationOutbox.rule_id == rule.id)).one()
    assert row.status == "failed" and "deleted" in row.last_error


def test_silenced_rule_records_but_does_not_send(db, workspace, alice, source):  # noqa: F811
    ws = workspace(alice)
    ws.channels.add("hook", "json://127.0.0.1:9/hook")
    rule = ws.rules.create('rule btc4 { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n notify hook }')
    ws.rules.silence(rule.id, duration="1h")
    make_runner(db, source).tick(datetime.now(timezone.utc).replace(microsecond=0), all_rules=True)
    make_runner(db, source).tick(T0 + MIN, all_rules=True)  # before the silence began: not silenced
    with db.session() as s:
        rows = s.execute(select(NotificationOutbox.status).where(NotificationOutbox.rule_id == rule.id)).all()
    assert sorted(r[0] for r in rows) == ["pending"]  # T0+1m fires; "now" has no data, so it changes nothing


def test_silence_at_the_evaluation_time_marks_rows_silenced(db, workspace, alice, source):  # noqa: F811
    ws = workspace(alice)
    ws.channels.add("hook", "json://127.0.0.1:9/hook")
    rule = ws.rules.create('rule btc5 { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n notify hook }')
    from monitors_mcp.store import Silence

    with db.session() as s:
        s.add(Silence(owner_id=alice, rule_id=rule.id, starts_at=T0, ends_at=T0 + 5 * MIN))
    make_runner(db, source).tick(T0 + MIN, all_rules=True)
    with db.session() as s:
        rows = s.scalars(select(NotificationOutbox.status).where(NotificationOutbox.rule_id == rule.id)).all()
        alerts = s.scalar(select(func.count()).select_from(Alert).where(Alert.rule_id == rule.id))
    assert rows == ["silenced"] and alerts == 1


def test_rule_changes_are_picked_up_without_restart(db, workspace, alice, source):  # noqa: F811
    ws = workspace(alice)
    rule = ws.rules.create('rule btc6 { when last(crypto.price{symbol="BTC"}, 1m) > 80000 }')
    runner = make_runner(db, source)
    mine = lambda: [r for r in runner.rules.current() if r.store_id == rule.id]  # noqa: E731
    runner.tick(T0 + MIN, all_rules=True)
    assert counts(db, rule.id)[0] == 0
    ws.rules.update(rule.id, text='rule btc6 { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }')
    assert mine()[0].version == 2
    runner.tick(T0 + 2 * MIN, all_rules=True)
    assert counts(db, rule.id)[0] == 1
    ws.rules.update(rule.id, enabled=False)
    assert mine() == []
    ws.rules.update(rule.id, enabled=True)
    assert len(mine()) == 1
    ws.rules.delete(rule.id)
    assert mine() == []
    reloads = runner.rules.reloads
    runner.rules.current()
    assert runner.rules.reloads == reloads  # nothing changed: no reload


def test_a_failing_query_records_the_error_and_keeps_state(db, workspace, alice, source):  # noqa: F811
    ws = workspace(alice)
    good = ws.rules.create('rule good7 { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }')
    bad = ws.rules.create('rule bad7 { when last(crypto.symbol, 1m) > 1 }')  # a tag read as a number
    runner = make_runner(db, source)
    report = runner.tick(T0 + MIN, all_rules=True)
    assert str(bad.id) in report.errors and str(good.id) not in report.errors
    with db.session() as s:
        assert s.get(Rule, bad.id).last_error and s.get(Rule, good.id).last_error is None
    assert counts(db, good.id)[0] == 1


def test_a_rule_given_a_new_condition_while_firing_starts_afresh(db, workspace, alice, source):  # noqa: F811
    ws = workspace(alice)
    rule = ws.rules.create('rule btc9 { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }')
    runner = make_runner(db, source)
    runner.tick(T0 + 2 * MIN, all_rules=True)  # 70,500: fires
    runner.tick(T0 + 3 * MIN, all_rules=True)  # 71,000: still firing (the repository knows its row)
    ws.rules.update(rule.id, text='rule btc9 { when last(crypto.price{symbol="BTC"}, 1m) > 60000 }')
    runner.tick(T0 + 4 * MIN, all_rules=True)  # 69,000 > 60,000: fires afresh
    runner.tick(T0 + 5 * MIN, all_rules=True)  # 72,000: still firing
    with db.session() as s:
        states = s.scalars(select(RuleState).where(RuleState.rule_id == rule.id)).all()
        alerts = s.scalars(select(Alert).where(Alert.rule_id == rule.id).order_by(Alert.id)).all()
        assert [a.state for a in alerts] == ["resolved", "firing"]  # the first closed by the change
        assert len(states) == 1 and states[0].state == "firing" and states[0].alert_id == alerts[1].id
        assert states[0].since == T0 + 4 * MIN
    ws.rules.update(rule.id, text='rule btc9 { when last(crypto.price{symbol="BTC"}, 1m) > 80000 }')
    runner.tick(T0 + 6 * MIN, all_rules=True)  # 72,000 < 80,000: nothing
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(RuleState).where(RuleState.rule_id == rule.id)) == 0
        assert [a.state for a in s.scalars(select(Alert).where(Alert.rule_id == rule.id))] == ["resolved"] * 2


def test_a_reload_reads_and_builds_only_the_rules_that_changed(db, workspace, alice):  # noqa: F811
    ws = workspace(alice)
    ids = [ws.rules.create(f'rule r{i} {{ when last(crypto.price{{symbol="S{i}"}}, 1m) > {70000 + i} }}').id
           for i in range(5)]
    store_rules = StoreRules(db)
    first = {r.store_id: r for r in store_rules.current()}
    built = []
    original = store_rules.builder.build
    store_rules.builder.build = lambda row: built.append(row.id) or original(row)
    ws.rules.update(ids[2], text='rule r2 { when last(crypto.price{symbol="S2"}, 1m) > 1 }')
    ws.rules.delete(ids[4])
    again = {r.store_id: r for r in store_rules.current()}
    assert built == [ids[2]]  # only the changed rule was read and built again
    assert sorted(i for i in again if i in ids) == sorted(ids[:4])  # the store may hold others' rules
    assert again[ids[2]].version == 2 and "> 1" in again[ids[2]].condition
    assert all(again[i] is first[i] for i in (ids[0], ids[1], ids[3]))  # the others are the same objects


def test_an_error_recorded_by_another_replica_is_cleared_by_the_next_holder(db, workspace, alice, source):  # noqa: F811
    ws = workspace(alice)
    rule = ws.rules.create('rule handed { when last(crypto.price{symbol="BTC"}, 1m) > 80000 }')
    engine_rule = next(r for r in StoreRules(db).current() if r.store_id == rule.id)
    next_holder = SqlRepository(db)
    assert str(rule.id) not in next_holder.errored()  # read before the other replica's error
    SqlRepository(db).record_error(engine_rule, T0, "query timed out after 30 s")
    next_holder.forget([engine_rule.id])  # the rule is newly held: what others wrote is read again
    assert str(rule.id) in next_holder.errored()
    runner = Runner(StaticRules([engine_rule]), next_holder, Evaluator(source))
    runner.tick(T0 + MIN, all_rules=True)  # evaluates fine, nothing fires: the error is still cleared
    with db.session() as s:
        assert s.get(Rule, rule.id).last_error is None
