"""A tick's writes batched (SQLite and MariaDB): rules that only change series states are written together,
rules that touch alerts or the outbox on their own; the store ends as with one transaction per rule, also
when the shared transaction fails (nothing of it is kept; each rule is then written on its own)."""

from __future__ import annotations


from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.evaluate import Evaluator
from engine.rules import StoreRules
from engine.runner import Runner
from monitors_mcp.store import Rule
from tests.support.record import CountingTogether, MIN, OneByOne, PRICES, T0, TEXTS, assert_times_stored_alike, snapshot, source  # noqa: F401


class Batched(CountingTogether):
    """Counts the rules whose states were written together."""

    def _record_states(self, entries):
        return self.counted(super()._record_states, entries)


class BatchedFailsOnce(Batched):
    fail_first = True


@pytest.mark.parametrize("repository", [Batched, BatchedFailsOnce])
def test_batched_writes_leave_the_store_as_one_transaction_per_rule(db, workspace, alice, source,  # noqa: F811
                                                                   repository) -> None:
    ws = workspace(alice)
    prefix = repository.__name__.lower()
    ids = {}
    for kind in ("batched", "reference"):
        ids[kind] = [ws.rules.create(text.format(name=f"{prefix}_{kind}_{i}")).id for i, text in enumerate(TEXTS)]
    store_rules = StoreRules(db)
    every = list(store_rules.current())
    by_store_id = {r.store_id: r for r in every}
    batched = Runner(store_rules, repository(db), Evaluator(source), values_every=0)
    reference = Runner(store_rules, OneByOne(db), Evaluator(source), values_every=0)
    for i in range(len(PRICES["A"])):
        at = T0 + i * MIN + timedelta(seconds=30)
        one = batched.tick(at, rules=[by_store_id[r] for r in ids["batched"]], all_rules=True)
        two = reference.tick(at, rules=[by_store_id[r] for r in ids["reference"]], all_rules=True)
        assert one.errors == two.errors == {}
        assert (one.transitions, one.notifications, one.outbox_rows) == \
            (two.transitions, two.notifications, two.outbox_rows)
    got, expected = snapshot(db, ids["batched"]), snapshot(db, ids["reference"])
    assert got == expected
    assert expected[0] and expected[1] and expected[2]  # states, alerts and events were written
    assert batched.repository.together >= 2  # some rules' states were written together
    assert_times_stored_alike(db, ids["batched"])
    assert batched.repository.failed == (1 if repository.fail_first else 0)
    with db.session() as s:
        assert all(r.last_error is None for r in s.scalars(select(Rule).where(Rule.id.in_(ids["batched"]))))
