"""The Prometheus comparison benchmark's pieces: the rule mix translated into Prometheus rules promtool accepts,
and the series served in a text format promtool accepts, moving at each scrape."""

from __future__ import annotations

import json
import random
import subprocess
import urllib.request

import pytest

from benchmarks.vs_prometheus import Exporter, rules_file, translate
from tests.support import prometheus


@pytest.fixture(scope="module")
def promtool() -> str:
    return prometheus.promtool_for_tests()


@pytest.mark.parametrize(("text", "expected"), [
    ('last(crypto.price{symbol="S0001"}) > 70000.5',
     [{"alert": "r", "expr": 'last_over_time(crypto_price{symbol="S0001"}[5m]) > 70000.5',
       "labels": {"severity": "warning"}}]),
    ('rule r1 {\n    when last(crypto.price{symbol="S0002"}) < 12.25\n    for 2m\n}',
     [{"alert": "r", "expr": 'last_over_time(crypto_price{symbol="S0002"}[5m]) < 12.25', "for": "2m",
       "labels": {"severity": "warning"}}]),
    ('rule r2 {\n    critical when last(crypto.price{symbol="S"}) > 105\n    warning when last(crypto.price{symbol="S"}) > 100\n}',
     [{"alert": "r", "expr": 'last_over_time(crypto_price{symbol="S"}[5m]) > 105', "labels": {"severity": "critical"}},
      {"alert": "r", "expr": 'last_over_time(crypto_price{symbol="S"}[5m]) > 100', "labels": {"severity": "warning"}}]),
    ('rule r3 {\n    when last(crypto.price) > 150000\n    group by symbol\n}',
     [{"alert": "r", "expr": "last_over_time(crypto_price[5m]) > 150000", "labels": {"severity": "warning"}}]),
    ('max(crypto.price{symbol="S"}, 5m) > 11',
     [{"alert": "r", "expr": 'max_over_time(crypto_price{symbol="S"}[5m]) > 11', "labels": {"severity": "warning"}}]),
    ('pct_change(crypto.price{symbol="S"}, 5m) > 2.5%',
     [{"alert": "r", "expr": '(last_over_time(crypto_price{symbol="S"}[5m]) - crypto_price{symbol="S"} offset 4m) '
                            '/ abs(crypto_price{symbol="S"} offset 4m) > 2.5 / 100',
       "labels": {"severity": "warning"}}]),
])
def test_each_form_of_the_mix_translates(text, expected) -> None:
    forms: dict = {}
    assert translate(text, 60, "r", forms) == expected
    assert translate(text, 60, "r", forms) == expected  # the second time from the cached form


def test_a_translation_keeps_each_rule_its_own_numbers() -> None:
    forms: dict = {}
    first = translate('last(crypto.price{symbol="S1"}) > 10', 60, "a", forms)
    second = translate('last(crypto.price{symbol="S2"}) > 1000001.5', 60, "b", forms)
    assert first[0]["expr"].endswith("> 10") and second[0]["expr"].endswith("> 1000001.5")


def test_what_has_no_translation_is_refused() -> None:
    with pytest.raises(ValueError, match="no translation"):
        translate('rule k {\n    when last(crypto.price{symbol="S"}) > 1\n    keep firing for 5m\n}', 60, "k")


def test_the_mix_translated_is_accepted_by_promtool(promtool, tmp_path) -> None:
    from engine_scale import base_prices, rule_texts

    rng = random.Random(7)
    texts = rule_texts(2000, rng, base_prices(rng))
    path = tmp_path / "rules.yml"
    count = rules_file(texts, 60, path)
    groups = json.loads(path.read_text())["groups"]
    assert len(groups) == 100 and sum(len(g["rules"]) for g in groups) == count > len(texts)
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{count} rules found" in run.stdout


def test_the_series_are_served_in_the_text_format_and_move(promtool) -> None:
    exporter = Exporter({"S0": 100.0, "S1": 2000.0}, seed=1)
    try:
        url = f"http://127.0.0.1:{exporter.port}/metrics"
        first = urllib.request.urlopen(url, timeout=10).read().decode()
        second = urllib.request.urlopen(url, timeout=10).read().decode()
    finally:
        exporter.stop()
    assert 'crypto_price{symbol="S0"}' in first and 'crypto_price{symbol="S1"}' in first
    assert first != second and exporter.scrapes == 2
    run = subprocess.run([promtool, "check", "metrics"], input=first, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
