"""Alert rules of one user: validate, create, list, read, update, delete, silence.

Every query is filtered on the caller's ``owner_id``; a rule of another user is
reported exactly like a rule that does not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..schemas import (
    RuleDeleted,
    RuleDetail,
    RuleOut,
    RulePage,
    RuleSummary,
    SeriesState,
    SilenceOut,
    ValidationOut,
)
from ..store import Alert, AlertEvent, Database, NotificationChannel, Rule, RuleChannel, RuleState, Silence
from ..store.lifecycle import FIRING, StoredAlert, close_alerts
from ..store.types import utcnow
from .cursors import decode_cursor, encode_cursor
from .errors import Conflict, InvalidInput, NotFound
from .language import NO_CHANNEL_NOTE, ParsedRule, failed_tests, parse_one, test_results, validate_text
from .quotas import check_rule_quota
from .limits import MAX_QUERY, MAX_RULE_TEXT, check_length, check_name, clamp_limit
from .notifications import notifications_of

__all__ = ["RuleService", "find_rule", "is_id", "stored_rule_text"]

SERIES_SHOWN = 100


def is_id(text: str) -> bool:
    """An id as the store holds them: ASCII digits (not ``²`` or ``١٢``) within a 63-bit integer."""
    return text.isascii() and text.isdigit() and len(text) < 19


def find_rule(session: Session, owner_id: int, ref: int | str) -> Rule:
    """The caller's live rule with this id or name; ``NotFound`` otherwise (also for another user's rule)."""
    if isinstance(ref, bool):
        raise InvalidInput("rule must be a rule id (a number) or a rule name.")
    text = str(ref).strip() if isinstance(ref, (int, str)) else ""
    if not text:
        raise InvalidInput("rule is empty: give a rule id (a number) or a rule name, as list_alert_rules shows.")
    query = select(Rule).where(Rule.owner_id == owner_id, Rule.deleted_at.is_(None))
    if isinstance(ref, int) or is_id(text):
        rule = session.scalars(query.where(Rule.id == int(text))).first() if is_id(text) else None
    else:
        check_length("rule", text, 128)
        rule = session.scalars(query.where(Rule.live_name == text)).first()
    if rule is None:
        raise NotFound(f"No rule {text[:128]!r}: use list_alert_rules to see your rules and their ids.")
    return rule


def stored_rule_text(service: "RuleService", ref: int | str) -> tuple[str, str]:
    """(text, name) of the caller's stored rule ``ref``; ``NotFound`` otherwise."""
    with service.db.session() as session:
        rule = find_rule(session, service.user_id, ref)
        return rule.text, rule.name


