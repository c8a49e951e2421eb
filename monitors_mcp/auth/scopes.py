"""What a verified bearer credential may do, as the SDK's ``AccessToken`` carries it.

Every credential the HTTP transport accepts becomes an ``AccessToken`` whose
``subject`` is the store's user id and whose scopes say whether it may change
anything: ``monitors:read`` always, ``monitors:write`` unless the credential is
read-only. The tools read this back through ``monitors_mcp.server.backend``.
"""

from __future__ import annotations

from mcp.server.auth.provider import AccessToken

__all__ = ["READ_SCOPE", "SCOPES", "WRITE_SCOPE", "access_token"]

READ_SCOPE = "monitors:read"
WRITE_SCOPE = "monitors:write"
SCOPES = [READ_SCOPE, WRITE_SCOPE]


def access_token(user_id: int, *, read_only: bool, client_id: str, expires_at: int | None = None,
                 issuer: str | None = None) -> AccessToken:
    """The ``AccessToken`` for a credential of ``user_id`` (the raw token is never kept in it)."""
    return AccessToken(
        token="",
        client_id=client_id,
        scopes=[READ_SCOPE] if read_only else list(SCOPES),
        expires_at=expires_at,
        subject=str(user_id),
        claims={"iss": issuer} if issuer else None,
    )
