"""Rendering notifications: variables, defaults, the output cap and template bombs."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

import engine.notify as notify
from engine.notify import (
    DEFAULT_MESSAGE,
    DEFAULT_TITLE,
    Limits,
    RenderError,
    render_notification,
    render_template,
)
from engine.state import Clauses, Evaluation, SeriesState, step
from monitors_dsl.templates import TEMPLATE_VARIABLES, template_problems

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
TERM = 'last(crypto.price{symbol="BTC"}, 5m)'
CONDITION = f"{TERM} > 70000"
VARIABLES = {
    "rule": "btc", "severity": "critical", "state": "firing", "value": 70123.456,
    "values": {TERM: 70123.456}, "labels": {"symbol": "BTC"}, "started_at": "2024-05-01T12:00:00Z",
    "evaluated_at": "2024-05-01T12:00:00Z", "condition": CONDITION, "description": "",
}
FAST = Limits(seconds=0.3)


def notifications(*evaluations, clauses=Clauses()):
    state, sent = SeriesState(), []
    for i, (severity, value) in enumerate(evaluations):
        result = step(state, Evaluation(at=T0 + timedelta(minutes=i), severity=severity, values={TERM: value},
                                        value=value), clauses, rule_id="7", series_key='{"symbol":"BTC"}')
        state = result.state
        sent += result.notifications
    return sent


def render(notification, **kwargs):
    kwargs.setdefault("labels", {"symbol": "BTC"})
    return render_notification(notification, rule_name="btc_above_70k", condition=CONDITION, **kwargs)


def test_exports():
    assert set(notify.__all__) == {
        "Limits", "LimitExceeded", "BoundedSandbox", "bounded_sandbox", "RenderError", "RenderedNotification",
        "render_template", "render_notification", "render_group", "notify_type", "template_variables",
        "DEFAULT_TITLE", "DEFAULT_MESSAGE", "DEFAULT_GROUP_TITLE", "DEFAULT_GROUP_MESSAGE", "RetryPolicy", "DeliveryOutcome", "deliver", "deliver_async", "redact",
        "protect_logs", "protect_url", "display_target"}


def test_rule_templates_see_the_contract_variables():
    firing, = notifications(("critical", 75000.4))
    rendered = render(firing, title="{{ rule }} {{ severity }} {{ state }}",
                      message="{{ value | round(0) }} {{ values['" + TERM.replace('"', '\\"') + "'] }} "
                              "{{ labels.symbol }} {{ started_at }} {{ evaluated_at }} {{ condition }} "
                              "[{{ description }}]")
    assert rendered.title == "btc_above_70k critical firing"
    assert rendered.body == f"75000.0 75000.4 BTC 2024-05-01T12:00:00Z 2024-05-01T12:00:00Z {CONDITION} []"
    assert rendered.notify_type == "failure" and rendered.kind == "firing"
    assert rendered.idempotency_key == firing.idempotency_key


def test_every_contract_variable_is_provided():
    firing, = notifications(("warning", 1.0))
    from engine.notify import template_variables

    variables = template_variables(firing, rule_name="r", condition="c")
    assert set(TEMPLATE_VARIABLES) <= set(variables)


def test_resolved_renders_values_at_resolution():
    firing, resolved = notifications(("critical", 75000.0), (None, 69000.0))
    rendered = render(resolved, message="{{ state }} at {{ value }} since {{ started_at }}")
    assert rendered.body == "resolved at 69000.0 since 2024-05-01T12:00:00Z"
    assert rendered.notify_type == "success"


def test_default_templates():
    firing, escalation, resolved = notifications(("warning", 71000.0), ("critical", 75000.0), (None, 69000.0))
    title = render(firing).title
    assert title == "[WARNING] btc_above_70k is firing (symbol=BTC)"
    assert render(escalation).title == "[CRITICAL] btc_above_70k escalated from warning to critical (symbol=BTC)"
    assert render(resolved).title == "[RESOLVED] btc_above_70k is resolved (symbol=BTC)"
    body = render(firing, description="Bitcoin is up").body
    assert "btc_above_70k is firing at severity warning." in body
    assert "Value: 71000.0" in body and f"Condition: {CONDITION}" in body
    assert f"  {TERM} = 71000.0" in body and "Labels: symbol=BTC" in body
    assert "Started at: 2024-05-01T12:00:00Z" in body and "Bitcoin is up" in body
    assert "Resolved at: 2024-05-01T12:02:00Z" in render(resolved).body


def test_default_templates_for_a_bare_condition_without_labels():
    firing, = notifications(("info", 2.0))
    rendered = render_notification(firing, rule_name=None, condition="last(m.x) > 1\n")
    assert rendered.title == "[INFO] last(m.x) > 1 is firing"
    assert "Labels" not in rendered.body and rendered.notify_type == "info"


def test_repeat_and_de_escalation_titles():
    sent = notifications(("critical", 1.0), ("critical", 1.0), ("warning", 1.0), clauses=Clauses(repeat_every=60))
    assert [n.kind for n in sent] == ["firing", "repeat", "escalation"]
    assert render(sent[1]).title == "[CRITICAL] btc_above_70k is still firing (symbol=BTC)"
    assert render(sent[2]).title == "[WARNING] btc_above_70k de-escalated from critical to warning (symbol=BTC)"


def test_default_templates_pass_the_checker():
    # kind/direction/previous_severity are for the defaults only: the checker rejects them in rules
    allowed = {"kind", "direction", "previous_severity"}
    for template in (DEFAULT_TITLE, DEFAULT_MESSAGE):
        problems = template_problems(template)
        assert all(p[0] == "unknown-template-variable" for p in problems)
        assert {p[2].split("`")[1] for p in problems} <= allowed


def test_no_data_prints_as_no_data_and_round_lets_it_through():
    assert render_template("{{ value }} / {{ value | round(0) }}", {"value": None}) == "no data / no data"


def test_output_is_the_template_output_exactly():
    assert render_template("a\n{% if true %}b{% endif %}\n", {}) == "a\nb\n"


@pytest.mark.parametrize(("template", "needle"), [
    ("{{ nope }}", "'nope' is undefined"),
    ("{{ rule.__class__ }}", "not allowed"),
    ("{% for %}", "syntax error"),
    ("{{ value / 0 }}", "ZeroDivisionError"),
    ("{{ value | no_such_filter }}", "syntax error"),
    ("{% include 'other' %}", "TypeError"),
])
def test_errors_are_render_errors(template, needle):
    with pytest.raises(RenderError) as error:
        render_template(template, VARIABLES, name="title")
    assert needle in str(error.value)
    assert str(error.value).startswith("title template")


def test_error_names_the_line():
    with pytest.raises(RenderError) as error:
        render_template("line one\nline two {{ nope }}\n", VARIABLES)
    assert error.value.line == 2 and "message template, line 2" in str(error.value)


def test_output_cap():
    ok = render_template("{% for i in range(60) %}{{ 'x' * 1000 }}{% endfor %}", {})
    assert len(ok) == 60_000
    with pytest.raises(RenderError, match="larger than 64 KiB"):
        render_template("{% for i in range(70) %}{{ 'x' * 1000 }}{% endfor %}", {})
    with pytest.raises(RenderError, match="larger than 1 KiB"):
        render_template("{{ 'é' * 600 }}", {}, limits=Limits(output_bytes=1024))  # bytes, not characters


BOMBS = {
    "huge range": "{% for i in range(10**9) %}x{% endfor %}",
    "string times a billion": "{{ 'x' * 10**9 }}",
    "list times a billion": "{{ [1] * 10**9 }}",
    "list of big strings": "{{ ['y' * 200000] * 100000 }}",
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "nested loops writing": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "loop over a long string": "{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}{% endfor %}",
    "doubling in a namespace":
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "doubling with plus":
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "set block": "{% set x %}{% for i in range(100000) %}{{ 'y' * 200000 }}{% endfor %}{% endset %}{{ x|length }}",
    "macro output": "{% macro m() %}{% for i in range(100000) %}{{ 'y' * 100000 }}{% endfor %}{% endmacro %}"
                    "{{ m()|length }}",
    "exponential macro": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "infinite recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "recursive loop": "{% for x in [1, 2] recursive %}{% if loop.depth < 60 %}{{ loop([1, 2]) }}{% endif %}"
                      "{% endfor %}",
    "center filter": "{{ 'x' | center(10**9) }}",
    "center literal": "{{ 'x' | center(1000000000) }}",
    "indent": "{{ ('\n' * 200000) | indent(1000) }}",
    "replace filter": "{{ ('x' * 200000) | replace('x', 'yyyyyyyyyy') }}",
    "join filter": "{{ range(100000) | map('string') | join('y' * 200000) }}",
    "wordwrap": "{{ ('x ' * 100000) | wordwrap(1, wrapstring='y' * 100000) }}",
    "format filter": "{{ '%0999999999d' | format(1) }}",
    "percent": "{{ '%0999999999d' % 1 }}",
    "percent many": "{{ ('%s' * 1000) % ((('y' * 200000),) * 1000) }}",
    "str.format width": "{{ '{:>999999999}'.format(1) }}",
    "str.format nested": "{{ '{:{}}'.format(1, 999999999) }}",
    "ljust": "{{ 'x'.ljust(10**9) }}",
    "zfill": "{{ '1'.zfill(10**9) }}",
    "str.join": "{{ ('y' * 200000).join(range(100000) | map('string')) }}",
    "str.replace": "{{ ('x' * 200000).replace('x', 'y' * 1000) }}",
    "expandtabs": "{{ ('\t' * 200000).expandtabs(100000) }}",
    "translate": "{{ 'x'.translate({120: 'y' * 1000}) }}",
    "tojson indent": "{{ values | tojson(indent=100000) }}",
    "tojson of a big value": "{{ ['y' * 100000, 'z' * 100000] | tojson(indent=2) }}",
    "big power": "{{ 7 ** 100000000 }}",
    "big product": "{{ (7 ** 4000) * (7 ** 4000) }}",
}


@pytest.mark.parametrize("template", BOMBS.values(), ids=BOMBS.keys())
def test_template_bombs_fail_cleanly_and_fast(template):
    start = time.monotonic()
    with pytest.raises(RenderError) as error:
        render_template(template, VARIABLES, limits=FAST)
    elapsed = time.monotonic() - start
    assert elapsed < 3.0, f"took {elapsed:.2f} s"
    assert str(error.value).startswith("message template: ") or "message template, line" in str(error.value)


def test_limits_are_tunable_and_lipsum_is_clamped():
    assert render_template("{{ 'x' * 100 }}", {}, limits=Limits(value_size=100)) == "x" * 100
    with pytest.raises(RenderError, match="101 characters"):
        render_template("{{ 'x' * 101 }}", {}, limits=Limits(value_size=100))
    assert len(render_template("{{ lipsum(10**6, false) }}", {})) < 10_000


def test_reasonable_templates_still_work():
    template = (
        "{% for term, v in values | dictsort %}{{ term }}={{ '%.2f' | format(v) }};{% endfor %}"
        "{{ '{:,.0f}'.format(value) }} {{ labels | dictsort | map('join', '=') | join(', ') }} "
        "{{ (severity ~ '!') | upper }} {{ ', '.join(['a', 'b']) }} {{ 'ab' * 3 }} {{ 2 ** 10 }} "
        "{{ '%5.1f' % value }} {{ rule | center(9) }}|{{ 'x'.ljust(3) }}|{{ labels | tojson }}"
    )
    out = render_template(template, VARIABLES)
    assert out == (f"{TERM}=70123.46;70,123 symbol=BTC CRITICAL! a, b ababab 1024 70123.5    btc   |x  |"
                   '{"symbol": "BTC"}')


def test_the_cache_compiles_each_template_once():
    env = notify.bounded_sandbox()
    assert env.template("{{ rule }}!") is env.template("{{ rule }}!")
