"""The rules the engine runs: :class:`EngineRule`, built from a store row or from text.

An ``EngineRule`` is everything one evaluation needs, worked out once: the
compiled rule (terms, predicate), the state-machine :class:`Clauses`, the
channels to notify, ``every``, the ``labels`` clause, the templates, and
which term gives the template's ``value`` (the first aggregate of the firing
condition, in source order).

:class:`RuleBuilder` turns store rows into engine rules and caches them by
``(id, version)``: a rule is compiled again only when it changes. A rule that
no longer compiles is logged and skipped; it never stops a tick.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Protocol, Sequence

import monitors_dsl
from monitors_dsl import ast as a
from monitors_dsl._api import analyze
from monitors_dsl.compiled import Compiled
from monitors_dsl.sql import Term, watch_terms
from monitors_dsl.shapes import BoundRule, Shape, Split, compile_shape, split_canonical

from .rows import vacant_row
from .state import Clauses, FlapDetection

__all__ = ["EngineRule", "RuleBuilder", "RuleSet", "AllRules", "StoreRules", "build_rule", "rule_from_text", "rules_from_text"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False, slots=True)
class EngineRule:
    """One rule, ready to evaluate. ``id`` is a string (the store's id, or a name for text rules)."""

    id: str
    name: str | None
    compiled: Compiled
    clauses: Clauses
    owner_id: int | None = None
    version: int = 1
    channels: tuple[str, ...] = ()
    every: int = 60
    labels: Mapping[str, str] = field(default_factory=dict)
    title: str | None = None
    message: str | None = None
    description: str | None = None
    condition: str = ""
    value_column: str | None = None
    #: terms queried only for the series they list (``monitors_dsl.sql.watch_terms``); the predicate reads none
    watch: tuple[Term, ...] = ()
    #: ``active during``: outside this window (a ``monitors_dsl.TimeWindow``) every firing condition is false
    active_during: Any = None
    #: ``mute during``: notifications falling inside this window are recorded as muted, not sent
    mute_during: Any = None
    #: one ``Route`` (channels, severities) per ``notify`` clause, in order; ``channels`` is their union
    routes: tuple = ()
    #: ``escalate to … after``: an ``Escalation`` (channels, after), or ``None``
    escalation: Any = None
    #: ``depends on``: a ``Dependency`` (rule name, tags), or ``None``
    depends_on: Any = None
    #: the store's integer id, when the rule comes from the store (``None`` otherwise); worked out from ``id``
    store_id: int | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "store_id", int(self.id) if self.id.isdigit() else None)

    @property
    def terms(self) -> tuple[Term, ...]:
        """Every term the rule's queries compute: the condition's, then the watched series' (if any)."""
        watch = self.watch
        return self.compiled.terms + watch if watch else self.compiled.terms

    @property
    def value_terms(self) -> tuple[Term, ...]:
        """The terms of the rule's conditions: what an alert's ``values`` show."""
        return self.compiled.terms

    @property
    def group_by(self) -> tuple[str, ...]:
        return self.compiled.group_by

    def __repr__(self) -> str:
        return f"<EngineRule {self.id} {self.name or self.condition!r} v{self.version}>"


def _watch(compiled: Compiled, on_no_data: str) -> tuple[Term, ...]:
    """The watch terms of a grouped rule that must decide series without points in its windows: with
    ``on no data alert``, or when its condition holds on a series with no data at all (``x > 1 or 2 > 1``)."""
    if not compiled.group_by:
        return ()
    decision = compiled.decide(vacant_row(compiled.terms, True))
    if decision.result is True or (decision.result is None and on_no_data == "alert"):
        return watch_terms(compiled.terms, compiled.group_by)
    return ()


def _routing(rule: a.Rule) -> tuple:
    """``(active_during, mute_during, routes, escalation, depends_on)`` of a rule (section 10 clauses)."""
    return (getattr(rule, "active_during", None), getattr(rule, "mute_during", None),
            tuple(getattr(rule, "routes", ()) or ()), getattr(rule, "escalate", None),
            getattr(rule, "depends_on", None))


def build_rule(compiled: Compiled, *, id: str, name: str | None = None, owner_id: int | None = None,
               version: int = 1, flap: FlapDetection | None = None, watch: bool = True) -> EngineRule:
    """An :class:`EngineRule` from a compiled rule; ``name`` overrides the rule's own. ``watch=False``
    leaves out the watch terms (and so the predicate, which deciding them needs)."""
    rule = compiled.rule
    active_during, mute_during, routes, escalation, depends_on = _routing(rule)
    return EngineRule(
        id=str(id),
        name=name if name is not None else rule.name,
        compiled=compiled,
        clauses=Clauses.from_rule(rule, flap=flap),
        owner_id=owner_id,
        version=version,
        channels=tuple(rule.notify),
        every=max(1, rule.every.seconds),
        labels=dict(rule.labels),
        title=rule.title,
        message=rule.message,
        description=rule.description,
        condition=compiled.condition_text,
        value_column=compiled.value_column,
        watch=_watch(compiled, rule.on_no_data) if watch else (),
        active_during=active_during,
        mute_during=mute_during,
        routes=routes,
        escalation=escalation,
        depends_on=depends_on,
    )


