"""``depends on RULE [on TAG, …]``: which rules have firing series at a tick, so that their dependents'
notifications are held while they fire.

:func:`firing_index` is asked by the runner once per tick, and only when a rule with ``depends on`` has
something to record; it gives a :class:`FiringIndex`, which the repository consults for each notification
of such a rule (``FiringIndex.holder``). A dependency's firing series at the tick are:

1. its open (firing) alerts as the store has them (``Repository.firing_labels``): so a dependency that is
   not due at this tick, or that another replica evaluates (its lease is not this runner's), counts as it
   was last recorded;
2. overlaid with what this tick decided for it, when this runner evaluated it at the same tick: every rule
   of a tick is decided before any is recorded, so a dependency that starts firing (or resolves) at the
   tick holds (or stops holding) its dependents' notifications at that same tick, whatever the order the
   rules are listed in.

A series matches when its alert labels (group tags, then the ``labels`` clause) have each listed tag, with
the value the dependent series' alert labels have for it (a tag either lacks matches nothing); with no tags
listed any firing series of the dependency holds every series of the dependent. Names are the owner's: a dependency names a rule of the
same owner (``owner_id``; rules read from text have none, and name each other).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from .repository.lifecycle import alert_labels
from .rules import EngineRule
from .state import FIRING

__all__ = ["FiringIndex", "firing_index"]


class FiringIndex:
    """The firing series of the rules that others depend on, at one tick: ``(owner id, rule name)`` →
    ``{series key: alert labels}``."""

    __slots__ = ("_firing", "_values")

    def __init__(self, firing: Mapping[tuple[int | None, str], Mapping[str, Mapping[str, str]]]) -> None:
        self._firing = {key: dict(series) for key, series in firing.items()}
        self._values: dict[tuple, frozenset] = {}  # (owner, name, tags) → the tags' value tuples firing

    def firing(self, owner_id: int | None, name: str) -> dict[str, Mapping[str, str]]:
        """The firing series of the owner's rule ``name``: series key → alert labels (empty: none)."""
        return dict(self._firing.get((owner_id, name), {}))

    def labels(self, rule: EngineRule) -> list[Mapping[str, str]]:
        """The alert labels of the firing series of ``rule``'s dependency (none without one)."""
        dependency = rule.depends_on
        if dependency is None:
            return []
        return list(self._firing.get((rule.owner_id, dependency.rule), {}).values())

    def holder(self, rule: EngineRule, labels: Mapping[str, str]) -> str | None:
        """The name of the rule holding the notifications of ``rule``'s series with alert labels ``labels``
        at this tick (``rule``'s dependency, firing with equal values of the listed tags), else ``None``."""
        dependency = rule.depends_on
        if dependency is None:
            return None
        key = (rule.owner_id, dependency.rule)
        firing = self._firing.get(key)
        if not firing:
            return None
        tags = tuple(dependency.tags)
        if not tags:
            return dependency.rule
        if any(tag not in labels for tag in tags):
            return None
        values = self._values.get(key + (tags,))
        if values is None:
            values = self._values[key + (tags,)] = frozenset(
                tuple(series[tag] for tag in tags) for series in firing.values() if all(t in series for t in tags))
        return dependency.rule if tuple(labels[tag] for tag in tags) in values else None

    def __bool__(self) -> bool:
        return any(self._firing.values())

    def __repr__(self) -> str:
        return f"FiringIndex({ {f'{o}/{n}': len(s) for (o, n), s in self._firing.items()} })"


def firing_index(repository, dependents: Iterable[EngineRule], decided: Sequence[tuple]) -> FiringIndex:
    """The firing series of the dependencies of ``dependents`` (see the module docstring): stored, then
    overlaid with ``decided`` — the tick's ``(rule, updates, …)`` entries of the rules with something to
    record (a rule whose series changed nothing keeps what is stored)."""
    wanted: dict[int | None, set[str]] = {}
    for rule in dependents:
        dependency = rule.depends_on
        if dependency is not None:
            wanted.setdefault(rule.owner_id, set()).add(dependency.rule)
    firing: dict[tuple[int | None, str], dict[str, Mapping[str, str]]] = {}
    stored_of = getattr(repository, "firing_labels", None)
    for owner_id, names in wanted.items():
        stored = stored_of(owner_id, sorted(names)) if stored_of is not None else {}
        for name in names:
            firing[(owner_id, name)] = dict(stored.get(name, {}))
    for entry in decided:
        rule, updates = entry[0], entry[1]
        series = firing.get((rule.owner_id, rule.name)) if rule.name is not None else None
        if series is None:
            continue
        unlabelled = [u.series_key for u in updates
                      if u.step.state.state == FIRING and u.labels is None and u.series_key not in series]
        # a series that starts firing without a row this tick (no data alerting): its stored group tags
        labels_of = getattr(repository, "series_labels", None)
        known = labels_of(rule, unlabelled) if unlabelled and labels_of is not None else {}
        for update in updates:
            key = update.series_key
            if update.step.state.state == FIRING:
                if update.labels is not None:
                    series[key] = alert_labels(rule, update.labels)
                elif key not in series:
                    series[key] = alert_labels(rule, known.get(key) or {})
            else:
                series.pop(key, None)
    return FiringIndex(firing)