class RuleService:
    def __init__(self, db: Database, user_id: int) -> None:
        self.db = db
        self.user_id = user_id

    # -- reading --------------------------------------------------------------------------------

    def validate(self, text: str, data_arrives_later: bool = False) -> ValidationOut:
        """Diagnostics are the answer here, not an error — except for text that cannot be a rule at all."""
        check_length("rule", text, MAX_RULE_TEXT, characters=False)  # the rule's diagnostics place them
        with self.db.session() as session:
            channels = self._channel_names(session)
        return validate_text(text, channels=channels, data_later=data_arrives_later)

    def _channel_names(self, session: Session) -> list[str]:
        return list(session.scalars(select(NotificationChannel.name).where(NotificationChannel.owner_id == self.user_id)))

    def _parse(self, text: str, data_arrives_later: bool) -> ParsedRule:
        with self.db.session() as session:
            channels = self._channel_names(session)
        return parse_one(text, channels=channels, data_later=data_arrives_later)

    def list(self, query: str | None = None, limit: int | None = None, cursor: str | None = None) -> RulePage:
        limit = clamp_limit(limit)
        stmt = select(Rule).where(Rule.owner_id == self.user_id, Rule.deleted_at.is_(None))
        if query:
            check_length("query", query, MAX_QUERY)
            needle = query.lower()  # case-insensitive alike on SQLite and MySQL
            stmt = stmt.where(
                or_(
                    func.lower(Rule.name).contains(needle, autoescape=True),
                    func.lower(Rule.canonical).contains(needle, autoescape=True),
                )
            )
        if cursor:
            name, rule_id = decode_cursor("rules", cursor, 2)
            stmt = stmt.where(or_(Rule.name > name, (Rule.name == name) & (Rule.id > rule_id)))
        with self.db.session() as session:
            rules = list(session.scalars(stmt.order_by(Rule.name, Rule.id).limit(limit + 1)))
            more = len(rules) > limit
            rules = rules[:limit]
            firing = self._firing_counts(session, [r.id for r in rules])
        summaries = [
            RuleSummary(
                id=r.id,
                name=r.name,
                enabled=r.enabled,
                version=r.version,
                canonical=r.canonical,
                firing_series=firing.get(r.id, 0),
                updated_at=r.updated_at,
            )
            for r in rules
        ]
        next_cursor = encode_cursor("rules", rules[-1].name, rules[-1].id) if more else None
        return RulePage(rules=summaries, next_cursor=next_cursor)

    def get(self, ref: int | str, run_tests: bool = False) -> RuleDetail:
        """One rule with its series; ``run_tests`` runs the test blocks stored with its text again."""
        now = utcnow()
        with self.db.session() as session:
            rule = find_rule(session, self.user_id, ref)
            states = list(
                session.scalars(
                    select(RuleState)
                    .where(RuleState.rule_id == rule.id)
                    .order_by(RuleState.series_key)
                    .limit(SERIES_SHOWN)
                )
            )
            total = session.scalar(select(func.count()).select_from(RuleState).where(RuleState.rule_id == rule.id))
            silenced_until = session.scalar(
                select(func.max(Silence.ends_at)).where(
                    Silence.rule_id == rule.id, Silence.ends_at > now, Silence.starts_at <= now
                )
            )
            base = self._out(rule, _stored_rule(rule.text))
            rule_error, rule_error_at = rule.last_error, rule.last_error_at
            sent = notifications_of(session, self.user_id, [s.alert_id for s in states if s.alert_id is not None])
            text = rule.text
        tests, not_run = test_results(text, run=run_tests)
        if not_run:
            base.notes.append(not_run)
        return RuleDetail(
            **base.model_dump(exclude={"tests"}),
            tests=[t.text() for t in tests],
            series=[
                SeriesState(
                    labels=s.labels or {},
                    state=s.state,
                    severity=s.severity,
                    since=s.since,
                    last_evaluated_at=s.last_evaluated_at,
                    last_values=s.last_values,
                    flapping_since=_flapping_since(s.machine),
                    notifications=sent.get(s.alert_id, []) if s.alert_id is not None else [],
                )
                for s in states
            ],
            series_total=total or 0,
            silenced_until=silenced_until,
            error=rule_error,
            error_at=rule_error_at,
        )

    # -- writing --------------------------------------------------------------------------------

    def create(self, text: str, name: str | None = None, dry_run: bool = False,
               data_arrives_later: bool = False) -> RuleOut:
        parsed = self._parse(text, data_arrives_later)
        final_name = self._resolve_name(parsed, name)
        tests, not_run = self._tests(text)
        with self.db.session() as session:
            self._check_name_free(session, final_name)
            check_rule_quota(session, self.user_id)
            rule = Rule(
                owner_id=self.user_id,
                name=final_name,
                live_name=final_name,
                text=text,
                canonical=parsed.canonical,
                enabled=True,
                version=1,
                every_seconds=parsed.every_seconds,
            )
            warnings = self._warnings(parsed) + self._dependency_warnings(session, final_name, text, None)
            if dry_run:
                return RuleOut(
                    id=None,
                    name=final_name,
                    enabled=True,
                    version=1,
                    text=text,
                    canonical=parsed.canonical,
                    notify=list(parsed.notify),
                    stored=False,
                    tests=[t.text() for t in tests],
                    warnings=warnings,
                    notes=_notes(parsed, not_run),
                )
            now = utcnow()
            rule.created_at = rule.updated_at = now
            session.add(rule)
            self._flush_unique(session, final_name)
            _set_channels(session, rule, parsed.notify)
            return self._out(rule, parsed, warnings, _notes(parsed, not_run), tests)

    def update(self, ref: int | str, text: str | None = None, enabled: bool | None = None, rename: bool = False,
               data_arrives_later: bool = False) -> RuleOut:
        if text is None and enabled is None:
            raise InvalidInput("Nothing to change: give text (the new rule) and/or enabled (true or false).",
                               hint="pass text with the whole new rule, or enabled=false to pause it")
        parsed = self._parse(text, data_arrives_later) if text is not None else None
        tests, not_run = self._tests(text) if text is not None else ([], None)
        with self.db.session() as session:
            rule = find_rule(session, self.user_id, ref)
            warnings: list[str] = []
            if parsed is not None and text is not None:
                if _evaluation_of(text) != _evaluation_of(rule.text):
                    _close_episodes(session, rule, "rule changed")
                if parsed.name is not None and parsed.name != rule.name:
                    if not rename:
                        raise InvalidInput(
                            f"The text names the rule {parsed.name!r}, but you are updating {rule.name!r}.",
                            code="rename_not_requested",
                            hint=f"write `rule {rule.name} {{ … }}` to keep its name, or pass rename=true to "
                                 f"rename it to {parsed.name!r}")
                    self._check_name_free(session, parsed.name)
                    rule.name = rule.live_name = parsed.name
                warnings = self._warnings(parsed) + self._dependency_warnings(
                    session, parsed.name or rule.name, text, rule.id)
                rule.text = text
                rule.canonical = parsed.canonical
                rule.every_seconds = parsed.every_seconds
                _set_channels(session, rule, parsed.notify)
            if enabled is not None:
                if rule.enabled and not enabled:
                    _close_episodes(session, rule, "rule disabled")
                rule.enabled = enabled
            rule.version += 1
            rule.updated_at = utcnow()
            self._flush_unique(session, rule.name)
            return self._out(rule, parsed or _stored_rule(rule.text), warnings, _notes(parsed, not_run), tests)

    def delete(self, ref: int | str) -> RuleDeleted:
        with self.db.session() as session:
            rule = find_rule(session, self.user_id, ref)
            _close_episodes(session, rule, "rule deleted")
            rule.deleted_at = utcnow()
            _set_channels(session, rule, ())
            rule.live_name = None
            rule.enabled = False
            rule.version += 1
            return RuleDeleted(
                deleted=True,
                id=rule.id,
                name=rule.name,
                note="The rule no longer runs; its alert history stays visible in list_alerts.",
            )

    def silence(self, ref: int | str, duration: str | None = None, until: str | None = None,
                comment: str | None = None, start: str | None = None) -> SilenceOut:
        """See ``SilenceService.add``."""
        from .silences import SilenceService

        return SilenceService(self.db, self.user_id).add(ref, duration, until, comment, start)

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _resolve_name(parsed: ParsedRule, name: str | None) -> str:
        if name is not None:
            name = check_name("name", name)
        if parsed.name and name and parsed.name != name:
            raise InvalidInput(
                f"The rule text names the rule {parsed.name!r} but name is {name!r}: "
                "leave name out, or make the two the same."
            )
        final = parsed.name or name
        if not final:
            raise InvalidInput(
                "This rule has no name: pass name (for example btc_above_70k), "
                "or write the rule as rule NAME { when ... }."
            )
        return check_name("name", final)

    def _check_name_free(self, session: Session, name: str) -> None:
        taken = session.scalar(
            select(Rule.id).where(Rule.owner_id == self.user_id, Rule.live_name == name)
        )
        if taken is not None:
            raise Conflict(
                f"You already have a rule named {name!r} (id {taken}): choose another name, "
                "or change that rule with update_alert_rule."
            )

    @staticmethod
    def _flush_unique(session: Session, name: str) -> None:
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"You already have a rule named {name!r}: choose another name.") from None

    def _dependency_warnings(self, session: Session, name: str, text: str, rule_id: int | None) -> list[str]:
        """``depends on`` against the owner's stored rules: a cycle through this rule is an error naming it
        (``a → b → a``); a rule that does not exist is a warning (it holds nothing until it does)."""
        dependency = _dependency_of(text)
        if dependency is None:
            return []
        target, span = dependency
        where = f"line {span.line}, column {span.column}: " if span is not None and span.line else ""
        graph = self._dependencies(session, rule_id)
        graph[name] = target
        chain = [name]
        current = target
        while current is not None and current in graph and current not in chain:
            chain.append(current)
            current = graph[current]
        if current == name:
            cycle = " → ".join([*chain, name])
            raise InvalidInput(
                f"{where}depends on `{target}` makes a cycle: {cycle}; a rule cannot wait for itself.",
                code="dependency_cycle", cycle=[*chain, name],
                hint=f"remove or change one `depends on` of the cycle ({', '.join(chain)})")
        missing = [rule for rule in [target] if rule not in graph]
        if missing:
            return [f"{where}depends on `{target}`: you have no rule named {target!r}, so this holds nothing "
                    "until you create it"]
        return []

    def _dependencies(self, session: Session, skip: int | None) -> dict[str, str | None]:
        """The owner's live rules (but ``skip``): name → the rule its ``depends on`` names, or None."""
        rows = session.execute(select(Rule.id, Rule.name, Rule.text)
                               .where(Rule.owner_id == self.user_id, Rule.deleted_at.is_(None)))
        graph: dict[str, str | None] = {}
        for rule_id, name, text in rows:
            if rule_id == skip:
                continue
            dependency = _dependency_of(text) if "depend" in text.lower() else None
            graph[name] = dependency[0] if dependency is not None else None
        return graph

    @staticmethod
    def _tests(text: str):
        """The text's tests, run; a failing one refuses the rule (``InvalidRule`` listing the failures)."""
        tests, not_run = test_results(text)
        refusal = failed_tests(tests)
        if refusal is not None:
            raise refusal
        return tests, not_run

    @staticmethod
    def _warnings(parsed: ParsedRule) -> list[str]:
        return [f"line {d.line}, column {d.column}: {d.message}" + (f" ({d.hint})" if d.hint else "")
                for d in parsed.warnings]

    def _firing_counts(self, session: Session, rule_ids: list[int]) -> dict[int, int]:
        if not rule_ids:
            return {}
        rows = session.execute(
            select(Alert.rule_id, func.count())
            .where(Alert.rule_id.in_(rule_ids), Alert.state == "firing")
            .group_by(Alert.rule_id)
        )
        return {rule_id: count for rule_id, count in rows}

    @staticmethod
    def _out(rule: Rule, parsed: ParsedRule | None, warnings: list[str] | None = None,
             notes: list[str] | None = None, tests=None) -> RuleOut:
        return RuleOut(
            id=rule.id,
            name=rule.name,
            enabled=rule.enabled,
            version=rule.version,
            text=rule.text,
            canonical=rule.canonical,
            notify=list(parsed.notify) if parsed else [],
            created_at=rule.created_at,
            updated_at=rule.updated_at,
            tests=[t.text() for t in tests or ()],
            warnings=warnings or [],
            notes=notes or [],
        )


