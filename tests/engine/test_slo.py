"""SLO blocks through the engine's backtest: burn rates worked out by hand from small series.

``http.csv`` holds one point a minute at ``:30`` seconds (so no point sits on a window's edge at the
whole-minute evaluations): ``requests`` and ``errors`` per minute for the service ``api``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.backtest import backtest
from engine.rules import RuleBuilder, rules_from_text
from engine.sources import DataFusionSource

import monitors_dsl

DAY = datetime(2024, 5, 1, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def _write(tmp_path, minutes: int, errors) -> None:
    """``minutes`` minutes of 100 requests from 00:00:30, with ``errors(minute)`` of them failing."""
    lines = ["time,service,requests,errors"]
    for minute in range(minutes):
        at = DAY + minute * MIN + timedelta(seconds=30)
        lines.append(f"{at:%Y-%m-%dT%H:%M:%S}Z,api,100,{errors(minute)}")
    (tmp_path / "http.csv").write_text("\n".join(lines) + "\n")


def _moves(result, rule_id: str) -> list[tuple[str, str, str, str | None]]:
    return [(t.transition.at.strftime("%H:%M"), t.transition.from_state, t.transition.to_state,
             t.transition.severity) for t in result.repository.transitions if t.rule_id == rule_id]


def _severities(result, rule_id: str) -> dict[str, str | None]:
    return {point.at.strftime("%H:%M"): point.severity for point in result.history[rule_id]}


def test_a_fast_burn_warns_then_pages_at_the_minutes_worked_out_by_hand(tmp_path) -> None:
    # 100 requests a minute from 00:00:30 to 02:29:30; 40 of them fail from 01:00:30 on (40 % bad).
    _write(tmp_path, 150, lambda minute: 40 if minute >= 60 else 0)
    text = """
        slo api_availability {
            bad sum(http.errors{service="api"})
            total sum(http.requests{service="api"})
            objective 99%
            notify pager on critical
            notify team_slack on warning
        }
    """
    # At 01:00 + k minutes (k >= 1) the budget is 1 % and k minutes of 40 errors are in every window
    # that reaches back to 01:00:
    #   burn(5m)  = 40·min(k, 5) / 500 / 1 %      = 8·min(k, 5)      > 14.4 from k = 2
    #   burn(1h)  = 40·k / 6000 / 1 %             = 2k/3             > 14.4 from k = 22 (k = 21: 14.0)
    #   burn(30m) = 40·min(k, 30) / 3000 / 1 %    = 4k/3 (k <= 30)   > 6    from k = 5  (k = 4: 5.33)
    #   burn(6h)  = 40·k / (100·(60 + k)) / 1 %   = 40k / (60 + k)   > 6    from k = 11 (k = 10: 5.71; 11: 6.20)
    #   burn(3d)  = burn(6h) (the data is younger than 6 hours)      > 1    from k = 2  (k = 1: 0.66; 2: 1.29)
    # so the ticket's pair (3d and 6h above 1) holds from 01:02: warning; the slow page's pair (6h and 30m
    # above 6) from 01:11: critical; the fast page's pair (1h and 5m above 14.4) from 01:22, still critical.
    def burn(window_minutes: int, k: int) -> float:
        seen_errors = 40 * min(k, window_minutes)
        seen_requests = 100 * min(window_minutes, 60 + k)
        return seen_errors / seen_requests / (1 - 0.99)

    assert burn(360, 1) < 1 < burn(360, 2) and burn(4320, 2) > 1
    assert burn(360, 10) < 6 < burn(360, 11) and burn(30, 11) > 6
    assert burn(60, 21) < 14.4 < burn(60, 22) and burn(5, 22) > 14.4

    with DataFusionSource(tmp_path) as source:
        result = backtest(rules_from_text(text), source, DAY + 50 * MIN, DAY + 90 * MIN)
    assert result.errors == []
    severities = _severities(result, "api_availability")
    assert severities["01:01"] is None
    assert severities["01:02"] == "warning" and severities["01:10"] == "warning"
    assert severities["01:11"] == "critical" and severities["01:30"] == "critical"
    moves = _moves(result, "api_availability")
    assert moves[0] == ("01:02", "inactive", "firing", "warning")
    assert [m for m in moves if m[3] == "critical"][0][0] == "01:11"
    assert all(m[2] == "firing" for m in moves)  # nothing resolves while the burst lasts
    # the ticket goes to team_slack; the page (the escalation to critical) to the pager, newly covered
    sent = [(n.notification.at.strftime("%H:%M"), n.notification.severity, n.channels)
            for n in result.repository.notifications if n.rule_id == "api_availability"]
    assert sent[0] == ("01:02", "warning", ("team_slack",))
    assert ("01:11", "critical") in [(at, severity) for at, severity, _ in sent]
    assert "pager" in next(channels for at, severity, channels in sent if at == "01:11")

    # the burn rates the engine computed, from its rows: 1h at 01:22 (2·22/3 = 14.67)
    compiled = result.rules[0].compiled
    at = DAY + 82 * MIN
    row = source_row(tmp_path, compiled, at)
    one_hour = {t.text: row[t.column] for t in compiled.terms}
    assert one_hour['sum(http.errors{service="api"}, 1h)'] == 40 * 22
    assert one_hour['sum(http.requests{service="api"}, 1h)'] == 6000
    assert compiled.decide(row).severity == "critical"


def source_row(tmp_path, compiled, at) -> dict:
    with DataFusionSource(tmp_path) as source:
        rows = source.query(compiled.sql(at)).to_pylist()
    assert len(rows) == 1
    return rows[0]


def test_a_slow_burn_opens_the_ticket_at_the_hour_worked_out_by_hand(tmp_path) -> None:
    # 100 requests a minute from 00:00:30 to 07:59:30; 0.4 fail a minute from 02:00:30 on (0.4 % bad).
    _write(tmp_path, 480, lambda minute: 0.4 if minute >= 120 else 0)
    text = """
        slo api_availability {
            bad sum(http.errors{service="api"})
            total sum(http.requests{service="api"})
            objective 99.9%
            every 1h
            notify team_slack on warning
        }
    """
    # At 02:00 + h hours (evaluated each hour), the budget is 0.1 %:
    #   burn(6h) = burn(3d) = 0.4·60h / (100·60·(2 + h)) / 0.1 % = 4h / (2 + h) for h <= 4: 0 at 02:00, 1.33 at 03:00
    #   so the ticket (3d and 6h above 1) opens at 03:00; no burn rate reaches 6 (at most 4 once the
    #   windows hold only bad minutes), so nothing pages.
    assert 4 * 1 / (2 + 1) > 1 and 4 * 6 / (2 + 6) < 6
    with DataFusionSource(tmp_path) as source:
        result = backtest(rules_from_text(monitors_dsl.canonical(text)), source, DAY + HOUR, DAY + 8 * HOUR)
    assert result.errors == []
    severities = _severities(result, "api_availability")
    assert severities == {"01:00": None, "02:00": None, "03:00": "warning", "04:00": "warning",
                          "05:00": "warning", "06:00": "warning", "07:00": "warning", "08:00": "warning"}
    assert _moves(result, "api_availability") == [("03:00", "inactive", "firing", "warning")]
    notified = [n for n in result.repository.notifications if n.rule_id == "api_availability"]
    assert [n.notification.at.strftime("%H:%M") for n in notified] == ["03:00"]


def test_windows_emptying_step_the_severity_down_and_no_traffic_is_no_data(tmp_path) -> None:
    # 40 % errors for 20 minutes from 00:00:30, then neither measurement reports anything.
    _write(tmp_path, 20, lambda minute: 40)
    text = """
        slo api_availability {
            bad sum(http.errors{service="api"})
            total sum(http.requests{service="api"})
            objective 99%
            page 10 over 10m, 2m
        }
    """
    with DataFusionSource(tmp_path) as source:
        result = backtest(rules_from_text(text), source, DAY + MIN, DAY + 60 * MIN)
    assert result.errors == []
    moves = _moves(result, "api_availability")
    # 40 % bad is a burn rate of 40 over every window from 00:01: the (overridden) page at once
    assert moves[0] == ("00:01", "inactive", "firing", "critical")
    # from 00:22 the 2m window holds no point: the page's pair is unknown, the slow page's 30m pair and
    # the ticket's still hold (their windows reach the burst) — the alert stays critical until 00:50,
    # when the 30m window empties; the ticket's windows (3d, 6h) still hold the burst: warning
    severities = _severities(result, "api_availability")
    assert severities["00:21"] == "critical" and severities["00:49"] == "critical"
    assert severities["00:50"] == "warning"
    # with every window empty the result is no data, which an slo block treats as ok: nothing fires
    rules = rules_from_text(text)
    empty = {t.column: None for t in rules[0].compiled.terms}
    assert rules[0].compiled.decide(empty).result is None
    assert rules[0].clauses.on_no_data == "ok"


def test_zero_total_is_no_data_not_a_division_error() -> None:
    compiled = monitors_dsl.compile_rule(
        'slo s { bad count(http.errors) total count(http.requests) objective 99.9% }')
    row = {t.column: 0 for t in compiled.terms}
    assert compiled.decide(row).result is None
    row = {t.column: (1 if t.text.startswith("count(http.errors") else 10) for t in compiled.terms}
    assert compiled.decide(row).severity == "critical"  # 10 % bad: a burn rate of 100 everywhere


def test_the_store_path_builds_the_block_as_one_rule_with_two_severities() -> None:
    canonical = monitors_dsl.canonical(
        'slo s { bad sum(http.errors) total sum(http.requests) objective 99.9% notify pager }')

    class Row:
        id, owner_id, name, version = 7, 1, "s", 1

    Row.canonical = canonical
    built = RuleBuilder().build(Row())
    assert built is not None
    assert built.compiled.canonical == canonical
    assert [severity for severity, _ in built.compiled.rule.conditions] == ["critical", "warning"]
    assert built.channels == ("pager",)
    assert built.clauses.on_no_data == "ok"


@pytest.mark.parametrize("window", ["1h", "5m"])
def test_shared_windows_are_one_scan_each(window) -> None:
    """bad and total on one measurement and filter set share a scan per window; 6h (a page's long window
    and the ticket's short one) is computed once."""
    compiled = monitors_dsl.compile_rule(
        'slo s { bad sum(http.errors{service="api"}) total sum(http.requests{service="api"}) objective 99.9% }')
    assert len(compiled.terms) == 10  # 5 windows × (bad, total)
    sql = compiled.sql(DAY)
    assert sql.count('FROM "http"') == 5
    assert f'sum(http.errors{{service="api"}}, {window})' in [t.text for t in compiled.terms]


def test_a_test_block_checks_an_slo_block_by_its_name() -> None:
    from engine.testing import run_tests

    text = """
        slo api_availability {
            bad sum(http.errors{service="api"})
            total sum(http.requests{service="api"})
            objective 99%
            page 10 over 10m, 2m
        }

        test fast_burn for api_availability {
            series http.requests{service="api"} every 1m: 100x30
            series http.errors{service="api"} every 1m: 0x9 40x20
            expect inactive at 9m
            expect firing at 10m severity warning
            expect firing at 11m severity critical
            expect firing at 14m severity critical
        }

        test wrong_minute for api_availability {
            series http.requests{service="api"} every 1m: 100x30
            series http.errors{service="api"} every 1m: 0x9 40x20
            expect firing at 10m severity critical
        }
    """
    # From 10m, 40 of each minute's 100 requests fail. At 10m the burn rate is 40 / 200 / 1 % = 20 over 2m
    # but 40 / 1000 / 1 % = 4 over 10m (the page needs both), 40 / 1100 / 1 % = 3.6 over 30m (not the slow
    # page), and 3.6 over 6h and 3d: above 1, the ticket (warning). At 11m it is 80 / 1200 / 1 % = 6.7 over
    # 30m and 6h: the slow page (critical); at 14m 200 / 1000 / 1 % = 20 over 10m: the page as well.
    passed, failed = run_tests(text)
    assert (passed.name, passed.failures, passed.error) == ("fast_burn", (), None)
    assert failed.name == "wrong_minute" and len(failed.failures) == 1
