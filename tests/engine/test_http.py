"""The health server, readiness, metrics and JSON logs, in process."""

from __future__ import annotations

import io
import json
import logging

from engine.http import HealthServer, Readiness
from engine.logs import protect_secrets, setup_logging
from engine.metrics import EngineMetrics
from engine.runner import TickReport
from tests.support.engine_process import http_get


class FakeLeases:
    loaded, total, replicas, held, free_left, lease_duration = True, 4, 2, frozenset({1, 2}), 0, 30.0
    takeovers, released, discarded, last_error = 3, 1, 0, None
    rules = None

    def __init__(self) -> None:
        import time

        self.last_renewal = time.monotonic()


def test_endpoints_answer_and_readiness_says_what_is_not_ready() -> None:
    broken = {"store": False}

    def store() -> None:
        if broken["store"]:
            raise OSError("connection refused")

    readiness = Readiness(store=store, source=lambda: None, leases=FakeLeases())
    metrics = EngineMetrics()
    metrics.bind_leases(readiness.leases)
    server = HealthServer("127.0.0.1", 0, readiness=readiness, metrics=metrics)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert http_get(base + "/healthz") == (200, '{"status": "alive"}\n')
        assert http_get(base + "/readyz")[0] == 503  # not checked yet
        readiness.run_check("store"), readiness.run_check("source")
        status, body = http_get(base + "/readyz")
        assert status == 200 and json.loads(body)["leases"] == "2 held of 4 (2 replicas)"
        broken["store"] = True
        readiness.run_check("store")
        status, body = http_get(base + "/readyz")
        assert status == 503 and json.loads(body)["store"] == "connection refused"
        metrics.observe_tick(TickReport(at=None, rules=5, queries=2, transitions=3, seconds=0.2, lag=0.5))
        text = http_get(base + "/metrics")[1]
        for line in ('monitors_engine_evaluations_total{result="ok"} 5.0', "monitors_engine_queries_total 2.0",
                     "monitors_engine_rules_held 2.0", "monitors_engine_lease_takeovers_total 3.0",
                     "monitors_engine_state_changes_total 3.0", "monitors_engine_tick_lag_seconds 0.5",
                     "monitors_engine_evaluation_duration_seconds_count 1.0"):
            assert line in text
        assert http_get(base + "/nope")[0] == 404
        readiness.stopping = True
        assert json.loads(http_get(base + "/readyz")[1])["stopping"] is True
    finally:
        server.stop()


def test_json_logs_mask_the_database_password_and_tokens() -> None:
    stream = io.StringIO()
    setup_logging("info", "json", replica="engine-7", stream=stream)
    try:
        protect_secrets("mysql+pymysql://monitors:db-pa55word@db/monitors", ["influx-t0ken-123"])
        log = logging.getLogger("engine.test")
        log.info("connecting to %s with %s", "mysql+pymysql://monitors:db-pa55word@db/monitors", "influx-t0ken-123",
                 extra={"event": "probe"})
        try:
            raise RuntimeError("failed: token influx-t0ken-123")
        except RuntimeError:
            log.exception("boom")
    finally:
        setup_logging("warning", "text")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["replica"] == "engine-7" and lines[0]["event"] == "probe" and lines[0]["level"] == "info"
    text = stream.getvalue()
    assert "db-pa55word" not in text and "influx-t0ken-123" not in text
    assert "monitors:***@db" in lines[0]["message"] and "RuntimeError" in lines[1]["error"]
