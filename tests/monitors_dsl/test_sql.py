"""The SQL compiler: shape, quoting, time literals, shared scans, and only documented functions."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from monitors_dsl import compile_rule, parse
from monitors_dsl.sql import Term, quote_identifier, quote_string, sql_for_terms, time_ns, timestamp_literal
from tests.fixtures.valid_rules import VALID_RULES

AT = datetime(2024, 5, 1, 12, 0, 0)

# Functions InfluxDB 3 Core's SQL reference documents, and that the compiler may call.
DOCUMENTED = {"first_value", "last_value", "min", "max", "avg", "sum", "median", "count", "stddev_samp",
              "row_number", "floor", "ceil", "abs", "nullif", "coalesce", "cast",
              "concat", "character_length"}  # the last two name a count_series row's series
KEYWORDS_BEFORE_PAREN = {"as", "over", "in", "and", "or", "on", "from", "not", "then", "else", "when", "by", "select"}


def _functions(sql: str) -> set[str]:
    without_strings = re.sub(r"'(?:[^']|'')*'", "''", sql)
    without_names = re.sub(r'"(?:[^"]|"")*"', '""', without_strings)
    return {m.lower() for m in re.findall(r"([A-Za-z_]+)\s*\(", without_names)} - KEYWORDS_BEFORE_PAREN


def _all_rules():
    for text in VALID_RULES:
        yield from parse(text)


def test_every_fixture_rule_uses_only_documented_functions_and_no_clock():
    seen = set()
    for rule in _all_rules():
        sql = compile_rule(rule).sql(AT)
        used = _functions(sql)
        assert used <= DOCUMENTED, (used - DOCUMENTED, sql)
        seen |= used
        lowered = sql.lower()
        for banned in ("now(", "selector_", "date_bin_gapfill", "locf(", "interpolate(", "approx_percentile"):
            assert banned not in lowered
    assert {"first_value", "last_value", "row_number", "stddev_samp", "median"} <= seen


def test_time_is_a_parameter_written_as_zone_less_utc_literals():
    rule = compile_rule("avg(cpu.usage, 5m) offset 1h > 1")
    sql = rule.sql(datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert "\"time\" > TIMESTAMP '2024-05-01T10:55:00.000000000'" in sql
    assert "\"time\" <= TIMESTAMP '2024-05-01T11:00:00.000000000'" in sql
    assert rule.sql(datetime(2024, 5, 1, 12, 0)) == sql  # a naive time is UTC
    assert rule.sql(time_ns(datetime(2024, 5, 1, 12, 0))) == sql  # nanoseconds since the epoch
    assert rule.sql(AT + timedelta(microseconds=1)) != sql


def test_timestamp_literal_keeps_nanoseconds():
    assert timestamp_literal(1) == "TIMESTAMP '1970-01-01T00:00:00.000000001'"
    assert timestamp_literal(time_ns(AT) + 123456789) == "TIMESTAMP '2024-05-01T12:00:00.123456789'"


def test_quoting_doubles_the_quote_character():
    assert quote_identifier('a"b') == '"a""b"'
    assert quote_identifier("Upper") == '"Upper"'
    assert quote_string("it's") == "'it''s'"
    assert quote_string("") == "''"


def test_identifiers_are_always_quoted():
    sql = compile_rule('rule r { when last(CPU.Usage{Host="A"}) > 1 group by Region }').sql(AT)
    assert 'FROM "CPU"' in sql and 'CAST("Usage" AS DOUBLE)' in sql and '"Host" = \'A\'' in sql
    assert 'AS "Region"' in sql


def test_terms_on_the_same_measurement_filters_window_and_offset_share_one_scan():
    rule = compile_rule('rule r { when avg(cpu.user{host="a"}) > 1 and max(cpu.system{host="a"}) > 2 '
                        'and percentile(cpu.user{host="a"}, 90) > 3 and count(cpu.idle{host="a"}) > 0 }')
    sql = rule.sql(AT)
    assert sql.count('FROM "cpu"') == 1
    assert len(rule.terms) == 4


def test_different_windows_offsets_or_filters_are_different_scans():
    rule = compile_rule('avg(cpu.user, 5m) > avg(cpu.user, 1h) and avg(cpu.user, 5m) offset 1d > 1 '
                        'and avg(cpu.user{host="a"}, 5m) > 1')
    assert rule.sql(AT).count('FROM "cpu"') == 4


def test_filter_order_does_not_change_a_terms_identity():
    one = compile_rule('last(cpu.user{host="a", dc="x"}) > 1').terms[0]
    two = compile_rule('rule other { when last(cpu.user{dc="x", host="a"}) < 5 }').terms[0]
    assert one.key == two.key and one.column == two.column and hash(one) == hash(two)
    three = compile_rule('last(cpu.user{host="a", dc="y"}) > 1').terms[0]
    assert three.key != one.key and three.column != one.column


def test_term_fields():
    (term,) = compile_rule('rule r { when percentile(http.ms{path=~"^/api"}, 99, 10m) offset 1h > 1 '
                           'group by host }').terms
    assert (term.function, term.measurement, term.field_name, term.window, term.offset, term.parameter,
            term.group_by) == ("percentile", "http", "ms", 600, 3600, 99.0, ("host",))
    assert term.text == 'percentile(http.ms{path=~"^/api"}, 99, 10m) offset 1h'
    assert term.column.startswith("percentile_")
    assert term.key == ("percentile", "http", "ms", (("path", "=~", "^/api"),), 600, 3600, ("host",), 99.0)


def test_repeated_aggregate_is_one_term():
    rule = compile_rule("avg(cpu.user) > 1 and avg(cpu.user) < 5 or avg(cpu.user, 5m) == 3")
    assert len(rule.terms) == 1


def test_sql_for_terms_batches_terms_of_many_rules():
    rules = [compile_rule(f"rule r{i} {{ when avg(cpu.user) > {i} and max(cpu.user) > 1 group by host }}")
             for i in range(50)]
    terms = [t for r in rules for t in r.terms]
    sql = sql_for_terms(terms, AT)
    assert sql.count('FROM "cpu"') == 1
    assert sql.count(" AS " + quote_identifier(rules[0].terms[0].column)) == 1


def test_sql_for_terms_refuses_mixed_group_tags():
    grouped = compile_rule("rule r { when avg(cpu.user) > 1 group by host }").terms
    plain = compile_rule("avg(cpu.user) > 1").terms
    with pytest.raises(ValueError, match="group tags"):
        sql_for_terms(grouped + plain, AT)


def test_group_tag_order_does_not_matter_for_sharing():
    one = compile_rule("rule r { when avg(cpu.user) > 1 group by host, dc }").terms[0]
    two = compile_rule("rule r { when avg(cpu.user) > 1 group by dc, host }").terms[0]
    assert one.key == two.key
    sql_for_terms([one, two], AT)


def test_a_rule_without_aggregates_still_has_a_query():
    assert compile_rule("1 > 2").sql(AT) == 'SELECT 1 AS "k"'
    assert "WHERE 1 = 0" in compile_rule("rule r { when 1 > 2 group by host }").sql(AT)


def test_term_is_built_from_an_aggregate():
    rule = parse("avg(cpu.user{host='a'}, 1h) offset 5m > 1")[0]
    term = Term.from_aggregate(rule.when.left, ("host",))
    assert term.bounds(AT) == (time_ns(AT) - 3900 * 10**9, time_ns(AT) - 300 * 10**9)


def test_an_integer_rank_is_the_same_term_as_its_float():
    from monitors_dsl.ast import Aggregate, Selector
    parsed = compile_rule("percentile(a.b, 95) > 1").terms[0]
    built = Term.from_aggregate(Aggregate("percentile", Selector("a", "b"), parameter=95))
    assert built.key == parsed.key and built.column == parsed.column


def test_rules_with_the_same_terms_have_the_same_query():
    one = compile_rule('rule a { when last(crypto.price{symbol="BTC"}) > 70000 severity critical }')
    two = compile_rule('rule b { when last(crypto.price{symbol="BTC"}, 5m) < 100 notify x }')
    assert one.sql(AT) == two.sql(AT)
    assert one.terms[0].column == two.terms[0].column


def test_generated_rules_use_only_documented_functions():
    from tests.support import compiler_strategies as s
    for seed in range(300):
        rule = s.RandomRules(seed).rule()
        sql = compile_rule(rule).sql(AT)
        assert _functions(sql) <= DOCUMENTED, (seed, _functions(sql) - DOCUMENTED)
