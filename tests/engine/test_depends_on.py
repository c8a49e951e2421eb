"""``depends on RULE [on TAG, …]`` in the runner: every due rule is decided before any is recorded, so a
dependency that starts (or stops) firing at a tick holds (or releases) its dependents' notifications at
that same tick, whatever order the rules come in; a dependency not due at the tick, or evaluated by another
replica, counts as the store has it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
from sqlalchemy import select

from engine.depends import FiringIndex, firing_index
from engine.evaluate import Evaluator
from engine.repository import MemoryRepository, SqlRepository
from engine.rules import RuleBuilder, rules_from_text
from engine.runner import Runner, StaticRules
from engine.sources import DataFusionSource
from monitors_mcp.store import NotificationOutbox, Rule

MIN = timedelta(minutes=1)
T0 = datetime(2024, 5, 6, 8, 0, tzinfo=timezone.utc)


def source_of(series: dict[tuple[str, str], list]) -> DataFusionSource:
    """``(measurement, host)`` → one value a minute from T0 (None: no point)."""
    tables: dict[str, list] = {}
    for (measurement, host), values in series.items():
        tables.setdefault(measurement, []).extend(
            (T0 + m * MIN, host, float(v)) for m, v in enumerate(values) if v is not None)
    source = DataFusionSource()
    for measurement, rows in tables.items():
        source.add_table(measurement, pa.table({"time": [r[0] for r in rows], "host": [r[1] for r in rows],
                                                "usage": [r[2] for r in rows]}), tags=["host"])
    return source


CHILD = """rule child {
    when last(app.usage, 1m) > 50
    group by host
    notify hook
    depends on parent%s
}"""
PARENT = """rule parent {
    when last(db.usage, 1m) > 50
    group by host
    every %s
    notify hook
}"""


def run(text: str, source, minutes: int) -> MemoryRepository:
    repository = MemoryRepository()
    runner = Runner(StaticRules(rules_from_text(text)), repository, Evaluator(source))
    for m in range(minutes):
        runner.tick(T0 + m * MIN)
    return repository


def deliveries(repository: MemoryRepository, rule: str) -> list[tuple]:
    return [(n.notification.at.strftime("%H:%M"), n.notification.kind, n.notification.late, n.labels.get("host"),
             tuple(n.deliveries)) for n in repository.notifications if n.rule_id == rule]


def test_a_dependency_firing_at_the_same_tick_holds_its_dependent_listed_before_it():
    source = source_of({("app", "a"): [90] * 6, ("db", "a"): [90, 90, 90, 10, 10, 10]})
    repository = run(CHILD % "" + "\n" + PARENT % "1m", source, 6)
    assert deliveries(repository, "child") == [
        ("08:00", "firing", False, "a", (("hook", "suppressed", "suppressed by rule parent"),)),
        # the parent resolves at 08:03: at that same tick the child's firing notice goes, late
        ("08:03", "firing", True, "a", (("hook", "pending", None),)),
    ]
    assert [(n[0], n[1]) for n in deliveries(repository, "parent")] == [("08:00", "firing"), ("08:03", "resolved")]


def test_a_dependency_that_resolves_at_the_tick_its_dependent_fires_holds_nothing():
    source = source_of({("app", "a"): [10, 10, 90, 90], ("db", "a"): [90, 90, 10, 10]})
    repository = run(CHILD % "" + "\n" + PARENT % "1m", source, 4)
    assert deliveries(repository, "child") == [("08:02", "firing", False, "a", (("hook", "pending", None),))]


def test_listed_tags_hold_only_the_series_with_the_same_values():
    source = source_of({("app", "a"): [90] * 3, ("app", "b"): [90] * 3, ("db", "a"): [90] * 3,
                        ("db", "b"): [10] * 3})
    repository = run(CHILD % " on host" + "\n" + PARENT % "1m", source, 3)
    assert sorted(deliveries(repository, "child")) == [
        ("08:00", "firing", False, "a", (("hook", "suppressed", "suppressed by rule parent"),)),
        ("08:00", "firing", False, "b", (("hook", "pending", None),)),
    ]


def test_a_dependency_not_due_at_the_tick_counts_as_recorded():
    """The parent runs every 10 minutes (08:00, 08:10): at 08:05 the child starts firing and the parent,
    not due, still fires as recorded at 08:00; at 08:10 the parent resolves and the child's notice goes."""
    source = source_of({("app", "a"): [10] * 5 + [90] * 8, ("db", "a"): [90] * 10 + [10] * 3})
    repository = run(CHILD % "" + "\n" + PARENT % "10m", source, 13)
    assert deliveries(repository, "child") == [
        ("08:05", "firing", False, "a", (("hook", "suppressed", "suppressed by rule parent"),)),
        ("08:10", "firing", True, "a", (("hook", "pending", None),)),
    ]


