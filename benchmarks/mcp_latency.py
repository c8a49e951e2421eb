"""Latency of the MCP server: ``create_alert_rule`` and ``list_alerts`` with 100,000 alerts in the table.

    .venv/bin/python -m benchmarks.mcp_latency                 # both parts, print the tables
    .venv/bin/python -m benchmarks.mcp_latency --write-docs    # also update docs/benchmarks.md
    .venv/bin/python -m benchmarks.mcp_latency --parts http --replicas 1,3 --clients 1,10,50

Two parts:

- ``stdio``: one client, the server as a subprocess (``python -m monitors_mcp``) driven by
  the SDK's stdio client, on SQLite and MariaDB;
- ``http``: 1, 10 and 50 concurrent SDK clients over streamable HTTP against 1 and 3
  ``monitors-mcp serve --http --stateless`` processes on MariaDB and Redis, behind a
  round-robin TCP proxy on 127.0.0.1 (``tests/support/round_robin.py``): p50/p99 per call
  as each client sees it, and calls per second over the whole run.

Every figure includes JSON-RPC framing, argument validation, the service layer and the
database round trips (over HTTP also the bearer-token check and the per-user limit in
Redis). MariaDB is the test server (see ``tests/support/mariadb.py``), in databases made
for the run; Redis the one ``tests/support/redis_server.py`` finds or starts.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402

from monitors_mcp.service import UserService  # noqa: E402
from monitors_mcp.store import Alert, Database, Rule  # noqa: E402

SECTION = "## MCP server latency"
HTTP_SECTION = "## MCP server over HTTP: replicas and concurrent clients"
RULE = 'last(crypto.price{symbol="BTC"}) > 70000'


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def seed(db: Database, user: str, alerts: int, rules: int = 20) -> None:
    """``alerts`` alerts for ``user`` over ``rules`` rules, one a minute going back in time."""
    user_id = UserService(db).ensure_user(user)
    now = datetime.now(UTC)
    with db.session() as session:
        made = [
            Rule(owner_id=user_id, name=f"seed_{i}", live_name=f"seed_{i}", text=RULE, canonical=RULE + "\n",
                 created_at=now, updated_at=now)
            for i in range(rules)
        ]
        session.add_all(made)
        session.flush()
        rule_ids = [r.id for r in made]
    table = Alert.__table__
    batch = []
    with db.engine.begin() as conn:
        for i in range(alerts):
            labels = {"symbol": "BTC", "exchange": f"x{i % 7}"}
            batch.append(
                {
                    "rule_id": rule_ids[i % rules],
                    "owner_id": user_id,
                    "series_key": hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest(),
                    "labels": labels,
                    "severity": "critical",
                    "state": "resolved" if i % 10 else "firing",
                    "started_at": now - timedelta(minutes=i),
                    "resolved_at": now - timedelta(minutes=i) + timedelta(seconds=30) if i % 10 else None,
                    "values_at_start": {"last": 70000.0 + i},
                }
            )
            if len(batch) == 5000:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
    # Refresh the optimizer's statistics, as the database does by itself some time after a bulk load.
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE TABLE alerts, rules" if db.dialect == "mysql" else "ANALYZE")


async def measure(url: str, user: str, calls: int) -> dict[str, list[float]]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "monitors_mcp"],
        env={
            "MONITORS_DATABASE_URL": url,
            "MONITORS_USER": user,
            "MONITORS_SECRET_KEY": Fernet.generate_key().decode(),
            "PYTHONPATH": str(ROOT),
        },
        cwd=str(ROOT),
    )
    samples: dict[str, list[float]] = {"create_alert_rule": [], "list_alerts": [], "list_alerts (state=firing, page 2)": []}
    async with Client(params) as client:
        for i in range(5):  # warm up: imports, caches, connection pool
            await client.call_tool("list_alerts", {})
            await client.call_tool("create_alert_rule", {"rule": RULE, "name": f"warm_{i}"})
        for i in range(calls):
            start = time.perf_counter()
            result = await client.call_tool("create_alert_rule", {"rule": RULE, "name": f"bench_{i}"})
            samples["create_alert_rule"].append(time.perf_counter() - start)
            assert not result.is_error, result.content

            start = time.perf_counter()
            page = await client.call_tool("list_alerts", {"limit": 50})
            samples["list_alerts"].append(time.perf_counter() - start)
            assert len(page.structured_content["alerts"]) == 50

            start = time.perf_counter()
            second = await client.call_tool(
                "list_alerts", {"state": "firing", "limit": 50, "cursor": page.structured_content["next_cursor"]}
            )
            samples["list_alerts (state=firing, page 2)"].append(time.perf_counter() - start)
            assert not second.is_error
    return samples


def run_backend(name: str, alerts: int, calls: int) -> dict[str, list[float]] | None:
    if name == "sqlite":
        tmp = tempfile.mkdtemp(prefix="monitors-bench-")
        url = f"sqlite:///{tmp}/bench.db"
    else:
        from tests.support import mariadb

        base = mariadb.server_url()
        if base is None:
            print("MariaDB is not reachable; run `python -m tests.support.mariadb ensure` first", file=sys.stderr)
            return None
        url = mariadb.database_url(base, "monitors_bench")
    db = Database(url)
    db.migrate()
    started = time.perf_counter()
    seed(db, "bench", alerts)
    print(f"{name}: seeded {alerts:,} alerts in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    db.dispose()
    return asyncio.run(measure(url, "bench", calls))


def table(results: dict[str, dict[str, list[float]]], alerts: int, calls: int) -> str:
    lines = [
        SECTION,
        "",
        f"`benchmarks/mcp_latency.py`: the server as a stdio subprocess driven by the MCP SDK's client, "
        f"{alerts:,} alerts of the calling user in the table, {calls} calls of each kind after a warm-up; "
        "wall time per call as the client sees it (JSON-RPC over pipes, validation, service, database).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d}; load average {os.getloadavg()[0]:.1f} at the end of the run "
        "(other work was running: read the figures as upper bounds).",
        "",
        "| backend | call | p50 (ms) | p99 (ms) | mean (ms) |",
        "|---|---|---:|---:|---:|",
    ]
    for backend, samples in results.items():
        for call, values in samples.items():
            ms = [v * 1000 for v in values]
            lines.append(
                f"| {backend} | `{call}` | {_percentile(ms, 0.5):.1f} | {_percentile(ms, 0.99):.1f} | "
                f"{statistics.fmean(ms):.1f} |"
            )
    lines += [
        "",
        "`list_alerts` is one indexed range scan (`owner_id, started_at, id`, or `owner_id, state, started_at, id` "
        "with a state filter) whatever the table size; `create_alert_rule` parses and checks the rule, then "
        "writes one row in one transaction. Part of each figure is the client's own check of the "
        "result against the tool's output schema (measured alone: about 25 ms for a page of 50 alerts). The table "
        "statistics are refreshed after the bulk load (`ANALYZE`), as the database does by itself soon after. "
        "The page is read from the alerts table alone and the names of its rules looked up after: with the "
        "rules joined into the page query, MariaDB's optimizer started from the user's rules and sorted all "
        "100,000 alerts for every page (about 350 ms in the database; the previous run of this table had "
        "`list_alerts` p50 at 84.5 ms on MariaDB and 147 ms on SQLite); now the query takes under 1 ms and "
        "the rest is the server's and the client's work.",
        "",
    ]
    return "\n".join(lines)


def write_docs(section: str, heading: str = SECTION) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if heading in text:
        head, _, rest = text.partition(heading)
        following = rest.find("\n## ")
        tail = rest[following + 1:] if following >= 0 else ""
        text = head + section + ("\n" + tail if tail else "")
    elif heading != SECTION and SECTION in text:  # a new section goes right after the stdio one
        head, _, rest = text.partition(SECTION)
        following = rest.find("\n## ")
        if following >= 0:
            text = head + SECTION + rest[:following + 1] + section + "\n" + rest[following + 1:]
        else:
            text = head + SECTION + rest.rstrip("\n") + "\n\n" + section
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,mariadb")
    parser.add_argument("--parts", default="stdio,http")
    parser.add_argument("--replicas", default="1,3")
    parser.add_argument("--clients", default="1,10,50")
    parser.add_argument("--http-calls", type=int, default=400, help="calls of each kind per configuration")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",")}
    if "stdio" in parts:
        results = {}
        for backend in args.backends.split(","):
            samples = run_backend(backend.strip(), args.alerts, args.calls)
            if samples is not None:
                results[backend.strip()] = samples
        section = table(results, args.alerts, args.calls)
        print(section)
        if args.write_docs:
            write_docs(section)
    if "http" in parts:
        from benchmarks import mcp_http

        section = mcp_http.run(alerts=args.alerts, replicas=[int(r) for r in args.replicas.split(",")],
                               clients=[int(c) for c in args.clients.split(",")], calls=args.http_calls)
        print(section)
        if args.write_docs:
            write_docs(section, HTTP_SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
