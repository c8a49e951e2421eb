"""The MCP server's HTTP application served in this process on 127.0.0.1, and a JWKS
endpoint with keys made here, for the auth tests.

    with McpHttpServer(db, secrets, settings) as server:        # uvicorn on a free port
        async with mcp_client(server.url, token) as client: ...
    with JwksServer() as jwks:                                  # RSA keys "k1" (served) and "other"
        token = jwks.token({"sub": "alice", "aud": ..., "iss": ...})
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.ports import free_port

__all__ = ["JwksServer", "McpHttpServer", "mcp_client"]




class McpHttpServer:
    """``build_http_app`` under uvicorn in a thread; ``url`` is the MCP endpoint."""

    def __init__(self, db, secrets, settings=None, **overrides: Any) -> None:  # noqa: ANN001
        from monitors_mcp.http_app import HttpSettings

        self.port = free_port()
        base = settings or HttpSettings()
        self.settings = HttpSettings(**{**base.__dict__, "host": "127.0.0.1", "port": self.port, **overrides})
        self.db, self.secrets = db, secrets
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> McpHttpServer:
        import uvicorn

        from monitors_mcp.http_app import build_http_app

        _, app = build_http_app(self.db, self.secrets, self.settings)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the MCP HTTP server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)


@asynccontextmanager
async def mcp_client(url: str, token: str | None, **client_options: Any) -> AsyncIterator[Any]:
    """The SDK's client over streamable HTTP with ``Authorization: Bearer token``."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
        async with Client(streamable_http_client(url, http_client=http), **client_options) as client:
            yield client


class JwksServer:
    """An authorization server's JWKS on 127.0.0.1, with tokens signed here.

    ``keys["k1"]`` is published; ``keys["other"]`` is not (a token signed with it has an
    unknown key). ``fetches`` counts JWKS requests."""

    def __init__(self, issuer: str = "https://auth.example.test") -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.issuer = issuer
        self.keys = {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in ("k1", "other")}
        self.published = ["k1"]
        self.fetches = 0

    def jwks(self) -> dict:
        import jwt

        out = []
        for kid in self.published:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": out}

    def token(self, claims: dict, *, kid: str = "k1", key: str | None = None, expires_in: int = 600,
              headers: dict | None = None) -> str:
        import jwt

        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "exp": now + expires_in, **claims}
        return jwt.encode(body, self.keys[key or kid], algorithm="RS256", headers={"kid": kid, **(headers or {})})

    def __enter__(self) -> JwksServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.fetches += 1
                body = json.dumps(owner.jwks()).encode()
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._http.shutdown()
        self._http.server_close()
