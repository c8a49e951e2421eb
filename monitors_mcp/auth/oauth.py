"""Resource-server mode: bearer JWTs issued by an external OAuth authorization server.

The server does not issue these tokens; it checks them (RFC 9068 access tokens,
the MCP authorization model):

- the signature, with a key from the authorization server's JWKS (fetched over
  HTTP, kept for ``jwks_cache_seconds``, fetched again when a token names a key id
  it has not seen — at most once per ``jwks_min_refresh_seconds``, so tokens with
  made-up key ids cannot make it hammer the authorization server);
- the algorithm, from a fixed list of asymmetric ones (never ``none`` or HMAC);
- ``iss`` equal to the configured issuer, ``aud`` containing the configured
  audience (by default the server's own ``/mcp`` URL, RFC 8707), ``exp`` in the
  future (``nbf``/``iat`` honoured), with ``leeway_seconds`` of clock skew;
- the user: the value of ``user_claim`` (``sub`` by default), a user created on
  first sight and keyed by (issuer, value) — never a user an operator added.

A token carrying ``write_scope`` (when one is configured) may change things;
without it the token is read-only. Without ``write_scope`` every valid token may.
Nothing here logs a token, and every failure is the same "no user": 401.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import anyio.to_thread
import jwt
from mcp.server.auth.provider import AccessToken

from ..service import UserService
from ..store import Database
from .scopes import access_token

__all__ = ["DEFAULT_ALGORITHMS", "JwksKeys", "JwtVerifier", "OAuthConfig"]

log = logging.getLogger(__name__)

DEFAULT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_MAX_JWKS_BYTES = 1 << 20
_MAX_TOKEN = 16_384


@dataclass(frozen=True)
class OAuthConfig:
    """Where tokens come from and what they must say."""

    issuer: str
    jwks_url: str
    audience: str
    user_claim: str = "sub"
    write_scope: str | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_seconds: int = 30
    jwks_cache_seconds: int = 300
    jwks_min_refresh_seconds: int = 30
    jwks_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        for name in ("issuer", "jwks_url", "audience", "user_claim"):
            if not getattr(self, name):
                raise ValueError(f"OAuth resource-server mode needs {name.replace('_', ' ')}")
        if not self.jwks_url.startswith(("https://", "http://")):
            raise ValueError(f"the JWKS URL must be an http(s) URL, not {self.jwks_url[:60]!r}")
        weak = [a for a in self.algorithms if a.lower() == "none" or a.upper().startswith("HS")]
        if weak:
            raise ValueError(f"algorithms {weak} cannot be used: only asymmetric signatures are checked here")


@dataclass
class JwksKeys:
    """The authorization server's signing keys, by key id, fetched when needed."""

    config: OAuthConfig
    _keys: dict[str | None, jwt.PyJWK] = field(default_factory=dict)
    _fetched_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key(self, kid: str | None) -> jwt.PyJWK | None:
        now = time.monotonic()
        with self._lock:
            if now - self._fetched_at > self.config.jwks_cache_seconds:
                self._refresh(now)
            found = self._lookup(kid)
            if found is None and now - self._fetched_at >= self.config.jwks_min_refresh_seconds:
                self._refresh(now)  # a key rotated in since the last fetch
                found = self._lookup(kid)
            return found

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:  # a token without a key id is checked only against a one-key set
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        self._fetched_at = now
        try:
            request = urllib.request.Request(self.config.jwks_url, headers={"Accept": "application/json"})
            with urllib.request.urlopen(request, timeout=self.config.jwks_timeout_seconds) as response:  # noqa: S310
                body = response.read(_MAX_JWKS_BYTES + 1)
            if len(body) > _MAX_JWKS_BYTES:
                raise ValueError("the JWKS is larger than 1 MiB")
            keys = {}
            for entry in json.loads(body).get("keys", []):
                if entry.get("use", "sig") != "sig":
                    continue
                try:
                    keys[entry.get("kid")] = jwt.PyJWK(entry)
                except jwt.PyJWTError:  # a key type or curve this server cannot use: skip it
                    continue
            self._keys = keys
        except Exception as error:  # keep the keys we had; tokens signed with them still pass
            log.warning("could not fetch the JWKS from %s: %s", self.config.jwks_url, type(error).__name__)


class JwtVerifier:
    """The SDK's ``TokenVerifier`` for external JWTs (see the module docstring)."""

    def __init__(self, db: Database, config: OAuthConfig) -> None:
        self.config = config
        self.keys = JwksKeys(config)
        self._users = UserService(db)

    async def verify_token(self, token: str) -> AccessToken | None:
        return await anyio.to_thread.run_sync(self.verify, token)

    def verify(self, token: str) -> AccessToken | None:
        claims = self.claims(token)
        if claims is None:
            return None
        value = claims.get(self.config.user_claim)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            return None
        user_id = self._users.external_user(self.config.issuer, value)
        if user_id is None:  # disabled
            return None
        scopes = _scopes(claims)
        read_only = self.config.write_scope is not None and self.config.write_scope not in scopes
        client = claims.get("client_id") or claims.get("azp") or "oauth"
        return access_token(user_id, read_only=read_only, client_id=str(client)[:200],
                            expires_at=int(claims["exp"]), issuer=self.config.issuer)

    def claims(self, token: str) -> dict | None:
        """The token's claims when it is valid for this server, else None."""
        if not token or len(token) > _MAX_TOKEN or token.count(".") != 2:
            return None
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            if algorithm not in self.config.algorithms:
                return None
            key = self.keys.key(header.get("kid"))
            if key is None:
                return None
            return jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None


def _scopes(claims: dict) -> set[str]:
    """``scope`` (space-separated, RFC 9068) or ``scp`` (a list, as some servers send)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return set(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return {s for s in scp if isinstance(s, str)}
    if isinstance(scp, str):
        return set(scp.split())
    return set()
