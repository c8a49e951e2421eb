"""Evaluation cases once wrong, each as the person met it: absent in a grouped rule, a field the data lacks,
a healthy series that stops reporting, a group tag a measurement lacks, a clause given twice."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

import monitors_dsl
from engine.backtest import backtest
from engine.evaluate import Evaluator
from engine.repository import MemoryRepository
from engine.rules import rule_from_text, rules_from_text
from engine.runner import Runner, StaticRules
from engine.sources import DataFusionSource
from monitors_dsl.cli import main as monitors

MIN = timedelta(minutes=1)
T9 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)


def transitions(result, rule_id: str) -> list[tuple[str, str, str]]:
    return [(t.transition.at.strftime("%H:%M"), t.transition.from_state, t.transition.to_state)
            for t in result.repository.transitions if t.rule_id == rule_id]


@pytest.fixture
def per_minute(tmp_path):
    """m.csv: host a, four points a minute (at :15, :30, :45, :60), the per-minute values of the report."""
    values = [0, 0, 20, 0, 0, 0, 0, 0, 20, 20, 20, 20, 0, 0, 0, 0, 0, 0, 0, 0]
    lines = ["time,host,v"]
    for minute, value in enumerate(values):
        for second in (15, 30, 45, 60):
            at = T9 + minute * MIN + timedelta(seconds=second)
            lines.append(f"{at:%Y-%m-%dT%H:%M:%S}Z,a,{value}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_absent_in_a_grouped_rule_leaves_pending_and_firing_like_the_rule_without_it(per_minute) -> None:
    with_absent = """rule r {
        when absent(m.v{host="nowhere"}, 1m) or last(m.v, 1m) > 10
        group by host
        every 1m
        for 3m
    }"""
    without = with_absent.replace('absent(m.v{host="nowhere"}, 1m) or ', "")
    expected = [("09:03", "inactive", "pending"), ("09:04", "pending", "inactive"),
                ("09:09", "inactive", "pending"), ("09:12", "pending", "firing"), ("09:13", "firing", "inactive")]
    with DataFusionSource(per_minute) as source:
        for text in (with_absent, without):
            result = backtest(rules_from_text(text), source, T9 + MIN, T9 + 20 * MIN)
            assert transitions(result, "r") == expected, text
        rule = rule_from_text(with_absent)
        series = Evaluator(source).evaluate([rule], T9 + 4 * MIN).results[0].series
        assert [(s.labels, s.decision.result) for s in series] == [({"host": "a"}, False)]


def _crypto(tmp_path, fields=("price",)):
    lines = ["time,symbol," + ",".join(fields)]
    for minute in range(30):
        lines.append(f"2024-05-01T09:{minute:02d}:30Z,BTC," + ",".join(str(69_000 + 100 * minute) for _ in fields))
    (tmp_path / "crypto.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_a_rule_naming_a_field_the_data_lacks_leaves_the_others_alone(tmp_path, capsys) -> None:
    text = ('rule a { when last(crypto.price{symbol="BTC"}) > 70000 }\n'
            'rule b { when last(crypto.ask{symbol="BTC"}) - last(crypto.bid{symbol="BTC"}) > 50 }\n')
    data = _crypto(tmp_path)
    with DataFusionSource(data) as source:
        result = backtest(rules_from_text(text), source, T9 + MIN, T9 + 29 * MIN)
        alone = backtest(rules_from_text(text.splitlines()[0]), source, T9 + MIN, T9 + 29 * MIN)
    assert transitions(result, "a") == transitions(alone, "a") == [("09:12", "inactive", "firing")]
    assert transitions(result, "b") == [] and result.errors == []  # a field never written: no data
    rules = tmp_path / "r.rules"
    rules.write_text(text)
    code = monitors(["eval", str(rules), "--data", str(data), "--at", "2024-05-01T09:15:00Z", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(r["name"], r["error"], r["series"][0]["result"]) for r in report["rules"]] == [
        ("a", None, True), ("b", None, None)]


def test_a_healthy_series_that_stops_reporting_fires_with_on_no_data_alert(tmp_path) -> None:
    lines = ["time,host,usage"]
    for minute in range(10):
        lines += [f"2024-05-01T09:{minute:02d}:30Z,a,{minute}", f"2024-05-01T09:{minute:02d}:30Z,b,{minute}"]
    lines += [f"2024-05-01T09:{minute:02d}:30Z,b,1" for minute in range(10, 30)]  # b goes on reporting
    (tmp_path / "cpu.csv").write_text("\n".join(lines) + "\n")
    text = "rule down {\n when last(cpu.usage) > 100\n group by host\n on no data alert\n}"
    with DataFusionSource(tmp_path) as source:
        result = backtest(rules_from_text(text), source, T9 + 5 * MIN, T9 + 20 * MIN)
    fired = [(t.transition.at.strftime("%H:%M"), dict(t.labels), t.transition.to_state)
             for t in result.repository.transitions]
    # a's last point is 09:09:30: its 5-minute window is empty from 09:15 on; b never stops
    assert fired == [("09:15", {"host": "a"}, "firing")]


def test_a_series_is_known_for_24_hours_after_its_last_point(tmp_path) -> None:
    (tmp_path / "cpu.csv").write_text("time,host,usage\n2024-05-01T09:00:30Z,a,1\n")
    rule = rule_from_text("rule down {\n when last(cpu.usage) > 100\n group by host\n on no data alert\n}")
    with DataFusionSource(tmp_path) as source:
        evaluator = Evaluator(source)
        day = timedelta(hours=24)
        inside = evaluator.evaluate([rule], T9 + day + 4 * MIN).results[0].series
        after = evaluator.evaluate([rule], T9 + day + 6 * MIN).results[0].series
    assert [(s.labels, s.decision.result) for s in inside] == [({"host": "a"}, None)]  # no data: it fires
    assert after == []


def test_group_by_a_tag_one_measurement_lacks_groups_its_points_under_empty(tmp_path, capsys) -> None:
    cpu = ["time,host,region,usage"] + [f"2024-05-01T09:0{m}:30Z,{h},eu,{m * 10}" for m in range(5) for h in "ab"]
    (tmp_path / "cpu.csv").write_text("\n".join(cpu) + "\n")
    (tmp_path / "http.csv").write_text("time,total\n" + "".join(f"2024-05-01T09:0{m}:30Z,10\n" for m in range(5)))
    text = ('rule mixed { when last(cpu.usage{region="eu"}) / last(http.total) > 0.2\n group by host }\n'
            "rule other { when last(cpu.usage) > 1\n group by host }\n")
    rules = tmp_path / "r.rules"
    rules.write_text(text)
    code = monitors(["eval", str(rules), "--data", str(tmp_path), "--at", "2024-05-01T09:05:00Z", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = {r["name"]: r for r in json.loads(captured.out)["rules"]}
    mixed = {s["labels"]["host"]: s["values"]['last(http.total, 5m)'] for s in report["mixed"]["series"]}
    assert mixed == {"": 10.0, "a": None, "b": None}  # http's points lack `host`: they are the group ""
    assert [s["result"] for s in report["other"]["series"]] == [True, True]
    with DataFusionSource(tmp_path) as source:  # and the engine's own tick gives the same
        result = Evaluator(source).evaluate(rules_from_text(text), T9 + 5 * MIN)
    assert [r.error for r in result.results] == [None, None]


ONCE_ONLY = [
    ("when", "when last(m.v) > 2"),
    ("resolve when", "resolve when last(m.v) < 1"),
    ("group by", "group by host"),
    ("every", "every 2m"),
    ("for", "for 10m"),
    ("keep firing for", "keep firing for 5m"),
    ("on no data", "on no data alert"),
    ("severity", "severity critical"),
    ("labels", 'labels team = "b"'),
    ("active during", "active during sat-sun"),
    ("mute during", "mute during 22:00-06:00"),
    ("escalate", "escalate to ops after 30m"),
    ("depends on", "depends on db_down"),
    ("repeat every", "repeat every 1h"),
    ("title", 'title "b"'),
    ("message", 'message "b"'),
    ("description", 'description "b"'),
    ("critical when", "critical when last(m.v) > 3"),
]


@pytest.mark.parametrize(("keyword", "second"), ONCE_ONLY, ids=[k for k, _ in ONCE_ONLY])
def test_every_clause_given_twice_is_reported_at_the_second(keyword: str, second: str) -> None:
    first = {"when": "when last(m.v) > 1", "critical when": "critical when last(m.v) > 2"}.get(keyword)
    base = ["when last(m.v) > 1"] if first is None else [first]
    if keyword not in ("when", "critical when"):
        base.append(second.replace("2m", "1m").replace("10m", "5m").replace('"b"', '"a"')
                    .replace("critical", "info").replace("other", "ops").replace("1h", "2h")
                    .replace("alert", "ok").replace("host", "region").replace("< 1", "< 0"))
    lines = ["rule r {", *("    " + line for line in base), "    " + second, "}"]
    found = [d for d in monitors_dsl.validate("\n".join(lines)) if d.code == "duplicate-clause"]
    assert len(found) == 1, lines
    assert (found[0].line, found[0].column, found[0].severity) == (len(lines) - 1, 5, "error")
    assert f"`{keyword}` is given twice (first on line " in found[0].message


def test_notify_may_be_given_several_times() -> None:
    text = "rule r {\n    when last(m.v) > 1\n    notify ops on critical\n    notify other on warning\n}"
    assert [d.code for d in monitors_dsl.validate(text) if d.severity == "error"] == []


def test_a_failing_term_errors_its_rule_only_among_a_thousand_sharing_the_measurement() -> None:
    """999 rules on one measurement fire at the right ticks while one rule's term is refused by the source;
    the refused term and the reason are in that rule's error, at every surface the runner feeds."""
    symbols = [f"S{i:03d}" for i in range(1000)]
    times = [T9 + m * MIN for m in range(6)]
    table = pa.table({"time": [t for t in times for _ in symbols], "symbol": symbols * len(times),
                      "price": [float(100 + 10 * m) for m in range(6) for _ in symbols]})

    class Refusing:
        """The embedded source, refusing every query that reads the field `broken` of S500."""

        def __init__(self, inner) -> None:
            self.inner, self.queries = inner, 0

        def query(self, sql):
            self.queries += 1
            if '"broken"' in sql and "'S500'" in sql:
                from engine.sources import SourceError

                raise SourceError("test source", "query", "cannot cast field broken to DOUBLE")
            return self.inner.query(sql)

        def schema(self):
            return self.inner.schema()

    # thresholds: rule i fires from minute (i % 5) + 1 on (price 100 + 10 m > 100 + 10 (i % 5) + 5)
    texts = [f'rule r{i} {{ when last(crypto.price{{symbol="{s}"}}, 1m) > {100 + 10 * (i % 5) + 5} }}'
             for i, s in enumerate(symbols)]
    texts[500] = ('rule r500 { when last(crypto.price{symbol="S500"}, 1m) > 105 '
                  'and last(crypto.broken{symbol="S500"}, 1m) > 0 }')
    rules = rules_from_text("\n".join(texts))
    with DataFusionSource() as inner:
        inner.add_table("crypto", table)
        source = Refusing(inner)
        repository = MemoryRepository()
        runner = Runner(StaticRules(rules), repository, Evaluator(source))
        fired_at: dict[str, int] = {}
        asked = []
        for minute in range(6):
            before = source.queries
            report = runner.tick(T9 + minute * MIN, all_rules=True)
            asked.append(source.queries - before)
            assert set(report.errors) == {"r500"}
            assert 'last(crypto.broken{symbol="S500"}, 1m)' in report.errors["r500"]
            assert "cannot cast field broken" in report.errors["r500"]
            for t in repository.transitions:
                fired_at.setdefault(t.rule_id, t.transition.at.minute)
        # the refused scan is found by halving the merged query (about 2 log2 1000 queries), then asked apart
        assert report.queries == 1 and asked[0] < 30 and asked[1:] == [4] * 5, asked
    expected = {f"r{i}": (i % 5) + 1 for i in range(1000) if i != 500}
    assert fired_at == expected
    assert repository.errors["r500"][1].startswith('last(crypto.broken{symbol="S500"}, 1m): ')