def rules_from_text(text: str, *, flap: FlapDetection | None = None) -> list[EngineRule]:
    """Every rule of a rule document (raises ``monitors_dsl.DslError`` when it has errors).

    Ids are the rule names, or ``#1``, ``#2`` … for unnamed rules.
    """
    out = []
    for index, rule in enumerate(monitors_dsl.parse(text), start=1):
        compiled = monitors_dsl.compile_rule(rule)
        out.append(build_rule(compiled, id=rule.name or f"#{index}", flap=flap))
    return out


def rule_from_text(text: str, *, id: str | None = None, name: str | None = None,
                   flap: FlapDetection | None = None) -> EngineRule:
    """One rule from text (raises ``monitors_dsl.DslError`` when it has errors)."""
    compiled = monitors_dsl.compile_rule(text)
    return build_rule(compiled, id=id or name or compiled.name or "#1", name=name, flap=flap)


class _Meta:
    """The clauses of a rule other than its conditions, shared by every rule written with the same ones."""

    __slots__ = ("channels", "every", "labels", "title", "message", "description", "for_", "keep_firing_for",
                 "on_no_data", "severity", "repeat_every", "active_during", "mute_during", "routes", "escalation",
                 "depends_on")

    def __init__(self, rule: a.Rule) -> None:
        self.channels = tuple(rule.notify)
        self.every = max(1, rule.every.seconds)
        self.labels = dict(rule.labels)
        self.title, self.message, self.description = rule.title, rule.message, rule.description
        self.for_ = rule.for_.seconds
        self.keep_firing_for = rule.keep_firing_for.seconds
        self.on_no_data = rule.on_no_data
        self.severity = rule.severity
        self.repeat_every = rule.repeat_every.seconds if rule.repeat_every is not None else None
        self.active_during, self.mute_during, self.routes, self.escalation, self.depends_on = _routing(rule)


_UNSHARED = object()  # a skeleton or meta whose rules are compiled one by one


