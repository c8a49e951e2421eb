"""SQLAlchemy models of the rule and alert store.

The schema itself is created only by the Alembic migrations in
``monitors_mcp/store/migrations``; these classes describe it for the ORM and
must stay in step with the latest migration (a test compares the two).

Ownership: every user-visible row (rule, alert, silence, channel) carries
``owner_id`` so that per-user queries are one indexed lookup and never a join.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .types import JsonValue, UTCDateTime, utcnow

__all__ = [
    "Alert",
    "AlertEvent",
    "ApiToken",
    "Base",
    "EngineLease",
    "EngineReplica",
    "NotificationChannel",
    "NotificationGroup",
    "NotificationLog",
    "NotificationOutbox",
    "Rule",
    "RuleChannel",
    "RuleState",
    "Silence",
    "User",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME_LENGTH = 128
LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A person. ``disabled_at`` set: their tokens are refused and their rules not evaluated.
    ``issuer``/``subject``: a user created on first sight of an external authorization
    server's token (the token's ``iss`` and the configured claim's value)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    issuer: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(255))


class ApiToken(Base):
    """A bearer token for the HTTP transport; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Rule(Base):
    """An alert rule as the user wrote it, plus its canonical form.

    Deleting a rule sets ``deleted_at`` and clears ``live_name`` (the column the
    per-owner uniqueness is on), so the name can be reused while the old rule's
    alert history stays readable.
    """

    __tablename__ = "rules"
    __table_args__ = (
        UniqueConstraint("owner_id", "live_name"),
        Index("ix_rules_owner_id_deleted_at_name", "owner_id", "deleted_at", "name"),
        Index("ix_rules_enabled_deleted_at", "enabled", "deleted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    live_name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    text: Mapped[str] = mapped_column(LONG_TEXT)
    canonical: Mapped[str] = mapped_column(LONG_TEXT)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    every_seconds: Mapped[int] = mapped_column(Integer, default=60)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RuleChannel(Base):
    """A channel name in a live rule's ``notify`` clause (kept with the rule's text)."""

    __tablename__ = "rule_channels"
    __table_args__ = (
        UniqueConstraint("rule_id", "channel_name"),
        Index("ix_rule_channels_owner_id_channel_name", "owner_id", "channel_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel_name: Mapped[str] = mapped_column(String(NAME_LENGTH))


class RuleState(Base):
    """The engine's memory of one series of one rule between evaluations."""

    __tablename__ = "rule_states"
    __table_args__ = (UniqueConstraint("rule_id", "series_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    series_key: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(JsonValue, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="inactive")
    severity: Mapped[str | None] = mapped_column(String(16))
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_values: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    keep_firing_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    machine: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    last_error: Mapped[str | None] = mapped_column(Text)


class Alert(Base):
    """One firing episode of one series: opened on firing, closed on resolution."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_owner_id_started_at_id", "owner_id", "started_at", "id"),
        Index("ix_alerts_owner_id_state_started_at_id", "owner_id", "state", "started_at", "id"),
        Index("ix_alerts_rule_id_started_at_id", "rule_id", "started_at", "id"),
        Index("ix_alerts_rule_id_series_key_state", "rule_id", "series_key", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    series_key: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(JsonValue, default=dict)
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="firing")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    values_at_start: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    values_at_resolution: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertEvent(Base):
    """A state transition of an alert (fired, escalated, resolved, acknowledged …)."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_alert_id_at", "alert_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(16))
    values: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)


class Silence(Base):
    """Notifications of a rule are held back between ``starts_at`` and ``ends_at``."""

    __tablename__ = "silences"
    __table_args__ = (
        Index("ix_silences_rule_id_ends_at", "rule_id", "ends_at"),
        Index("ix_silences_owner_id_ends_at", "owner_id", "ends_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationChannel(Base):
    """A named apprise destination. The URL is stored only Fernet-encrypted;
    ``scheme``, ``host`` and ``service`` are the parts safe to show."""

    __tablename__ = "notification_channels"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    url_encrypted: Mapped[str] = mapped_column(Text)
    scheme: Mapped[str] = mapped_column(String(32))
    host: Mapped[str | None] = mapped_column(String(255))
    service: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Channel policies: NULL group_by = one message per notification; NULL waits = 30 s and 300 s;
    # ``mute_during`` the canonical text of a time window (NULL = never muted); the group message's
    # templates (NULL = the defaults).
    group_by: Mapped[list[str] | None] = mapped_column(JsonValue)
    group_wait_seconds: Mapped[int | None] = mapped_column(Integer)
    group_interval_seconds: Mapped[int | None] = mapped_column(Integer)
    mute_during: Mapped[str | None] = mapped_column(Text)
    group_title: Mapped[str | None] = mapped_column(Text)
    group_message: Mapped[str | None] = mapped_column(Text)


class NotificationGroup(Base):
    """The timing of one group of one grouped channel: when a dispatcher first saw an unsent notification of
    it (``pending_since``, cleared by its message), when its last message went (``last_sent_at``), and the
    dispatcher sending it now (``claimed_by`` until ``claimed_until``). ``group_key`` is a digest of
    ``labels``, the group's values of the channel's ``group_by`` labels."""

    __tablename__ = "notification_groups"
    __table_args__ = (UniqueConstraint("channel_id", "group_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("notification_channels.id", ondelete="CASCADE"))
    group_key: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(JsonValue, default=dict)
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationOutbox(Base):
    """A notification waiting to be sent (or sent); the idempotency key makes a
    retried or taken-over send happen at most once."""

    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_notification_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(191), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("rules.id", ondelete="SET NULL"), index=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    channel_id: Mapped[int | None] = mapped_column(
        ForeignKey("notification_channels.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonValue, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))  # the engine replica sending it (``sending``)
    # Holds: a row ``silenced``, ``muted`` or ``suppressed`` says why (``held_reason``: "silenced", "muted",
    # "muted by channel pager", "suppressed by rule db_down", "acknowledged"); ``late`` marks a firing notice sent
    # when the hold over it ended, ``escalated`` one sent by ``escalate to``.
    held_reason: Mapped[str | None] = mapped_column(String(255))
    late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    escalated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class NotificationLog(Base):
    """One delivery attempt of an outbox entry."""

    __tablename__ = "notification_log"
    __table_args__ = (Index("ix_notification_log_outbox_id_at", "outbox_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("notification_outbox.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)


class EngineLease(Base):
    """Which engine replica evaluates a rule, until when."""

    __tablename__ = "engine_leases"
    __table_args__ = (Index("ix_engine_leases_holder_expires_at", "holder", "expires_at"),)

    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EngineReplica(Base):
    """A running engine replica: its heartbeat, renewed with its leases, until ``expires_at``."""

    __tablename__ = "engine_replicas"

    replica: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