def _set_channels(session: Session, rule: Rule, names: tuple[str, ...] | list[str]) -> None:
    """Keep ``rule_channels`` equal to the rule's ``notify`` clause (empty for a deleted rule)."""
    session.execute(RuleChannel.__table__.delete().where(RuleChannel.rule_id == rule.id))
    for name in dict.fromkeys(names):
        session.add(RuleChannel(rule_id=rule.id, owner_id=rule.owner_id, channel_name=name))
    session.flush()


def _dependency_of(text: str):  # noqa: ANN202
    """(the rule a rule's ``depends on`` names, the clause's span), or None (also for text that does not
    parse any more)."""
    import monitors_dsl

    try:
        rules = monitors_dsl.parse(text)
    except (ValueError, TypeError):
        return None
    dependency = getattr(rules[0], "depends_on", None) if len(rules) == 1 else None
    if dependency is None or not getattr(dependency, "rule", None):
        return None
    spans = getattr(rules[0], "clause_spans", None) or {}
    return dependency.rule, spans.get("depends on") or getattr(dependency, "span", None)


def _flapping_since(machine: dict | None) -> datetime | None:
    """When a series held back by flap detection started flapping (its oldest recent change for a state
    written before that was recorded); None when it is not flapping."""
    if not isinstance(machine, dict) or not machine.get("flapping"):
        return None
    text = machine.get("flapping_since") or next(iter(machine.get("changes") or ()), None)
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _notes(parsed: ParsedRule | None, not_run: str | None = None) -> list[str]:
    """What the caller should know about a stored rule beyond its diagnostics (``not_run``: why its tests
    were not run)."""
    if parsed is None:
        return []
    notes = [parsed.names_note] if parsed.names_note else []
    if not_run:
        notes.append(not_run)
    if not parsed.notify:
        notes.append(NO_CHANNEL_NOTE)
    return notes


