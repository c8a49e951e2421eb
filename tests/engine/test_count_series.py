"""``count_series`` through the engine: series told apart by every tag the source's schema lists."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from engine.backtest import backtest
from engine.rules import rules_from_text
from engine.sources import DataFusionSource

T9 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def transitions(result, rule_id: str) -> list[tuple[str, str, str]]:
    return [(t.transition.at.strftime("%H:%M"), t.transition.from_state, t.transition.to_state)
            for t in result.repository.transitions if t.rule_id == rule_id]


def _up(tmp_path):
    """Four API instances and one web instance reporting each minute; i4 stops after 09:09, i3 after 09:14."""
    lines = ["time,job,instance,value"]
    for minute in range(30):
        for job, instance in (("api", "i1"), ("api", "i2"), ("api", "i3"), ("api", "i4"), ("web", "w1")):
            if (instance == "i4" and minute > 9) or (instance == "i3" and minute > 14):
                continue
            lines.append(f"2024-05-01T09:{minute:02d}:30Z,{job},{instance},1")
    (tmp_path / "up.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_fewer_than_three_api_instances_fires_when_the_second_one_stops(tmp_path) -> None:
    text = ('rule api_instances_low { when count_series(up.value{job="api"}, 2m) < 3 }\n'
            'rule all_series { when count_series(up.value, 2m) < 4 }\n')
    with DataFusionSource(_up(tmp_path)) as source:
        result = backtest(rules_from_text(text), source, T9 + MIN, T9 + 29 * MIN)
    assert result.errors == []
    # the instance tag, named nowhere in the rule, tells the series apart: 4 until 09:11, 3 until 09:16
    assert transitions(result, "api_instances_low") == [("09:17", "inactive", "firing")]
    assert transitions(result, "all_series") == [("09:17", "inactive", "firing")]  # i1, i2 and w1 left
