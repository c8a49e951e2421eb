"""Property tests: canonical text round-trips, and validate never raises on any input."""

from __future__ import annotations

import string
from datetime import timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import monitors_dsl
from monitors_dsl.printer import print_rules

from tests.support.dsl_strategies import documents

ROUND_TRIP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@ROUND_TRIP
@given(documents())
def test_canonical_text_round_trips(rules):
    """parse(canonical(x)) == x, canonical is idempotent, and canonical text has no errors."""
    text = print_rules(rules)
    assert monitors_dsl.parse(text) == rules
    assert monitors_dsl.canonical(text) == text
    assert [d for d in monitors_dsl.validate(text) if d.severity == "error"] == []


_language_alphabet = st.sampled_from(
    list(string.ascii_letters + string.digits + " \n\t(){}[],.=!<>~+-*/%\"'`#_:;$&|\\")
    + ["rule ", "when ", "and ", "or ", "not ", "last(", "avg(", "offset ", "5m", "group by ", "every ",
       '"""', "{{", "}}", "{%", "%}", "\u00e9", "\u2603", "\x00", "\r"]
)
arbitrary_text = st.one_of(
    st.text(max_size=300),
    st.lists(_language_alphabet, max_size=120).map("".join),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


@settings(max_examples=500, deadline=timedelta(seconds=1), suppress_health_check=[HealthCheck.too_slow])
@given(arbitrary_text)
def test_validate_never_raises(text):
    diagnostics = monitors_dsl.validate(text)
    assert isinstance(diagnostics, list)
    for d in diagnostics:
        assert d.severity in ("error", "warning")
        assert d.line >= 1 and d.column >= 1 and d.code and d.message
        assert (d.end_line, d.end_column) >= (d.line, d.column)


@settings(max_examples=200, deadline=timedelta(seconds=1))
@given(arbitrary_text)
def test_parse_raises_only_dsl_error(text):
    try:
        monitors_dsl.parse(text)
    except monitors_dsl.DslError as error:
        assert error.diagnostics


# Up to 60 KB of pathological nesting: well under a second on an idle machine; the deadline leaves
# room for a loaded one.
@settings(max_examples=50, deadline=timedelta(seconds=3))
@given(st.integers(1, 5000), st.sampled_from(["(", "not ", "-", "last(a.b) + ", "abs(", "{", "rule x { "]))
@example(62, "not ")
@example(65, "not ")
@example(62, "last(a.b) + ")
@example(65, "(")
@example(64, "{")
def test_deep_and_repetitive_input_is_reported_not_crashed(count, piece):
    text = piece * count + "last(a.b) > 1"
    errors = {d.code for d in monitors_dsl.validate(text) if d.severity == "error"}
    nests = piece not in ("{", "rule x { ")
    if nests and count > 64:
        assert "too-deeply-nested" in errors  # past the one nesting limit (64), whatever nests
    elif piece in ("(", "abs(", "{", "rule x { "):
        assert errors  # unclosed: always an error
    elif count < 63:  # 63 and 64 levels reach the limit with the comparison and the aggregate on top
        assert not errors, errors  # `not not … x`, `- - … x`, `x + x + … > 1` within the limit are valid


def test_huge_inputs_are_answered():
    for text in ("last(a.b) > 1 and " * 20000 + "last(a.b) > 1",
                 "x" * 10_000_000,
                 "rule r { when last(a.b) > 1 }\n" * 8000,
                 '"' * 200_000,
                 "(" * 200_000):
        errors = [d for d in monitors_dsl.validate(text) if d.severity == "error"]
        assert errors and all(d.line >= 1 and d.column >= 1 and d.message for d in errors)
