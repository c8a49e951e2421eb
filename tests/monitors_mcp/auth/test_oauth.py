"""Resource-server mode through the SDK's HTTP client: JWTs from an external authorization server
whose JWKS is served on 127.0.0.1 by the test, alongside the server's own tokens.

Valid, expired, wrong audience, wrong issuer, unknown key, tampered, unsigned and HMAC-signed
tokens; the user created on first sight from the configured claim; the write scope; the
protected-resource metadata (RFC 9728) and the 401's WWW-Authenticate header."""

from __future__ import annotations

import base64
import json
import uuid

import httpx2
import jwt
import pytest

from monitors_mcp.auth import OAuthConfig
from monitors_mcp.http_app import HttpSettings
from monitors_mcp.service import UserService
from monitors_mcp.store import Database
from tests.support.mcp_http import JwksServer, McpHttpServer, mcp_client
from tests.support.ports import free_port

from tests.support.mcp_client import BTC

pytestmark = pytest.mark.anyio

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def jwks():  # noqa: ANN201
    with JwksServer() as server:
        yield server


def _server(db: Database, secrets, jwks: JwksServer, **oauth_options):  # noqa: ANN001, ANN202, ANN003
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    config = OAuthConfig(issuer=jwks.issuer, jwks_url=jwks.url, audience=resource,
                         jwks_min_refresh_seconds=0, **oauth_options)
    server = McpHttpServer(db, secrets, HttpSettings(oauth=config, public_url=resource))
    server.port, server.url, server.base = port, resource, f"http://127.0.0.1:{port}"
    return server


@pytest.fixture(scope="module")
def server(db: Database, secrets, jwks):  # noqa: ANN001, ANN201
    with _server(db, secrets, jwks) as running:
        yield running


def _claims(server, **extra) -> dict:  # noqa: ANN001, ANN003
    return {"sub": f"ext-{uuid.uuid4().hex[:10]}", "aud": server.url, **extra}


async def _status(server, token: str) -> httpx2.Response:  # noqa: ANN001
    async with httpx2.AsyncClient() as http:
        return await http.post(server.url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {token}"})


async def test_a_valid_token_acts_as_a_user_created_on_first_sight(db: Database, server, jwks) -> None:  # noqa: ANN001
    claims = _claims(server)
    token = jwks.token(claims)
    async with mcp_client(server.url, token) as client:
        created = await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})
        assert not created.is_error, created.content
    users = UserService(db)
    user_id = users.user_id(claims["sub"])
    info = next(u for u in users.describe_users() if u.id == user_id)
    assert info.issuer == jwks.issuer and info.rules == 1
    async with mcp_client(server.url, jwks.token(claims)) as client:  # a fresh token: the same user
        rules = await client.call_tool("list_alert_rules", {})
        assert [r["name"] for r in rules.structured_content["rules"]] == ["btc"]
    assert sum(1 for u in users.describe_users() if u.name.startswith(claims["sub"])) == 1


@pytest.mark.parametrize("case", ["expired", "wrong_audience", "wrong_issuer", "unknown_key", "tampered",
                                  "unsigned", "hmac_with_public_key", "no_expiry", "not_a_jwt"])
async def test_bad_tokens_are_refused_with_401(db: Database, server, jwks, case: str) -> None:  # noqa: ANN001
    claims = _claims(server)
    if case == "expired":
        token = jwks.token(claims, expires_in=-3600)
    elif case == "wrong_audience":
        token = jwks.token({**claims, "aud": "http://127.0.0.1:1/other"})
    elif case == "wrong_issuer":
        token = jwks.token({**claims, "iss": "https://evil.example.test"})
    elif case == "unknown_key":
        token = jwks.token(claims, kid="other")
    elif case == "tampered":
        header, payload, signature = jwks.token(claims).split(".")
        body = json.loads(base64.urlsafe_b64decode(payload + "=="))
        body["sub"] = "someone-else"
        forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
        token = f"{header}.{forged}.{signature}"
    elif case == "unsigned":
        token = jwt.encode({**claims, "iss": jwks.issuer, "exp": 2**31}, None, algorithm="none")
    elif case == "hmac_with_public_key":
        public = jwks.jwks()["keys"][0]["n"]
        token = jwt.encode({**claims, "iss": jwks.issuer, "exp": 2**31}, public, algorithm="HS256",
                           headers={"kid": "k1"})
    elif case == "no_expiry":
        token = jwt.encode({**claims, "iss": jwks.issuer}, jwks.keys["k1"], algorithm="RS256", headers={"kid": "k1"})
    else:
        token = "not.a.jwt"
    response = await _status(server, token)
    assert response.status_code == 401, case
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'resource_metadata="' in challenge
    assert token not in response.text
    with pytest.raises(Exception, match="No user named"):
        UserService(db).user_id(claims["sub"])  # nobody was created for a refused token


