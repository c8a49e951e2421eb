"""Bearer-token authentication for the streamable HTTP transport.

``StoreTokenVerifier`` maps a bearer token to a user through the store (only the
token's SHA-256 is looked up); an unknown or revoked token yields no user, and the
SDK's middleware answers 401. The token never appears in a log line.
"""

from __future__ import annotations

import anyio.to_thread
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from .service import UserService
from .store import Database

__all__ = ["StoreTokenVerifier", "http_auth_settings"]


class StoreTokenVerifier:
    """The SDK's ``TokenVerifier`` over the token table."""

    def __init__(self, db: Database) -> None:
        self._users = UserService(db)

    async def verify_token(self, token: str) -> AccessToken | None:
        user_id = await anyio.to_thread.run_sync(self._users.verify_token, token)
        if user_id is None:
            return None
        return AccessToken(token="", client_id=f"user-{user_id}", scopes=[], subject=str(user_id))


def http_auth_settings(base_url: str) -> AuthSettings:
    return AuthSettings(issuer_url=base_url, resource_server_url=None)
