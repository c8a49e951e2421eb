"""The replicas benchmark (``benchmarks/engine_replicas.py``) at a tiny size on MariaDB: two replica processes
settle leases covering every rule exactly once, and each evaluates only the rules it holds."""

from __future__ import annotations

import pytest

from tests.support.store import mysql_base_url

pytestmark = pytest.mark.mysql

RULES = 300


def test_two_replicas_hold_every_rule_once_and_evaluate_only_their_own() -> None:
    from benchmarks.engine_replicas import run

    result = run(mysql_base_url(), RULES, 2, ticks=1)

    held = [set(ids) for ids in result["held_ids"]]
    assert len(held) == 2 and not held[0] & held[1]
    assert len(held[0] | held[1]) == RULES and result["settled"]["ok"]
    assert sorted(result["store_holders"].values()) == sorted(map(len, held))
    assert len(result["evaluated_ids"]) == 2  # the first tick and one measured
    for tick in result["evaluated_ids"]:
        evaluated = [set(ids) for ids in tick]
        assert evaluated == held
    assert result["checks"] == {"once": True, "own": True}
    assert all(a["rules"] == len(h) for a, h in zip(result["ticks"][0], held))
