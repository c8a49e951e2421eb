"""Hostile input against the engine: render bombs, the render worker's memory wall, internal channel
targets at delivery, and one user's unsendable rule beside other users' rules."""

from __future__ import annotations

import pytest

from engine.notify import Limits, RenderError, render_template
from engine.notify.worker import RenderPool

VARIABLES = {"rule": "r", "severity": "critical", "state": "firing", "value": 1.5, "values": {"last(a.b)": 1.5},
             "labels": {"host": "web-1"}, "started_at": "2024-05-01T12:00:00Z",
             "evaluated_at": "2024-05-01T12:00:00Z", "condition": "last(a.b) > 1", "description": ""}

_BIG = "{% set a = 'x' * 200000 %}{% set b = [a,a,a,a,a,a,a,a,a,a] %}{% set c = [b,b,b,b,b,b,b,b,b,b] %}"

# Each builds a small value whose text is huge: it must be weighed before it is turned into text.
RENDER_BOMBS = {
    "string filter": _BIG + "{{ c|string|length }}",
    "concat": _BIG + "{{ (c ~ '')|length }}",
    "output": _BIG + "{{ c }}",
    "pprint": _BIG + "{{ b|pprint|length }}",
    "format filter": _BIG + "{{ '%s'|format(b)|length }}",
    "percent": _BIG + "{{ ('%s' % [b])|length }}",
    "tojson": _BIG + "{{ b|tojson|length }}",
    "upper": _BIG + "{{ b|upper|length }}",
    "join": _BIG + "{{ b|join|length }}",
    "str.format": _BIG + "{{ '{}'.format(b)|length }}",
    "list of chars": "{% set a = 'x' * 200000 %}{{ (a|list)|length }}",
    "dict": "{% set a = 'x' * 200000 %}{% set d = {'a': a, 'b': a, 'c': a} %}{{ d|string|length }}",
    "items": "{% set a = 'x' * 200000 %}{% set d = {'a': a, 'b': a} %}{{ d.items()|list|string }}",
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
}


@pytest.mark.parametrize("template", RENDER_BOMBS.values(), ids=RENDER_BOMBS.keys())
def test_render_bombs_are_refused_before_they_are_built(template):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(RenderError) as caught:
        render_template(template, VARIABLES, limits=Limits(seconds=0.5))
    assert "limit" in str(caught.value) or "longer than" in str(caught.value)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 64  # the text was never built (it would be gigabytes)


@pytest.fixture(scope="module")
def pool():
    pool = RenderPool(size=1, memory_mb=160)
    yield pool
    pool.close()


SAME_TEMPLATES = [
    "{{ rule }} is {{ state }} at {{ value | round(1) }}",
    "{% for k, v in labels | dictsort %}{{ k }}={{ v }} {% endfor %}",
    "{{ values | tojson }}",
    "{{ description or 'no description' }} {{ '%.3f' % value }}",
    "{{ value * 1000 }}{{ 'é' * 3 }}",
]


@pytest.mark.parametrize("template", SAME_TEMPLATES)
def test_the_worker_renders_what_the_engine_process_renders(pool, template):
    assert pool.render([("message", template)], VARIABLES, Limits()) == [render_template(template, VARIABLES)]


def test_the_worker_answers_a_refusal_like_the_engine_process(pool):
    with pytest.raises(RenderError) as in_process:
        render_template(RENDER_BOMBS["output"], VARIABLES)
    with pytest.raises(RenderError) as in_worker:
        pool.render([("message", RENDER_BOMBS["output"])], VARIABLES, Limits())
    assert str(in_worker.value) == str(in_process.value)


def test_a_render_that_outgrows_the_memory_limit_ends_its_worker_not_the_engine(pool):
    # Limits far above the memory wall: only the worker's address-space limit stops this one.
    generous = Limits(value_size=10**10, total_size=10**11, seconds=20)
    with pytest.raises(RenderError, match="160 MiB"):
        pool.render([("message", "{{ ('x' * 400000000) | length }}")], VARIABLES, generous)
    assert pool.render([("message", "{{ rule }}")], VARIABLES, Limits()) == ["r"]  # a fresh worker


