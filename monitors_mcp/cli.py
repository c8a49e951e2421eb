"""The ``monitors-mcp`` command.

    monitors-mcp                         serve over stdio as the local user (Claude Desktop)
    monitors-mcp serve --http [--host H] [--port P] [--stateless] [--oauth-issuer URL --oauth-jwks-url URL]
                                         serve streamable HTTP; every request needs a bearer token
    monitors-mcp user add NAME | user list | user disable NAME | user enable NAME
    monitors-mcp user delete NAME --yes  removes the user's rules, alerts, channels and tokens
    monitors-mcp token create USER [--expires 30d] [--read-only]
                                         prints the new token once
    monitors-mcp token revoke ID | token list [USER]
    monitors-mcp channel list USER       a user's notification channels with their policies
    monitors-mcp channel add USER NAME URL [--group-by L,…] [--group-wait D] [--group-interval D]
                                         [--mute-during WINDOW]   (URL "-": read it from stdin)
    monitors-mcp channel update USER NAME [--url URL] [policy options; "" restores a default]
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
DATA_SOURCE_HELP = """\
data source (describe_data, names checked against the data, preview_alert_rule; needs the [engine] extra:
pip install "monitors-mcp[engine]"), read from the environment:
  MONITORS_ENGINE_DATA_DIR   a directory of <measurement>.csv / .parquet files (the embedded source)
  INFLUXDB3_HOST             InfluxDB 3, e.g. http://localhost:8181 (used when no data directory is set)
  INFLUXDB3_DATABASE         its database
  INFLUXDB3_AUTH_TOKEN       its token (may be empty for a server without authentication)
