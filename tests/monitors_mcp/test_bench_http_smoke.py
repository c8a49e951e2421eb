"""The HTTP benchmark runs end to end at a tiny size (two replicas, two clients): every call
succeeds and the table has its figures."""

from __future__ import annotations

import os

import pytest

from tests.support import redis_server

from tests.support.store import mysql_base_url

pytestmark = pytest.mark.mysql


def test_the_http_benchmark_runs_small() -> None:
    from benchmarks import mcp_http

    mysql_base_url()  # fails (or skips outside the full suite) without MariaDB
    if redis_server.server_url() is None and os.environ.get("MONITORS_REQUIRE_REDIS") == "1":
        pytest.fail("Redis is not reachable")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    section = mcp_http.run(alerts=60, replicas=[2], clients=[2], calls=4, database=f"mt_bench_http_{worker}")
    (row,) = [line for line in section.splitlines() if line.startswith("| 2 | 2 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 7 and "failed" not in row
    assert float(cells[4]) > 0  # calls per second
