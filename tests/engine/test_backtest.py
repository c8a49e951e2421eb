"""Backtests: the JSON shape, the chart, bad input, and that a backtest equals a live run."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from sqlalchemy import select

from engine.backtest import backtest
from engine.evaluate import Evaluator
from engine.repository import SqlRepository
from engine.rules import StoreRules, rules_from_text
from engine.runner import Runner
from engine.schedule import epoch_seconds, from_epoch, next_due
from engine.sources import DataFusionSource
from monitors_dsl.cli import main
from monitors_mcp.store import Alert, AlertEvent

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
RULES = """rule btc_above_70k {
    when last(crypto.price{symbol="BTC"}) > 70000
    severity critical
    title "BTC above 70k"
    message "BTC is at {{ value | round(0) }} USD"
}
rule falling {
    critical when last(crypto.price) < 3100
    warning when last(crypto.price) < 3300
    group by symbol
    for 5m
}
"""


def prices(minute: int) -> dict[str, float]:
    return {"BTC": 68000 + 4000 * math.sin(minute / 20), "ETH": 3500 - 3 * minute}


@pytest.fixture
def data_dir(tmp_path):
    with open(tmp_path / "crypto.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "symbol", "price"])
        for minute in range(180):
            at = (T0 + minute * MIN).isoformat().replace("+00:00", "Z")
            for symbol, price in prices(minute).items():
                writer.writerow([at, symbol, price])
    return tmp_path


def memory_source() -> DataFusionSource:
    source = DataFusionSource()
    rows = [(T0 + m * MIN, s, p) for m in range(180) for s, p in prices(m).items()]
    source.add_table("crypto", pa.table({"time": [r[0] for r in rows], "symbol": [r[1] for r in rows],
                                         "price": [r[2] for r in rows]}))
    return source


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_backtest_json_lists_transitions_and_rendered_notifications(tmp_path, data_dir, capsys):
    rules = tmp_path / "r.rules"
    rules.write_text(RULES)
    code, out, err = run_cli(capsys, "backtest", str(rules), "--data", str(data_dir), "--from", "2026-01-01T00:00:00Z",
                             "--to", "2026-01-01T03:00:00Z", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    btc, falling = report["rules"]
    assert btc["name"] == "btc_above_70k"
    # 68000 + 4000 sin(m/20) first exceeds 70000 at minute 11 (sin(0.55) = 0.5227 > 0.5) and drops back at 53.
    assert [(t["at"], t["from"], t["to"], t["severity"]) for t in btc["transitions"]][:2] == [
        ("2026-01-01T00:11:00Z", "inactive", "firing", "critical"),
        ("2026-01-01T00:53:00Z", "firing", "inactive", "critical")]
    first = btc["notifications"][0]
    assert (first["kind"], first["title"]) == ("firing", "BTC above 70k")
    assert first["message"] == f"BTC is at {round(prices(11)['BTC'])}.0 USD"
    resolved = btc["notifications"][1]
    assert resolved["kind"] == "resolved" and resolved["message"] == f"BTC is at {round(prices(53)['BTC'])}.0 USD"
    # ETH falls 3/minute: below 3300 from minute 67, pending for 5m, firing at 72; below 3100 from minute 134.
    eth = [(t["at"], t["from"], t["to"], t["severity"]) for t in falling["transitions"]]
    assert eth == [("2026-01-01T01:07:00Z", "inactive", "pending", "warning"),
                   ("2026-01-01T01:12:00Z", "pending", "firing", "warning"),
                   ("2026-01-01T02:14:00Z", "firing", "firing", "critical")]
    assert all(t["labels"] == {"symbol": "ETH"} for t in falling["transitions"])
    assert [n["kind"] for n in falling["notifications"]] == ["firing", "escalation"]


def test_backtest_text_and_chart(tmp_path, data_dir, capsys):
    rules = tmp_path / "r.rules"
    rules.write_text(RULES)
    chart = tmp_path / "chart.png"
    code, out, _ = run_cli(capsys, "backtest", str(rules), "--data", str(data_dir), "--from",
                           "2026-01-01T00:00:00Z", "--to", "2026-01-01T01:00:00Z", "--chart", str(chart))
    assert code == 0
    assert "inactive → firing (critical)" in out and "notify firing: BTC above 70k" in out
    assert "61 evaluations" in out  # 00:00 to 01:00, both ends included
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"], 2, "--to is before --from"),
    (["--from", "yesterday", "--to", "2026-01-01T00:00:00Z"], 2, "--from/--to"),
])
def test_backtest_usage_errors(tmp_path, data_dir, capsys, argv, code, message):
    rules = tmp_path / "r.rules"
    rules.write_text(RULES)
    result, _, err = run_cli(capsys, "backtest", str(rules), "--data", str(data_dir), *argv)
    assert result == code and message in err and "Traceback" not in err


def test_backtest_of_broken_rules_or_missing_data_is_one_clear_error(tmp_path, data_dir, capsys):
    broken = tmp_path / "broken.rules"
    broken.write_text("lats(crypto.price) > 1")
    code, _, err = run_cli(capsys, "backtest", str(broken), "--data", str(data_dir), "--from",
                           "2026-01-01T00:00:00Z", "--to", "2026-01-01T01:00:00Z")
    assert code == 1 and "unknown function `lats`" in err
    good = tmp_path / "r.rules"
    good.write_text(RULES)
    code, _, err = run_cli(capsys, "backtest", str(good), "--data", str(tmp_path / "nowhere"), "--from",
                           "2026-01-01T00:00:00Z", "--to", "2026-01-01T01:00:00Z")
    assert code == 1 and "nowhere" in err and "Traceback" not in err


def test_backtest_equals_a_live_run_on_the_store(db, workspace, alice):  # noqa: F811
    """The live runner on the store, ticked at the same times, records the same firing transitions."""
    start, end = T0, T0 + 180 * MIN
    source = memory_source()
    result = backtest(rules_from_text(RULES), source, start, end)
    expected = sorted((t.transition.at, t.transition.from_state, t.transition.to_state, t.transition.severity,
                       tuple(sorted(t.labels.items())))
                      for t in result.repository.transitions
                      if "firing" in (t.transition.from_state, t.transition.to_state))

    ws = workspace(alice)
    created = [ws.rules.create(block) for block in ("rule btc_above_70k {" + RULES.split("rule btc_above_70k {")[1]
                                                    .split("rule falling {")[0], "rule falling {"
                                                    + RULES.split("rule falling {")[1])]
    runner = Runner(StoreRules(db), SqlRepository(db), Evaluator(source))
    rules = runner.rules.current()
    cursor = epoch_seconds(start)
    while (due := next_due(rules, cursor)) is not None and due <= epoch_seconds(end):
        runner.tick(from_epoch(due))
        cursor = due
    with db.session() as s:
        events = s.execute(select(AlertEvent.at, AlertEvent.from_state, AlertEvent.to_state, AlertEvent.severity,
                                  Alert.labels)
                           .join(Alert, Alert.id == AlertEvent.alert_id)
                           .where(Alert.rule_id.in_([r.id for r in created]))).all()
    live = sorted((at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at, f, t, sev,
                   tuple(sorted((k, v) for k, v in labels.items() if k == "symbol")))
                  for at, f, t, sev, labels in events if "firing" in (f, t))
    expected = [(at, f, t, sev, tuple((k, v) for k, v in labels if k == "symbol")) for at, f, t, sev, labels in expected]
    assert live == expected
    assert len(expected) == 6  # BTC fires and resolves twice; ETH fires, then escalates
