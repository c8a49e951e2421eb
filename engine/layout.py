"""Layouts: what evaluating a set of rules needs that does not depend on the time, built once and kept.

A :class:`Layout` holds the plan of shared queries (``engine.plan``) and the
rules grouped by the scans they read (:class:`Group`: rules reading the same
scans share the same joined rows) and, within a group, by *shape*
(:class:`Cohort`: rules that differ only in the numbers they compare with,
each threshold's values sorted once, so the rules whose condition may hold for
a value are found by binary search). A set of rules that differs from a laid
out one by a few rules is laid out from it (:meth:`Layout.updated`).
:class:`Layouts` remembers the last few layouts, as the evaluator asks for
them tick after tick.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import datetime, timezone
from typing import Sequence

from .plan import Plan, plan_tick, scan_key
from .rules import EngineRule

__all__ = ["Layout", "Layouts", "Group", "Cohort", "shared_shape"]

_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)  # when a layout's plan is first built; moved to each tick


class Cohort:
    """Rules of one shape reading the same scans, decided together: each threshold's values sorted once."""

    __slots__ = ("members", "thresholds", "alert_on_no_data", "timed")

    def __init__(self, members: list[EngineRule]) -> None:
        self.members = members
        shape = members[0].compiled.shape
        self.thresholds = []
        for column, op, position in shape.thresholds:
            pairs = sorted((m.compiled.params[position], i) for i, m in enumerate(members))
            self.thresholds.append((column, op, [k for k, _ in pairs], [i for _, i in pairs]))
        self.alert_on_no_data = [i for i, m in enumerate(members) if m.clauses.on_no_data == "alert"]
        #: members with an ``active during`` window (outside it their condition holds nowhere)
        self.timed = [i for i, m in enumerate(members) if m.active_during is not None]

    def candidates(self, rows: list) -> dict[int, list[int]]:
        """Member → the positions in ``rows`` where its firing condition may hold (see :class:`RuleResult`);
        members without one are absent."""
        found: dict[int, list[int]] = {}
        for s, (_key, _labels, row) in enumerate(rows):
            no_data = False
            for column, op, keys, order in self.thresholds:
                v = row.get(column)
                if v is None:
                    no_data = True
                    continue
                if op == ">" or op == ">=":  # k <= v (equality included: a candidate is decided exactly later)
                    chosen = order[:bisect_right(keys, v)]
                elif op == "<" or op == "<=":
                    chosen = order[bisect_left(keys, v):]
                else:  # ==
                    chosen = order[bisect_left(keys, v):bisect_right(keys, v)]
                for i in chosen:
                    found.setdefault(i, []).append(s)
            if no_data:
                for i in self.alert_on_no_data:
                    found.setdefault(i, []).append(s)
        return found


class Group:
    """Rules reading the same scans (so the same joined rows): decided one by one, or in cohorts by shape."""

    __slots__ = ("indices", "first", "single", "cohorts")

    def __init__(self, indices: tuple[int, ...], first: EngineRule) -> None:
        self.indices = indices
        self.first = first
        self.single: list[EngineRule] = []
        self.cohorts: dict[object, Cohort] = {}

    def copy(self) -> Group:
        group = Group(self.indices, self.first)
        group.single = list(self.single)
        group.cohorts = dict(self.cohorts)
        return group


def shared_shape(rule: EngineRule):
    """The rule's shape when it is decided together with others of its shape, else ``None``."""
    shape = rule.compiled.shape
    return shape if shape is not None and shape.thresholds is not None else None


