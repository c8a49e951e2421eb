"""Every example in docs/examples.md validates cleanly, and together they use the whole language."""

from __future__ import annotations


import pytest

import monitors_dsl
from monitors_dsl import ast as a
from tests.support.examples import PAIRS  # noqa: F401


def test_there_are_at_least_fifty_examples_some_written_from_looked_up_names():
    assert len(PAIRS) >= 50
    assert sum("describe_data" in words for words, _ in PAIRS) >= 5


@pytest.mark.parametrize(("words", "rule"), PAIRS, ids=[w[:40] for w, _ in PAIRS])
def test_example_validates_without_any_diagnostic(words, rule):
    assert monitors_dsl.validate(rule) == []


def test_examples_cover_every_function_filter_and_clause():
    functions, filters, clauses = set(), set(), set()
    for _, text in PAIRS:
        for rule in monitors_dsl.parse(text):
            clauses.update(k for k in rule.clause_spans if isinstance(k, str))
            for _, cond in rule.conditions + ((("resolve", rule.resolve_when),) if rule.resolve_when else ()):
                for node in a.walk(cond):
                    if isinstance(node, a.Aggregate):
                        functions.add(node.function)
                        filters.update(f.op for f in node.selector.filters)
                        if node.offset.seconds:
                            functions.add("offset")
                    elif isinstance(node, a.Abs):
                        functions.add("abs")
    assert set(a.AGGREGATES) | {"abs", "offset"} <= functions
    assert set(a.FILTER_OPS) <= filters
    expected_clauses = {"when", "critical when", "warning when", "info when", "resolve when", "group by", "every",
                        "for", "keep firing for", "on no data", "severity", "labels", "notify", "repeat every",
                        "title", "message", "description"}
    assert expected_clauses <= clauses, expected_clauses - clauses