def test_a_worker_that_does_not_answer_in_time_is_stopped(pool, monkeypatch):
    import engine.notify.worker as worker

    monkeypatch.setattr(worker, "_GRACE_SECONDS", 0.2)
    slow = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(RenderError, match="longer than"):
        pool.render([("message", slow)], VARIABLES, Limits(seconds=0.3))
    assert pool.render([("message", "{{ state }}")], VARIABLES, Limits()) == ["firing"]


def test_rules_templates_go_through_the_worker_and_the_defaults_do_not(monkeypatch):
    import engine.notify.render as render
    import engine.notify.worker as worker

    asked = []

    class Recording:
        def render(self, templates, variables, limits):
            asked.append([name for name, _ in templates])
            return ["t", "m"]

    monkeypatch.setattr(worker, "render_pool", lambda: Recording())
    assert render._render_pair(None, "{{ rule }}", VARIABLES, Limits()) == ("t", "m")
    defaults = dict(VARIABLES, kind="firing", previous_severity=None, direction=None)
    title, _ = render._render_pair(None, None, defaults, Limits())
    assert asked == [["title", "message"]] and title


# --- delivery: internal targets refused again when sending ---------------------------------------------

from engine.notify import RenderedNotification, RetryPolicy, deliver  # noqa: E402
from tests.support.receivers import HttpReceiver, SmtpReceiver  # noqa: E402

MESSAGE = RenderedNotification(title="t", body="b", idempotency_key="k")
QUICK = RetryPolicy(deadline=2, first_delay=0.05, attempt_timeout=1)


def test_delivery_to_an_internal_address_is_refused_without_a_request(monkeypatch):
    """A channel stored while its host was allowed (or whose name now resolves inside) is refused when sending."""
    monkeypatch.delenv("MONITORS_CHANNEL_ALLOW_HOSTS", raising=False)
    with HttpReceiver() as http, SmtpReceiver() as smtp:
        outcomes = deliver(MESSAGE, [http.url("json", "/hook"), http.url("json", "/hook").replace("127.0.0.1", "localhost"),
                                     smtp.url(to="ops@example.com")], QUICK)
        assert [o.delivered for o in outcomes] == [False, False, False]
        assert all("internal address" in o.reason and o.attempts == 0 for o in outcomes)
        assert not http.wait_for(1, timeout=0.5) and http.count == 0 and smtp.count == 0


def test_delivery_with_the_operator_allow_list_reaches_the_receiver(monkeypatch):
    monkeypatch.setenv("MONITORS_CHANNEL_ALLOW_HOSTS", "127.0.0.0/8")
    with HttpReceiver() as http:
        (outcome,) = deliver(MESSAGE, [http.url("json", "/hook")], QUICK)
        assert outcome.delivered and http.wait_for(1)


def test_delivery_refuses_methods_other_than_post(monkeypatch):
    with HttpReceiver() as http:
        (outcome,) = deliver(MESSAGE, [http.url("json", "/hook", "method=PUT")], QUICK)
        assert not outcome.delivered and "POST only" in outcome.reason and http.count == 0


# --- one user's unsendable rule beside other users' rules on the same measurement -----------------------

from datetime import datetime, timedelta, timezone  # noqa: E402

import pyarrow as pa  # noqa: E402

from monitors_dsl._api import analyze  # noqa: E402
from engine.evaluate import Evaluator  # noqa: E402
from engine.repository import MemoryRepository, SqlRepository  # noqa: E402
from engine.rules import StoreRules, rule_from_text  # noqa: E402
from engine.runner import Runner, StaticRules  # noqa: E402
from engine.sources import DataFusionSource  # noqa: E402
from monitors_mcp.store import Alert, Rule  # noqa: E402
from monitors_mcp.store.types import utcnow  # noqa: E402

MINUTE = timedelta(minutes=1)
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 5 * MINUTE
SURROGATE_RULE = 'rule odd {\n  when last(crypto.price{symbol="\\uD800"}, 1m) > 1\n}'


@pytest.fixture
def prices():
    source = DataFusionSource()
    source.add_table("crypto", pa.table({"time": [T0 + i * MINUTE for i in range(5)], "symbol": ["BTC"] * 5,
                                         "price": [71_000.0] * 5}))
    yield source
    source.close()


def _others(ws_bob, ws_carol):  # noqa: ANN001, ANN202
    return [ws_bob.rules.create('rule b { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }'),
            ws_carol.rules.create('rule c { when last(crypto.price{symbol="BTC"}, 5m) > 70500 }')]


