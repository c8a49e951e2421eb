"""Users and their API tokens.

A token is ``mon_`` followed by 43 url-safe random characters (256 bits). Only its
SHA-256 is stored; the token itself is shown once, when it is created, and is never
logged. A revoked token stops working at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..store import ApiToken, Database, User
from ..store.types import utcnow
from .errors import Conflict, InvalidInput, NotFound
from .limits import MAX_NAME

__all__ = ["IssuedToken", "TokenInfo", "UserService", "hash_token"]

TOKEN_PREFIX = "mon_"
_LAST_USED_RESOLUTION = timedelta(minutes=5)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    id: int
    user: str
    token: str


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


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

    def list_users(self) -> list[tuple[int, str]]:
        with self.db.session() as session:
            return [(u.id, u.name) for u in session.scalars(select(User).order_by(User.name))]

    def create_token(self, user_name: str) -> IssuedToken:
        user_id = self.user_id(user_name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as session:
            row = ApiToken(
                user_id=user_id, token_hash=hash_token(token), prefix=token[:8], created_at=utcnow()
            )
            session.add(row)
            session.flush()
            return IssuedToken(id=row.id, user=user_name, token=token)

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
        """The user id a live token belongs to; None for an unknown or revoked token."""
        if not token or len(token) > 512 or not token.startswith(TOKEN_PREFIX):
            return None
        digest = hash_token(token)
        now = utcnow()
        with self.db.session() as session:
            row = session.scalars(
                select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
            ).first()
            if row is None or not secrets.compare_digest(row.token_hash, digest):
                return None
            if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
                row.last_used_at = now
            return row.user_id


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
    )