class RuleBuilder:
    """Store rows → engine rules, compiled once per ``(id, version)``, and once per *shape*.

    Rules whose canonical texts differ only in the numbers compared with
    (``last(crypto.price{symbol="BTC"}) > 70000`` and ``… > 65000``) share one
    :class:`monitors_dsl.shapes.Shape` (terms and one generated predicate with
    the numbers as parameters), and rules with the same other clauses share
    their channels, labels, templates and :class:`Clauses`. The first rule of
    a shape or of a set of clauses is parsed and checked in full; the others
    cost a regular-expression pass over their text. Identical texts share
    one compiled rule.
    """

    def __init__(self, flap: FlapDetection | None = None) -> None:
        self.flap = flap
        self._cache: dict[tuple[int, int], EngineRule | None] = {}
        self.failed: dict[int, str] = {}  # rule id → why it did not compile
        self._shapes: dict[str, list] = {}  # skeleton → shapes (one per set of fixed numbers), or _UNSHARED
        self._metas: dict[str, object] = {}  # meta text → _Meta, or _UNSHARED
        self._clauses: dict[tuple, Clauses] = {}
        self.full_compiles = 0

    def unknown(self, keys: Iterable[tuple[int, int]]) -> list[int]:
        """The ids among ``(id, version)`` keys of the rules not built yet at that version."""
        cache = self._cache
        return [key[0] for key in keys if key not in cache]

    def build_keys(self, keys: list[tuple[int, int]], rows: Mapping[int, Any]) -> list[EngineRule]:
        """The rules of ``(id, version)`` keys, in their order: built ones from the cache, the others from
        ``rows`` (store rows by id). Built versions no longer live are dropped now and then."""
        cache = self._cache
        out = []
        for key in keys:
            rule = cache.get(key, _UNSHARED)
            if rule is _UNSHARED:
                row = rows.get(key[0])
                if row is None:
                    continue  # changed again since its key was read: the next reload builds it
                rule = self.build(row)
            if rule is not None:
                out.append(rule)
        if len(cache) > len(keys) + max(1000, len(keys) // 20):
            live = set(keys)
            for key in [k for k in cache if k not in live]:
                del cache[key]
        return out

    def build(self, row: Any) -> EngineRule | None:
        """The engine rule for a ``monitors_mcp.store.Rule`` row (or any object with its columns)."""
        key = (int(row.id), int(row.version))
        if key in self._cache:
            return self._cache[key]
        try:
            rule = self._shared(row)
            if rule is None:
                compiled = monitors_dsl.compile_rule(row.canonical)
                self.full_compiles += 1
                rule = build_rule(compiled, id=str(row.id), name=row.name, owner_id=row.owner_id,
                                  version=row.version, flap=self.flap)
            self.failed.pop(key[0], None)
        except Exception as error:  # a stored rule the language no longer accepts: skip it, keep running
            reason = " ".join(str(error).split())[:500]
            log.warning("rule %s (version %s) does not compile and is skipped: %s", row.id, row.version, reason)
            self.failed[key[0]] = reason
            rule = None
        self._cache[key] = rule
        return rule

    # -- shapes ------------------------------------------------------------------------

    def _shared(self, row: Any) -> EngineRule | None:
        """The rule built from a known shape and known clauses; ``None`` to compile it on its own."""
        canonical = row.canonical
        split = split_canonical(canonical)
        if split is None:
            return None
        shape = self._find_shape(split)
        meta = self._metas.get(split.meta)
        if shape is _UNSHARED or meta is _UNSHARED:
            return None
        if shape is None or meta is None:
            if not self._learn(canonical, split, shape, meta):
                return None
            shape = self._find_shape(split)
            meta = self._metas.get(split.meta)
            if shape is None or shape is _UNSHARED or meta is _UNSHARED:
                return None
        return self._assemble(row, canonical, split, shape, meta)

    def _find_shape(self, split: Split):
        found = self._shapes.get((split.skeleton, split.severity))
        if found is None or found is _UNSHARED:
            return found
        for shape in found:
            if shape.matches(split):
                return shape
        return None

    def _learn(self, canonical: str, split: Split, shape, meta) -> bool:
        """Compile one rule in full and remember its shape and clauses (checked against the plain build)."""
        compiled = _checked(canonical)  # raises for a rule that does not compile
        self.full_compiles += 1
        parsed = compiled.rule
        key = (split.skeleton, split.severity)
        if shape is None:
            try:
                shape = compile_shape(parsed, canonical, split)
            except Exception:  # not a form this handles: compile its rules one by one
                log.debug("no shared shape for %r", canonical, exc_info=True)
                self._shapes[key] = _UNSHARED
                return False
        if meta is None:
            meta = _Meta(parsed)
        reference = build_rule(compiled, id="0", flap=self.flap, watch=False)
        candidate = self._assemble(None, canonical, split, shape, meta)
        if candidate is None or not _same(reference, candidate, compiled):
            log.debug("shape of %r does not reproduce the rule; compiled one by one", canonical)
            self._shapes[key] = _UNSHARED
            return False
        found = self._shapes.setdefault(key, [])
        if shape not in found:
            found.append(shape)
        self._metas.setdefault(split.meta, meta)
        return True

    def _assemble(self, row: Any, canonical: str, split: Split, shape: Shape, meta: _Meta) -> EngineRule | None:
        params = shape.values(split)
        if params is None:
            return None
        no_data_severity = shape.severities[0] if shape.severities else meta.severity
        clause_key = (meta.for_, meta.keep_firing_for, shape.has_resolve, meta.on_no_data, no_data_severity,
                      meta.repeat_every)
        clauses = self._clauses.get(clause_key)
        if clauses is None:
            clauses = self._clauses[clause_key] = Clauses(
                for_=meta.for_, keep_firing_for=meta.keep_firing_for, has_resolve=shape.has_resolve,
                on_no_data=meta.on_no_data, no_data_severity=no_data_severity, repeat_every=meta.repeat_every,
                flap=self.flap)
        if row is None:
            id_, name, owner_id, version = "0", None, None, 1
        else:
            id_, name, owner_id, version = str(row.id), row.name, row.owner_id, row.version
        bound = BoundRule(shape, params, canonical, name, shape.condition_text(split))
        return EngineRule(
            id=id_, name=name, compiled=bound, clauses=clauses,
            owner_id=owner_id, version=version, channels=meta.channels, every=meta.every, labels=meta.labels,
            title=meta.title, message=meta.message, description=meta.description,
            condition=bound.condition_text, value_column=shape.value_column,
            watch=_watch(bound, meta.on_no_data) if shape.group_by else (),
            active_during=meta.active_during, mute_during=meta.mute_during, routes=meta.routes,
            escalation=meta.escalation, depends_on=meta.depends_on)

    def build_all(self, rows: Iterable[Any]) -> list[EngineRule]:
        """The rules of store rows, in their order (see :meth:`build_keys`)."""
        rows = list(rows)
        return self.build_keys([(int(r.id), int(r.version)) for r in rows], {int(r.id): r for r in rows})


def _checked(canonical: str) -> monitors_dsl.CompiledRule:
    """The rule of ``canonical`` parsed and checked as ``compile_rule`` does (which raises when it does not
    compile, and is what a text with errors or not one rule gets, for the same error); its predicate is
    generated only if asked for (the shape generates its own)."""
    rules, diagnostics = analyze(canonical)
    if any(d.severity == "error" for d in diagnostics) or len(rules) != 1:
        return monitors_dsl.compile_rule(canonical)
    return monitors_dsl.CompiledRule(rules[0])


def _same(reference: EngineRule, candidate: EngineRule, compiled: monitors_dsl.CompiledRule) -> bool:
    """Whether a rule built from shape and clauses is the rule compiled on its own."""
    fields = ("clauses", "channels", "every", "labels", "title", "message", "description", "condition",
              "value_column", "active_during", "mute_during", "routes", "escalation", "depends_on")
    if any(getattr(reference, f) != getattr(candidate, f) for f in fields):
        return False
    if [t.key for t in reference.value_terms] != [t.key for t in candidate.value_terms]:
        return False
    if [t.text for t in reference.value_terms] != [t.text for t in candidate.value_terms]:
        return False
    return tuple(reference.group_by) == tuple(candidate.group_by)


class RuleSet(Protocol):
    """Where the runner gets its rules.

    ``current()`` is called before every tick and must be cheap. A rule set
    that holds only some of the rules (``engine.leases.LeasedRules``, shared
    between replicas) also says which of the due rules this tick may evaluate
    (``begin_tick``) and whether a result may still be recorded (``holds``);
    one that holds every rule (:class:`AllRules`) lets every rule through.
    """

    def current(self) -> Sequence[EngineRule]: ...

    @property
    def reloads(self) -> int:
        """Changes each time ``current()`` gives a new set of rules."""

    def begin_tick(self, due: Sequence[EngineRule], at: datetime) -> Sequence[EngineRule]: ...

    def holds(self, rule: EngineRule) -> bool: ...


class AllRules:
    """The part of :class:`RuleSet` for a rule set that holds every rule it lists."""

    #: how many times the rules were read again (a rule set that never changes: 0)
    reloads = 0

    def begin_tick(self, due: Sequence[EngineRule], at: datetime) -> Sequence[EngineRule]:
        return due

    def holds(self, rule: EngineRule) -> bool:
        return True


class StoreRules(AllRules):
    """The enabled, live rules of the store, reloaded only when something changed.

    ``current()`` first reads a fingerprint of the rules table — count, newest
    ``updated_at``, sum of versions, largest id — which every create, update,
    enable, disable and delete changes (each bumps ``version``); only when it
    differs are the rules read again, and only changed rules are compiled
    again. So rule changes are picked up by the next tick, without a restart.
    """

    def __init__(self, db, builder: RuleBuilder | None = None) -> None:
        self.db = db
        self.builder = builder or RuleBuilder()
        self._fingerprint: tuple | None = None
        self._rules: list[EngineRule] = []
        self.reloads = 0

    def fingerprint(self) -> tuple:
        from sqlalchemy import func, select

        from monitors_mcp.store import Rule, User

        with self.db.session() as session:
            row = session.execute(select(func.count(Rule.id), func.max(Rule.updated_at), func.sum(Rule.version),
                                         func.max(Rule.id))).one()
            # disabling or enabling a user changes which rules run without touching the rules
            users = session.execute(select(func.count(User.id), func.sum(User.id), func.max(User.disabled_at))
                                    .where(User.disabled_at.is_not(None))).one()
        return tuple(row) + tuple(users)

    def current(self) -> list[EngineRule]:
        from sqlalchemy import select

        from monitors_mcp.store import Rule, User

        fingerprint = self.fingerprint()
        if fingerprint == self._fingerprint:
            return self._rules
        with self.db.session() as session:
            # every live rule of an enabled user: id and version, then the texts of those not built yet only
            keys = [(int(rule_id), int(version)) for rule_id, version in session.execute(
                select(Rule.id, Rule.version).join(User, User.id == Rule.owner_id)
                .where(Rule.enabled.is_(True), Rule.deleted_at.is_(None), User.disabled_at.is_(None))
                .order_by(Rule.id))]
            wanted = self.builder.unknown(keys)
            texts = {}
            for start in range(0, len(wanted), 500):
                texts.update((row.id, row) for row in session.execute(
                    select(Rule.id, Rule.owner_id, Rule.name, Rule.version, Rule.canonical)
                    .where(Rule.id.in_(wanted[start:start + 500]))))
        self._rules = self.builder.build_keys(keys, texts)
        self._fingerprint = fingerprint
        self.reloads += 1
        log.info("loaded %d rules (%d read, %d do not compile)", len(self._rules), len(texts),
                 len(keys) - len(self._rules))
        return self._rules
