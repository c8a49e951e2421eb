"""``compile_rule`` and ``CompiledRule``: inputs, errors, the fixture list, the English reading."""

from __future__ import annotations

from datetime import datetime

import pytest

import monitors_dsl
from monitors_dsl import CompiledRule, DslError, compile_rule, parse
from monitors_dsl.ast import Aggregate, Comparison, Number, Rule, Selector
from tests.fixtures.valid_rules import VALID_RULES

AT = datetime(2024, 5, 1, 12, 0)


def test_every_fixture_rule_compiles():
    count = 0
    for text in VALID_RULES:
        for rule in parse(text):
            compiled = compile_rule(rule)
            assert compiled.sql(AT)
            assert compiled.describe().endswith(".")
            assert compiled.canonical == monitors_dsl.canonical(compiled.canonical)
            decision = compiled.decide({t.column: None for t in compiled.terms})
            assert decision.result in (True, False, None)
            assert (decision.result is True) == (decision.severity is not None)  # a severity only when it holds
            count += 1
    assert count >= len(VALID_RULES)


def test_compile_takes_text_or_a_rule():
    text = 'rule btc { when last(crypto.price{symbol="BTC"}) > 70000 severity critical }'
    from_text = compile_rule(text)
    from_rule = compile_rule(parse(text)[0])
    assert isinstance(from_text, CompiledRule)
    assert from_text.canonical == from_rule.canonical == monitors_dsl.canonical(text)
    assert from_text.terms == from_rule.terms
    assert from_text.sql(AT) == from_rule.sql(AT)
    assert from_text.name == "btc"


def test_text_with_errors_raises_dsl_error_with_positions():
    with pytest.raises(DslError) as error:
        compile_rule("lats(a.b) > 1")
    assert error.value.diagnostics[0].code == "unknown-function"
    assert error.value.diagnostics[0].column == 1


def test_several_rules_are_refused():
    with pytest.raises(DslError, match="2 rules; compile_rule takes one rule"):
        compile_rule("rule a { when last(a.b) > 1 }\nrule b { when last(a.b) > 2 }")


def test_no_rule_is_refused():
    with pytest.raises(DslError):
        compile_rule("# only a comment\n")


def test_an_ill_typed_tree_is_refused():
    bad = Rule(when=Aggregate("last", Selector("a", "b")))  # a number, not a condition
    with pytest.raises(DslError, match="number"):
        compile_rule(bad)


def test_anything_else_is_a_type_error():
    with pytest.raises(TypeError):
        compile_rule(42)


def test_a_built_tree_compiles():
    rule = Rule(when=Comparison(">", Aggregate("avg", Selector("cpu", "usage")), Number(90)))
    compiled = compile_rule(rule)
    assert compiled.canonical == "avg(cpu.usage, 5m) > 90\n"
    assert compiled.column(rule.when.left) == compiled.terms[0].column


def test_the_english_reading():
    compiled = compile_rule('rule r { when last(crypto.price{symbol="BTC"}) > 70000 severity critical }')
    assert compiled.describe() == ('Fires (critical) when the last value of crypto.price where symbol is "BTC" '
                                   'over the past 5 minutes is above 70000, checked every minute.')


@pytest.mark.parametrize("text, reading", [
    ("rule r { when avg(cpu.usage_user{host=~\"^web-\"}, 5m) > 90 group by host for 10m every 30s }",
     'Fires (warning) for each host when the average of cpu.usage_user where host matches "^web-" over the past '
     "5 minutes is above 90, once that has held for 10 minutes, checked every 30 seconds."),
    ('absent(heartbeat.up{service="api"}, 5m)',
     'Fires (warning) when no point of heartbeat.up where service is "api" arrives over the past 5 minutes, '
     "checked every minute."),
    ("sum(http.requests, 1h) < 0.5 * sum(http.requests, 1h) offset 1d",
     "Fires (warning) when the sum of http.requests over the past hour is below 0.5 times the sum of "
     "http.requests over the hour ending 1 day ago, checked every minute."),
    ("rule r { critical when percentile(http.ms, 99, 10m) > 500 warning when rate(net.b{if in (\"a\", \"b\")}) > 5%"
     " resolve when not (max(http.ms) > 100) group by host, dc keep firing for 2m }",
     "Fires for each combination of host and dc: critical when the 99th percentile of http.ms over the past "
     "10 minutes is above 500, warning when the per-second rate of change of net.b where if is one of \"a\", \"b\" "
     "over the past 5 minutes is above 5%, staying firing for 2 minutes after it stops holding, resolving only "
     "when not (the maximum of http.ms over the past 5 minutes is above 100), checked every minute."),
    ("(last(a.b) > 1 or last(a.c) > 2) and abs(delta(a.d, 1h30m) - 3) >= 1",
     "Fires (warning) when (the last value of a.b over the past 5 minutes is above 1 or the last value of a.c "
     "over the past 5 minutes is above 2) and the absolute value of (the change in a.d over the past 1 hour "
     "30 minutes minus 3) is at least 1, checked every minute."),
])
def test_readings(text, reading):
    assert compile_rule(text).describe() == reading


def test_compiling_imports_no_engine_or_server_package():
    import subprocess
    import sys
    code = ("import sys, monitors_dsl, monitors_dsl.reference, monitors_dsl.explain; "
            "r = monitors_dsl.compile_rule('rule r { when percentile(a.b, 90) > 1 group by h }'); r.sql(0); "
            "r.describe(); "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('pyarrow', 'datafusion', 'sqlalchemy', 'mcp', 'apprise', 'influxdb_client_3', 'engine', 'monitors_mcp')]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("clauses, tail", [
    ("notify slack", ", checked every minute, notifying slack."),
    ("notify slack, pager, `on call` on no data alert",
     ", firing on no data too, checked every minute, notifying slack, pager and `on call`."),
    ("on no data ok every 1h", ", resolving on no data, checked every hour."),
])
def test_readings_of_no_data_and_notify(clauses, tail):
    reading = compile_rule(f"rule r {{ when last(a.b) > 1 {clauses} }}").describe()
    assert reading == "Fires (warning) when the last value of a.b over the past 5 minutes is above 1" + tail
