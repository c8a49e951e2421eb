"""A receiver never gets a later notification of an alert before an earlier one that is being retried."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from engine.notify.dispatch import Dispatcher
from engine.evaluate import Evaluator
from engine.repository import SqlRepository
from engine.rules import StoreRules
from engine.runner import Runner
from engine.sources import DataFusionSource
from tests.support.receivers import HttpReceiver

MIN = timedelta(minutes=1)
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 10 * MIN


@pytest.fixture
def source():
    src = DataFusionSource()
    values = [71_000, 69_000]  # fires at T0, resolves at T0 + 1m
    src.add_table("crypto", pa.table({"time": [T0 + i * MIN for i in range(2)], "symbol": ["BTC"] * 2,
                                      "price": [float(v) for v in values]}))
    yield src
    src.close()


def test_resolved_waits_for_a_firing_being_retried(db, workspace, alice, source, secrets):  # noqa: F811
    with HttpReceiver() as http:
        ws = workspace(alice)
        ws.channels.add("hook", http.url("json", "/hook"))
        ws.rules.create('rule order { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n notify hook }')
        runner = Runner(StoreRules(db), SqlRepository(db), Evaluator(source))
        now = datetime.now(timezone.utc)
        dispatcher = Dispatcher(db, secrets, attempt_timeout=5, first_backoff=30, clock=lambda: now)

        runner.tick(T0, all_rules=True)
        http.fail_next(1)
        assert dispatcher.dispatch(now).retried == 1  # "firing" failed: retried in 30 s
        runner.tick(T0 + MIN, all_rules=True)  # "resolved" is queued behind it
        assert dispatcher.dispatch(now).attempted == 0 and http.count == 0

        later = now + timedelta(seconds=31)
        dispatcher.clock = lambda: later
        report = dispatcher.dispatch(later)
        assert report.sent == 2 and http.wait_for(2)
        titles = [r.data["title"] for r in http.received]
        assert "is firing" in titles[0] and "is resolved" in titles[1]


def test_a_failure_in_a_pass_holds_back_the_later_notification_of_that_alert(db, workspace, alice, source,  # noqa: F811
                                                                            secrets):
    with HttpReceiver() as http:
        ws = workspace(alice)
        ws.channels.add("hook2", http.url("json", "/hook"))
        ws.rules.create('rule order2 { when last(crypto.price{symbol="BTC"}, 1m) > 70000\n notify hook2 }')
        runner = Runner(StoreRules(db), SqlRepository(db), Evaluator(source))
        runner.tick(T0, all_rules=True)
        runner.tick(T0 + MIN, all_rules=True)  # firing and resolved both queued
        now = datetime.now(timezone.utc)
        dispatcher = Dispatcher(db, secrets, attempt_timeout=5, first_backoff=30, clock=lambda: now)
        http.fail_next(1)
        report = dispatcher.dispatch(now)
        assert report.retried == 1 and report.sent == 0 and http.count == 0
        later = now + timedelta(seconds=31)
        dispatcher.clock = lambda: later
        assert dispatcher.dispatch(later).sent == 2 and http.wait_for(2)
        titles = [r.data["title"] for r in http.received]
        assert "is firing" in titles[0] and "is resolved" in titles[1]
