"""The ``monitors-mcp`` command.

    monitors-mcp                         serve over stdio as the local user (Claude Desktop)
    monitors-mcp serve --http [--host H] [--port P]
                                         serve streamable HTTP; every request needs a bearer token
    monitors-mcp user add NAME | user list
    monitors-mcp token create USER       prints the new token once
    monitors-mcp token revoke ID | token list [USER]
    monitors-mcp migrate                 bring the database schema up to date

The database is ``--database-url``, else ``$MONITORS_DATABASE_URL``, else a SQLite
file in the user's data directory. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

LOCAL_USER_ENV = "MONITORS_USER"


class CliError(Exception):
    """A failure to report as one line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitors-mcp", description="Alert rules for time series, over MCP.")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: $MONITORS_DATABASE_URL or SQLite in the data dir)")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the MCP server (stdio unless --http)")
    serve.add_argument("--http", action="store_true", help="streamable HTTP with bearer-token auth")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--user", help=f"stdio only: act as this user (default ${LOCAL_USER_ENV} or 'local')")

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    user.add_parser("add", help="add a user").add_argument("name")
    user.add_parser("list", help="list users")

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="action", required=True)
    token.add_parser("create", help="create a token for USER (printed once)").add_argument("user")
    token.add_parser("revoke", help="revoke the token with this id").add_argument("id", type=int)
    token.add_parser("list", help="list tokens (never the tokens themselves)").add_argument("user", nargs="?")

    sub.add_parser("migrate", help="create or upgrade the database schema")
    return parser


def _open_database(url: str | None):  # noqa: ANN202
    from .store import Database
    from .store.db import default_database_url

    db = Database(url or default_database_url())
    db.migrate()
    return db


def _serve_stdio(db, user: str | None) -> None:  # noqa: ANN001
    from .server import build_server, fixed_user
    from .service import UserService
    from .store.secrets import load_secret_box

    name = user or os.environ.get(LOCAL_USER_ENV) or "local"
    user_id = UserService(db).ensure_user(name)
    server = build_server(db, load_secret_box(), fixed_user(user_id))
    server.run("stdio")


def _serve_http(db, host: str, port: int) -> None:  # noqa: ANN001
    import anyio

    from .auth import StoreTokenVerifier, http_auth_settings
    from .server import bearer_user, build_server
    from .store.secrets import load_secret_box

    server = build_server(
        db,
        load_secret_box(),
        bearer_user,
        token_verifier=StoreTokenVerifier(db),
        auth=http_auth_settings(f"http://{host}:{port}"),
        log_level="INFO",
    )
    from .server.health import register_health

    register_health(server, db)
    print(f"monitors-mcp: serving streamable HTTP on http://{host}:{port}/mcp (bearer token required)", file=sys.stderr)
    anyio.run(lambda: server.run_streamable_http_async(host=host, port=port))


def _run(args: argparse.Namespace) -> int:
    from .service import UserService

    command = args.command or "serve"
    db = _open_database(args.database_url)
    if command == "serve":
        if getattr(args, "http", False):
            _serve_http(db, args.host, args.port)
        else:
            _serve_stdio(db, getattr(args, "user", None))
        return 0
    if command == "migrate":
        print("database schema is up to date")
        return 0
    users = UserService(db)
    if command == "user" and args.action == "add":
        user_id = users.add_user(args.name)
        print(f"added user {args.name} (id {user_id})")
    elif command == "user" and args.action == "list":
        for user_id, name in users.list_users():
            print(f"{user_id}\t{name}")
    elif command == "token" and args.action == "create":
        issued = users.create_token(args.user)
        print(issued.token)
        print(f"token id {issued.id} for user {issued.user}; it is shown only this once", file=sys.stderr)
    elif command == "token" and args.action == "revoke":
        info = users.revoke_token(args.id)
        print(f"revoked token {info.id} ({info.prefix}…) of user {info.user}")
    elif command == "token" and args.action == "list":
        for info in users.list_tokens(args.user):
            state = "revoked" if info.revoked_at else "active"
            used = info.last_used_at.isoformat() if info.last_used_at else "never"
            print(f"{info.id}\t{info.user}\t{info.prefix}…\t{state}\tlast used {used}")
    return 0


def _describe(exc: BaseException) -> str:
    from sqlalchemy.exc import SQLAlchemyError

    from .service import ServiceError
    from .store.secrets import SecretKeyError

    if isinstance(exc, (ServiceError,)):
        return exc.message
    if isinstance(exc, (SecretKeyError, CliError)):
        return str(exc)
    if isinstance(exc, SQLAlchemyError):
        reason = getattr(exc, "orig", None)
        detail = reason.args[-1] if reason is not None and getattr(reason, "args", None) else type(exc).__name__
        return f"database error: {detail}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if getattr(exc, "filename", None) else "")
    return f"unexpected {type(exc).__name__}: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every failure ends as one line, never a traceback
        print(f"monitors-mcp: error: {_describe(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
