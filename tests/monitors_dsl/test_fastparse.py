"""The lean parser (``monitors_dsl.fastparse``) gives exactly what Lark's path gives: the same rules with the
same spans (also those that take no part in equality) and the same diagnostics, on every fixture and on
generated documents, valid and broken; it gives up (and Lark's path reports) exactly where Lark fails. And
the lean tables load: were they to stop loading, every parse would silently take the slower path.
"""

from __future__ import annotations

import dataclasses
import logging
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark.exceptions import UnexpectedInput

from monitors_dsl import fastparse
from monitors_dsl.errors import Diagnostics
from monitors_dsl.grammar import parser as lark_parser
from monitors_dsl.parser import SourceText, _Builder, parse_text
from monitors_dsl.printer import print_rules
from tests.fixtures.invalid_rules import INVALID_RULES
from tests.fixtures.valid_rules import VALID_RULES

from tests.support.dsl_strategies import documents


def spanned(node):
    """A node as nested tuples of every field, spans and ``clause_spans`` included."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__,) + tuple((f.name, spanned(getattr(node, f.name)))
                                              for f in dataclasses.fields(node))
    if isinstance(node, (list, tuple)):
        return tuple(spanned(item) for item in node)
    if isinstance(node, dict):
        return tuple(sorted((repr(k), spanned(v)) for k, v in node.items()))
    return node


def both_paths(text: str):
    """``(lean, lark)``: each path's ``(rules with spans, diagnostics)``, or ``None`` where it fails to parse."""
    source = SourceText(text)
    diags = Diagnostics()
    rules = fastparse.fast_parse(text, _Builder(source, diags))
    lean = None if rules is None else (spanned(rules), spanned(diags.items))
    try:
        tree = lark_parser().parse(text, start="start")
    except UnexpectedInput:
        return lean, None
    diags = Diagnostics()
    rules = _Builder(source, diags).transform(tree)
    return lean, (spanned(rules), spanned(diags.items))


def assert_same(text: str) -> bool:
    """Both paths agree on ``text``; returns whether it parsed."""
    lean, lark = both_paths(text)
    assert (lean is None) == (lark is None), f"lean {'gave up' if lean is None else 'parsed'}, Lark did not: {text!r}"
    assert lean == lark, f"the paths differ on {text!r}"
    return lean is not None


FIXTURES = list(VALID_RULES) + [case[0] for case in INVALID_RULES]


def test_the_lean_tables_load() -> None:
    assert fastparse.lean_tables_error() is None


def test_tables_that_do_not_load_are_reported(monkeypatch, caplog) -> None:
    def broken(self):
        raise AttributeError("'LALR_Analyzer' object has no attribute 'parse_table'")

    monkeypatch.setattr(fastparse._Tables, "__init__", broken)
    fastparse._tables.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="monitors_dsl.fastparse"):
            assert "parse_table" in fastparse.lean_tables_error()
            source, rules = parse_text(VALID_RULES[0], Diagnostics())  # the slower path still parses
        assert len(rules) == 1
        assert "did not load" in caplog.text
    finally:
        monkeypatch.undo()
        fastparse._tables.cache_clear()
    assert fastparse.lean_tables_error() is None


@pytest.mark.parametrize("text", FIXTURES)
def test_both_paths_agree_on_every_fixture(text: str) -> None:
    assert_same(text)


def test_the_lean_path_parses_every_valid_fixture() -> None:
    assert all(both_paths(text)[0] is not None for text in VALID_RULES)


def _mangle(text: str, rng: random.Random) -> str:
    """The text with keyword case, spacing and comments changed, or broken: cut, a character dropped or
    doubled, a bracket added."""
    kind = rng.randrange(6)
    if kind == 0:
        return "".join(c.upper() if rng.randrange(3) == 0 else c for c in text)
    if kind == 1:
        return text.replace("\n", rng.choice(["\n\n", "  # note\n", "\t\n "]))
    if not text:
        return text
    at = rng.randrange(len(text) + 1)
    if kind == 2:
        return text[:at]
    if kind == 3:
        return text[:at] + text[at + 1:]
    if kind == 4:
        return text[:at] + text[at:at + 1] * 2 + text[at + 1:]
    return text[:at] + rng.choice("(){},=\"'`") + text[at:]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents(), seed=st.integers(0, 2**32 - 1))
def test_both_paths_agree_on_generated_documents(document, seed: int) -> None:
    text = print_rules(document)
    assert assert_same(text), "a printed document must parse"
    assert_same(_mangle(text, random.Random(seed)))


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("rule{}()<>=!~.,\"'`#%_ \n\tabcw0123456789-+*/")), max_size=60))
def test_both_paths_agree_on_any_text(text: str) -> None:
    assert_same(text)
