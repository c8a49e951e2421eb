"""The test endpoint's line-protocol parser, table-driven: input, what it means, or the exact problem."""

from __future__ import annotations

import pytest

from tests.support.line_protocol import Unsigned, parse_lines, to_nanoseconds


def one(text):
    points, errors = parse_lines(text)
    assert errors == [], errors
    assert len(points) == 1
    p = points[0]
    return p.measurement, p.tags, p.fields, p.timestamp


@pytest.mark.parametrize("text, expected", [
    ("cpu v=1", ("cpu", {}, {"v": 1.0}, None)),
    ("cpu,host=a v=1.5 10", ("cpu", {"host": "a"}, {"v": 1.5}, 10)),
    ("cpu v=-2e3,w=1.5E-2,x=-7 -5", ("cpu", {}, {"v": -2000.0, "w": 0.015, "x": -7.0}, -5)),
    ("cpu n=3i,u=4u", ("cpu", {}, {"n": 3, "u": 4}, None)),
    ("cpu a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE",
     ("cpu", {}, {"a": True, "b": True, "c": True, "d": True, "e": True,
                  "f": False, "g": False, "h": False, "i": False, "j": False}, None)),
    (r'cpu s="say \"hi\" \\ back\slash"', ("cpu", {}, {"s": 'say "hi" \\ back\\slash'}, None)),
    ('cpu s=""', ("cpu", {}, {"s": ""}, None)),
    ('cpu s="a,b=c d"', ("cpu", {}, {"s": "a,b=c d"}, None)),
    (r"my\ cpu\,x,host=a\ b\,c\=d v=1", ("my cpu,x", {"host": "a b,c=d"}, {"v": 1.0}, None)),
    (r"m,t\ k\=1=v f\,k\=1\ x=1", ("m", {"t k=1": "v"}, {"f,k=1 x": 1.0}, None)),
    (r"m=eq,t=\x v=1", ("m=eq", {"t": "\\x"}, {"v": 1.0}, None)),
    ("m,sym=Ünïcødé\u00a0€,city=東京 v=1", ("m", {"sym": "Ünïcødé\u00a0€", "city": "東京"}, {"v": 1.0}, None)),
    ("  cpu v=1   ", ("cpu", {}, {"v": 1.0}, None)),
])
def test_valid_lines(text, expected):
    assert one(text) == expected


def test_unsigned_is_marked():
    _, _, fields, _ = one("cpu u=18446744073709551615u,i=-9223372036854775808i")
    assert isinstance(fields["u"], Unsigned) and fields["u"] == 2**64 - 1
    assert not isinstance(fields["i"], Unsigned) and fields["i"] == -(2**63)


@pytest.mark.parametrize("text, problem", [
    ("cpu", "expected a space before the fields"),
    ("cpu ", "expected a field key, got end of line"),
    ("cpu,host=a", "expected a space before the fields"),
    ("cpu, v=1", "expected a tag key"),
    ("cpu,host= v=1", "expected a tag value"),
    ("cpu,host v=1", "expected an equals sign"),
    ("cpu v=", "invalid field value"),
    ("cpu v=abc", "invalid field value `abc`"),
    ("cpu v=1i2", "could not parse entire line"),
    ("cpu v=1 12x", "could not parse entire line"),
    ('cpu s="open', "unterminated string"),
    ("cpu,a=1,a=2 v=1", "duplicate tags, but `a` was repeated"),
    ("cpu v=1,v=2", "duplicate field `v`"),
    ("cpu,v=1 v=1", "`v` is both a tag and a field"),
    ("cpu v=99999999999999999999i", "unable to parse integer value"),
    ("cpu v=18446744073709551616u", "unable to parse unsigned integer value"),
    ("cpu v=-1u", "could not parse entire line"),
    ("cpu v=1 99999999999999999999", "unable to parse timestamp value"),
    ("cpu,t=a\\ v=1", "expected a space before the fields"),
    ("cpu,t=a\\\\ v=1", "may not end with a backslash"),
])
def test_invalid_lines(text, problem):
    points, errors = parse_lines(text)
    assert points == []
    assert len(errors) == 1
    assert problem in errors[0].error_message
    assert errors[0].original_line == text


def test_several_lines_comments_and_partial_failure():
    text = "# header\n\ncpu v=1 1\nbad\n  # indented comment\ncpu v=2 2\n"
    points, errors = parse_lines(text)
    assert [(p.line_number, p.fields["v"]) for p in points] == [(3, 1.0), (6, 2.0)]
    assert [(e.line_number, e.original_line) for e in errors] == [(4, "bad")]


def test_string_fields_may_hold_newlines():
    points, errors = parse_lines('log msg="line one\nline two",n=1i 5\ncpu v=1 6')
    assert errors == []
    assert points[0].fields == {"msg": "line one\nline two", "n": 1}
    assert points[1].line_number == 3


@pytest.mark.parametrize("value, precision, nanos", [
    (5, "ns", 5), (5, "nanosecond", 5), (5, "us", 5_000), (5, "microsecond", 5_000),
    (5, "ms", 5_000_000), (5, "s", 5_000_000_000), (5, "second", 5_000_000_000),
    (1_714_564_800, "auto", 1_714_564_800 * 10**9),
    (1_714_564_800_000, "auto", 1_714_564_800 * 10**9),
    (1_714_564_800_000_000, "auto", 1_714_564_800 * 10**9),
    (1_714_564_800_000_000_000, "auto", 1_714_564_800 * 10**9),
])
def test_precision(value, precision, nanos):
    assert to_nanoseconds(value, precision) == nanos