class _RefusingOnce:
    """The embedded source, refusing queries that read the field `ask` while ``refuse`` is set."""

    def __init__(self, inner) -> None:
        self.inner, self.refuse = inner, True

    def query(self, sql):
        if self.refuse and '"ask"' in sql:
            from engine.sources import SourceError

            raise SourceError("test source", "query", "field ask is not a number")
        return self.inner.query(sql)

    def schema(self):
        return self.inner.schema()


def test_a_refused_term_is_shown_on_its_rule_only_in_the_store_and_metrics(db, workspace, alice) -> None:  # noqa: F811
    from engine.metrics import EngineMetrics
    from engine.repository import SqlRepository
    from engine.rules import StoreRules

    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    ws = workspace(alice)
    good = ws.rules.create('rule good_btc { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }', name="good_btc")
    bad = ws.rules.create('rule bad_spread { when last(crypto.ask{symbol="BTC"}, 1m) > 1 }', name="bad_spread",
                          data_arrives_later=True)
    with DataFusionSource() as inner:
        inner.add_table("crypto", pa.table({"time": [now - timedelta(seconds=30), now + timedelta(seconds=30)],
                                            "symbol": ["BTC"] * 2, "price": [71_000.0] * 2, "ask": [71_001.0] * 2}))
        source = _RefusingOnce(inner)
        runner = Runner(StoreRules(db), SqlRepository(db), Evaluator(source))
        metrics = EngineMetrics()
        report = runner.tick(now, all_rules=True)
        metrics.observe_tick(report)
        assert set(report.errors) == {str(bad.id)}
        detail = ws.rules.get(bad.id)
        assert detail.error.startswith('last(crypto.ask{symbol="BTC"}, 1m): test source: query failed: ')
        assert ws.rules.get(good.id).error is None
        assert ws.rules.get(good.id).series[0].state == "firing"
        assert metrics.registry.get_sample_value("monitors_engine_evaluations_total", {"result": "error"}) == 1
        source.refuse = False
        runner.tick(now + MIN, all_rules=True)
        assert ws.rules.get(bad.id).error is None  # the next good evaluation clears it
        assert ws.rules.get(bad.id).series[0].state == "firing"
