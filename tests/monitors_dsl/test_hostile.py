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


# --- text the source cannot receive ---------------------------------------------------------------

SURROGATES = [
    # (rule text, the text the diagnostic points at)
    ('last(crypto.price{symbol="\\uD800"}) > 1', "\\uD800"),
    ('last(crypto.price{symbol="a\\udfff"}) > 1', "\\udfff"),
    ('last(crypto.price{symbol="\\uD83D\\uDE00"}) > 1', "\\uD83D"),  # a pair written as two escapes
    ('last(crypto.price{symbol="\ud800"}) > 1', "\ud800"),  # a raw lone surrogate, as JSON can carry it
    ('last(crypto.price{symbol=~"^\\uDC00"}) > 1', "\\uDC00"),
    ('rule r {\n  when last(a.b) > 1\n  labels { team = "\\uDBFF" }\n}', "\\uDBFF"),
    ('rule r {\n  when last(a.b) > 1\n  message "{{ rule }} \\uD800"\n}', "\\uD800"),
    ('rule r {\n  when last(a.b) > 1\n  description "x\ud801"\n}', "\ud801"),
]


@pytest.mark.parametrize(("text", "at"), SURROGATES)
def test_lone_surrogates_are_refused_where_they_are_written(text, at):
    found = [d for d in monitors_dsl.validate(text) if d.code == "unsendable-character"]
    assert found, monitors_dsl.validate(text)
    first = found[0]
    line = text.split("\n")[first.line - 1]
    assert line[first.column - 1:first.end_column - 1] == at
    assert first.severity == "error" and first.hint


@pytest.mark.parametrize("text", [
    'last(crypto.price{symbol="\\\\uD800"}) > 1',  # an escaped backslash, then the letters uD800
    'last(crypto.price{symbol="\\u00e9"}) > 1',
    'last(crypto.price{symbol="😀"}) > 1',
])
def test_text_that_only_looks_like_a_surrogate_passes(text):
    assert [d for d in monitors_dsl.validate(text) if d.severity == "error"] == []


# --- regexes the source refuses -------------------------------------------------------------------

REGEX_REFUSED = [r"\w{5000}", r"(?:a{1000}){1000}", r"[\s\S]{60000}", r"\d{3000}", r".{60000}", r"\pL{300}",
                 r"(?:\w+){300}", "(" * 260 + "a" + ")" * 260]
REGEX_ACCEPTED = [r"^web-", r"\w{100}", r"a{100000}", r"(?i)[a-z]{20000}", r"^(ab|cd)$", r"[0-9]{1,64}",
                  r"\d{1000}", r"^[a-z0-9_-]+\.example\.com$", "(" * 200 + "a" + ")" * 200, r"\p{Greek}+"]


