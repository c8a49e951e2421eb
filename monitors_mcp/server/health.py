"""Health endpoints of the HTTP transport, for load balancers and Kubernetes probes.

``GET /healthz`` answers 200 while the process serves requests. ``GET /readyz``
answers 200 when the store answers a trivial query (and Redis a ping, when the
server keeps its limits there), else 503 with a JSON body saying what is not ready. Neither needs a token, and neither says anything about
users, rules or configuration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..store import Database

__all__ = ["register_health"]


def register_health(mcp, db: Database, redis: Callable[[], Awaitable[bool]] | None = None) -> None:
    @mcp.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @mcp.custom_route("/readyz", methods=["GET"], include_in_schema=False)
    async def readyz(_: Request) -> JSONResponse:
        def ping() -> None:
            with db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))

        try:
            with anyio.fail_after(5):
                await anyio.to_thread.run_sync(ping, abandon_on_cancel=True)
        except Exception as error:  # the store is down, or too slow to answer
            return JSONResponse({"status": "not ready", "store": type(error).__name__}, status_code=503)
        if redis is not None:
            try:
                with anyio.fail_after(5):
                    await redis()
            except Exception as error:  # per-user limits cannot be counted: send traffic elsewhere
                return JSONResponse({"status": "not ready", "redis": type(error).__name__}, status_code=503)
        return JSONResponse({"status": "ready"})
