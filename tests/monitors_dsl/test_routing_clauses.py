"""Where a rule holds and who hears of it: `active during`, `mute during`, `notify … on`, `escalate to … after`,
`depends on … on` — the tree, the canonical text, the description and every diagnostic (table-driven)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import monitors_dsl
from monitors_dsl import ast as a
from monitors_dsl import parse_window
from monitors_dsl.describe import describe
from monitors_dsl.parser import CLAUSE_KEYWORDS
from monitors_dsl.printer import print_rules

from tests.support.dsl_strategies import conditions, names, routing_clauses

COND = 'last(cpu.usage{host="a"}) > 90'


def rule_text(*clauses: str, name: str = "r") -> str:
    body = "\n".join("    " + c for c in (f"when {COND}",) + clauses)
    return f"rule {name} {{\n{body}\n}}\n"


def test_every_clause_lands_in_its_field() -> None:
    (rule,) = monitors_dsl.parse(rule_text(
        "group by host", "notify slack, mail", "notify pager on critical", "severity critical",
        'active during mon-fri 09:00-17:00 in "Europe/Paris"', "mute during sat-sun or 22:00-06:00",
        "escalate to boss, pager2 after 30m", "depends on db_down on host"))
    assert rule.routes == (a.Route(("slack", "mail")), a.Route(("pager",), ("critical",)))
    assert rule.notify == ("slack", "mail", "pager")
    assert rule.active_during == parse_window('mon-fri 09:00-17:00 in "Europe/Paris"')
    assert rule.active_during.zone == "Europe/Paris"
    assert rule.mute_during.text == "sat-sun or 22:00-06:00"
    assert rule.escalate == a.Escalation(("boss", "pager2"), a.Duration(1800))
    assert rule.depends_on == a.Dependency("db_down", ("host",))


def test_defaults_are_none_and_empty() -> None:
    (rule,) = monitors_dsl.parse(rule_text())
    assert (rule.active_during, rule.mute_during, rule.routes, rule.escalate, rule.depends_on) == \
        (None, None, (), None, None)


def test_plain_notify_keeps_its_meaning_and_canonical_form() -> None:
    text = rule_text("notify a, b")
    (rule,) = monitors_dsl.parse(text)
    assert rule.notify == ("a", "b") and rule.routes == (a.Route(("a", "b")),)
    assert monitors_dsl.canonical(text) == "rule r {\n    when last(cpu.usage{host=\"a\"}, 5m) > 90\n    notify a, b\n}\n"
    assert rule == a.Rule(name="r", when=rule.when, notify=("a", "b"))  # a tree made with notify alone: one route


def test_canonical_order_is_part_one_then_the_table_of_section_ten() -> None:
    text = rule_text("depends on db", "escalate to p after 1h", "mute during sat", "active during mon-fri",
                     "notify p on critical", 'description "d"', "notify s", "severity critical", "group by host")
    assert monitors_dsl.canonical(text) == (
        "rule r {\n"
        '    when last(cpu.usage{host="a"}, 5m) > 90\n'
        "    group by host\n"
        "    severity critical\n"
        "    notify p on critical\n"
        "    notify s\n"
        '    description "d"\n'
        "    active during mon-fri\n"
        "    mute during sat\n"
        "    escalate to p after 1h\n"
        "    depends on db\n"
        "}\n")


@pytest.mark.parametrize("clauses", [
    ("notify a on critical, warning", "on no data alert"),
    ("on no data ok", "notify a on info"),
    ("depends on db on host", "on no data ok", "group by host"),
    ("depends on db", "on no data alert"),
    ("notify a", "on no data ok", "notify b on warning"),
    ("notify `on`, `no` on critical",),
    ("group by mute, active, escalate, depends, during, after, to", "notify mute, to, after"),
    ("escalate to after, to after 5m",),
    ("active during 00:00-00:00", "mute during fri-mon 22:00-06:00, 12:00-13:00 or wed in \"Asia/Tokyo\""),
    ("depends on `my rule` on `host name`", "labels `host name` = \"x\""),
])
def test_round_trip(clauses) -> None:
    text = rule_text(*clauses)
    (rule,) = monitors_dsl.parse(text)
    canonical = monitors_dsl.canonical(text)
    assert monitors_dsl.parse(canonical) == [rule]
    assert monitors_dsl.canonical(canonical) == canonical
    assert not [d for d in monitors_dsl.validate(canonical) if d.severity == "error"]


def test_on_belongs_to_the_clause_before_it_and_on_no_data_stays_a_clause() -> None:
    (rule,) = monitors_dsl.parse(rule_text("notify a on critical", "on no data alert", "depends on db on host",
                                           "group by host"))
    assert rule.on_no_data == "alert"
    assert rule.routes == (a.Route(("a",), ("critical",)),)
    assert rule.depends_on.tags == ("host",)


def test_the_lean_parser_and_lark_give_the_same_tree() -> None:
    from monitors_dsl.errors import Diagnostics
    from monitors_dsl.grammar import parser as lark_parser
    from monitors_dsl.parser import _Builder, parse_text
    from monitors_dsl.source import SourceText

    text = rule_text("notify a on critical", "mute during sat-sun or 22:00-06:00 in \"Europe/Paris\"",
                     "depends on db on host", "group by host", "escalate to b after 10m")
    _, fast = parse_text(text, Diagnostics())
    source = SourceText(text)
    slow = _Builder(source, Diagnostics()).transform(lark_parser().parse(text, start="start"))
    assert list(fast) == list(slow)


def test_describe_says_each_clause() -> None:
    (rule,) = monitors_dsl.parse(rule_text(
        "notify slack", "notify pager on critical", "severity critical", "group by host",
        'active during mon-fri 09:00-17:00 in "Europe/Paris"', "mute during sat-sun",
        "escalate to boss after 30m", "depends on db_down on host"))
    words = describe(rule)
    assert "only weekdays 09:00 to 17:00 (Europe/Paris time)" in words
    assert "notifying slack and pager (critical only)" in words
    assert "with notifications muted weekends (UTC time)" in words
    assert "telling boss too once an alert has fired for 30 minutes unacknowledged" in words
    assert "holding its notifications while db_down fires with the same host" in words
    (plain,) = monitors_dsl.parse(rule_text("notify a, b"))
    assert describe(plain).endswith("notifying a and b.")


def test_the_clauses_are_known_to_recovery_and_hints() -> None:
    for keyword in ("active during", "mute during", "escalate", "depends on"):
        assert keyword in CLAUSE_KEYWORDS
    found = monitors_dsl.validate(rule_text("mute during sat", "escalation pager"))
    (unknown,) = [d for d in found if d.code == "unknown-clause"]
    assert "did you mean `escalate`?" in unknown.hint
    (inhibit,) = [d for d in monitors_dsl.validate(rule_text("inhibit db")) if d.code == "unknown-clause"]
    assert "did you mean `depends on`?" in inhibit.hint


def test_a_broken_rule_keeps_the_routing_clauses_it_can_read() -> None:
    text = rule_text("notify a on critical", "depends on db on host", "group by host", "every 5 m",
                     "mute during sat")
    found = monitors_dsl.validate(text)
    assert [d.code for d in found if d.severity == "error"] == ["syntax-error"]
    rules, _ = monitors_dsl._api.analyze(text)
    (rule,) = rules
    assert rule.routes == (a.Route(("a",), ("critical",)),)
    assert rule.depends_on == a.Dependency("db", ("host",))
    assert rule.mute_during.text == "sat"


# text clauses, code, line, column, end column, severity, words the hint holds
CASES = [
    (("notify a on high",), "unknown-severity", 3, 17, 21, "error", "did you mean `critical`?"),
    (("notify a on critcal",), "unknown-severity", 3, 17, 24, "error", "did you mean `critical`?"),
    (("notify a on info",), "severity-never-fires", 3, 17, 21, "warning", "it fires at warning"),
    (("critical when last(x.y) > 1", "notify a on warning"), "conflicting-when", 3, 5, 32, "error", "warning when"),
    (("notify a on critical, critical",), "duplicate-severity", 3, 27, 35, "warning", "each severity once"),
    (("notify a", "notify b, a on critical"), "duplicate-channel", 4, 15, 16, "warning",
     "notify a on critical, warning"),
    (("notify a, a",), "duplicate-channel", 3, 15, 16, "warning", "list each channel once"),
    (("on critical",), "misplaced-on", 3, 5, 16, "error", "notify CHANNELS on critical"),
    (("every 5m", "on host"), "misplaced-on", 4, 5, 12, "error", "depends on RULE on TAG"),
    (("escalate to p after 0s",), "duration-not-positive", 3, 25, 27, "error", "after 30m"),
    (("escalate to p after -5m",), "duration-not-positive", 3, 25, 28, "error", "after 30m"),
    (("notify p", "escalate to p after 5m"), "escalate-channel-notified", 4, 17, 18, "warning", "not told at first"),
    (("escalate to p, p after 5m",), "duplicate-channel", 3, 20, 21, "warning", "once"),
    (("depends on r",), "depends-on-itself", 3, 16, 17, "error", "depends on db_down"),
    (("depends on db on host",), "depends-tag-not-grouped", 3, 22, 26, "error", "group by host"),
    (("depends on db on host, host", "group by host"), "duplicate-tag", 3, 28, 32, "warning", "each tag once"),
    (("active during sat", "active during sun"), "duplicate-clause", 4, 5, 22, "error", "once"),
    (("mute during sat", "mute during sun"), "duplicate-clause", 4, 5, 20, "error", "once"),
    (("escalate to a after 5m", "escalate to b after 5m"), "duplicate-clause", 4, 5, 27, "error", "once"),
    (("depends on a", "depends on b"), "duplicate-clause", 4, 5, 17, "error", "once"),
    (("active during",), "empty-window", 3, 5, 18, "error", "mon-fri 09:00-17:00"),
    (("mute during sat or",), "empty-span", 3, 21, 23, "error", "each side of `or`"),
    (("active during mnday",), "unknown-day", 3, 19, 24, "error", "did you mean `mon`?"),
    (("active during weekends",), "unknown-day", 3, 19, 27, "error", "sat-sun"),
    (("active during mon 25:00-26:00",), "hour-out-of-range", 3, 23, 28, "error", "00 to 23"),
    (("active during mon 09:60-10:00",), "minute-out-of-range", 3, 23, 28, "error", "00 to 59"),
    (('active during mon in "Europe/Pari"',), "unknown-zone", 3, 26, 39, "error", '"Europe/Paris"'),
    (("active during mon 9-17",), "syntax-error", 3, 23, 24, "error", "HH:MM-HH:MM"),
    (("escalate p after 5m",), "syntax-error", 3, 14, 15, "error", "expected `to`"),
    (("escalate to p after 5",), "syntax-error", 3, 25, 26, "error", "5s or 5m"),
    (("depends db",), "syntax-error", 3, 13, 15, "error", "expected `on`"),
    (("mute sat",), "syntax-error", 3, 10, 13, "error", "expected `during`"),
    (("group by a, mute", "every 5 m"), "syntax-error", 4, 11, 14, "error", "write `5m`"),
]


@pytest.mark.parametrize(("clauses", "code", "line", "column", "end_column", "severity", "hint"), CASES,
                         ids=[f"{c[1]}:{c[0][-1][:30]}" for c in CASES])
def test_each_misuse_has_its_diagnostic(clauses, code, line, column, end_column, severity, hint) -> None:
    found = monitors_dsl.validate(rule_text(*clauses), channels=("a", "b", "p", "slack"))
    matching = [d for d in found if d.code == code]
    assert matching, [str(d) for d in found]
    (d,) = matching[:1]
    assert (d.line, d.column, d.end_column, d.severity) == (line, column, end_column, severity), str(d)
    assert hint in (d.hint or ""), d.hint


def test_a_name_spelled_like_a_clause_word_does_not_cut_a_broken_rule() -> None:
    found = monitors_dsl.validate(rule_text("group by a, mute", "notify escalate, depends", "every 5 m"))
    assert [d.code for d in found] == ["syntax-error"]


def test_escalating_to_a_channel_told_only_of_critical_alerts_is_no_mistake() -> None:
    text = ("rule r {\n    critical when last(x.y) > 2\n    warning when last(x.y) > 1\n"
            "    notify p on critical\n    escalate to p after 30m\n}")
    assert monitors_dsl.validate(text) == []


def test_unknown_channels_in_escalate_are_warned_of() -> None:
    found = monitors_dsl.validate(rule_text("escalate to pagr after 30m"), channels=("pager",))
    (d,) = [d for d in found if d.code == "unknown-channel"]
    assert "did you mean `pager`?" in d.hint and (d.line, d.column) == (3, 17)


def test_a_dependency_tag_may_be_a_label() -> None:
    found = monitors_dsl.validate(rule_text("depends on db on region", 'labels region = "eu"'))
    assert [d.code for d in found] == []


def test_escalate_without_notify_is_meaningful() -> None:
    assert monitors_dsl.validate(rule_text("escalate to p after 30m")) == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_generated_routing_clauses_round_trip(data) -> None:
    name = data.draw(names)
    group_by = tuple(data.draw(st.lists(names, max_size=2, unique=True)))
    labels = tuple(data.draw(st.dictionaries(names, st.text(max_size=5), max_size=2)).items())
    fields = data.draw(routing_clauses(name, group_by, [k for k, _ in labels]))
    rule = a.Rule(name=name, when=data.draw(conditions()), group_by=group_by, labels=labels, **fields)
    text = print_rules([rule])
    assert monitors_dsl.parse(text) == [rule]
    assert monitors_dsl.canonical(text) == text
    assert [d for d in monitors_dsl.validate(text) if d.severity == "error"] == []