def _rule_with_regex(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace('"', '\\"')
    return f'last(cpu.usage{{host=~"{escaped}"}}) > 1'


@pytest.mark.parametrize("pattern", REGEX_REFUSED)
def test_regexes_over_the_sources_size_or_nesting_limit_are_refused(pattern):
    (problem,) = [d for d in monitors_dsl.validate(_rule_with_regex(pattern)) if d.severity == "error"]
    assert problem.code == "invalid-regex"
    assert "InfluxDB 3's regex engine" in problem.message and problem.hint
    assert problem.column > len('last(cpu.usage{host=~"')  # inside the pattern


@pytest.mark.parametrize("pattern", REGEX_ACCEPTED)
def test_regexes_within_the_limits_pass(pattern):
    assert [d for d in monitors_dsl.validate(_rule_with_regex(pattern)) if d.severity == "error"] == []


def _engine_accepts(pattern: str) -> bool:
    datafusion = pytest.importorskip("datafusion")
    import pyarrow as pa

    ctx = datafusion.SessionContext()
    ctx.register_record_batches("t", [[pa.record_batch({"s": ["x"]})]])
    try:
        ctx.sql("SELECT count(*) FROM t WHERE s ~ '" + pattern.replace("'", "''") + "'").collect()
    except Exception as error:  # noqa: BLE001 - the engine's refusal is the answer
        assert "CompiledTooBig" in str(error) or "nest" in str(error), str(error)[:300]
        return False
    return True


_ATOMS = ["a", "é", r"\w", r"\W", r"\d", r"\D", r"\s", r"\S", ".", r"[\s\S]", "[a-z]", "[^a]", "[α-ω]", r"\pL",
          "(?:a|bb|ccc)", "(?:a?)", "(?i)k", "(?:[a-z0-9_])", r"(?:\w+)"]


@pytest.mark.parametrize("atom", _ATOMS)
def test_the_size_estimate_never_passes_what_the_engine_refuses(atom):
    """Differential: DataFusion's regex (the engine InfluxDB 3 runs) against the estimate, around each
    piece's limit. Whatever the engine refuses is refused; what fits twice over is accepted."""
    from monitors_dsl.regexes import SIZE_LIMIT, compiled_size

    flag, body = ("(?i)", atom[4:]) if atom.startswith("(?i)") else ("", atom)
    refused_from = None
    for count in (10, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 400_000):
        pattern = f"{flag}(?:{body}){{{count}}}"
        ours = compiled_size(pattern) <= SIZE_LIMIT
        if refused_from is not None or not _engine_accepts(pattern):  # more copies only grow
            refused_from = refused_from or count
            assert not ours, pattern
        elif not ours:
            assert not _engine_accepts(f"{flag}(?:(?:{body}){{{count}}}){{2}}"), f"{pattern} refused too early"
    assert refused_from is not None  # the table reaches each piece's limit


# --- the command line: bounded reads, times out of range -----------------------------------------------

from monitors_dsl.cli import main as monitors  # noqa: E402


@pytest.fixture
def data(tmp_path):  # noqa: ANN001, ANN201
    (tmp_path / "crypto.csv").write_text("time,symbol,price\n2024-05-01T12:00:00Z,BTC,70001\n")
    rules = tmp_path / "r.rules"
    rules.write_text('rule btc {\n  when last(crypto.price{symbol="BTC"}) > 70000\n}\n')
    return tmp_path, rules


CLI_CASES = [
    # (arguments with {data} and {rules}, words stderr must hold)
    (["check", "/dev/zero"], "larger than 4 MiB"),
    (["fmt", "/dev/zero"], "larger than 4 MiB"),
    (["eval", "{rules}", "--data", "{data}", "--at", "9999-12-31T23:59:59-14:00"], "1970-01-01T00:00:00Z to 2199"),
    (["eval", "{rules}", "--data", "{data}", "--at", "0001-01-01T00:00:00+01:00"], "1970-01-01T00:00:00Z to 2199"),
    (["eval", "{rules}", "--data", "{data}", "--at", "1500-01-01T00:00:00Z"], "1970-01-01T00:00:00Z to 2199"),
    (["eval", "{rules}", "--data", "{data}", "--at", "99999-01-01T00:00:00Z"], "RFC 3339"),
    (["backtest", "{rules}", "--data", "{data}", "--from", "9999-12-31T23:59:59-14:00", "--to",
      "9999-12-31T23:59:59-14:00"], "1970-01-01T00:00:00Z to 2199"),
    (["backtest", "{rules}", "--data", "{data}", "--from", "0001-01-01T00:00:00+01:00", "--to",
      "2024-01-01T00:00:00Z"], "1970-01-01T00:00:00Z to 2199"),
    (["backtest", "{rules}", "--data", "{data}", "--from", "1970-01-01T00:00:00Z", "--to",
      "2024-01-01T00:00:00Z"], "more than the 100,000 allowed"),
]


@pytest.mark.parametrize(("arguments", "words"), CLI_CASES, ids=[" ".join(a)[:60] for a, _ in CLI_CASES])
def test_bad_command_line_values_exit_2_with_the_allowed_range(data, capsys, arguments, words):
    directory, rules = data
    argv = [a.format(data=directory, rules=rules) for a in arguments]
    assert monitors(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "internal error" not in err and "Traceback" not in err
