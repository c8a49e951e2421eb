"""The HTTP part of ``benchmarks/mcp_latency.py``: concurrent SDK clients against stateless
server replicas on MariaDB and Redis, behind a round-robin TCP proxy on 127.0.0.1.

For each replica count the servers are started as ``monitors-mcp serve --http --stateless``
processes; for each client count that many SDK clients (one process, one HTTP connection
each, kept alive) each run the same share of ``create_alert_rule`` and ``list_alerts``
(a page of 50 of the 100,000 alerts) back to back after a warm-up. Reported: p50 and p99 per
call as the clients see it, calls per second over the run, and the CPU time spent per call
by the servers (all replicas, from /proc) and by the client process, which say where the
two cores of this machine went.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from monitors_mcp.service import UserService  # noqa: E402
from monitors_mcp.store import Database  # noqa: E402

__all__ = ["run"]

RULE = 'last(crypto.price{symbol="BTC"}) > 70000'
HEADING = "## MCP server over HTTP: replicas and concurrent clients"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Servers:
    def __init__(self, count: int, db_url: str, redis_url: str, workdir: Path) -> None:
        self.ports = [_free_port() for _ in range(count)]
        self.workdir = workdir
        self.env = {**os.environ, "MONITORS_DATABASE_URL": db_url, "MONITORS_SECRET_KEY": Fernet.generate_key().decode(),
                    "MONITORS_DATA_DIR": str(workdir), "PYTHONPATH": str(ROOT),
                    "MONITORS_REDIS_PREFIX": f"monitors-bench:{uuid.uuid4().hex[:8]}:",
                    # one user runs every client here: the per-user limit would refuse most calls
                    "MONITORS_MAX_CONCURRENT_CALLS": "1000", "MONITORS_MAX_CONCURRENT_RULE_CHECKS": "1000",
                    # every configuration creates hundreds of rules for the same user
                    "MONITORS_MAX_RULES_PER_USER": "1000000"}
        self.redis_url = redis_url
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Servers:
        for i, port in enumerate(self.ports):
            log = (self.workdir / f"server-{port}.log").open("w")
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "monitors_mcp", "serve", "--http", "--stateless", "--host", "127.0.0.1",
                 "--port", str(port), "--redis-url", self.redis_url],
                env=self.env, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        for port, proc in zip(self.ports, self.procs):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"server on port {port} did not start") from None
                    time.sleep(0.1)
        return self

    def cpu(self) -> float:
        return sum(_cpu_seconds(p.pid) for p in self.procs)

    def rss(self) -> list[float]:
        return [_rss_mb(p.pid) for p in self.procs]

    def __exit__(self, *_: object) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _clients(url: str, token: str, clients: int, iterations: int, tag: str) -> dict:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    samples: dict[str, list[float]] = {"create_alert_rule": [], "list_alerts": []}
    errors = 0
    codes: Counter[str] = Counter()
    start = asyncio.Event()
    ready = 0

    async def one(k: int) -> None:
        nonlocal errors, ready
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                                      timeout=httpx2.Timeout(60, read=120)) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                for i in range(2):  # warm-up: this client's connection, the server's caches
                    await client.call_tool("list_alerts", {"limit": 50})
                ready += 1
                await start.wait()
                for i in range(iterations):
                    began = time.perf_counter()
                    created = await client.call_tool("create_alert_rule", {"rule": RULE, "name": f"{tag}_{k}_{i}"})
                    samples["create_alert_rule"].append(time.perf_counter() - began)
                    began = time.perf_counter()
                    page = await client.call_tool("list_alerts", {"limit": 50})
                    samples["list_alerts"].append(time.perf_counter() - began)
                    if created.is_error or page.is_error or len(page.structured_content["alerts"]) != 50:
                        errors += 1
                        failed = created if created.is_error else page
                        codes[(failed.structured_content or {}).get("code", "?")] += 1

    tasks = [asyncio.create_task(one(k)) for k in range(clients)]
    while ready < clients:
        if any(t.done() for t in tasks):
            await asyncio.gather(*tasks)  # raises the failure
        await asyncio.sleep(0.02)
    cpu_before = time.process_time()
    began = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - began
    if errors:
        print(f"http: {errors} calls failed: {dict(codes)}", file=sys.stderr)
    return {"samples": samples, "wall": wall, "errors": errors, "client_cpu": time.process_time() - cpu_before}


def run(*, alerts: int, replicas: list[int], clients: list[int], calls: int,
        database: str = "monitors_bench_http") -> str:
    from benchmarks.mcp_latency import seed
    from tests.support import mariadb, redis_server
    from tests.support.round_robin import RoundRobinProxy

    base = mariadb.server_url()
    if base is None:
        raise SystemExit("MariaDB is not reachable; run `python -m tests.support.mariadb ensure` first")
    db_url = mariadb.database_url(base, database)
    db = Database(db_url)
    db.migrate()
    started = time.perf_counter()
    seed(db, "bench", alerts)
    print(f"http: seeded {alerts:,} alerts in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    token = UserService(db).create_token("bench").token
    db.dispose()
    redis_url = redis_server.ensure()
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="monitors-bench-http-"))
    for count in replicas:
        with Servers(count, db_url, redis_url, workdir) as servers, \
                RoundRobinProxy([("127.0.0.1", p) for p in servers.ports]) as proxy:
            url = f"http://127.0.0.1:{proxy.port}/mcp"
            for c in clients:
                iterations = max(2, math.ceil(calls / c))
                cpu_before = servers.cpu()
                result = asyncio.run(_clients(url, token, c, iterations, f"b{count}x{c}"))
                server_cpu = servers.cpu() - cpu_before
                total = 2 * iterations * c
                rows.append({"replicas": count, "clients": c, "result": result, "server_cpu": server_cpu,
                             "calls": total, "rss": servers.rss()})
                print(f"http: {count} replica(s), {c} client(s): {total / result['wall']:.0f} calls/s, "
                      f"list_alerts p50 {_percentile(result['samples']['list_alerts'], 0.5) * 1000:.0f} ms",
                      file=sys.stderr)
    mariadb.drop_database(db_url)
    return _table(rows, alerts)


def _table(rows: list[dict], alerts: int) -> str:
    lines = [
        HEADING,
        "",
        "`benchmarks/mcp_latency.py --parts http`: N concurrent MCP SDK clients over streamable HTTP (one "
        "connection each, kept alive) against 1 or 3 `monitors-mcp serve --http --stateless` processes on "
        "MariaDB and Redis behind a round-robin TCP proxy on 127.0.0.1; every client calls `create_alert_rule` "
        f"and `list_alerts` (a page of 50 of the user's {alerts:,} alerts) in turn, back to back, after a warm-up. "
        "Latency per call as the client sees it; calls per second of both kinds together over the run; CPU "
        "milliseconds per call spent by all server processes and by the one client process.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared by the servers, MariaDB, Redis and the "
        f"clients, Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}; load average "
        f"{os.getloadavg()[0]:.1f} at the end of the run (other work was running: read the figures as upper bounds).",
        "",
        "| replicas | clients | `create_alert_rule` p50 / p99 (ms) | `list_alerts` p50 / p99 (ms) | calls/s | "
        "server CPU ms/call | client CPU ms/call |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        result = row["result"]
        create = [v * 1000 for v in result["samples"]["create_alert_rule"]]
        listed = [v * 1000 for v in result["samples"]["list_alerts"]]
        lines.append(
            f"| {row['replicas']} | {row['clients']} | {_percentile(create, 0.5):.0f} / {_percentile(create, 0.99):.0f} | "
            f"{_percentile(listed, 0.5):.0f} / {_percentile(listed, 0.99):.0f} | {row['calls'] / result['wall']:.0f} | "
            f"{row['server_cpu'] * 1000 / row['calls']:.1f} | {result['client_cpu'] * 1000 / row['calls']:.1f} |"
            + ("" if not result["errors"] else f" ({result['errors']} failed)"))
    rss = max((max(r["rss"]) for r in rows), default=float("nan"))
    lines += ["", f"Largest resident memory of a server process at the end: {rss:.0f} MB.", ""]
    at_ten = [r for r in rows if r["clients"] == 10]
    if at_ten:
        def cpu_ms(r: dict) -> float:  # server and client CPU per call
            return (r["server_cpu"] + r["result"]["client_cpu"]) * 1000 / r["calls"]

        def rate(r: dict) -> float:
            return r["calls"] / r["result"]["wall"]

        figures = "; ".join(
            f"{r['replicas']} replica{'s' if r['replicas'] > 1 else ''}: p50 "
            f"{_percentile(r['result']['samples']['list_alerts'], 0.5) * 1000:.0f} ms at {rate(r):.0f} calls/s — "
            f"10 clients waiting on each other's calls make {10 / rate(r) * 1000:.0f} ms a call — while the servers "
            f"and the client used {cpu_ms(r) * rate(r) / 1000:.2f} of the 2 CPUs"
            for r in at_ten)
        needed = 200 * statistics.median(cpu_ms(r) for r in at_ten) / 1000
        lines += [
            f"**Goal: `list_alerts` p50 under 50 ms at 10 concurrent clients — not met here** ({figures}). "
            "The database is not where the time goes: the page query reads 51 rows from an index in under 1 ms "
            "(see `tests/monitors_mcp/store/test_query_plans_mysql.py`). With clients that call back to back, latency is "
            "concurrency divided by throughput (Little's law), and throughput is the machine's CPU divided by "
            "the CPU a call costs: the server's share above (bearer-token lookup, the per-user slot in Redis, "
            "JSON-RPC and argument validation, the service and the ORM, the result's serialisation) plus the "
            "client's (mostly checking the result against the tool's output schema), plus MariaDB's and "
            "Redis's, all on the same 2 CPUs — of which the run got the fraction above, the rest going to "
            "other work on the machine. 50 ms at 10 concurrent clients needs 200 calls a second: at the CPU "
            f"a call costs here (server and client) that is {needed:.1f} cores, MariaDB's not counted — server "
            "replicas on cores of their own, which is what the replicas are for on a cluster (here they help "
            "only as far as the two shared CPUs allow). One client alone is the latency of a call without "
            "queueing.",
            "",
            "What was done about it: the page query no longer sorts the user's whole history (350 ms → under "
            "1 ms in the database, `tests/monitors_mcp/store/test_query_plans_mysql.py`), and the MySQL connection pool keeps "
            "20 connections instead of 5 (past the fifth concurrent call, every call opened a new connection "
            "with its TLS context — seen with a sampling profiler on a replica under 10 clients). What is left "
            "per call is CPU in Python: the SDK's request and result handling, the ORM, the bearer-token lookup "
            "(a query and a commit on every request, so that a revoked token or a disabled user is refused at "
            "once by every replica), and on the client side the check of each result against the tool's output "
            "schema. Not measured here: the same run on a machine where the benchmark has its CPUs to itself.",
            "",
        ]
    return "\n".join(lines)
