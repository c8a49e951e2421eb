"""``monitors eval``: the values a person computes by hand, and one clear line for every kind of bad input."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from monitors_dsl.cli import main

from tests.support.influx_server import TOKEN

AT = "2024-05-01T12:00:00Z"

CRYPTO = """time,symbol,price
2024-05-01T11:00:00Z,ETH,9999
2024-05-01T11:00:30Z,ETH,3000
2024-05-01T11:30:00Z,ETH,2900
2024-05-01T11:59:00Z,ETH,2800
2024-05-01T11:55:00Z,BTC,1
2024-05-01T11:56:00Z,BTC,69000
2024-05-01T11:58:00Z,BTC,71000
2024-05-01T12:00:00Z,BTC,70500
2024-05-01T12:00:01Z,BTC,99999
"""

RULES = """
rule btc_high {
    when last(crypto.price{symbol="BTC"}) > 70000
    severity critical
}
rule eth_drop {
    when pct_change(crypto.price{symbol="ETH"}, 1h) < -5%
}
rule busy {
    when count(crypto.price, 5m) >= 3
    group by symbol
}
rule doge {
    when avg(crypto.price{symbol="DOGE"}) > 1
}
rule doge_gone {
    when absent(crypto.price{symbol="DOGE"}, 5m)
    severity info
}
rule btc_jumpy {
    critical when stddev(crypto.price{symbol="BTC"}) > 2000
    warning when stddev(crypto.price{symbol="BTC"}) > 1000
}
"""


@pytest.fixture
def data(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "crypto.csv").write_text(CRYPTO, encoding="utf-8")
    (tmp_path / "crypto.rules").write_text(RULES, encoding="utf-8")
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_holds_the_values_computed_by_hand(data, capsys):
    code, out, err = run(capsys, "eval", str(data / "crypto.rules"), "--data", str(data / "data"), "--at", AT,
                         "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    by_name = {rule["name"]: rule["series"] for rule in report["rules"]}
    assert list(by_name) == ["btc_high", "eth_drop", "busy", "doge", "doge_gone", "btc_jumpy"]
    # window (11:55, 12:00]: the 11:55 point is out, the 12:00 point in, 12:00:01 is after T
    assert by_name["btc_high"] == [{"labels": {}, "values": {'last(crypto.price{symbol="BTC"}, 5m)': 70500.0},
                                    "result": True, "severity": "critical"}]
    # window (11:00, 12:00]: first is 3000 (11:00:30), last 2800: (2800 - 3000) / 3000
    [eth] = by_name["eth_drop"]
    assert eth["values"]['pct_change(crypto.price{symbol="ETH"}, 1h)'] == pytest.approx(-200 / 3000, rel=1e-12)
    assert (eth["result"], eth["severity"]) == (True, "warning")
    # BTC has 3 points in (11:55, 12:00], ETH one
    assert by_name["busy"] == [
        {"labels": {"symbol": "BTC"}, "values": {"count(crypto.price, 5m)": 3}, "result": True, "severity": "warning"},
        {"labels": {"symbol": "ETH"}, "values": {"count(crypto.price, 5m)": 1}, "result": False, "severity": None},
    ]
    assert by_name["doge"] == [{"labels": {}, "values": {'avg(crypto.price{symbol="DOGE"}, 5m)': None},
                                "result": None, "severity": None}]
    assert by_name["doge_gone"] == [{"labels": {}, "values": {'absent(crypto.price{symbol="DOGE"}, 5m)': True},
                                     "result": True, "severity": "info"}]
    [jumpy] = by_name["btc_jumpy"]
    expected = statistics.stdev([69000, 71000, 70500])  # ≈ 1040.8
    assert jumpy["values"] == {'stddev(crypto.price{symbol="BTC"}, 5m)': pytest.approx(expected, rel=1e-12)}
    assert (jumpy["result"], jumpy["severity"]) == (True, "warning")


def test_text_is_a_table_per_rule(data, capsys):
    code, out, _ = run(capsys, "eval", str(data / "crypto.rules"), "--data", str(data / "data"), "--at", AT)
    assert code == 0
    blocks = out.strip().split("\n\n")
    assert len(blocks) == 6
    assert blocks[0].splitlines() == [
        "rule btc_high at 2024-05-01T12:00:00Z",
        '  last(crypto.price{symbol="BTC"}, 5m)  result  severity',
        "  70500                                 true    critical",
        "  2024-05-01T12:00:00Z  notify firing: [CRITICAL] btc_high is firing",  # no channel: recorded only
    ]
    assert blocks[2].splitlines()[1:] == [
        "  symbol  count(crypto.price, 5m)  result  severity",
        "  BTC     3                        true    warning",
        "  ETH     1                        false   -",
        "  2024-05-01T12:00:00Z  notify firing: [WARNING] busy is firing (symbol=BTC)  symbol=BTC",
    ]
    assert "no data" in blocks[3]


def test_offset_time_and_standard_input(data, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO('last(crypto.price{symbol="BTC"}) > 70000'))
    code, out, _ = run(capsys, "eval", "-", "--data", str(data / "data"), "--at", "2024-05-01T13:59:00+02:00",
                       "--format", "json")
    assert code == 0
    [rule] = json.loads(out)["rules"]
    [notification] = rule.pop("notifications")
    assert rule == {"name": None, "active": True, "series": [
        {"labels": {}, "values": {'last(crypto.price{symbol="BTC"}, 5m)': 71000.0}, "result": True,
         "severity": "warning"}], "error": None}
    assert (notification["at"], notification["kind"], notification["deliveries"]) == (
        "2024-05-01T11:59:00Z", "firing", [])


@pytest.mark.parametrize("at", ["yesterday", "2024-05-01T25:00:00Z", ""])
def test_bad_at_is_a_usage_error(data, capsys, at):
    code, out, err = run(capsys, "eval", str(data / "crypto.rules"), "--data", str(data / "data"), "--at", at)
    assert code == 2 and out == ""
    assert err.startswith("monitors: error: --at: ") and "RFC 3339" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("content, words", [
    ("time,price\nnot a time,1\n", ["crypto.csv", "line 2", "not a time"]),
    ("symbol,price\nBTC,1\n", ["crypto.csv", "no `time` column"]),
    ("time,price\n2024-05-01T12:00:00Z,1,2,3\n", ["crypto.csv", "not a valid CSV file"]),
])
def test_bad_data_file(data, capsys, content, words):
    (data / "data" / "crypto.csv").write_text(content, encoding="utf-8")
    code, out, err = run(capsys, "eval", str(data / "crypto.rules"), "--data", str(data / "data"), "--at", AT)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("monitors: error: data file ")
    for word in words:
        assert word in err


def test_parquet_that_is_not(data, capsys):
    (data / "data" / "crypto.csv").unlink()
    (data / "data" / "crypto.parquet").write_bytes(b"PAR1 certainly not")
    code, _, err = run(capsys, "eval", str(data / "crypto.rules"), "--data", str(data / "data"), "--at", AT)
    assert code == 1
    assert "crypto.parquet: not a valid Parquet file" in err and "Traceback" not in err


def test_unknown_measurement_and_field_read_as_no_points_as_in_the_engine(data, capsys, tmp_path):
    rules = tmp_path / "r.rules"
    rules.write_text("last(crypto.prize) > 1\n", encoding="utf-8")
    code, out, err = run(capsys, "eval", str(rules), "--data", str(data / "data"), "--at", AT, "--format", "json")
    assert "did you mean `price`?" in err  # the schema-aware warning, with its position
    assert code == 0
    assert json.loads(out)["rules"][0]["series"][0]["result"] is None  # a field never written: no data
    rules.write_text("rule a { when last(disk.used) > 1 }\nrule b { when absent(disk.used, 5m) }\n", encoding="utf-8")
    code, out, err = run(capsys, "eval", str(rules), "--data", str(data / "data"), "--at", AT, "--format", "json")
    assert code == 0
    assert [r["series"][0]["result"] for r in json.loads(out)["rules"]] == [None, True]


def test_missing_inputs(data, capsys):
    code, _, err = run(capsys, "eval", str(data / "none.rules"), "--data", str(data / "data"), "--at", AT)
    assert (code, err.strip()) == (2, f"monitors: error: {data / 'none.rules'}: no such file")
    code, _, err = run(capsys, "eval", str(data / "crypto.rules"), "--data", str(data / "nothing"), "--at", AT)
    assert (code, err.strip()) == (1, f"monitors: error: data directory {data / 'nothing'}: not found: "
                                      "no such directory")


def test_rule_errors_stop_before_any_query(data, capsys, tmp_path):
    rules = tmp_path / "bad.rules"
    rules.write_text("last(crypto.price) >\n", encoding="utf-8")
    code, out, err = run(capsys, "eval", str(rules), "--data", str(data / "data"), "--at", AT)
    assert code == 1 and out == ""
    assert f"{rules}:1:" in err and "nothing was evaluated" in err


# ---- the same rules through InfluxDB 3 ------------------------------------------------------

def load_into(influx):
    lines = []
    for row in CRYPTO.strip().splitlines()[1:]:
        time, symbol, price = row.split(",")
        from engine.sources import parse_rfc3339

        lines.append(f"crypto,symbol={symbol} price={float(price)} {parse_rfc3339(time)}")
    client = influx.client("db")
    client.write("\n".join(lines))
    client.close()


def test_influxdb3_gives_the_same_report(data, capsys, influx, monkeypatch):
    load_into(influx)
    monkeypatch.setenv("INFLUXDB3_AUTH_TOKEN", TOKEN)
    args = ["eval", str(data / "crypto.rules"), "--at", AT, "--format", "json"]
    code, embedded, _ = run(capsys, *args, "--data", str(data / "data"))
    assert code == 0
    code, remote, err = run(capsys, *args, "--influxdb3", "--host", influx.flight_url, "--database", "db")
    assert code == 0, err
    assert json.loads(remote) == json.loads(embedded)


def test_influxdb3_wrong_token(data, capsys, influx, monkeypatch):
    load_into(influx)
    monkeypatch.setenv("INFLUXDB3_AUTH_TOKEN", "wrong")
    code, out, err = run(capsys, "eval", str(data / "crypto.rules"), "--at", AT, "--influxdb3",
                         "--host", influx.flight_url, "--database", "db")
    assert code == 1 and out == ""
    assert err == (f"monitors: error: influxdb3 {influx.flight_url} database db: wrong or missing token: "
                   "the request was not authenticated: invalid token\n")


def test_influxdb3_unreachable_and_unconfigured(data, capsys, monkeypatch):
    from tests.support.ports import free_port

    host = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(capsys, "eval", str(data / "crypto.rules"), "--at", AT, "--influxdb3",
                       "--host", host, "--database", "db")
    assert code == 1 and err.startswith(f"monitors: error: influxdb3 {host} database db: unreachable: ")
    monkeypatch.delenv("INFLUXDB3_HOST", raising=False)
    code, _, err = run(capsys, "eval", str(data / "crypto.rules"), "--at", AT, "--influxdb3", "--database", "db")
    assert code == 1 and "no host configured" in err and "INFLUXDB3_HOST" in err


def test_installed_command_runs(data):
    monitors = Path(sys.executable).with_name("monitors")
    result = subprocess.run([str(monitors), "eval", str(data / "crypto.rules"), "--data", str(data / "data"),
                             "--at", AT, "--format", "json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [r["name"] for r in json.loads(result.stdout)["rules"]][0] == "btc_high"


def test_influxdb3_flags_do_not_go_with_data(data, capsys):
    code, _, err = run(capsys, "eval", str(data / "crypto.rules"), "--data", str(data / "data"), "--at", AT,
                       "--host", "http://127.0.0.1:8181")
    assert code == 2 and "--host and --database go with --influxdb3" in err


def test_rule_without_group_by_over_no_rows_is_one_series(data, capsys, tmp_path):
    rules = tmp_path / "r.rules"
    rules.write_text("rule quiet { when count(crypto.price, 1m) > 0 }\n", encoding="utf-8")
    code, out, _ = run(capsys, "eval", str(rules), "--data", str(data / "data"), "--at", "2030-01-01T00:00:00Z",
                       "--format", "json")
    assert code == 0
    assert json.loads(out)["rules"][0]["series"] == [
        {"labels": {}, "values": {"count(crypto.price, 1m)": 0}, "result": False, "severity": None}]
