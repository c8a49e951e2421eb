"""SLO blocks in the language: expansion, canonical text, diagnostics, reading aloud, explain."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings

import monitors_dsl
from monitors_dsl import ast as a
from monitors_dsl import reference
from monitors_dsl.compiler import compile_rule
from monitors_dsl.explain import explain_text
from monitors_dsl.printer import print_expr, print_rules

from tests.support.dsl_strategies import slo_documents

API = """slo api_availability {
    bad sum(http.errors{service="api"})
    total sum(http.requests{service="api"})
    objective 99.9%
    notify pager
}
"""


def _burn(window: str) -> str:
    return (f'sum(http.errors{{service="api"}}, {window}) / sum(http.requests{{service="api"}}, {window}) '
            f"/ (1 - 99.9%)")


def test_the_block_is_the_workbook_rule_written_out() -> None:
    (rule,) = monitors_dsl.parse(API)
    written = monitors_dsl.parse(f"""rule api_availability {{
        critical when ({_burn("1h")} > 14.4 and {_burn("5m")} > 14.4) or ({_burn("6h")} > 6 and {_burn("30m")} > 6)
        warning when {_burn("3d")} > 1 and {_burn("6h")} > 1
        on no data ok
        notify pager
    }}""")[0]
    assert rule.critical_when == written.critical_when
    assert rule.warning_when == written.warning_when
    assert rule.conditions == written.conditions
    assert (rule.on_no_data, rule.notify) == ("ok", ("pager",))
    assert rule.slo.objective == a.Number(99.9, percent=True)
    assert rule != written  # the block is kept: it is what the rule prints as


def test_canonical_text_is_the_block_as_written() -> None:
    messy = """SLO api_availability {
        NOTIFY pager
        objective 99.90%
        TOTAL SUM(http.requests{service = "api"})
        Bad sum(http.errors{service="api"})
    }"""
    assert monitors_dsl.canonical(messy) == API
    assert monitors_dsl.canonical(API) == API


def test_overrides_print_in_full_and_defaults_are_left_out() -> None:
    text = API.replace("objective 99.9%\n", "objective 99.9%\n    ticket 2\n    page 14.4 over 1h, 5m\n"
                                               "    slow page 5 over 12h, 1h\n")
    canonical = monitors_dsl.canonical(text)
    assert "    slow page 5 over 12h, 1h\n    ticket 2 over 3d, 6h\n" in canonical
    assert "page 14.4" not in canonical  # the default, written out, is left out
    (rule,) = monitors_dsl.parse(canonical)
    assert rule.slo.slow_page == a.BurnAlert(5.0, a.Duration(12 * 3600), a.Duration(3600))
    assert rule.slo.ticket.threshold == 2.0
    assert f"{_burn('12h')} > 5 and {_burn('1h')} > 5" in print_expr(rule.critical_when)


def test_group_by_applies_to_every_term() -> None:
    compiled = compile_rule(API.replace("notify pager", "group by region, host"))
    assert len(compiled.terms) == 10
    assert all(term.group_by == ("region", "host") for term in compiled.terms)
    assert 'GROUP BY "g0", "g1"' in compiled.sql(datetime(2024, 1, 1))


def test_rule_clauses_it_takes_are_kept() -> None:
    text = API.replace("notify pager", 'notify pager\n every 30s\n labels team = "web"\n title "{{ rule }} burns"\n'
                                       ' on no data keep\n repeat every 1h\n for 2m\n description "checkout"')
    (rule,) = monitors_dsl.parse(text)
    assert (rule.every.seconds, rule.labels, rule.title, rule.on_no_data, rule.repeat_every.seconds,
            rule.for_.seconds, rule.description) == (30, (("team", "web"),), "{{ rule }} burns", "keep", 3600, 120,
                                                     "checkout")
    canonical = monitors_dsl.canonical(text)
    assert canonical.splitlines()[4] == "    on no data keep"
    assert monitors_dsl.parse(canonical) == [rule]


def test_blocks_and_rules_mix_in_a_document() -> None:
    text = 'rule btc { when last(crypto.price{symbol="BTC"}) > 70000 }\n\n' + API
    rules = monitors_dsl.parse(text)
    assert [r.name for r in rules] == ["btc", "api_availability"]
    canonical = monitors_dsl.canonical(text)
    assert canonical.endswith("\n\n" + API) and monitors_dsl.canonical(canonical) == canonical


@pytest.mark.parametrize("name", ["bad", "total", "objective", "page", "slow", "ticket", "over", "slo"])
def test_its_words_stay_names_everywhere_else(name) -> None:
    text = (f"rule {name} {{\n    when sum({name}.{name}{{{name}=\"x\"}}, 5m) > 1\n    group by {name}\n"
            f"    labels {name} = \"v\"\n    notify {name}\n}}\n")
    (rule,) = monitors_dsl.parse(text)
    assert rule.name == name and rule.group_by == (name,) and rule.notify == (name,)
    assert monitors_dsl.canonical(text) == text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slo_documents())
def test_canonical_text_round_trips(rules):
    text = print_rules(rules)
    assert monitors_dsl.parse(text) == rules
    assert monitors_dsl.canonical(text) == text
    assert [d for d in monitors_dsl.validate(text) if d.severity == "error"] == []


# --- diagnostics ----------------------------------------------------------------------------------

def _slo(*clauses: str, terms: bool = True) -> str:
    head = ['bad sum(http.errors{service="api"})', 'total sum(http.requests{service="api"})', "objective 99.9%"]
    return "slo s {\n    " + "\n    ".join((head if terms else []) + list(clauses)) + "\n}"


def _replace(clause: str, by: str) -> str:
    return _slo().replace(clause, by)


# (text, code, severity, line, column, end column, a word of the hint)
DIAGNOSTICS = [
    (_replace('sum(http.errors{service="api"})', 'sum(http.errors{service="api"}, 5m)'),
     "slo-window", "error", 2, 41, 43, 'bad sum(http.errors{service="api"})'),
    (_replace('sum(http.errors{service="api"})', 'sum(http.errors{service="api"}) offset 1d'),
     "slo-offset", "error", 2, 48, 50, "bad sum("),
    (_replace('sum(http.requests{service="api"})', 'avg(http.requests{service="api"})'),
     "slo-aggregate", "error", 3, 11, 44, "ratio of counts"),
    (_replace('sum(http.requests{service="api"})', 'sum(http.requests) / 2'),
     "slo-not-aggregate", "error", 3, 11, 33, "divides bad by total"),
    (_replace('sum(http.errors{service="api"})', 'sum(http.errors{service="api"}) > 1'),
     "slo-not-aggregate", "error", 2, 9, 44, "bad sum(http.errors"),
    (_replace("99.9%", "99.9"), "slo-objective", "error", 4, 15, 19, "objective 99.9%"),
    (_replace("99.9%", "0.999"), "slo-objective", "error", 4, 15, 20, "objective 99.9%"),
    (_replace("99.9%", "100%"), "slo-objective-range", "error", 4, 15, 19, "99.9%"),
    (_replace("99.9%", "0%"), "slo-objective-range", "error", 4, 15, 17, "99.9%"),
    (_slo("page 14.4% over 1h, 5m"), "slo-threshold", "error", 5, 10, 15, "page 14.4 over 1h, 5m"),
    (_slo("ticket 0"), "slo-threshold", "error", 5, 12, 13, "ticket 1 over 3d, 6h"),
    (_slo("slow page 6 over 30m, 6h"), "slo-windows", "error", 5, 27, 29, "long window first"),
    (_slo("page 14.4 over 0s, 0s"), "slo-windows", "error", 5, 20, 22, "page 14.4"),
    (_replace("99.9%", "90%"), "slo-never-fires", "warning", 4, 5, 18, "below 10"),
    (_slo("slow page 1000 over 6h, 30m"), "slo-never-fires", "warning", 5, 5, 32, "below 1000"),
    (_slo("when last(http.errors) > 1"), "rule-clause-in-slo", "error", 5, 5, 31, "`rule` block"),
    (_slo("critical when last(http.errors) > 1"), "rule-clause-in-slo", "error", 5, 5, 40, "page 14.4 over 1h"),
    (_slo("severity critical"), "rule-clause-in-slo", "error", 5, 5, 22, "notify CHANNEL on critical"),
    (_slo("resolve when last(http.errors) < 1"), "rule-clause-in-slo", "error", 5, 5, 39, "slow page"),
    (_slo("objective 99%"), "duplicate-clause", "error", 5, 5, 18, "once"),
    (_slo(terms=False), "slo-incomplete", "error", 1, 5, 6, "needs `bad`, `total` and `objective`"),
    (_slo('bad sum(http.errors)', 'objective 99%', terms=False), "slo-incomplete", "error", 1, 5, 6,
     "objective 99.9%"),
    ("rule r {\n    when last(cpu.usage) > 1\n    objective 99.9%\n}", "slo-clause-in-rule", "error", 3, 5, 20,
     "slo api_availability {"),
    ("rule r {\n    when last(cpu.usage) > 1\n    page 10 over 1h, 5m\n}", "slo-clause-in-rule", "error", 3, 5, 24,
     "slo api_availability"),
    ("objective 99.9%", "slo-clause-in-rule", "error", 1, 1, 16, "slo api_availability"),
    ("rule r {\n    when last(cpu.usage) > 1\n    budget 0.1%\n}", "unknown-clause", "error", 3, 5, 11,
     "an objective is an `slo` block"),
    ("rule r {\n    when last(cpu.usage) > 1\n    slo 99.9%\n}", "unknown-clause", "error", 3, 5, 8,
     "objective 99.9% }"),
    ("total(http.requests, 5m) > 100", "unknown-function", "error", 1, 1, 6, "did you mean `sum`?"),
    ("rule r {\n    when bad(http.errors) > 1\n}", "unknown-function", "error", 2, 10, 13, "functions:"),
]


@pytest.mark.parametrize(("text", "code", "severity", "line", "column", "end_column", "hint"), DIAGNOSTICS,
                         ids=[f"{d[1]}-{i}" for i, d in enumerate(DIAGNOSTICS)])
def test_each_misuse_has_its_diagnostic(text, code, severity, line, column, end_column, hint) -> None:
    found = [d for d in monitors_dsl.validate(text) if d.code == code]
    assert found, [str(d) for d in monitors_dsl.validate(text)]
    (diagnostic,) = found
    assert (diagnostic.severity, diagnostic.line, diagnostic.column, diagnostic.end_column) == (
        severity, line, column, end_column), str(diagnostic)
    assert hint in (diagnostic.hint or ""), diagnostic.hint
    if severity == "warning":
        assert [d for d in monitors_dsl.validate(text) if d.severity == "error"] == []


def test_a_broken_block_still_reports_the_problems_of_its_other_clauses() -> None:
    text = _slo("page 14.4 over 1h 5m", "ticket 0").replace("99.9%", "99.9") + "\n\nrule r { when last(x.y) >> 1 }"
    codes = [d.code for d in monitors_dsl.validate(text)]
    assert "slo-objective" in codes and "slo-threshold" in codes
    assert codes.count("syntax-error") == 2  # `1h 5m` and `>>`, each in its own block
    assert "unknown-clause" not in codes


def test_a_series_named_like_its_words_is_not_cut_into_clauses_when_broken() -> None:
    for text in ("rule r {\n    when sum(http.total) / sum(page.bad) > 1 and\n}",
                 "rule r {\n    when sum(x.y) > 1 and\n    notify page, ticket\n    group by total, slow\n}",
                 "rule r {\n    when sum(objective.x{bad=\"1\"}) > 1 and\n}"):
        codes = [d.code for d in monitors_dsl.validate(text)]
        assert codes == ["unexpected-end"], (text, codes)


def test_the_reference_evaluator_reads_empty_windows_as_no_data_and_zero_bad_as_no_burn() -> None:
    rule = monitors_dsl.parse(_slo())[0]
    at = datetime(2024, 1, 1, tzinfo=timezone.utc)
    (series,) = reference.evaluate(rule, {"http": []}, at)
    assert series.decision.result is None  # no traffic: no data
    minute = 60 * 10**9
    points = [{"time": reference._ns(at) - k * minute - 1, "service": "api", "requests": 100.0, "errors": 0.0}
              for k in range(10)]
    (series,) = reference.evaluate(rule, {"http": points}, at)
    assert series.decision.result is False and series.decision.severity is None  # errors of 0: no burn
    points[0]["errors"] = 50.0  # 50 of the last minute's 100 requests fail
    (series,) = reference.evaluate(rule, {"http": points}, at)
    # 50 of 500 requests over 5m (a burn rate of 100), 50 of 1000 over the longer windows (50)
    assert series.decision.severity == "critical"


# --- reading aloud --------------------------------------------------------------------------------

def test_describe_speaks_of_the_budget() -> None:
    sentence = compile_rule(API).describe()
    assert sentence.startswith("Pages (critical) when the error budget of 99.9 % (bad events: the sum of "
                               'http.errors where service is "api", out of the sum of http.requests where service '
                               'is "api") burns 14.4 times too fast over 1 hour and 5 minutes, or 6 times too fast '
                               "over 6 hours and 30 minutes; warns when it burns 1 time too fast over 3 days and "
                               "6 hours")
    assert sentence.endswith("notifying pager.")


def test_explain_shows_the_expanded_conditions() -> None:
    text = explain_text(compile_rule(API), datetime(2024, 1, 1, tzinfo=timezone.utc))
    lines = text.splitlines()
    assert lines[0] == "== slo api_availability"
    assert f"critical when ({_burn('1h')} > 14.4 and {_burn('5m')} > 14.4) or ({_burn('6h')} > 6 and " \
           f"{_burn('30m')} > 6)" in lines
    assert f"warning when {_burn('3d')} > 1 and {_burn('6h')} > 1" in lines
    assert "burns 14.4 times too fast over 1 hour and 5 minutes" in text
    assert 'sum(http.errors{service="api"}, 3d)' in text and "WITH s0 AS (" in text


def test_monitors_explain_command(tmp_path) -> None:
    from monitors_dsl.cli import main

    path = tmp_path / "api.rules"
    path.write_text(API)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["explain", str(path), "--at", "2024-01-01T00:00:00Z"]) == 0
    assert "-- expanded" in out.getvalue()