class Layout:
    """What evaluating a set of rules needs that does not depend on the time: the plan, and the rules grouped
    by the scans they read and, within a group, by shape. Built once for a set of rules, used every tick;
    a set that differs from a laid-out one by a few rules is laid out from it (:meth:`updated`)."""

    def __init__(self, rules: tuple[EngineRule, ...], plan: Plan) -> None:
        self.rules = rules
        self.plan = plan
        self.order = {rule.id: n for n, rule in enumerate(rules)}
        self.scan_of = {scan.key: i for i, scan in enumerate(plan.scans)}
        self.term_keys = {term.key for scan in plan.scans for term in scan.terms}
        self.stale = 0  # rules removed since the plan was built (their terms are still asked for)
        self.by_key: dict[tuple, Group] = {}
        together: dict[tuple, list[EngineRule]] = {}
        for rule in rules:
            key = (plan.rule_scans.get(rule.id, ()), rule.group_by)
            group = self.by_key.get(key)
            if group is None:
                group = self.by_key[key] = Group(key[0], rule)
            shape = shared_shape(rule)
            if shape is not None:
                together.setdefault((key, shape), []).append(rule)
            else:
                group.single.append(rule)
        self.where: dict[str, tuple[Cohort, int]] = {}
        for (key, shape), members in together.items():
            cohort = self.by_key[key].cohorts[shape] = Cohort(members)
            for i, member in enumerate(members):
                self.where[member.id] = (cohort, i)

    @property
    def groups(self):
        return self.by_key.values()

    def updated(self, rules: tuple[EngineRule, ...]) -> Layout | None:
        """The layout of ``rules`` built from this one when they differ by a few rules whose terms this plan
        already asks for (``None`` otherwise: lay them out afresh). This layout is left as it is."""
        before = {id(rule) for rule in self.rules}
        now = {id(rule) for rule in rules}
        added = [rule for rule in rules if id(rule) not in before]
        removed = [rule for rule in self.rules if id(rule) not in now]
        if len(added) + len(removed) > max(100, len(rules) // 20) or self.stale + len(removed) > len(rules) // 10:
            return None
        rule_scans = dict(self.plan.rule_scans)
        for rule in removed:
            rule_scans.pop(rule.id, None)
        for rule in added:
            used: list[int] = []
            for term in rule.terms:
                if term.key not in self.term_keys:
                    return None  # a term no query asks for yet: plan again
                index = self.scan_of[scan_key(term)]
                if index not in used:
                    used.append(index)
            rule_scans[rule.id] = tuple(used)
        layout = Layout.__new__(Layout)
        layout.rules = rules
        layout.plan = Plan(self.plan.at, self.plan.scans, rule_scans, self.plan.term_count, self.plan.queries)
        layout.order = {rule.id: n for n, rule in enumerate(rules)}
        layout.scan_of, layout.term_keys = self.scan_of, self.term_keys
        layout.stale = self.stale + len(removed)
        layout.by_key = dict(self.by_key)
        layout.where = dict(self.where)
        copied: dict[tuple, Group] = {}
        members: dict[tuple, list[EngineRule]] = {}  # the cohorts changed: (group key, shape) → members

        def group_of(key: tuple, rule: EngineRule) -> Group:
            group = copied.get(key)
            if group is None:
                old = layout.by_key.get(key)
                group = copied[key] = layout.by_key[key] = Group(key[0], rule) if old is None else old.copy()
            return group

        def cohort_of(key: tuple, shape, group: Group) -> list[EngineRule]:
            found = members.get((key, shape))
            if found is None:
                old = group.cohorts.get(shape)
                found = members[(key, shape)] = list(old.members) if old is not None else []
            return found

        for rule in removed:
            key = (self.plan.rule_scans.get(rule.id, ()), rule.group_by)
            group = group_of(key, rule)
            shape = shared_shape(rule)
            if shape is None:
                group.single = [r for r in group.single if r is not rule]
            else:
                listed = cohort_of(key, shape, group)
                listed[:] = [r for r in listed if r is not rule]
        for rule in added:
            key = (rule_scans[rule.id], rule.group_by)
            group = group_of(key, rule)
            shape = shared_shape(rule)
            if shape is None:
                group.single.append(rule)
            else:
                cohort_of(key, shape, group).append(rule)
        for (key, shape), listed in members.items():
            group = layout.by_key[key]
            old = group.cohorts.pop(shape, None)
            if old is not None:
                for member in old.members:
                    if layout.where.get(member.id, (None,))[0] is old:
                        del layout.where[member.id]
            if listed:
                cohort = group.cohorts[shape] = Cohort(listed)
                for i, member in enumerate(listed):
                    layout.where[member.id] = (cohort, i)
        for key, group in copied.items():
            remaining = group.single or [m for c in group.cohorts.values() for m in c.members[:1]]
            if not remaining:
                del layout.by_key[key]
            elif any(group.first is rule for rule in removed):
                group.first = remaining[0]
        return layout


class Layouts:
    """The layouts of the last few sets of rules (a tick's due rules repeat); a set close to the last one is
    laid out from it, which it then replaces (a layout of 100,000 rules holds tens of MB)."""

    def __init__(self, *, merge: bool = True, keep: int = 4) -> None:
        self.merge = merge  # one query for scans differing only in one tag's value (engine.plan)
        self.keep = keep
        self._layouts: dict[tuple, Layout] = {}

    def of(self, rules: Sequence[EngineRule], plan: Plan | None = None) -> Layout:
        """The layout of ``rules`` (with ``plan`` given: laid out on it, not remembered)."""
        key = tuple(rules)
        if plan is not None:
            return Layout(key, plan)
        layouts = self._layouts
        latest = next(reversed(layouts.values()), None)
        if latest is not None and latest.rules == key:  # the common case, without hashing 100,000 rules thrice
            return latest
        found = layouts.get(key)
        if found is None:
            latest = next(reversed(layouts), None)
            found = layouts[latest].updated(key) if latest is not None else None
            if found is not None:
                del layouts[latest]  # superseded (a layout of 100,000 rules holds tens of MB)
            else:
                found = Layout(key, plan_tick(key, _EPOCH, merge=self.merge))
            if len(layouts) >= self.keep:
                layouts.pop(next(iter(layouts)))
            layouts[key] = found
        else:
            layouts[key] = layouts.pop(key)  # most recently used last
        return found
