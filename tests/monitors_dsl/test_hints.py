"""The mistakes models make most, each with its code, position and a hint naming the fix (table-driven)."""

from __future__ import annotations

import pytest

import monitors_dsl
from monitors_dsl import Schema

SCHEMA = Schema.from_dict({
    "crypto": {"fields": {"price": "float"}, "tags": ["symbol"], "tag_values": {"symbol": ["BTC", "ETH", "SOL"]}},
    "cpu": {"fields": {"usage_user": "float"}, "tags": ["host"]},
})
CHANNELS = ("trading_slack", "ops_pager")

# text, code, line, column, end column, severity, words the hint must hold
CASES = [
    ('last(crypto.price{symbol="BTC"}) => 70000', "syntax-error", 1, 34, 36, "error", "did you mean `>=`?"),
    ('last(crypto.price{symbol="BTC"}) =< 70000', "syntax-error", 1, 34, 36, "error", "did you mean `<=`?"),
    ('last(crypto.price{symbol:"BTC"}) > 70000', "unexpected-character", 1, 25, 26, "error",
     'write symbol="BTC"'),
    ("last(crypto.price{symbol: 'ETH'}) > 1", "unexpected-character", 1, 25, 26, "error", "write symbol='ETH'"),
    ("avg(cpu.usage_user, 5 m) > 90", "syntax-error", 1, 21, 24, "error", "write `5m`"),
    ("avg(cpu.usage_user, 15 minutes) > 90", "syntax-error", 1, 21, 31, "error", "write `15m`"),
    ("avg(cpu.usage_user, 1 hour) > 90", "syntax-error", 1, 21, 27, "error", "write `1h`"),
    ("avg(cpu.usage_user, 15minutes) > 90", "syntax-error", 1, 21, 30, "error", "write `15m`"),
    ("rule r {\n  when last(a.b) > 1\n  for 10 minutes\n}", "syntax-error", 3, 7, 17, "error", "write `10m`"),
    ("last(crypto.price) > 70k", "syntax-error", 1, 22, 25, "error", "write `70000`"),
    ("last(crypto.price) > 1.5M", "syntax-error", 1, 22, 26, "error", "write `1500000`"),
    ('avg(cpu.usage_user{host="web-1", 5m) > 90', "syntax-error", 1, 34, 36, "error",
     'a `}` is missing: write `{host="web-1"}`'),
    ('avg(cpu.usage_user{host="web-1") > 90', "syntax-error", 1, 32, 33, "error", "a `}` is missing"),
    ("avg(cpu.usage_user, 5m offset 1d) > 90", "syntax-error", 1, 24, 30, "error",
     "write `avg(cpu.usage_user, 5m) offset 1d`"),
    ("hour(now()) > 9", "unknown-function", 1, 1, 5, "error", "limit the rule with `active during"),
    ("count_distinct(cpu.usage_user, 5m) > 3", "unknown-function", 1, 1, 15, "error",
     "write `count_series(series, 5m)`"),
    ("predict_linear(cpu.usage_user, 1h) > 90", "unknown-function", 1, 1, 15, "error", "not supported"),
    ("avgg(cpu.usage_user) > 90", "unknown-function", 1, 1, 5, "error", "did you mean `avg`?"),
    ('rule r {\n  when last(a.b) > 1\n  schedule "0 9 * * *"\n}', "unknown-clause", 3, 3, 11, "error",
     "write `active during mon-fri 09:00-17:00`"),
    ("rule r {\n  when last(a.b) > 1\n  channel ops\n}", "unknown-clause", 3, 3, 10, "error",
     "did you mean `notify`?"),
    ("rule r {\n  when last(a.b) > 1\n  interval 5m\n}", "unknown-clause", 3, 3, 11, "error",
     "did you mean `every`?"),
    # warnings where models slip
    ("abs(pct_change(crypto.price, 1h)) > 3", "pct-change-scale", 1, 37, 38, "warning", "did you mean `3%`?"),
    ("-pct_change(crypto.price, 1h) > 5", "pct-change-scale", 1, 33, 34, "warning", "did you mean `5%`?"),
    ("pct_change(crypto.price, 1h) - pct_change(crypto.price, 1h) offset 1d > 2", "pct-change-scale",
     1, 73, 74, "warning", "`2%`"),
    ("rule r {\n  when last(a.b) > 1\n  repeat every 1h\n}", "repeat-without-channel", 3, 3, 18, "warning",
     "add `notify CHANNEL`"),
    ("rule r {\n  when last(a.b) > 1\n  notify trading_slak\n}", "unknown-channel", 3, 10, 22, "warning",
     "did you mean `trading_slack`?"),
    ('last(crypto.price{symbol="BTCUSD"}) > 70000', "unknown-tag-value", 1, 26, 34, "warning",
     'did you mean "BTC"?'),
    ('last(crypto.price{symbol in ("ETH", "btc")}) > 1', "unknown-tag-value", 1, 37, 42, "warning",
     'did you mean "BTC"?'),
    ("last(cryptos.price) > 1", "unknown-measurement", 1, 6, 13, "warning", "did you mean `crypto`?"),
]


@pytest.mark.parametrize(("text", "code", "line", "column", "end_column", "severity", "hint"), CASES,
                         ids=[c[0][:40] for c in CASES])
def test_each_trap_has_its_diagnostic(text, code, line, column, end_column, severity, hint) -> None:
    found = monitors_dsl.validate(text, schema=SCHEMA, channels=CHANNELS)
    matching = [d for d in found if d.code == code and (d.line, d.column) == (line, column)]
    assert matching, [str(d) for d in found]
    (d,) = matching[:1]
    assert d.severity == severity and d.end_column == end_column, str(d)
    assert hint in (d.hint or ""), d.hint


@pytest.mark.parametrize("text", [
    'last(crypto.price{symbol="BTC"}) > 70000',
    "pct_change(crypto.price, 1h) * 100 > 5",
    "abs(pct_change(crypto.price, 1h)) > 3%",
    "rule r {\n  when last(crypto.price) > 1\n  notify trading_slack\n  repeat every 1h\n}",
    'last(crypto.price{symbol in ("BTC", "ETH")}) > 1',
    'last(cpu.usage_user{host="anything"}) > 1',  # values not listed in the schema are not checked
])
def test_right_rules_have_no_diagnostics(text) -> None:
    assert monitors_dsl.validate(text, schema=SCHEMA, channels=CHANNELS) == []


@pytest.mark.parametrize(("text", "offered", "not_offered"), [
    ("last(x.y) >", "a number", "duration"),
    ("last(x.y) > 1 and", "`not`", "duration"),
    ("last(x.y) > 1 and", "a name", "quoted name"),
    ("avg(x.y) >", "a percentage", "duration"),
    ("avg(x.y,", "a duration such as 5m", None),
    ("avg(x.y, 5m) offset", "a duration such as 5m", None),
    ("rule r { when last(x.y) > 1 every }", "a duration such as 5m", None),
])
def test_expected_tokens_offer_only_what_can_stand_there(text, offered, not_offered) -> None:
    (d,) = [d for d in monitors_dsl.validate(text) if d.severity == "error"][:1]
    assert offered in d.hint, d.hint
    if not_offered:
        assert not_offered not in d.hint, d.hint


def test_channel_check_is_off_without_channels() -> None:
    assert monitors_dsl.validate("rule r { when last(a.b) > 1 notify anyone }") == []