Without one, rules are stored with their names unchecked, and the tools that need data say what to set."""


class CliError(Exception):
    """A failure to report as one line."""


def _whole(low: int, high: int, what: str):  # noqa: ANN202
    """An argparse type: a whole number from ``low`` to ``high`` (argparse answers anything else with exit 2)."""

    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= 19) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not {what}: give a whole number from {low} to {high:,}")
        return int(text)

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitors-mcp", description="Alert rules for time series, over MCP.",
                                     epilog=DATA_SOURCE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: $MONITORS_DATABASE_URL or SQLite in the data dir)")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the MCP server (stdio unless --http)")
    serve.add_argument("--http", action="store_true", help="streamable HTTP with bearer-token auth")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_whole(1, 65_535, "a TCP port"), default=8000)
    serve.add_argument("--user", help=f"stdio only: act as this user (default ${LOCAL_USER_ENV} or 'local')")
    _http_arguments(serve)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    user.add_parser("add", help="add a user").add_argument("name")
    user.add_parser("list", help="list users: state, live rules, active tokens")
    user.add_parser("disable", help="refuse the user's tokens and stop evaluating their rules").add_argument("name")
    user.add_parser("enable", help="undo `user disable`").add_argument("name")
    delete = user.add_parser("delete", help="delete the user with their rules, alerts, channels and tokens")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="really delete (without it: say what would go)")

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="action", required=True)
    create = token.add_parser("create", help="create a token for USER (printed once)")
    create.add_argument("user")
    create.add_argument("--expires", metavar="DURATION", help="lifetime such as 12h, 30d or 52w (default: never)")
    create.add_argument("--read-only", action="store_true", help="the token lists and calls only the tools that read")
    token.add_parser("revoke", help="revoke the token with this id").add_argument(
        "id", type=_whole(1, 2**63 - 1, "a token id (token list shows them)"))
    token.add_parser("list", help="list tokens (never the tokens themselves)").add_argument("user", nargs="?")

    channel = sub.add_parser("channel", help="a user's notification channels").add_subparsers(dest="action",
                                                                                               required=True)
    channel.add_parser("list", help="list USER's channels with their policies").add_argument("user")
    add = channel.add_parser("add", help="add a channel for USER")
    add.add_argument("user")
    add.add_argument("name")
    add.add_argument("url", help='one apprise URL; "-" reads it from stdin (kept out of the shell history)')
    _policy_arguments(add)
    change = channel.add_parser("update", help="change a channel's URL or policies")
    change.add_argument("user")
    change.add_argument("name")
    change.add_argument("--url", help='a new apprise URL; "-" reads it from stdin')
    _policy_arguments(change)

    sub.add_parser("migrate", help="create or upgrade the database schema")
    return parser


def _policy_arguments(parser: argparse.ArgumentParser) -> None:
    policies = parser.add_argument_group("channel policies (an empty value restores the default)")
    policies.add_argument("--group-by", metavar="LABELS",
                          help="comma-separated label names (rule: the rule's name); one message per group")
    policies.add_argument("--group-wait", metavar="DURATION", help="a new group waits this long (0s to 1h; 30s)")
    policies.add_argument("--group-interval", metavar="DURATION",
                          help="a group already sent waits this long (10s to 24h, at least group-wait; 5m)")
    policies.add_argument("--mute-during", metavar="WINDOW",
                          help="""a time window sending nothing, e.g. 'sat-sun in "Europe/Paris"'""")
    policies.add_argument("--group-title", metavar="TEMPLATE", help="the group message's title template")
    policies.add_argument("--group-message", metavar="TEMPLATE", help="the group message's body template")


def _policies(args: argparse.Namespace) -> dict | None:
    """The policy options given, an empty value as null (the default)."""
    keys = ("group_by", "group_wait", "group_interval", "mute_during", "group_title", "group_message")
    given = {key: getattr(args, key) for key in keys if getattr(args, key) is not None}
    return {key: (value if value.strip() else None) for key, value in given.items()} or None


def _url(text: str | None) -> str | None:
    if text == "-":
        return sys.stdin.readline().strip()
    return text


def _channel_line(channel) -> str:  # noqa: ANN001 - a ChannelOut
    policies = channel.policies
    parts = [f"group by {','.join(policies['group_by'])} wait {policies['group_wait']} "
             f"interval {policies['group_interval']}" if policies["group_by"] else "no grouping"]
    if policies["mute_during"]:
        parts.append(f"muted {policies['mute_during']}")
    if policies.get("group_title") or policies.get("group_message"):
        parts.append("own group templates")
    return f"{channel.name}\t{channel.scheme}\t{channel.service or '-'}\t{channel.host or '-'}\t{'; '.join(parts)}"


def _channels(db, args: argparse.Namespace) -> None:  # noqa: ANN001
    from .service import ChannelService
    from .service.users import UserService
    from .store.secrets import load_secret_box

    channels = ChannelService(db, UserService(db).user_id(args.user), load_secret_box())
    if args.action == "list":
        for out in channels.list().channels:
            print(_channel_line(out))
    elif args.action == "add":
        out = channels.add(args.name, _url(args.url), _policies(args))
        print(f"added channel {_channel_line(out)}")
    else:
        out = channels.update(args.name, _url(args.url), _policies(args))
        print(f"updated channel {_channel_line(out)}")


def _http_arguments(serve: argparse.ArgumentParser) -> None:
    env = os.environ.get
    http = serve.add_argument_group("HTTP transport (with --http)")
    http.add_argument("--public-url", default=env("MONITORS_PUBLIC_URL"),
                      help="the URL clients reach /mcp at, e.g. https://monitors.example.com/mcp "
                           "($MONITORS_PUBLIC_URL; default http://HOST:PORT/mcp)")
    http.add_argument("--stateless", action="store_true", default=env("MONITORS_HTTP_STATELESS") == "1",
                      help="serve every request on its own, for replicas behind one address "
                           "($MONITORS_HTTP_STATELESS=1)")
    http.add_argument("--redis-url", default=env("MONITORS_REDIS_URL"),
                      help="Redis for per-user limits shared by replicas ($MONITORS_REDIS_URL)")
    oauth = serve.add_argument_group("OAuth resource-server mode (JWTs from an external authorization server)")
    oauth.add_argument("--oauth-issuer", default=env("MONITORS_OAUTH_ISSUER"),
                       help="the authorization server's issuer; tokens' iss must equal it ($MONITORS_OAUTH_ISSUER)")
    oauth.add_argument("--oauth-jwks-url", default=env("MONITORS_OAUTH_JWKS_URL"),
                       help="where its signing keys are ($MONITORS_OAUTH_JWKS_URL)")
    oauth.add_argument("--oauth-audience", default=env("MONITORS_OAUTH_AUDIENCE"),
                       help="what tokens' aud must contain ($MONITORS_OAUTH_AUDIENCE; default the public URL)")
    oauth.add_argument("--oauth-user-claim", default=env("MONITORS_OAUTH_USER_CLAIM") or "sub",
                       help="the claim naming the user ($MONITORS_OAUTH_USER_CLAIM; default sub)")
    oauth.add_argument("--oauth-write-scope", default=env("MONITORS_OAUTH_WRITE_SCOPE"),
                       help="a token without this scope is read-only ($MONITORS_OAUTH_WRITE_SCOPE; "
                            "default: every valid token may write)")


def _http_settings(args: argparse.Namespace):  # noqa: ANN202
    from .auth import OAuthConfig
    from .http_app import HttpSettings

    from .concurrency import call_limits_from_env

    from .server.sessions import session_limits_from_env
    from .service.limits import preview_bounds
    from .service.quotas import Quotas

    try:
        call_limits_from_env(None)  # the limits' settings, checked before anything starts
        session_limits_from_env()
        preview_bounds()
        Quotas.from_env()
    except ValueError as error:
        raise CliError(str(error)) from None
    settings = HttpSettings(host=args.host, port=args.port, public_url=args.public_url,
                            stateless=args.stateless, redis_url=args.redis_url)
    if args.oauth_issuer or args.oauth_jwks_url:
        if not (args.oauth_issuer and args.oauth_jwks_url):
            raise CliError("OAuth resource-server mode needs both --oauth-issuer and --oauth-jwks-url")
        try:
            oauth = OAuthConfig(issuer=args.oauth_issuer, jwks_url=args.oauth_jwks_url,
                                audience=args.oauth_audience or settings.resource_url,
                                user_claim=args.oauth_user_claim, write_scope=args.oauth_write_scope or None)
        except ValueError as error:
            raise CliError(str(error)) from None
        settings = HttpSettings(**{**settings.__dict__, "oauth": oauth})
    return settings


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
    users = UserService(db)
    user_id = users.ensure_user(name)
    if users.is_disabled(user_id):
        raise CliError(f"user {name!r} is disabled; `monitors-mcp user enable {name}` lets them in again")
    server = build_server(db, load_secret_box(), fixed_user(user_id))
    server.run("stdio")


def _serve_http(db, args: argparse.Namespace) -> None:  # noqa: ANN001
    from .http_app import serve_http
    from .store.secrets import load_secret_box

    serve_http(db, load_secret_box(), _http_settings(args))


def _run(args: argparse.Namespace) -> int:
    from .service import UserService

    command = args.command or "serve"
    db = _open_database(args.database_url)
    if command == "serve":
        if getattr(args, "http", False):
            _serve_http(db, args)
        else:
            _serve_stdio(db, getattr(args, "user", None))
        return 0
    if command == "migrate":
        print("database schema is up to date")
        return 0
    if command == "channel":
        _channels(db, args)
        return 0
    users = UserService(db)
    if command == "user" and args.action == "add":
        user_id = users.add_user(args.name)
        print(f"added user {args.name} (id {user_id})")
    elif command == "user" and args.action == "list":
        for info in users.describe_users():
            state = "disabled" if info.disabled_at else "active"
            origin = f"\tfrom {info.issuer}" if info.issuer else ""
            print(f"{info.id}\t{info.name}\t{state}\t{info.rules} rules\t{info.tokens} tokens{origin}")
    elif command == "user" and args.action in ("disable", "enable"):
        changed = users.set_disabled(args.name, args.action == "disable")
        state = "disabled" if args.action == "disable" else "enabled"
        if changed and args.action == "disable":
            print(f"disabled user {args.name}: their tokens are refused and their rules are not evaluated")
        else:
            print(f"user {args.name} is {state}" if changed else f"user {args.name} was already {state}")
    elif command == "user" and args.action == "delete":
        counts = users.footprint(args.name) if not args.yes else users.delete_user(args.name)
        what = (f"{counts.rules} rules, {counts.alerts} alerts, {counts.channels} notification channels, "
                f"{counts.silences} silences and {counts.tokens} tokens")
        if not args.yes:
            print(f"monitors-mcp: deleting user {args.name} would remove {what}; nothing was deleted. "
                  f"Run `monitors-mcp user delete {args.name} --yes` to delete.", file=sys.stderr)
            return 2
        print(f"deleted user {args.name} with {what}")
    elif command == "token" and args.action == "create":
        expires = _duration(args.expires) if args.expires else None
        issued = users.create_token(args.user, expires_in=expires, read_only=args.read_only)
        print(issued.token)
        details = [f"token id {issued.id} for user {issued.user}"]
        if issued.read_only:
            details.append("read-only")
        details.append(f"expires {_when(issued.expires_at)}" if issued.expires_at else "never expires")
        print("; ".join(details) + "; it is shown only this once", file=sys.stderr)
    elif command == "token" and args.action == "revoke":
        info = users.revoke_token(args.id)
        print(f"revoked token {info.id} ({info.prefix}…) of user {info.user}")
    elif command == "token" and args.action == "list":
        for info in users.list_tokens(args.user):
            access = "read-only" if info.read_only else "read-write"
            expires = f"expires {_when(info.expires_at)}" if info.expires_at else "never expires"
            used = _when(info.last_used_at) if info.last_used_at else "never"
            print(f"{info.id}\t{info.user}\t{info.prefix}…\t{info.state()}\t{access}\t{expires}\tlast used {used}")
    return 0


def _duration(text: str):  # noqa: ANN202
    from .service.times import parse_duration

    return parse_duration("--expires", text)


def _when(moment) -> str:  # noqa: ANN001
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


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
        from .service import InvalidInput

        return 2 if isinstance(exc, InvalidInput) else 1  # a bad value, as argparse answers bad flags


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
