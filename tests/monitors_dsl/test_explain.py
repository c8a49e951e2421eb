"""``monitors explain``: reading, terms, SQL at T and predicate for each rule; clear errors."""

from __future__ import annotations

import io

import pytest

from monitors_dsl.cli import main

RULES = '''rule btc {
    when last(crypto.price{symbol="BTC"}) > 70000
    severity critical
}

rule cpu {
    when avg(cpu.usage_user{host=~"^web-"}, 5m) > 90
    group by host
    every 5m
}
'''


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "r.rules"
    path.write_text(RULES, encoding="utf-8")
    return str(path)


def test_explains_every_rule(rules_file, capsys):
    assert main(["explain", rules_file, "--at", "2024-05-01T12:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert out.count("== rule ") == 2
    assert ('Fires (critical) when the last value of crypto.price where symbol is "BTC" over the past 5 minutes '
            "is above 70000, checked every minute.") in out
    assert "Fires (warning) for each host when the average of cpu.usage_user" in out
    assert "-- SQL at 2024-05-01T12:00:00Z" in out
    assert "\"time\" > TIMESTAMP '2024-05-01T11:55:00.000000000'" in out
    assert 'last(crypto.price{symbol="BTC"}, 5m)' in out
    assert out.count("def condition(r):") == 2 and out.count("def decide(r):") == 2


def test_a_time_with_an_offset_is_converted_to_utc(rules_file, capsys):
    assert main(["explain", rules_file, "--at", "2024-05-01T14:00:00+02:00"]) == 0
    assert "TIMESTAMP '2024-05-01T12:00:00.000000000'" in capsys.readouterr().out


def test_without_at_the_time_is_now_rounded_to_every(rules_file, capsys):
    assert main(["explain", rules_file]) == 0
    out = capsys.readouterr().out
    assert "-- SQL at " in out and ":00Z" in out


def test_reads_standard_input(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("last(a.b) > 1\n"))
    assert main(["explain", "-", "--at", "2024-01-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "== last(a.b, 5m) > 1" in out and "Fires (warning) when the last value of a.b" in out


def test_rules_with_errors_are_reported_not_explained(tmp_path, capsys):
    path = tmp_path / "bad.rules"
    path.write_text("lats(a.b) > 1\n", encoding="utf-8")
    assert main(["explain", str(path)]) == 1
    err = capsys.readouterr().err
    assert "has errors" in err and "did you mean `last`?" in err and "Traceback" not in err


def test_a_bad_time_is_a_usage_error(rules_file, capsys):
    assert main(["explain", rules_file, "--at", "yesterday"]) == 2
    assert "--at 'yesterday': not a time" in capsys.readouterr().err


def test_a_missing_file_is_a_usage_error(tmp_path, capsys):
    assert main(["explain", str(tmp_path / "nope.rules")]) == 2
    assert "no such file" in capsys.readouterr().err
