"""Running test blocks: each expectation passing and failing, what a failure shows, `monitors test`
(text, JSON, JUnit, exit codes, standard input), ``monitors_dsl.run_tests``, promtool test files, and
properties: a test written from a backtest's own transitions passes, and one changed expectation fails."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import monitors_dsl
from engine.backtest import backtest
from engine.rules import rules_from_text
from engine.sources import DataFusionSource
from engine.testing import TEST_EPOCH, run_tests, series_tables
from monitors_dsl.cli import main

ROOT = Path(__file__).resolve().parents[2]

BTC = """rule btc_above_70k {
    when last(crypto.price{symbol="BTC"}) > 70000
    severity critical
    notify trading_slack
    title "BTC above 70k"
    message "BTC is at {{ value | round(0) }} USD"
}
"""
SERIES = '    series crypto.price{symbol="BTC"} every 1m: 69000 69500 70100 70200+0x3 69900\n'

HOSTS = """rule cpu_high {
    warning when avg(cpu.usage{host=~"^web"}, 2m) > 80
    critical when avg(cpu.usage{host=~"^web"}, 2m) > 95
    group by host
    for 2m
    notify ops, pager
}
"""
HOST_SERIES = ('    series cpu.usage{host="web1"} every 1m: 50 90x5 99x4 10x4\n'
               '    series cpu.usage{host="web2"} every 1m: 10x14\n')

#: (rules, series lines, expectation, passes)
CASES = [
    (BTC, SERIES, "expect firing at 2m severity critical", True),
    (BTC, SERIES, "expect firing at 2m severity warning", False),
    (BTC, SERIES, "expect firing at 1m", False),
    (BTC, SERIES, "expect inactive at 1m", True),
    (BTC, SERIES, "expect inactive at 3m", False),
    (BTC, SERIES, "expect inactive at 8m", True),
    (BTC, SERIES, "expect pending at 2m", False),
    (BTC, SERIES, "expect resolved at 7m", True),
    (BTC, SERIES, "expect resolved at 6m", False),
    (BTC, SERIES, "expect notification at 2m", True),
    (BTC, SERIES, "expect notification at 2m to trading_slack", True),
    (BTC, SERIES, 'expect notification at 2m contains "BTC above 70k"', True),
    (BTC, SERIES, 'expect notification at 2m contains "is at 70100"', True),
    (BTC, SERIES, 'expect notification at 2m contains "ETH"', False),
    (BTC, SERIES, "expect notification at 3m", False),
    (BTC, SERIES, "expect notification at 7m", True),
    (BTC, SERIES, "expect no notification between 3m and 6m", True),
    (BTC, SERIES, "expect no notification between 0m and 2m", False),
    (HOSTS, HOST_SERIES, "expect pending at 2m", True),
    (HOSTS, HOST_SERIES, 'expect pending at 2m labels host = "web1" severity warning', True),
    (HOSTS, HOST_SERIES, 'expect firing at 2m labels host = "web1"', False),
    (HOSTS, HOST_SERIES, 'expect firing at 4m labels host = "web1" severity warning', True),
    (HOSTS, HOST_SERIES, 'expect inactive at 3m labels host = "web2"', True),
    (HOSTS, HOST_SERIES, 'expect firing at 3m labels host = "web2"', False),
    (HOSTS, HOST_SERIES, 'expect firing at 8m labels host = "web1" severity critical', True),
    (HOSTS, HOST_SERIES, 'expect firing at 7m labels host = "web1" severity critical', False),
    (HOSTS, HOST_SERIES, "expect notification at 8m to pager", True),
    (HOSTS, HOST_SERIES, 'expect notification at 8m contains "CRITICAL"', True),
    (HOSTS, HOST_SERIES, "expect inactive at 12m", True),
    (HOSTS, HOST_SERIES, "expect resolved at 12m", True),
    (HOSTS, HOST_SERIES, "expect resolved at 11m", False),
    (HOSTS, HOST_SERIES, "expect no notification between 13m and 14m", True),
]


def _document(rules: str, series: str, expectations: str, name: str = "t") -> str:
    return f"{rules}\ntest {name} {{\n{series}    {expectations}\n}}\n"


@pytest.mark.parametrize(("rules", "series", "expectation", "passes"), CASES,
                         ids=[f"{c[2][:50]}-{'pass' if c[3] else 'fail'}" for c in CASES])
def test_each_expectation_holds_exactly_when_the_run_shows_it(rules, series, expectation, passes):
    text = _document(rules, series, expectation)
    assert [d for d in monitors_dsl.validate(text) if d.severity == "error"] == []
    (result,) = run_tests(text)
    assert result.error is None
    assert result.passed is passes, result.failures


def test_a_failure_names_its_lines_what_was_expected_and_what_was_seen():
    text = _document(BTC, SERIES, "expect firing at 1m severity critical\n    expect inactive at 8m")
    (result,) = run_tests(text)
    assert (result.name, result.rule, result.line, result.expectations) == ("t", "btc_above_70k", 9, 2)
    (failure,) = result.failures
    assert (failure.line, failure.column) == (11, 5)
    assert failure.expectation == "expect firing at 1m severity critical"
    assert failure.expected == "firing, severity critical at 1m"
    assert failure.seen.startswith("at 1m: inactive, value 69500; notifications: 2m firing to trading_slack "
                                   "'BTC above 70k'")


def test_absent_data_made_of_missing_points_and_series_starting_later():
    rules = """rule heartbeat_lost {
    when absent(heartbeat.up{service="api"}, 3m)
    notify ops
}
"""
    series = '    series heartbeat.up{service="api"} every 1m from 2m: 1x3 _x6\n'
    text = _document(rules, series, "expect firing at 0m\n    expect inactive at 2m\n    expect inactive at 7m\n"
                                    "    expect firing at 8m\n    expect notification at 8m to ops")
    (result,) = run_tests(text)
    assert result.passed, result.failures


def test_no_series_at_all_is_an_empty_source_and_several_fields_share_rows():
    rules = """rule ratio {
    when last(disk.used, 1m) / last(disk.total, 1m) > 90%
}
"""
    quiet = _document(rules, "", "expect inactive at 2m")
    assert [r.passed for r in run_tests(quiet)] == [True]
    series = "    series disk.used every 1m: 10 95 99\n    series disk.total every 1m: 100x2\n"
    (result,) = run_tests(_document(rules, series, "expect inactive at 0m\n    expect firing at 1m\n"
                                                   "    expect firing at 2m"))
    assert result.passed, result.failures


def test_a_test_runs_every_rule_of_the_document_and_checks_its_own():
    text = BTC + """
