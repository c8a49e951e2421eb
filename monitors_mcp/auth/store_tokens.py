"""The server's own bearer tokens (``mon_…``), looked up in the store.

``StoreTokenVerifier`` maps a token to its user through the store (only the
token's SHA-256 is looked up); an unknown, revoked or expired token, or one of a
disabled user, yields nothing, and the SDK's middleware answers 401. The token
never appears in a log line.
"""

from __future__ import annotations

import anyio.to_thread
from mcp.server.auth.provider import AccessToken

from ..service import UserService
from ..service.users import TOKEN_PREFIX
from ..store import Database
from .scopes import access_token

__all__ = ["StoreTokenVerifier", "is_store_token"]


def is_store_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


class StoreTokenVerifier:
    """The SDK's ``TokenVerifier`` over the token table."""

    def __init__(self, db: Database) -> None:
        self._users = UserService(db)

    async def verify_token(self, token: str) -> AccessToken | None:
        caller = await anyio.to_thread.run_sync(self._users.authenticate, token)
        if caller is None:
            return None
        return access_token(caller.user_id, read_only=caller.read_only, client_id=f"user-{caller.user_id}")