async def test_a_key_rotated_in_is_fetched_and_an_unknown_one_never_matches(db: Database, server, jwks) -> None:  # noqa: ANN001
    claims = _claims(server)
    token = jwks.token(claims, kid="other")
    assert (await _status(server, token)).status_code == 401
    jwks.published = ["k1", "other"]  # the authorization server rotates a key in
    try:
        assert (await _status(server, token)).status_code == 200
    finally:
        jwks.published = ["k1"]


async def test_the_servers_own_tokens_work_alongside(db: Database, server) -> None:  # noqa: ANN001
    users = UserService(db)
    name = f"own-{uuid.uuid4().hex[:8]}"
    users.add_user(name)
    token = users.create_token(name).token
    async with mcp_client(server.url, token) as client:
        assert not (await client.call_tool("list_alert_rules", {})).is_error
    assert (await _status(server, "mon_not-a-real-token")).status_code == 401


async def test_an_external_subject_never_takes_over_an_operators_user(db: Database, server, jwks) -> None:  # noqa: ANN001
    users = UserService(db)
    name = f"local-{uuid.uuid4().hex[:8]}"
    local_id = users.add_user(name)
    users.create_token(name)
    async with mcp_client(server.url, jwks.token(_claims(server, sub=name))) as client:
        assert (await client.call_tool("list_alert_rules", {})).structured_content["rules"] == []
        assert not (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "mine"})).is_error
    external = [u for u in users.describe_users() if u.issuer == jwks.issuer and u.name.startswith(name)]
    assert len(external) == 1 and external[0].id != local_id and external[0].name != name
    assert next(u for u in users.describe_users() if u.id == local_id).rules == 0


async def test_a_disabled_external_user_is_refused(db: Database, server, jwks) -> None:  # noqa: ANN001
    claims = _claims(server)
    assert (await _status(server, jwks.token(claims))).status_code == 200
    UserService(db).set_disabled(claims["sub"], True)
    assert (await _status(server, jwks.token(claims))).status_code == 401


async def test_protected_resource_metadata_names_the_resource_and_its_authorization_server(server, jwks) -> None:  # noqa: ANN001
    async with httpx2.AsyncClient() as http:
        challenge = (await http.post(server.url, json=INIT, headers=HEADERS)).headers["www-authenticate"]
        metadata_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
        assert metadata_url == f"{server.base}/.well-known/oauth-protected-resource/mcp"
        for url in (metadata_url, f"{server.base}/.well-known/oauth-protected-resource"):
            response = await http.get(url)
            assert response.status_code == 200, url
            document = response.json()
            assert document["resource"] == server.url
            assert [s.rstrip("/") for s in document["authorization_servers"]] == [jwks.issuer]
            assert document["bearer_methods_supported"] == ["header"]


async def test_with_a_write_scope_a_token_without_it_is_read_only(db: Database, secrets, jwks) -> None:  # noqa: ANN001
    with _server(db, secrets, jwks, write_scope="monitors.write", user_claim="email") as server:
        email = f"p-{uuid.uuid4().hex[:8]}@example.test"
        writer = jwks.token({"sub": "x", "email": email, "aud": server.url, "scope": "openid monitors.write"})
        reader = jwks.token({"sub": "x", "email": email, "aud": [server.url, "other"], "scope": "openid"})
        async with mcp_client(server.url, writer) as client:
            assert not (await client.call_tool("create_alert_rule", {"rule": BTC, "name": "btc"})).is_error
        async with mcp_client(server.url, reader) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "create_alert_rule" not in names and "list_alert_rules" in names
            refused = await client.call_tool("delete_alert_rule", {"rule": "btc"})
            assert refused.is_error and refused.structured_content["code"] == "read_only_token"
            rules = await client.call_tool("list_alert_rules", {})
            assert [r["name"] for r in rules.structured_content["rules"]] == ["btc"]
        UserService(db).user_id(email)  # the user is named by the configured claim


def test_oauth_settings_refuse_weak_algorithms_and_missing_parts() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        OAuthConfig(issuer="https://a", jwks_url="https://a/jwks", audience="x", algorithms=("HS256",))
    with pytest.raises(ValueError, match="jwks url"):
        OAuthConfig(issuer="https://a", jwks_url="", audience="x")
    with pytest.raises(ValueError, match="http"):
        OAuthConfig(issuer="https://a", jwks_url="file:///etc/passwd", audience="x")


@pytest.mark.parametrize(("args", "message"), [
    (["--oauth-issuer", "https://auth.example.test"], "needs both --oauth-issuer and --oauth-jwks-url"),
    (["--oauth-issuer", "https://a", "--oauth-jwks-url", "ftp://a/jwks"], "must be an http(s) URL"),
])
def test_the_cli_says_what_is_missing_in_one_line(db: Database, capsys, args, message) -> None:  # noqa: ANN001
    from monitors_mcp.cli import main

    code = main(["--database-url", db.url, "serve", "--http", "--port", str(free_port()), *args])
    _, err = capsys.readouterr()
    assert code == 1 and message in err and err.count("\n") == 1