rule btc_below_60k {
    when last(crypto.price{symbol="BTC"}) < 60000
}

test high for btc_above_70k {
""" + SERIES + """    expect firing at 2m
}

test low for btc_below_60k {
""" + SERIES + """    expect inactive at 2m
    expect firing at 2m
}
"""
    found = monitors_dsl.validate(text)
    assert [d.code for d in found] == ["test-contradiction"]
    fixed = text.replace("    expect inactive at 2m\n    expect firing at 2m\n", "    expect firing at 2m\n")
    high, low = run_tests(fixed)
    assert (high.passed, low.passed) == (True, False)
    assert low.rule == "btc_below_60k"


def test_time_zero_is_a_monday_at_midnight_so_wall_clock_windows_read_naturally():
    rules = """rule office_hours {
    when last(x.y, 1h) > 1
    active during mon-fri 09:00-17:00
}
"""
    text = _document(rules, "    series x.y every 1h: 5x40\n", "expect inactive at 8h\n    expect firing at 9h\n"
                                                                 "    expect inactive at 17h\n    expect firing at 1d9h")
    assert monitors_dsl.validate(text) == []
    (result,) = run_tests(text)
    assert result.passed, result.failures


def test_bounds_on_evaluations_and_time_end_a_test_with_an_error():
    text = _document(BTC, SERIES, "expect inactive at 8m")
    (result,) = run_tests(text, max_evaluations=3)
    assert not result.passed and "more than the 3 allowed" in result.error and result.evaluations == 0
    two = text + "\ntest u {\n" + SERIES + "    expect firing at 2m\n}\n"
    first, second = run_tests(two, max_evaluations=10)
    assert (first.passed, first.evaluations) == (True, 9)
    assert not second.passed and "more than the 1 allowed" in second.error
    (late,) = run_tests(text, seconds=0)
    assert late.error == "stopped at 0s: the tests took longer than they may"


def test_run_tests_refuses_text_with_errors():
    with pytest.raises(monitors_dsl.DslError):
        run_tests(_document(BTC, SERIES, "expect firing at 1h"))
    with pytest.raises(monitors_dsl.DslError):
        monitors_dsl.run_tests("rule a { when lats(x.y) > 1 }")


def test_the_language_package_runs_tests_through_the_engine_entry_point():
    results = monitors_dsl.run_tests(_document(BTC, SERIES, "expect firing at 2m"))
    assert [(r.name, r.passed) for r in results] == [("t", True)]
    assert isinstance(results[0], monitors_dsl.TestResult)


def test_without_the_engine_run_tests_names_the_engine_extra(monkeypatch):
    from importlib import metadata

    monkeypatch.setattr(metadata, "entry_points", lambda **_: [])
    with pytest.raises(monitors_dsl.EngineUnavailable, match=r'monitors-mcp\[engine\]'):
        monitors_dsl.run_tests(_document(BTC, SERIES, "expect firing at 2m"))


# --- monitors test ------------------------------------------------------------------------------


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_reports_failures_by_line_and_sums_up(tmp_path, capsys):
    good = tmp_path / "good.rules"
    good.write_text(_document(BTC, SERIES, "expect firing at 2m"), encoding="utf-8")
    bad = tmp_path / "bad.rules"
    bad.write_text(_document(BTC, SERIES, "expect firing at 1m", name="early"), encoding="utf-8")
    code, out, err = _run(capsys, "test", str(good))
    assert (code, out) == (0, "")
    assert err.strip() == "1 file, 1 test: 1 passed, 0 failed"
    code, out, err = _run(capsys, "test", str(good), str(bad), "-v")
    assert code == 1
    lines = out.splitlines()
    assert f"{good}:9: ok test t (1 expectation)" in lines
    assert f"{bad}:11: FAIL test early: expect firing at 1m" in lines
    assert "    expected: firing at 1m" in lines
    assert err.strip().endswith("2 files, 2 tests: 1 passed, 1 failed")


def test_the_command_reads_standard_input_and_reports_rule_errors(capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(_document(BTC, SERIES, "expect firing at 2m")
                                                                  .encode())))
    code, _, err = _run(capsys, "test", "-")
    assert code == 0 and "1 passed" in err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"rule a { when lats(x.y) > 1 }\n")))
    code, _, err = _run(capsys, "test", "-")
    assert code == 1
    assert "<stdin>:1:15: error: unknown function `lats`" in err


def test_usage_errors_exit_2(tmp_path, capsys):
    code, _, err = _run(capsys, "test", str(tmp_path / "missing.rules"))
    assert code == 2 and "no such file" in err
    good = tmp_path / "good.rules"
    good.write_text(_document(BTC, SERIES, "expect firing at 2m"), encoding="utf-8")
    code, _, err = _run(capsys, "test", str(good), "--junit", str(tmp_path / "no" / "such" / "dir.xml"))
    assert code == 2 and "--junit" in err


def test_json_output(tmp_path, capsys):
    path = tmp_path / "a.rules"
    path.write_text(_document(BTC, SERIES, "expect firing at 1m\n    expect resolved at 7m"), encoding="utf-8")
    code, out, _ = _run(capsys, "test", str(path), "--format", "json")
    report = json.loads(out)
    assert code == 1
    assert report["summary"] == {"files": 1, "tests": 1, "passed": 0, "failed": 1, "files_with_errors": 0}
    (test,) = report["files"][0]["tests"]
    assert (test["name"], test["passed"], test["expectations"], test["line"]) == ("t", False, 2, 9)
    assert [f["line"] for f in test["failures"]] == [11]


def test_junit_xml_has_the_shape_ci_tools_read(tmp_path, capsys):
    good = tmp_path / "good.rules"
    good.write_text(_document(BTC, SERIES, "expect firing at 2m"), encoding="utf-8")
    bad = tmp_path / "bad.rules"
    bad.write_text(_document(BTC, SERIES, "expect firing at 1m\n    expect pending at 2m"), encoding="utf-8")
    broken = tmp_path / "broken.rules"
    broken.write_text("rule a { when lats(x.y) > 1 }\n", encoding="utf-8")
    report = tmp_path / "junit.xml"
    code, _, _ = _run(capsys, "test", str(good), str(bad), str(broken), "--junit", str(report))
    assert code == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    suites = list(root)
    assert [s.tag for s in suites] == ["testsuite"] * 3
    assert [s.get("name") for s in suites] == [str(good), str(bad), str(broken)]
    for suite in suites:
        assert set(suite.attrib) >= {"name", "tests", "failures", "errors", "time"}
        cases = list(suite)
        assert all(c.tag == "testcase" and {"name", "classname", "time"} <= set(c.attrib) for c in cases)
        assert int(suite.get("tests")) == len(cases)
        float(suite.get("time"))
    (passing,) = list(suites[0])
    assert list(passing) == []
    (failing,) = list(suites[1])
    failures = list(failing)
    assert [f.tag for f in failures] == ["failure", "failure"]
    assert [f.get("message") for f in failures] == ["expect firing at 1m", "expect pending at 2m"]
    assert failures[0].get("type") == "expectation" and "seen:" in failures[0].text
    (errored,) = list(suites[2])
    assert [e.tag for e in errored] == ["error"] and "lats" in errored[0].text


# --- promtool test files --------------------------------------------------------------------------

PROMTOOL = """# alerts_test.yml
monitors_rules: [alerts.rules]
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="api", instance="a"}'
        values: '1 1 0x6'
      - series: 'up{job="api", instance="b"}'
        values: '1+0x7'
    alert_rule_test:
      - eval_time: 1m
        alertname: api_down
        exp_alerts: []
      - eval_time: 4m
        alertname: api_down
        exp_alerts:
          - exp_labels: {instance: a, job: api, severity: critical}
            exp_annotations: {summary: "instance a is down"}
    promql_expr_test:
      - expr: up
        eval_time: 1m
        exp_samples: []
