"""The streamable HTTP transport as one ASGI application: the MCP endpoint behind bearer
auth, the health endpoints, the protected-resource metadata, and how it is served.

``HttpSettings`` is everything ``monitors-mcp serve --http`` is told; ``build_http_app``
assembles the SDK server and its Starlette app; ``serve_http`` runs it under uvicorn.

Stateless mode (``stateless=True``) is the one for replicas behind a load balancer
without sticky routing: every request is served on its own (the SDK's stateless
streamable HTTP; clients on the 2026-07-28 protocol are per-request anyway), so any
replica can answer any request, and the per-user limits that must hold across
replicas live in Redis (``redis_url``). Without it the process keeps sessions in its
memory and must be the only one behind its address.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

from starlette.applications import Starlette

from .auth import BearerVerifier, OAuthConfig, http_auth_settings
from .store import Database
from .store.secrets import SecretBox

__all__ = ["HttpSettings", "build_http_app", "serve_http"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    #: the URL clients reach the MCP endpoint at (the OAuth resource and default audience)
    public_url: str | None = None
    stateless: bool = False
    redis_url: str | None = None
    oauth: OAuthConfig | None = None
    #: sessions per user and idle timeout (``server.sessions``); None: from the environment
    sessions: object | None = None
    extra: dict = field(default_factory=dict)

    @property
    def resource_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/mcp"


def build_http_app(db: Database, secrets: SecretBox, settings: HttpSettings, limits=None):  # noqa: ANN001, ANN201
    """The SDK server and the Starlette application serving it.

    ``limits`` defaults to the per-user call limits of ``call_limits_from_env``: in Redis
    when ``settings.redis_url`` is set, else in this process."""
    from .concurrency import call_limits_from_env
    from .server import bearer_user, build_server
    from .server.backend import bearer_can_write
    from .server.health import register_health

    if limits is None:
        limits = call_limits_from_env(settings.redis_url)
    if settings.stateless and settings.redis_url is None:
        log.warning("stateless without a Redis URL: per-user limits are counted per replica, not for all of them")

    server = build_server(
        db,
        secrets,
        bearer_user,
        token_verifier=BearerVerifier(db, settings.oauth),
        auth=http_auth_settings(settings.resource_url, settings.oauth),
        log_level="INFO",
        can_write=bearer_can_write,
        limits=limits,
    )
    register_health(server, db, redis=getattr(limits.limiter, "ping", None))
    if settings.oauth is not None:
        _register_root_metadata(server, settings)
    app: Starlette = server.streamable_http_app(stateless_http=settings.stateless, host=settings.host)
    if not settings.stateless:
        from .server.sessions import limit_sessions, session_limits_from_env

        limit_sessions(server.session_manager, settings.sessions or session_limits_from_env())
    return server, app


def _register_root_metadata(server, settings: HttpSettings) -> None:  # noqa: ANN001
    """The protected-resource metadata also at the path-less well-known URL: clients that look
    there first (RFC 9728 §3.1 puts it under the resource's path, which the SDK serves)."""
    from mcp.shared.auth import ProtectedResourceMetadata
    from pydantic import AnyHttpUrl
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    metadata = ProtectedResourceMetadata(
        resource=AnyHttpUrl(settings.resource_url),
        authorization_servers=[AnyHttpUrl(settings.oauth.issuer)],  # type: ignore[union-attr]
    ).model_dump(mode="json", exclude_none=True)

    @server.custom_route("/.well-known/oauth-protected-resource", methods=["GET"], include_in_schema=False)
    async def root_metadata(_: Request) -> JSONResponse:
        return JSONResponse(metadata, headers={"Cache-Control": "public, max-age=3600"})


def serve_http(db: Database, secrets: SecretBox, settings: HttpSettings) -> None:
    import uvicorn

    _, app = build_http_app(db, secrets, settings)
    mode = "stateless" if settings.stateless else "with sessions in this process"
    auth = f"bearer tokens, and JWTs from {settings.oauth.issuer}" if settings.oauth else "bearer token required"
    print(f"monitors-mcp: serving streamable HTTP on http://{settings.host}:{settings.port}/mcp ({mode}; {auth})",
          file=sys.stderr)
    # Idle keep-alive connections are kept longer than a load balancer's usual idle timeout (60 s):
    # a backend closing first races the balancer's next request on that connection, which then fails.
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                            timeout_graceful_shutdown=20, timeout_keep_alive=75)
    uvicorn.Server(config).run()
