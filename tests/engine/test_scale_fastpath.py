"""Rules decided together (shared shapes, sorted thresholds) decide exactly like each rule on its own.

The same random rules run twice over the same random data: once compiled one
by one (``rule_from_text``, the general path), once through ``RuleBuilder``
from store-like rows (shared shapes, binary search over thresholds, only
candidate series stepped, rules with nothing to step skipped). Transitions,
notifications and the states kept must be equal — and equal again when every
rule is stepped at every tick.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from engine.evaluate import Evaluator
from engine.repository import MemoryRepository
from engine.rules import RuleBuilder, rule_from_text
from engine.runner import Runner, StaticRules
from engine.sources import DataFusionSource
from monitors_dsl.shapes import BoundRule
from tests.support.scale_data import MIN, T0, random_data, random_rule


class SteppingEveryRule(MemoryRepository):
    """Does not tell which rules have errors: the runner then steps every rule at every tick."""

    def errored(self):
        return None


def outcome(repo: MemoryRepository):
    transitions = sorted((t.rule_id, t.series_key, t.transition.at, t.transition.from_state, t.transition.to_state,
                          t.transition.severity) for t in repo.transitions)
    notifications = sorted((n.rule_id, n.notification.series_key, n.notification.at, n.notification.kind,
                            n.notification.severity, n.notification.value) for n in repo.notifications)
    states = sorted((rule_id, key, repr(state)) for rule_id, known in repo.states.items()
                    for key, state in known.items())
    return transitions, notifications, states


@pytest.mark.parametrize("seed", range(12))
def test_rules_decided_together_match_each_rule_on_its_own(seed: int) -> None:
    rng = random.Random(seed)
    texts = [random_rule(rng, i) for i in range(40)]
    minutes = 12
    table = random_data(rng, minutes)

    general = [rule_from_text(text, id=str(i + 1)) for i, text in enumerate(texts)]
    builder = RuleBuilder()
    together = builder.build_all([SimpleNamespace(id=i + 1, version=1, name=f"r{i}", owner_id=1, canonical=text)
                                  for i, text in enumerate(texts)])
    assert len(together) == len(texts)
    assert any(isinstance(r.compiled, BoundRule) and r.compiled.shape.thresholds for r in together)
    assert builder.full_compiles < len(texts)

    outcomes, skipped = [], 0
    for rules, repository in ((general, MemoryRepository), (together, MemoryRepository),
                              (together, SteppingEveryRule)):
        source = DataFusionSource()
        source.add_table("crypto", table)
        repo = repository()
        runner = Runner(StaticRules(rules), repo, Evaluator(source))
        for m in range(minutes):
            report = runner.tick(T0 + m * MIN, all_rules=True)
            skipped += report.evaluation.skipped
        outcomes.append(outcome(repo))
        source.close()
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert skipped, "some rules should have had nothing to step"
    assert outcomes[0][0], "the random data should make something happen"


def test_bound_rules_decide_like_compiled_rules() -> None:
    rng = random.Random(5)
    builder = RuleBuilder()
    texts = [random_rule(rng, i) for i in range(60)]
    rows = [SimpleNamespace(id=i + 1, version=1, name=None, owner_id=1, canonical=t) for i, t in enumerate(texts)]
    for rule, text in zip(builder.build_all(rows), texts):
        reference = rule_from_text(text, id=rule.id)
        assert rule.condition == reference.condition and rule.clauses == reference.clauses
        assert [t.key for t in rule.terms] == [t.key for t in reference.terms]
        for _ in range(30):
            row = {t.column: rng.choice([None, 8.0, 9.0, 10.0, 10.5, 11.0, 12.0]) for t in rule.terms}
            assert rule.compiled.decide(row) == reference.compiled.decide(row)
        assert rule.compiled.rule == reference.compiled.rule  # the tree, parsed again on demand