"""
PROM_RULES = """rule api_down {
    when last(up.value, 1m) == 0
    group by instance
    for 1m
    severity critical
}
"""


def test_a_promtool_file_runs_against_the_rules_it_names(tmp_path, capsys):
    (tmp_path / "alerts.rules").write_text(PROM_RULES, encoding="utf-8")
    path = tmp_path / "alerts_test.yml"
    path.write_text(PROMTOOL, encoding="utf-8")
    code, out, err = _run(capsys, "test", str(path), "-v")
    assert code == 0, out + err
    assert "2 tests" not in err and "1 file, 1 test: 1 passed, 0 failed" in err
    assert f"note: {path}:21: promql_expr_test is not carried over" in err
    assert f"note: {path}:19: labels job are not labels of rule api_down's alerts and are not checked" in err
    assert f"note: {path}:20: exp_annotations are not checked" in err
    broken = PROMTOOL.replace("exp_labels: {instance: a", "exp_labels: {instance: b")
    path.write_text(broken, encoding="utf-8")
    code, out, _ = _run(capsys, "test", str(path))
    assert code == 1
    assert f"{path}:19: FAIL test promtool_1_api_down: expect firing at 4m labels instance = \"b\" severity critical" \
        in out.splitlines()


def test_a_promtool_file_takes_the_rules_given_beside_it(tmp_path, capsys):
    rules = tmp_path / "mine.rules"
    rules.write_text(PROM_RULES, encoding="utf-8")
    path = tmp_path / "t.yaml"
    path.write_text(PROMTOOL.replace("monitors_rules: [alerts.rules]\n", ""), encoding="utf-8")
    code, _, err = _run(capsys, "test", str(path), str(rules))
    assert code == 0, err
    code, _, err = _run(capsys, "test", str(path))
    assert code == 1
    assert f"{path}:1: no monitors rules to test: add `monitors_rules: [FILE.rules]`" in err


@pytest.mark.parametrize(("change", "line", "message"), [
    (("values: '1 1 0x6'", "values: '1 1 0x'"), None, "`0x` is missing its count after `x`"),
    (("  - interval: 1m", "  - interval: 1.5m"), 6, "interval: `1.5m` is not a duration"),
    (("'up{job=\"api\", instance=\"a\"}'", "'up{job=api}'"), 8, "cannot read the labels `job=api`"),
    (("eval_time: 4m", "eval_time: soon"), 16, "eval_time: `soon` is not a duration"),
    (("tests:", "tsts:"), 1, "`tests:` (a list) is missing"),
    (("  - interval: 1m", "  - interval: [1m"), None, "not YAML"),
])
def test_a_broken_promtool_file_says_where(tmp_path, capsys, change, line, message):
    (tmp_path / "alerts.rules").write_text(PROM_RULES, encoding="utf-8")
    path = tmp_path / "t.yml"
    path.write_text(PROMTOOL.replace(*change), encoding="utf-8")
    code, _, err = _run(capsys, "test", str(path))
    assert code == 1
    assert message in err
    if line is not None:
        assert f"{path}:{line}: " in err


# --- properties ---------------------------------------------------------------------------------

_values = st.lists(st.one_of(st.integers(0, 100), st.none()), min_size=3, max_size=12)


def _notation(values) -> str:
    return " ".join("_" if v is None else str(v) for v in values)


def _own_expectations(text: str, test_name: str) -> list[str]:
    """Expectations read off a backtest of the test's series: the state after each evaluation, each
    resolution, each notification."""
    document = monitors_dsl.parse(text)
    (test,) = [t for t in document.tests if t.name == test_name]
    rules = rules_from_text(text)
    source = DataFusionSource()
    for measurement, (table, tags) in series_tables(test, document).items():
        source.add_table(measurement, table, tags=tags)
    end = TEST_EPOCH + timedelta(seconds=test.series[0].end)
    result = backtest(rules, source, TEST_EPOCH, end)
    source.close()
    state, severity, lines = "inactive", None, []
    changes = {int((t.transition.at - TEST_EPOCH).total_seconds()): t.transition
               for t in result.repository.transitions}
    for seconds in range(0, test.series[0].end + 1, 60):
        change = changes.get(seconds)
        if change is not None:
            state, severity = change.to_state, change.severity
            if change.resolved:
                lines.append(f"expect resolved at {seconds}s")
        lines.append(f"expect {state} at {seconds}s" + (f" severity {severity}" if state != "inactive" else ""))
    for recorded in result.repository.notifications:
        lines.append(f"expect notification at {int((recorded.notification.at - TEST_EPOCH).total_seconds())}s")
    return lines


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=_values, threshold=st.integers(10, 90), hold=st.sampled_from(["0s", "1m", "2m"]),
       data=st.data())
def test_a_test_written_from_a_backtest_passes_and_fails_once_one_expectation_changes(values, threshold, hold, data):
    rule = f"""rule r {{
    when last(m.v, 2m) > {threshold}
    for {hold}
    severity info
    notify ch
}}
"""
    series = f"    series m.v every 1m: {_notation(values)}\n"
    probe = f"{rule}\ntest t {{\n{series}}}\n"
    lines = _own_expectations(probe, "t")
    text = f"{rule}\ntest t {{\n{series}" + "".join(f"    {line}\n" for line in lines) + "}\n"
    assert [d for d in monitors_dsl.validate(text) if d.severity == "error"] == []
    (result,) = run_tests(text)
    assert result.passed, result.failures
    states = [i for i, line in enumerate(lines) if line.startswith("expect ") and " at " in line
              and line.split()[1] in ("inactive", "pending", "firing")]
    index = data.draw(st.sampled_from(states))
    word, at = lines[index].split()[1], lines[index].split()[3]
    flipped = "firing" if word == "inactive" else "inactive"
    changed = list(lines)
    changed[index] = wrong = f"expect {flipped} at {at}" + (" severity info" if flipped != "inactive" else "")
    changed = [line for line in changed if line != f"expect resolved at {at}"]
    text = f"{rule}\ntest t {{\n{series}" + "".join(f"    {line}\n" for line in changed) + "}\n"
    assert [d for d in monitors_dsl.validate(text) if d.severity == "error"] == []
    (result,) = run_tests(text)
    assert not result.passed
    assert [f.line for f in result.failures] == [10 + changed.index(wrong)]


def _grouped_expectations(text: str) -> list[str]:
    """Per host and evaluation, the state the backtest recorded (with its severity), read off its transitions."""
    document = monitors_dsl.parse(text)
    (test,) = document.tests
    rules = rules_from_text(text)
    source = DataFusionSource()
    for measurement, (table, tags) in series_tables(test, document).items():
        source.add_table(measurement, table, tags=tags)
    end = max(s.end for s in test.series)
    result = backtest(rules, source, TEST_EPOCH, TEST_EPOCH + timedelta(seconds=end))
    source.close()
    lines = []
    for host in sorted({s.tags["host"] for s in test.series}):
        state, severity = "inactive", None
        changes = {int((t.transition.at - TEST_EPOCH).total_seconds()): t.transition
                   for t in result.repository.transitions if t.labels.get("host") == host}
        for seconds in range(0, end + 1, 60):
            if seconds in changes:
                state, severity = changes[seconds].to_state, changes[seconds].severity
            lines.append(f'expect {state} at {seconds}s labels host = "{host}"'
                         + (f" severity {severity}" if state != "inactive" else ""))
    return lines


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=_values, b=_values, data=st.data())
def test_per_series_expectations_from_a_backtest_pass_and_one_changed_fails(a, b, data):
    rule = """rule r {
    critical when max(m.v, 2m) > 80
    warning when max(m.v, 2m) > 40
    group by host
    for 1m
}
"""
    series = f'    series m.v{{host="a"}} every 1m: {_notation(a)}\n    series m.v{{host="b"}} every 1m: {_notation(b)}\n'
    lines = _grouped_expectations(f"{rule}\ntest t {{\n{series}}}\n")
    text = f"{rule}\ntest t {{\n{series}" + "".join(f"    {line}\n" for line in lines) + "}\n"
    (result,) = run_tests(text)
    assert result.passed, result.failures
    index = data.draw(st.integers(0, len(lines) - 1))
    words = lines[index].split()
    if words[1] == "inactive":
        wrong = lines[index].replace("expect inactive", "expect firing") + " severity info"
    else:
        wrong = lines[index].rsplit(" severity ", 1)[0] + " severity info"
    changed = lines[:index] + [wrong] + lines[index + 1:]
    text = f"{rule}\ntest t {{\n{series}" + "".join(f"    {line}\n" for line in changed) + "}\n"
    (result,) = run_tests(text)
    assert [f.line for f in result.failures] == [11 + index]
