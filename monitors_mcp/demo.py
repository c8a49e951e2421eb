"""``monitors demo``: the whole product on embedded defaults, in under a minute.

A person says "alert me if Bitcoin goes above $70k". The demo creates that rule
through the same service the MCP tool ``create_alert_rule`` uses, in a fresh
SQLite store, with a notification channel pointing at a webhook sink it runs
on 127.0.0.1. It generates three hours of Bitcoin prices, runs the engine's
runner over that time minute by minute on the embedded DataFusion source,
dispatches the outbox through apprise to the sink, and prints the alert firing
and resolving, the messages the sink received, and what ``list_alerts`` answers.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["register", "run_demo", "RULE_TEXT", "WORDS"]

WORDS = "Alert me if Bitcoin goes above $70k"
RULE_TEXT = """rule btc_above_70k {
    when last(crypto.price{symbol="BTC"}) > 70000
    severity critical
    notify demo_webhook
    title "BTC above 70k"
    message "BTC is at {{ value | round(0) | int }} USD ({{ state }})"
}
"""
_INSTALL = 'install them with: pip install "monitors-mcp[engine]"'


def register(subparsers) -> None:
    """Adds ``monitors demo`` to the ``monitors`` command."""
    cmd = subparsers.add_parser(
        "demo", help="create a rule, run the engine over sample data, deliver an alert (embedded defaults)",
        description="Create 'alert me if Bitcoin goes above $70k' through the rule service, run the engine "
                    "over three hours of generated prices, deliver the notifications to a local webhook "
                    "and show what list_alerts answers. Needs no set-up; nothing is left behind.",
    )
    cmd.add_argument("--keep", metavar="DIR", help="keep the demo's database and data in DIR")
    cmd.set_defaults(handler=_cmd_demo)


def _cmd_demo(args) -> int:
    from monitors_dsl.cli import CommandError, UsageError

    from importlib.util import find_spec

    missing = [name for name in ("pyarrow", "datafusion", "apprise") if find_spec(name) is None]
    if missing:
        raise UsageError(f"`monitors demo` needs the engine's packages ({missing[0]}); {_INSTALL}")
    if args.keep:
        workdir = Path(args.keep)
        try:
            workdir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CommandError(f"{args.keep}: {error.strerror or error}") from None
        return run_demo(workdir)
    with tempfile.TemporaryDirectory(prefix="monitors-demo-") as tmp:
        return run_demo(Path(tmp))


class _Sink:
    """A webhook on 127.0.0.1 that keeps what it receives (apprise's json:// posts)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body or b"{}")
                except ValueError:
                    payload = {"body": body.decode("utf-8", "replace")}
                with sink.arrived:
                    sink.received.append(payload)
                    sink.arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/alerts"

    def __enter__(self) -> "_Sink":
        import os

        from .store.destinations import ALLOW_ENV

        # The demo's own webhook is local: allow it for the demo's run, as an operator would.
        self._allowed = os.environ.get(ALLOW_ENV)
        os.environ[ALLOW_ENV] = ",".join(filter(None, [self._allowed, "127.0.0.1"]))
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        import os

        from .store.destinations import ALLOW_ENV

        self.server.shutdown()
        self.server.server_close()
        if self._allowed is None:
            os.environ.pop(ALLOW_ENV, None)
        else:
            os.environ[ALLOW_ENV] = self._allowed


def _prices(start: datetime, minutes: int):
    """A Bitcoin price that climbs over 70,000 for about forty minutes, then falls back."""
    for minute in range(minutes):
        price = 67_500 + 3_500 * math.sin(math.pi * minute / 120) + 150 * math.sin(minute / 3)
        yield start + timedelta(minutes=minute), round(price, 2)


def run_demo(workdir: Path, out=None) -> int:
    """Runs the demo in ``workdir``; returns the exit code."""
    from cryptography.fernet import Fernet

    from .service import UserService, Workspace
    from .service.engine_link import engine_features
    from .store import Database
    from .store.secrets import SecretBox

    out = out or sys.stdout

    def say(text: str = "") -> None:
        out.write(text + "\n")
        out.flush()

    minutes = 180
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes - 1)
    rows = list(_prices(start, minutes))
    tables = {"crypto": {"time": [t for t, _ in rows], "symbol": ["BTC"] * len(rows), "price": [p for _, p in rows]}}
    with open(workdir / "crypto.csv", "w", encoding="utf-8") as handle:  # for `monitors backtest --data`
        handle.write("time,symbol,price\n")
        handle.writelines(f"{_iso(t)},BTC,{p}\n" for t, p in rows)

    db = Database(f"sqlite:///{workdir / 'monitors.db'}")
    db.migrate()
    secrets = SecretBox([Fernet.generate_key().decode()])
    user_id = UserService(db).ensure_user("demo")
    workspace = Workspace(db, user_id, secrets)

    with _Sink() as sink:
        say(f"A person says: “{WORDS}”")
        say("Claude writes the rule and calls create_alert_rule; the service checks and stores it:")
        say()
        workspace.channels.add("demo_webhook", sink.url)
        rule = workspace.rules.create(RULE_TEXT)
        for line in rule.canonical.rstrip("\n").splitlines():
            say("    " + line)
        say()
        say(f"The engine evaluates it every minute over {minutes // 60} hours of Bitcoin prices "
            f"({start:%H:%M}–{end:%H:%M} UTC) on the embedded DataFusion source:")
        say()
        prices = dict(rows)

        def on_tick(moment, errors, transitions, notifications) -> None:
            for rule_id, error in errors.items():
                say(f"    {moment:%H:%M}  error in rule {rule_id}: {error}")
            if transitions:
                state = "firing" if notifications and _last_kind(db, rule.id) == "firing" else "resolved"
                say(f"    {moment:%H:%M}  BTC {prices[moment]:>9,.2f}  →  {state}")

        engine_features().simulate(db, secrets, tables, [moment for moment, _ in rows], on_tick)
        with sink.arrived:
            sink.arrived.wait_for(lambda: len(sink.received) >= 2, timeout=10)
        say()
        say(f"The webhook received {len(sink.received)} notification{'s' * (len(sink.received) != 1)}:")
        for payload in sink.received:
            say(f"    {payload.get('title', '')}: {payload.get('message', payload.get('body', ''))}")
        say()
        say("“Show me recent alerts” — list_alerts answers:")
        page = workspace.alerts.list()
        for alert in page.alerts:
            record = {
                "id": alert.id, "rule": alert.rule_name, "state": alert.state, "severity": alert.severity,
                "started_at": _iso(alert.started_at), "resolved_at": _iso(alert.resolved_at),
                "values_at_start": alert.values_at_start, "values_at_resolution": alert.values_at_resolution,
            }
            say("    " + json.dumps(record, ensure_ascii=False))
    db.engine.dispose()
    delivered = len(sink.received) >= 2 and bool(page.alerts)
    say()
    say("Done: the rule fired, the message was delivered, and list_alerts shows the alert." if delivered
        else "The demo did not complete: see the messages above.")
    return 0 if delivered else 1


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _last_kind(db, rule_id: int) -> str:
    from sqlalchemy import select

    from .store import NotificationOutbox

    with db.session() as session:
        kind = session.scalars(select(NotificationOutbox.kind).where(NotificationOutbox.rule_id == rule_id)
                               .order_by(NotificationOutbox.id.desc()).limit(1)).first()
    return kind or ""
