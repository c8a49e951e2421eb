"""A rule set that differs from the last one by a few rules is laid out from it (``engine.evaluate``): the
evaluation must be the same as with a layout built afresh, whatever was added, removed or changed."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from engine.evaluate import Evaluator
from engine.rules import RuleBuilder
from engine.sources import DataFusionSource

from tests.support.scale_data import MIN, T0, random_data, random_rule


def outcome(evaluation, attention):
    out = []
    for result in evaluation.results:
        series = [] if result.error else [(s.key, s.decision) for s in result.relevant({})]
        out.append((result.rule.id, result.error, tuple(sorted(result.candidates or ()))
                    if result.candidates is not None else None, tuple(series)))
    return out, evaluation.skipped, evaluation.query_count


@pytest.mark.parametrize("seed", range(8))
def test_a_few_rules_changed_evaluate_as_laid_out_afresh(seed: int) -> None:
    rng = random.Random(seed)
    builder = RuleBuilder()
    rows = {}
    next_id = 1
    for _ in range(60):
        rows[next_id] = SimpleNamespace(id=next_id, version=1, name=None, owner_id=1,
                                        canonical=random_rule(rng, next_id))
        next_id += 1
    source = DataFusionSource()
    source.add_table("crypto", random_data(rng, 6))
    incremental = Evaluator(source)
    updated = 0
    for step in range(6):
        rules = builder.build_all([rows[k] for k in sorted(rows)])
        at = T0 + (step % 5) * MIN
        attention = {r.id for r in rules if rng.random() < 0.2}
        fresh = Evaluator(source).evaluate(rules, at, attention=attention)
        before = incremental.layouts._layouts.copy()
        mine = incremental.evaluate(rules, at, attention=attention)
        assert outcome(mine, attention) == outcome(fresh, attention)
        if before:
            latest = next(reversed(incremental.layouts._layouts.values()))
            if latest.plan.scans is next(reversed(before.values())).plan.scans:  # laid out from the last one
                updated += 1
                assert len(incremental.layouts._layouts) == len(before)  # which it replaced
        # change a few rules: remove, add (with the terms of a rule already there or new ones), edit
        for _ in range(rng.randint(1, 4)):
            action = rng.choice(["remove", "add", "edit", "copy"])
            if action == "remove" and len(rows) > 5:
                rows.pop(rng.choice(sorted(rows)))
            elif action == "add":
                rows[next_id] = SimpleNamespace(id=next_id, version=1, name=None, owner_id=1,
                                                canonical=random_rule(rng, next_id))
                next_id += 1
            elif action == "copy":  # the same terms as an existing rule: laid out from the last layout
                template = rows[rng.choice(sorted(rows))]
                rows[next_id] = SimpleNamespace(id=next_id, version=1, name=None, owner_id=2,
                                                canonical=template.canonical.replace(f"rule r{template.id} ",
                                                                                     f"rule r{next_id} ", 1))
                next_id += 1
            else:
                key = rng.choice(sorted(rows))
                rows[key] = SimpleNamespace(id=key, version=rows[key].version + 1, name=None, owner_id=1,
                                            canonical=random_rule(rng, key))
    source.close()
    assert updated, "some rule sets should have been laid out from the last one"
