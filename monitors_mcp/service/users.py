"""Users and their API tokens.

A token is ``mon_`` followed by 43 url-safe random characters (256 bits). Only its
SHA-256 is stored; the token itself is shown once, when it is created, and is never
logged. A revoked or expired token stops working at once, and so does every token of
a disabled user. A read-only token reaches only the tools that read (``Caller``).

Deleting a user removes everything that is theirs: rules (with their state, leases
and silences), alerts and their events, notification channels (the encrypted URLs),
the outbox, tokens and the user row. Users created from an external authorization
server's tokens are keyed by ``(issuer, subject)`` (``external_user``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ..store import (
    Alert,
    ApiToken,
    Database,
    NotificationChannel,
    NotificationOutbox,
    Rule,
    Silence,
    User,
)
from ..store.types import utcnow
from .errors import Conflict, InvalidInput, NotFound
from .limits import MAX_NAME

__all__ = ["Caller", "IssuedToken", "TokenInfo", "UserDeleted", "UserInfo", "UserService", "hash_token"]

TOKEN_PREFIX = "mon_"
_LAST_USED_RESOLUTION = timedelta(minutes=5)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who a live credential acts for, and whether it may change anything."""

    user_id: int
    read_only: bool = False


@dataclass(frozen=True)
class IssuedToken:
    id: int
    user: str
    token: str
    expires_at: datetime | None = None
    read_only: bool = False


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None = None
    read_only: bool = False

    def state(self, now: datetime | None = None) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    created_at: datetime
    disabled_at: datetime | None
    issuer: str | None
    rules: int
    tokens: int


@dataclass(frozen=True)
class UserDeleted:
    """What deleting a user removed (or, before it is confirmed, would remove)."""

    name: str
    rules: int
    alerts: int
    channels: int
    silences: int
    tokens: int


