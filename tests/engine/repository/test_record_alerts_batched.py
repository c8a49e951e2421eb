"""A tick's rules that open, change or close alerts or queue notifications written together (SQLite and
MariaDB): the store ends as with one transaction per rule, also when that shared transaction fails (nothing
of it is kept; each rule is then written on its own)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.evaluate import Evaluator
from engine.rules import StoreRules
from engine.runner import Runner
from monitors_mcp.store import Alert, Rule
from tests.support.record import (  # noqa: F401
    MIN, PRICES, T0, TEXTS, CountingTogether, OneByOne, assert_times_stored_alike, snapshot, source)


class AlertsTogether(CountingTogether):
    """Counts the rules whose alerts were written together."""

    def _record_alerts(self, entries):
        return self.counted(super()._record_alerts, entries)


class AlertsTogetherFailOnce(AlertsTogether):
    fail_first = True


class AlertsInSmallBatches(AlertsTogether):
    """Transactions of a few series updates each (whole rules)."""

    def record_many(self, at, entries):
        import engine.repository.sql as sql

        saved, sql._BATCH_UPDATES = sql._BATCH_UPDATES, 3
        try:
            return super().record_many(at, entries)
        finally:
            sql._BATCH_UPDATES = saved


@pytest.mark.parametrize("repository", [AlertsTogether, AlertsTogetherFailOnce, AlertsInSmallBatches])
def test_alert_writes_together_leave_the_store_as_one_transaction_per_rule(db, workspace, alice,  # noqa: F811
                                                                          source, repository) -> None:  # noqa: F811
    ws = workspace(alice)
    prefix = repository.__name__.lower()
    texts = TEXTS + [
        'rule {name} {{ when last(crypto.price, 1m) > 4\n group by symbol\n notify hook }}',
        'rule {name} {{ critical when last(crypto.price{{symbol="B"}}, 1m) > 6\n'
        ' warning when last(crypto.price{{symbol="B"}}, 1m) > 5\n notify hook }}',
    ]
    ids = {}
    for kind in ("batched", "reference"):
        ids[kind] = [ws.rules.create(text.format(name=f"{prefix}_{kind}_{i}")).id for i, text in enumerate(texts)]
    store_rules = StoreRules(db)
    by_store_id = {r.store_id: r for r in store_rules.current()}
    batched = Runner(store_rules, repository(db), Evaluator(source), values_every=0)
    reference = Runner(store_rules, OneByOne(db), Evaluator(source), values_every=0)
    # values_every=0: a firing series' values are kept at every tick (their pace depends on the rule's id)
    for i in range(len(PRICES["A"])):
        at = T0 + i * MIN + timedelta(seconds=30)
        one = batched.tick(at, rules=[by_store_id[r] for r in ids["batched"]], all_rules=True)
        two = reference.tick(at, rules=[by_store_id[r] for r in ids["reference"]], all_rules=True)
        assert one.errors == two.errors == {}
        assert (one.transitions, one.notifications, one.outbox_rows) == \
            (two.transitions, two.notifications, two.outbox_rows)
    got, expected = snapshot(db, ids["batched"]), snapshot(db, ids["reference"])
    assert got == expected
    assert expected[1] and expected[2] and expected[3]  # alerts, events and outbox rows were written
    assert batched.repository.together >= 2  # some rules' alerts were written together
    assert_times_stored_alike(db, ids["batched"])
    assert batched.repository.failed == (1 if repository.fail_first else 0)
    # the same tick again (states read from the store anew) adds nothing
    again = Runner(store_rules, repository(db), Evaluator(source), values_every=0)
    again.tick(at, rules=[by_store_id[r] for r in ids["batched"]], all_rules=True)
    assert snapshot(db, ids["batched"]) == got
    with db.session() as s:
        assert all(r.last_error is None for r in s.scalars(select(Rule).where(Rule.id.in_(ids["batched"]))))


def test_alerts_of_series_the_query_no_longer_returns_are_written_together(db, workspace, alice,  # noqa: F811
                                                                           source) -> None:  # noqa: F811
    """Series stepped with no data bring no labels: their stored labels are read in the shared write."""
    ws = workspace(alice)
    text = 'rule {name} {{ when last(crypto.price, 1m) > 0\n group by symbol\n on no data ok\n notify hook }}'
    ids = [ws.rules.create(text.format(name=f"vanishing_{i}")).id for i in range(2)]
    store_rules = StoreRules(db)
    rules = [r for r in store_rules.current() if r.store_id in ids]
    repository = AlertsTogether(db)
    runner = Runner(store_rules, repository, Evaluator(source), values_every=0)
    for i in range(len(PRICES["A"])):
        assert runner.tick(T0 + i * MIN + timedelta(seconds=30), rules=rules, all_rules=True).errors == {}
    before = repository.together
    report = runner.tick(T0 + (len(PRICES["A"]) + 1) * MIN, rules=rules, all_rules=True)  # the data has stopped
    assert report.errors == {} and report.transitions == 6  # three series of each rule resolve
    assert repository.together == before + 2  # written together, not one by one after a failed shared write
    with db.session() as s:
        alerts = list(s.scalars(select(Alert).where(Alert.rule_id.in_(ids))))
    assert len(alerts) == 6 and all(a.state == "resolved" for a in alerts)
    assert sorted(a.labels["symbol"] for a in alerts) == ["A", "A", "B", "B", "C", "C"]
