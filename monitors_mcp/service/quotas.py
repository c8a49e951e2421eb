"""How much one user may keep: rules, notification channels and active silences.

One user's store rows cost every user (the engine evaluates every rule, the
tools page through them), so each kind has a per-user quota, set by the
operator (``MONITORS_MAX_RULES_PER_USER``, ``MONITORS_MAX_CHANNELS_PER_USER``,
``MONITORS_MAX_SILENCES_PER_USER``; defaults in :class:`Quotas`). Reaching one
is a ``QuotaReached`` error (code ``quota_reached``) naming the quota and
what to delete. Deleted rules and ended silences do not count. Two calls
racing at the last place may both pass; the quota is a bound on what a user
accumulates, not a lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..store import NotificationChannel, Rule, Silence
from ..store.types import utcnow
from .errors import ServiceError
from .limits import whole_setting

__all__ = ["QuotaReached", "Quotas", "check_channel_quota", "check_rule_quota", "check_silence_quota"]


class QuotaReached(ServiceError):
    code = "quota_reached"
    default_hint = "Delete what you no longer need, then call again; the server's operator sets the quotas."


@dataclass(frozen=True)
class Quotas:
    rules: int = 1_000
    channels: int = 100
    silences: int = 1_000

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Quotas:
        env = os.environ if env is None else env
        return cls(rules=whole_setting(env, "MONITORS_MAX_RULES_PER_USER", cls.rules, 1, 10_000_000),
                   channels=whole_setting(env, "MONITORS_MAX_CHANNELS_PER_USER", cls.channels, 1, 10_000_000),
                   silences=whole_setting(env, "MONITORS_MAX_SILENCES_PER_USER", cls.silences, 1, 10_000_000))


def _check(count: int, limit: int, what: str, how: str) -> None:
    if count >= limit:
        raise QuotaReached(f"You have {count:,} {what}, the most one user may keep ({limit:,}). {how}",
                           quota=limit, used=count)


def check_rule_quota(session: Session, owner_id: int) -> None:
    limit = Quotas.from_env().rules
    count = session.scalar(select(func.count()).select_from(Rule)
                           .where(Rule.owner_id == owner_id, Rule.deleted_at.is_(None))) or 0
    _check(count, limit, "alert rules", "Delete rules you no longer need (delete_alert_rule) to add another.")


def check_channel_quota(session: Session, owner_id: int) -> None:
    limit = Quotas.from_env().channels
    count = session.scalar(select(func.count()).select_from(NotificationChannel)
                           .where(NotificationChannel.owner_id == owner_id)) or 0
    _check(count, limit, "notification channels",
           "Delete a channel you no longer use (delete_notification_channel) to add another.")


def check_silence_quota(session: Session, owner_id: int) -> None:
    limit = Quotas.from_env().silences
    count = session.scalar(select(func.count()).select_from(Silence)
                           .where(Silence.owner_id == owner_id, Silence.ends_at > utcnow())) or 0
    _check(count, limit, "active silences", "End silences you no longer need, or wait for some to run out.")
