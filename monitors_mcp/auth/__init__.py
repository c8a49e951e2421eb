"""Bearer-token authentication for the streamable HTTP transport.

Two kinds of credential, side by side: the server's own tokens (``mon_…``, kept
hashed in the store; ``store_tokens``) and, in resource-server mode, JWTs issued by
an external OAuth authorization server (``oauth``). ``BearerVerifier`` sends each
token to the verifier of its kind; ``http_auth_settings`` gives the SDK's
``AuthSettings``, which makes it serve the protected-resource metadata (RFC 9728)
and name it in every 401's ``WWW-Authenticate`` header when OAuth is configured.
"""

from __future__ import annotations

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from ..store import Database
from .oauth import DEFAULT_ALGORITHMS, JwtVerifier, OAuthConfig
from .scopes import READ_SCOPE, SCOPES, WRITE_SCOPE, access_token
from .store_tokens import StoreTokenVerifier, is_store_token

__all__ = [
    "DEFAULT_ALGORITHMS",
    "READ_SCOPE",
    "SCOPES",
    "WRITE_SCOPE",
    "BearerVerifier",
    "JwtVerifier",
    "OAuthConfig",
    "StoreTokenVerifier",
    "access_token",
    "http_auth_settings",
]


class BearerVerifier:
    """The SDK's ``TokenVerifier``: ``mon_…`` tokens from the store, anything else as a JWT when
    resource-server mode is on (and refused when it is off)."""

    def __init__(self, db: Database, oauth: OAuthConfig | None = None) -> None:
        self.store = StoreTokenVerifier(db)
        self.jwt = JwtVerifier(db, oauth) if oauth is not None else None

    async def verify_token(self, token: str) -> AccessToken | None:
        if is_store_token(token):
            return await self.store.verify_token(token)
        if self.jwt is not None:
            return await self.jwt.verify_token(token)
        return None


def http_auth_settings(resource_url: str, oauth: OAuthConfig | None = None) -> AuthSettings:
    """``AuthSettings`` for the HTTP transport at ``resource_url`` (the public URL of ``/mcp``).

    With OAuth, the resource is ``resource_url`` and its authorization server the issuer:
    the SDK serves ``/.well-known/oauth-protected-resource/mcp``. The audience is checked
    by ``JwtVerifier`` itself, so the SDK's own resource check stays off. No scopes are
    required up front: a token without the write scope is read-only, not refused."""
    if oauth is None:
        return AuthSettings(issuer_url=resource_url.rsplit("/mcp", 1)[0] or resource_url, resource_server_url=None)
    return AuthSettings(
        issuer_url=oauth.issuer,
        resource_server_url=resource_url,
        validate_token_resource=False,
    )