class UserService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add_user(self, name: str) -> int:
        name = _check_user_name(name)
        with self.db.session() as session:
            if session.scalar(select(User.id).where(User.name == name)) is not None:
                raise Conflict(f"A user named {name!r} already exists.")
            user = User(name=name, created_at=utcnow())
            session.add(user)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(f"A user named {name!r} already exists.") from None
            return user.id

    def ensure_user(self, name: str) -> int:
        """The id of the user ``name``, created if missing (the local stdio user)."""
        name = _check_user_name(name)
        with self.db.session() as session:
            found = session.scalar(select(User.id).where(User.name == name))
            if found is not None:
                return found
        try:
            return self.add_user(name)
        except Conflict:  # created meanwhile by another process
            with self.db.session() as session:
                return session.scalar(select(User.id).where(User.name == name))  # type: ignore[return-value]

    def user_id(self, name: str) -> int:
        with self.db.session() as session:
            found = session.scalar(select(User.id).where(User.name == name))
        if found is None:
            raise NotFound(f"No user named {name!r}: add one with `monitors-mcp user add NAME`.")
        return found

    def is_disabled(self, user_id: int) -> bool:
        with self.db.session() as session:
            return session.scalar(select(User.disabled_at).where(User.id == user_id)) is not None

    def list_users(self) -> list[tuple[int, str]]:
        with self.db.session() as session:
            return [(u.id, u.name) for u in session.scalars(select(User).order_by(User.name))]

    def describe_users(self) -> list[UserInfo]:
        """Every user with their state and how many live rules and active tokens they have."""
        now = utcnow()
        rules = (select(Rule.owner_id, func.count().label("n")).where(Rule.deleted_at.is_(None))
                 .group_by(Rule.owner_id).subquery())
        tokens = (select(ApiToken.user_id, func.count().label("n"))
                  .where(ApiToken.revoked_at.is_(None),
                         (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now))
                  .group_by(ApiToken.user_id).subquery())
        stmt = (select(User, rules.c.n, tokens.c.n)
                .outerjoin(rules, rules.c.owner_id == User.id)
                .outerjoin(tokens, tokens.c.user_id == User.id)
                .order_by(User.name))
        with self.db.session() as session:
            return [UserInfo(id=u.id, name=u.name, created_at=u.created_at, disabled_at=u.disabled_at,
                             issuer=u.issuer, rules=r or 0, tokens=t or 0)
                    for u, r, t in session.execute(stmt)]

    def set_disabled(self, name: str, disabled: bool) -> bool:
        """Disable or enable the user ``name``; True when that changed anything.

        A disabled user's tokens (and external bearer tokens) are refused from the next
        request on, and the engine stops evaluating their rules at its next reload; their
        rules, alerts and channels are kept for when they are enabled again."""
        with self.db.session() as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound(f"No user named {name!r}: `monitors-mcp user list` shows them.")
            if (user.disabled_at is not None) == disabled:
                return False
            user.disabled_at = utcnow() if disabled else None
            return True

    def footprint(self, name: str) -> UserDeleted:
        """What ``delete_user(name)`` would remove, counted."""
        user_id = self.user_id(name)
        with self.db.session() as session:
            def count(model, column) -> int:  # noqa: ANN001
                return session.scalar(select(func.count()).select_from(model).where(column == user_id)) or 0

            return UserDeleted(
                name=name,
                rules=count(Rule, Rule.owner_id),
                alerts=count(Alert, Alert.owner_id),
                channels=count(NotificationChannel, NotificationChannel.owner_id),
                silences=count(Silence, Silence.owner_id),
                tokens=count(ApiToken, ApiToken.user_id),
            )

    def delete_user(self, name: str) -> UserDeleted:
        """Remove the user ``name`` and everything that is theirs, in one transaction.

        Rows are deleted child first rather than left to ``ON DELETE CASCADE``, so the
        result is the same on a SQLite file opened without foreign keys."""
        removed = self.footprint(name)
        user_id = self.user_id(name)
        from ..store import AlertEvent, EngineLease, NotificationLog, RuleState

        with self.db.session() as session:
            rule_ids = select(Rule.id).where(Rule.owner_id == user_id).scalar_subquery()
            alert_ids = select(Alert.id).where(Alert.owner_id == user_id).scalar_subquery()
            outbox_ids = select(NotificationOutbox.id).where(NotificationOutbox.owner_id == user_id).scalar_subquery()
            session.execute(delete(NotificationLog).where(NotificationLog.outbox_id.in_(outbox_ids)))
            session.execute(delete(NotificationOutbox).where(NotificationOutbox.owner_id == user_id))
            session.execute(delete(AlertEvent).where(AlertEvent.alert_id.in_(alert_ids)))
            # another user's alert acknowledged by this one keeps the acknowledgement, without the name
            session.execute(update(Alert).where(Alert.acknowledged_by == user_id).values(acknowledged_by=None))
            session.execute(update(AlertEvent).where(AlertEvent.user_id == user_id).values(user_id=None))
            session.execute(update(RuleState).where(RuleState.rule_id.in_(rule_ids)).values(alert_id=None))
            session.execute(delete(Alert).where(Alert.owner_id == user_id))
            session.execute(delete(RuleState).where(RuleState.rule_id.in_(rule_ids)))
            session.execute(delete(EngineLease).where(EngineLease.rule_id.in_(rule_ids)))
            session.execute(delete(Silence).where(Silence.owner_id == user_id))
            session.execute(delete(Rule).where(Rule.owner_id == user_id))
            session.execute(delete(NotificationChannel).where(NotificationChannel.owner_id == user_id))
            session.execute(delete(ApiToken).where(ApiToken.user_id == user_id))
            session.execute(delete(User).where(User.id == user_id))
        return removed

    def external_user(self, issuer: str, subject: str) -> int | None:
        """The user for ``subject`` at ``issuer``, created on first sight; None when that user is disabled.

        The user's name is the subject when no other user has it, else the subject with a
        short suffix derived from the issuer, so an external identity never takes over a
        user an operator added."""
        if not subject or len(subject) > 255 or len(issuer) > 255:
            return None
        found = self._external(issuer, subject)
        if found is None:
            base = "".join(ch if ch.isprintable() and not ch.isspace() else "_" for ch in subject)[: MAX_NAME - 9]
            suffix = hashlib.sha256(f"{issuer}\n{subject}".encode("utf-8", "surrogatepass")).hexdigest()[:8]
            for name in (base, f"{base}~{suffix}"):
                try:
                    with self.db.session() as session:
                        user = User(name=name, created_at=utcnow(), issuer=issuer, subject=subject)
                        session.add(user)
                        session.flush()
                        return user.id
                except IntegrityError:  # the name is taken, or another replica created this user meanwhile
                    found = self._external(issuer, subject)
                    if found is not None:
                        break
            else:
                return None
        user_id, disabled_at = found
        return user_id if disabled_at is None else None

    def _external(self, issuer: str, subject: str) -> tuple[int, datetime | None] | None:
        with self.db.session() as session:
            row = session.execute(select(User.id, User.disabled_at)
                                  .where(User.issuer == issuer, User.subject == subject)).first()
        return (row.id, row.disabled_at) if row is not None else None

    def create_token(self, user_name: str, *, expires_in: timedelta | None = None,
                     read_only: bool = False) -> IssuedToken:
        """A new token for ``user_name``; it expires ``expires_in`` from now (never when None)."""
        user_id = self.user_id(user_name)
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidInput("A token's lifetime must be longer than zero (for example 30d or 12h).")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        with self.db.session() as session:
            row = ApiToken(
                user_id=user_id, token_hash=hash_token(token), prefix=token[:8], created_at=now,
                expires_at=now + expires_in if expires_in is not None else None, read_only=read_only,
            )
            session.add(row)
            session.flush()
            return IssuedToken(id=row.id, user=user_name, token=token, expires_at=row.expires_at,
                               read_only=read_only)

    def revoke_token(self, token_id: int) -> TokenInfo:
        with self.db.session() as session:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"No token with id {token_id}: `monitors-mcp token list` shows the ids.")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            user = session.get(User, row.user_id)
            return _info(row, user.name if user else "?")

    def list_tokens(self, user_name: str | None = None) -> list[TokenInfo]:
        stmt = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
        if user_name is not None:
            stmt = stmt.where(User.name == user_name)
        with self.db.session() as session:
            return [_info(row, name) for row, name in session.execute(stmt)]

    def verify_token(self, token: str) -> int | None:
        """The user id a live token belongs to; None for an unknown, revoked or expired token,
        or a token of a disabled user."""
        caller = self.authenticate(token)
        return caller.user_id if caller is not None else None

    def authenticate(self, token: str) -> Caller | None:
        """The caller a live token acts for (see ``verify_token``), noting when it was last used."""
        if not token or len(token) > 512 or not token.startswith(TOKEN_PREFIX):
            return None
        digest = hash_token(token)
        now = utcnow()
        with self.db.session() as session:
            found = session.execute(
                select(ApiToken, User.disabled_at).join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
            ).first()
            if found is None:
                return None
            row, disabled_at = found
            if not secrets.compare_digest(row.token_hash, digest) or disabled_at is not None:
                return None
            if row.expires_at is not None and row.expires_at <= now:
                return None
            if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
                # written at most every few minutes: a busy token does not turn every call into a write
                session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
            return Caller(user_id=row.user_id, read_only=bool(row.read_only))


def _check_user_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(ch.isspace() or not ch.isprintable() for ch in name):
        raise InvalidInput(f"A user name is 1 to {MAX_NAME} printable characters without spaces.")
    return name


def _info(row: ApiToken, user: str) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        user=user,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        expires_at=row.expires_at,
        read_only=bool(row.read_only),
    )
