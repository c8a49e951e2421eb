"""Hostile rule text: template bombs, lone surrogates and regexes the source refuses, all caught by validation.

Each case is text a user could send; validation must answer it quickly with a
diagnostic that has a position and a hint, without evaluating anything.
"""

from __future__ import annotations

import pytest

import monitors_dsl
from monitors_dsl.templates import TEMPLATE_LIMITS, template_problems


def rule_with(message: str) -> str:
    return f'rule r {{\n    when last(crypto.price{{symbol="BTC"}}) > 1\n    message "{message}"\n}}'


# (template, line of the problem within the template) — each would build far more than a render may.
TEMPLATE_BOMBS = [
    ("{{ 9 ** 10000000 }}", 1),
    ("{{ 'x' * 500000000 }}", 1),
    ("{{ (10**6) * 'x' }}", 1),
    ("{{ 'a' ~ 'b' * 10**6 }}", 1),
    ("{{ 'a'|center(100000000) }}", 1),
    ("{{ 'a'|indent(100000000) }}", 1),
    ("{{ '%999999999s' % 1 }}", 1),
    ("{{ '{:999999999}'.format(1) }}", 1),
    ("{{ ('x'*100)|join('y'*100000) }}", 1),
    ("{{ 'ab'|replace('a', 'c'*100000) * 10 }}", 1),
    ("{{ [1, 2, 3] * 10**9 }}", 1),
    ("ok\\n{{ ('x' * 1000) * 1000 }}", 2),
    ("{{ 3 ** 40 * 'x' }}", 1),
]


@pytest.mark.parametrize(("template", "line"), TEMPLATE_BOMBS, ids=[t for t, _ in TEMPLATE_BOMBS])
def test_template_bombs_are_refused_at_validation_with_their_line(template, line):
    (problem,) = [d for d in monitors_dsl.validate(rule_with(template)) if d.severity == "error"]
    assert problem.code == "template-too-large"
    assert problem.line == 3 + line - 1
    assert "limit" in problem.message and problem.hint


@pytest.mark.parametrize("template", [
    "{{ 'x' * 1000 }}", "{{ value | round(2) }}", "{{ '%.2f' % value }}", "{{ 2 ** 100 }}", "{{ [1, 2] * 3 }}",
    "{{ '-' * 40 }}\\n{{ rule }}", "{{ 'x' * (2 ** 10) }}", "{{ 2 ** -3 }}", "{{ value|string|center(80) }}",
])
def test_templates_of_ordinary_size_pass(template):
    assert [d for d in monitors_dsl.validate(rule_with(template)) if d.severity == "error"] == []


def test_checking_a_template_computes_nothing(monkeypatch):
    """Jinja2 folds constants while compiling; the shared sandbox must not (the bomb would run here)."""
    import operator

    calls = []
    real = operator.pow
    monkeypatch.setattr(operator, "pow", lambda a, b: calls.append((a, b)) or real(a, b))
    from monitors_dsl.templates import sandbox

    sandbox().compile("{{ 2 ** 3 }}{{ 'a' ~ 'b' }}{{ 'x'|center(5) }}")
    assert calls == []
    # and the compiled code still computes at render time
    assert sandbox().from_string("{{ 2 ** 3 }}{{ 'a' ~ 'b' }}").render() == "8ab"


@pytest.mark.parametrize(("template", "code"), [
    ("{{ 1" + "0" * 5000 + " }}", "template-syntax"),
    ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "template-too-complex"),
])
def test_templates_that_cannot_be_read_are_problems_not_crashes(template, code):
    assert [p[0] for p in template_problems(template)] == [code]


def test_the_limits_checked_are_the_engines():
    from engine.notify import Limits

    assert Limits() == TEMPLATE_LIMITS
