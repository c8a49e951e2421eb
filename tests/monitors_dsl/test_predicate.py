"""The predicate compiler: three-valued logic, no data, severities, resolve, and what the source may hold."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitors_dsl import Decision, compile_rule, reference

from tests.support import compiler_strategies as s

T, F, N = True, False, None


def _row(rule, *values):
    return {term.column: value for term, value in zip(rule.terms, values)}


def _logic(op: str):
    """A rule whose two sides are ``last(a.x) > 0`` and ``last(a.y) > 0``, and a row giving each side a value."""
    rule = compile_rule(f"last(a.x) > 0 {op} last(a.y) > 0")
    encode = {True: 1.0, False: -1.0, None: None}
    return rule, lambda left, right: _row(rule, encode[left], encode[right])


@pytest.mark.parametrize("left, right, expected", [
    (T, T, T), (T, F, F), (F, T, F), (F, F, F),
    (F, N, F), (N, F, F), (T, N, N), (N, T, N), (N, N, N),
])
def test_and_is_three_valued(left, right, expected):
    rule, row = _logic("and")
    assert rule.condition(row(left, right)) is expected


@pytest.mark.parametrize("left, right, expected", [
    (T, T, T), (T, F, T), (F, T, T), (F, F, F),
    (T, N, T), (N, T, T), (F, N, N), (N, F, N), (N, N, N),
])
def test_or_is_three_valued(left, right, expected):
    rule, row = _logic("or")
    assert rule.condition(row(left, right)) is expected


@pytest.mark.parametrize("value, expected", [(1.0, F), (-1.0, T), (None, N)])
def test_not(value, expected):
    rule = compile_rule("not last(a.x) > 0")
    assert rule.condition(_row(rule, value)) is expected


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "==", "!="])
def test_a_comparison_touching_no_data_is_unknown(op):
    rule = compile_rule(f"last(a.x) {op} last(a.y)")
    assert rule.condition(_row(rule, None, 1.0)) is None
    assert rule.condition(_row(rule, 1.0, None)) is None
    assert rule.condition(_row(rule, 1.0, 1.0)) is (op in (">=", "<=", "=="))


@pytest.mark.parametrize("text, values, expected", [
    ("last(a.x) / last(a.y) > 1", (1.0, 0.0), N),
    ("last(a.x) / last(a.y) > 1", (3.0, 2.0), T),
    ("last(a.x) / (last(a.y) - 2) > 1", (3.0, 2.0), N),
    ("last(a.x) / (last(a.y) - 2) > 1 or last(a.x) > 2", (3.0, 2.0), T),
    ("last(a.x) / 0 > 1 and last(a.y) > 5", (3.0, 2.0), F),
    ("abs(last(a.x)) > 2", (-3.0,), T),
    ("abs(last(a.x) - last(a.y)) < 1", (1.0, 1.5), T),
    ("-last(a.x) > 2", (-3.0,), T),
    ("last(a.x) * 2 + 1 == 7", (3.0,), T),
    ("last(a.x) - last(a.y) - 1 == 0", (3.0, 2.0), T),  # left-associative
    ("last(a.x) / last(a.y) / 2 == 0.75", (3.0, 2.0), T),
    ("abs(last(a.x) / last(a.y)) > 0", (1.0, 0.0), N),
    ("count(a.x) == 0", (0,), T),
    ("absent(a.x) or last(a.y) > 0", (True, None), T),
    ("absent(a.x) and last(a.y) > 0", (None, -1.0), F),
    ("not absent(a.x)", (None,), N),
])
def test_arithmetic_and_no_data(text, values, expected):
    rule = compile_rule(text)
    assert rule.condition(_row(rule, *values)) is expected


def test_several_severities_pick_the_highest_that_holds():
    rule = compile_rule("""rule r {
        critical when last(a.x) > 90
        warning when last(a.x) > 70
        info when last(a.y) > 0
    }""")
    assert rule.decide(_row(rule, 95.0, -1.0)) == Decision(True, "critical", False)
    assert rule.decide(_row(rule, 80.0, -1.0)) == Decision(True, "warning", False)
    assert rule.decide(_row(rule, 10.0, 1.0)) == Decision(True, "info", False)
    assert rule.decide(_row(rule, 10.0, -1.0)) == Decision(False, None, True)
    assert rule.decide(_row(rule, None, 1.0)) == Decision(True, "info", False)
    assert rule.decide(_row(rule, 10.0, None)) == Decision(None, None, None)
    assert rule.decide(_row(rule, None, None)).no_data


def test_resolve_when_is_its_own_condition():
    rule = compile_rule("rule r { when last(a.x) > 90 resolve when last(a.x) < 80 }")
    assert rule.decide(_row(rule, 95.0)) == Decision(True, "warning", False)
    assert rule.decide(_row(rule, 85.0)) == Decision(False, None, False)  # hysteresis: not yet resolved
    assert rule.decide(_row(rule, 70.0)) == Decision(False, None, True)
    assert rule.decide(_row(rule, None)) == Decision(None, None, None)


def test_without_resolve_when_resolving_is_the_condition_not_holding():
    rule = compile_rule("rule r { when last(a.x) > 90 severity info }")
    assert rule.decide(_row(rule, 95.0)) == Decision(True, "info", False)
    assert rule.decide(_row(rule, 5.0)) == Decision(False, None, True)
    assert rule.decide(_row(rule, None)) == Decision(None, None, None)


def test_the_predicate_runs_without_builtins_and_holds_no_user_text():
    tricky = "'); __import__('os').system('x'); ('"
    rule = compile_rule(f'rule `{tricky}` {{ when last(`{tricky}`.`{tricky}`{{`{tricky}`="{tricky}"}}) > 1 }}')
    source = rule.predicate_source
    assert "__import__" not in source and "os" not in source.replace("resolve", "")
    assert rule.condition.__globals__["__builtins__"] == {}
    compile(source, "<check>", "exec")  # the source is what runs
    assert rule.condition(_row(rule, 2.0)) is True


def test_numbers_go_through_repr():
    rule = compile_rule("last(a.x) > 0.1 + 0.2 and last(a.x) < 1e300 * 10 and last(a.x) > 5%")
    assert "0.1" in rule.predicate_source and "0.05" in rule.predicate_source
    assert rule.condition(_row(rule, 0.31)) is True
    assert rule.condition(_row(rule, 0.3)) is False


@settings(max_examples=300, deadline=None)
@given(rule=s.rules(), data=st.data())
def test_the_predicate_matches_the_reference_logic_on_any_values(rule, data):
    """Random rules, random term values (numbers, zeros, no data): the generated code decides as the oracle."""
    compiled = compile_rule(rule)
    values = {}
    for term in compiled.terms:
        if term.function == "absent":
            values[term.column] = data.draw(st.sampled_from([True, False, None]))
        else:
            values[term.column] = data.draw(st.one_of(st.none(), st.just(0.0), st.sampled_from([1.0, -1.0, 2.5]),
                                                      st.floats(-1e12, 1e12)))
    assert compiled.decide(values) == reference.decision(rule, values)
    assert compiled.condition(values) is reference.decision(rule, values).result


def test_decision_truth_table_is_exhaustive_for_two_severities():
    rule = compile_rule("rule r { critical when last(a.x) > 0 warning when last(a.y) > 0 resolve when last(a.z) > 0 }")
    encode = {True: 1.0, False: -1.0, None: None}
    for x, y, z in itertools.product([T, F, N], repeat=3):
        decision = rule.decide(_row(rule, encode[x], encode[y], encode[z]))
        assert decision.severity == ("critical" if x else "warning" if y else None)
        assert decision.result is (T if T in (x, y) else N if N in (x, y) else F)
        assert decision.resolve is z