def test_a_stored_rule_holding_a_lone_surrogate_stops_nobody_elses_rules(db, workspace, new_user, prices):  # noqa: F811
    alice, bob, carol = new_user("alice"), new_user("bob"), new_user("carol")
    others = _others(workspace(bob), workspace(carol))
    with db.session() as session:  # stored as an older version would have, bypassing today's validation
        now = utcnow()
        odd = Rule(owner_id=alice, name="odd", live_name="odd", text=SURROGATE_RULE, canonical=SURROGATE_RULE,
                   enabled=True, version=1, every_seconds=60, created_at=now, updated_at=now)
        session.add(odd)
        session.flush()
        odd_id = odd.id
    runner = Runner(StoreRules(db), SqlRepository(db), Evaluator(prices))
    for minute in range(1, 4):
        runner.tick(T0 + minute * MINUTE, all_rules=True)
    with db.session() as session:
        for rule in others:
            assert session.query(Alert).filter(Alert.rule_id == rule.id, Alert.state == "firing").count() == 1
        assert session.query(Alert).filter(Alert.rule_id == odd_id).count() == 0


def test_a_lone_surrogate_in_a_merged_query_fails_only_its_own_rule(prices, monkeypatch):
    """Past validation (as a checker without the surrogate check let it through), the surrogate reaches
    the query shared with other rules on the measurement: only its own rule fails."""
    import monitors_dsl.check

    assert [d.code for d in analyze(SURROGATE_RULE)[1] if d.severity == "error"] == ["unsendable-character"]
    monkeypatch.setattr(monitors_dsl.check, "surrogate_problems", lambda text: [])
    odd = rule_from_text(SURROGATE_RULE, id="odd")
    monkeypatch.undo()
    b = rule_from_text('rule b { when last(crypto.price{symbol="BTC"}, 1m) > 70000 }', id="b")
    c = rule_from_text('rule c { when last(crypto.price{symbol="BTC"}, 5m) > 70500 }', id="c")
    repository = MemoryRepository()
    runner = Runner(StaticRules([odd, b, c]), repository, Evaluator(prices))
    reports = [runner.tick(T0 + minute * MINUTE) for minute in range(1, 4)]
    assert all("odd" in report.errors for report in reports)
    assert not any(rule in report.errors for report in reports for rule in ("b", "c"))
    fired = {t.rule_id for t in repository.transitions if t.transition.to_state == "firing"}
    assert fired == {"b", "c"}


def test_the_render_worker_holds_none_of_the_engines_secrets(monkeypatch):
    monkeypatch.setenv("MONITORS_SECRET_KEY", "not-for-templates")
    monkeypatch.setenv("MONITORS_DATABASE_URL", "mysql+pymysql://u:secret@db/monitors")
    pool = RenderPool(size=1, memory_mb=160)
    try:
        worker = pool._start()
        answer = worker.ask({"templates": [["message", "{{ rule }}"]], "variables": VARIABLES,
                             "limits": {"output_bytes": 65536, "seconds": 1.0, "value_size": 262144,
                                        "total_size": 8388608, "int_bits": 4096}}, 5)
        assert answer == {"texts": ["r"]}
        environ = open(f"/proc/{worker.process.pid}/environ", "rb").read().split(b"\0")
        assert not any(b"MONITORS_SECRET_KEY" in e or b"MONITORS_DATABASE_URL" in e for e in environ)
        worker.stop()
    finally:
        pool.close()


def test_fifteen_series_of_a_bomb_template_cost_fifteen_refusals_not_the_engine():
    """The engine renders one notification per series: each is refused on its own, memory stays flat."""
    import resource

    import engine.notify.render as render

    bomb = ("{% set a = 'x' * 200000 %}{% set b = [a,a,a,a,a,a,a,a,a,a] %}{% set c = [b,b,b,b,b,b,b,b,b,b] %}"
            "{% set d = [c,c,c,c,c,c,c,c,c,c] %}{{ d|string|length }}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    failures = []
    for series in range(15):
        variables = dict(VARIABLES, labels={"host": f"web-{series}"}, kind="firing", previous_severity=None,
                         direction=None)
        with pytest.raises(RenderError) as caught:
            render._render_pair(None, bomb, variables, Limits())
        failures.append(str(caught.value))
    assert len(failures) == 15 and all("limit" in f for f in failures)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 64