def _stored_rule(text: str) -> ParsedRule | None:
    """A stored rule parsed again, or None if the language no longer accepts it."""
    try:
        return parse_one(text)
    except InvalidInput:
        return None


def _evaluation_of(text: str) -> tuple:
    """What decides a rule's alerts (conditions, grouping, timing); templates, channels and labels do not."""
    import monitors_dsl

    try:
        (rule,) = monitors_dsl.parse(text)
    except (ValueError, TypeError):
        return (text,)
    return (rule.when, rule.critical_when, rule.warning_when, rule.info_when, rule.resolve_when, rule.group_by,
            rule.for_, rule.keep_firing_for, rule.on_no_data, rule.severity)


def _close_episodes(session: Session, rule: Rule, reason: str) -> None:
    """Closes the rule's open alerts (without notifying) and forgets its series state, so that a rule
    that is disabled, deleted or given a new condition starts afresh rather than staying firing."""
    firing = session.execute(select(Alert.id, Alert.severity).where(Alert.rule_id == rule.id, Alert.state == FIRING))
    events = close_alerts([StoredAlert(id_, severity, FIRING, False) for id_, severity in firing], utcnow(), reason)
    if events:
        session.execute(update(Alert), [{"id": event.alert.id, **event.alert.changes} for event in events])
        session.add_all([AlertEvent(**event.row()) for event in events])
    session.execute(delete(RuleState).where(RuleState.rule_id == rule.id))