def test_the_index_overlays_the_ticks_decisions_on_what_is_stored():
    class Stored:
        def firing_labels(self, owner_id, names):
            assert (owner_id, names) == (None, ["parent"])
            return {"parent": {"k1": {"host": "a"}, "k2": {"host": "b"}}}

    [child, parent] = rules_from_text(CHILD % " on host" + "\n" + PARENT % "1m")
    index = firing_index(Stored(), [child], [])
    assert index.holder(child, {"host": "a"}) == "parent" and index.holder(child, {"host": "c"}) is None
    assert index.holder(child, {}) is None  # a tag the dependent series lacks matches nothing
    assert sorted(l["host"] for l in index.labels(child)) == ["a", "b"]
    assert FiringIndex({}).holder(child, {"host": "a"}) is None


def test_a_dependency_another_replica_evaluates_is_read_from_the_store(db, workspace, alice):  # noqa: F811
    """Two runners on one store, one holding the parent, the other the child (as two replicas' leases
    would): the child's runner never evaluates the parent, and holds the child's notice while the parent's
    alert is open in the store."""
    ws = workspace(alice)
    ws.channels.add("hook", "json://127.0.0.1:9/")
    names = {ws.rules.create(CHILD % "").id: "child", ws.rules.create(PARENT % "1m").id: "parent"}
    source = source_of({("app", "a"): [10, 90, 90, 90], ("db", "a"): [90, 90, 90, 10]})
    builder = RuleBuilder()
    with db.session() as session:
        rows = list(session.scalars(select(Rule).where(Rule.id.in_(list(names)))))
    built = {names[r.id]: builder.build(r) for r in rows}
    parent = Runner(StaticRules([built["parent"]]), SqlRepository(db), Evaluator(source))
    child = Runner(StaticRules([built["child"]]), SqlRepository(db), Evaluator(source))
    for m in range(4):
        parent.tick(T0 + m * MIN)  # the parent's replica records first (08:03: it resolves)
        child.tick(T0 + m * MIN)
    with db.session() as session:
        rows = session.execute(select(NotificationOutbox.rule_id, NotificationOutbox.status,
                                      NotificationOutbox.held_reason, NotificationOutbox.payload)
                               .where(NotificationOutbox.rule_id == built["child"].store_id)
                               .order_by(NotificationOutbox.id)).all()
    assert [(status, reason, payload["notification"]["at"], payload["notification"]["late"])
            for _, status, reason, payload in rows] == [
        ("suppressed", "suppressed by rule parent", "2024-05-06T08:01:00Z", False),
        ("pending", None, "2024-05-06T08:03:00Z", True),
    ]


PARENT_NO_DATA = """rule parent {
    when last(db.usage, 1m) > 50
    group by host
    on no data alert
    notify hook
}"""


def test_a_dependency_firing_for_no_data_holds_the_dependent_series_of_its_host_only():
    """The parent fires for host a because a stopped reporting, at the very tick the child fires on a and b:
    the child's a is held by the tag, its b goes out."""
    source = source_of({("app", "a"): [10, 10, 90, 90], ("app", "b"): [10, 10, 90, 90],
                        ("db", "a"): [10, 10, None, None], ("db", "b"): [10, 10, 10, 10]})
    repository = run(CHILD % " on host" + "\n" + PARENT_NO_DATA, source, 4)
    assert [(n[0], n[1], n[3]) for n in deliveries(repository, "parent")] == [("08:02", "firing", "a")]
    assert sorted(deliveries(repository, "child"), key=lambda n: n[3]) == [
        ("08:02", "firing", False, "a", (("hook", "suppressed", "suppressed by rule parent"),)),
        ("08:02", "firing", False, "b", (("hook", "pending", None),)),
    ]


def test_another_users_rule_of_the_dependencys_name_holds_nothing(db, workspace, alice, bob):  # noqa: F811
    """Bob's `parent` fires, in the same runner and the same tick as Alice's child that depends on a `parent`
    she does not have: her notification goes out, and bob's rule is never named in her rows."""
    mine, theirs = workspace(alice), workspace(bob)
    for ws in (mine, theirs):
        ws.channels.add("hook", "json://127.0.0.1:9/")
    child_id = mine.rules.create(CHILD % "", data_arrives_later=True).id
    parent_id = theirs.rules.create(PARENT % "1m", data_arrives_later=True).id
    source = source_of({("app", "a"): [90, 90, 90], ("db", "a"): [90, 90, 90]})
    builder = RuleBuilder()
    with db.session() as session:
        built = [builder.build(r) for r in session.scalars(select(Rule).where(Rule.id.in_([child_id, parent_id])))]
    runner = Runner(StaticRules(built), SqlRepository(db), Evaluator(source))
    for m in range(3):
        runner.tick(T0 + m * MIN)
    with db.session() as session:
        rows = session.execute(select(NotificationOutbox.rule_id, NotificationOutbox.status,
                                      NotificationOutbox.held_reason)
                               .where(NotificationOutbox.rule_id.in_([child_id, parent_id]))).all()
    assert sorted(rows) == sorted([(child_id, "pending", None), (parent_id, "pending", None)])
