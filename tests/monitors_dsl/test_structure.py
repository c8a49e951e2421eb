"""The tree's structure declared once, passes as visitors, one nesting limit, literals lexed by the grammar."""

from __future__ import annotations

import dataclasses
import typing

import pytest

import monitors_dsl
from monitors_dsl import ast as a
from monitors_dsl import describe, predicate, printer, reference
from monitors_dsl.check import MAX_NESTING, _Checker
from monitors_dsl.grammar import terminal_pattern
from monitors_dsl.parser import _lexemes, _nesting_problem

EXPRESSION_CLASSES = typing.get_args(a.Expr)
#: each pass and the methods it must have for every expression node
PASSES = {
    printer._Printer: ("visit",),
    describe._Describer: ("visit",),
    reference._Evaluator: ("visit",),
    _Checker: ("visit",),
}


def test_child_fields_name_exactly_the_expression_fields():
    for cls in EXPRESSION_CLASSES:
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        expected = tuple(name for name, kind in fields.items() if str(kind).strip("'\"") == "Expr")
        assert cls.child_fields == expected, cls.__name__
    assert a.Rule.child_fields == ("when", "critical_when", "warning_when", "info_when", "resolve_when")


def test_children_and_walk_follow_the_declaration():
    rule = monitors_dsl.parse("rule r { critical when -abs(last(a.b)) + 1 > 2 and not absent(c.d) "
                              "resolve when last(a.b) < 1 }")[0]
    assert a.children(rule) == (rule.critical_when, rule.resolve_when)
    names = [type(n).__name__ for n in a.walk(rule.critical_when)]
    assert names == ["Logical", "Comparison", "Arithmetic", "Negate", "Abs", "Aggregate", "Number", "Number",
                     "Not", "Aggregate"]
    assert a.depth(rule.critical_when) == 6
    assert a.children(rule.critical_when.left.left.left.operand.operand) == ()  # an aggregate is a leaf


@pytest.mark.parametrize("visitor", list(PASSES), ids=lambda v: v.__name__)
def test_every_pass_handles_every_expression_node(visitor):
    for cls in EXPRESSION_CLASSES:
        if cls is a.Invalid and visitor is not _Checker and visitor is not printer._Printer:
            continue  # only the checker and the printer meet trees that did not parse
        assert hasattr(visitor, f"visit_{cls.__name__}"), (visitor.pass_name, cls.__name__)


def test_the_predicate_compiler_has_a_method_for_each_use_of_each_node():
    builder = predicate._Builder
    numeric = {"Number", "Aggregate", "Negate", "Abs", "Arithmetic"}
    boolean = {"Aggregate", "Comparison", "Not", "Logical"}
    assert {n[len("numeric_"):] for n in dir(builder) if n.startswith("numeric_")} == numeric
    assert {n[len("boolean_"):] for n in dir(builder) if n.startswith("boolean_")} == boolean


def test_a_node_without_a_method_is_one_error_naming_the_pass_and_the_node():
    with pytest.raises(a.UnhandledNode, match=r"the describer does not handle Invalid nodes .*visit_Invalid"):
        describe.describe_expr(a.Invalid("x"))
    rule = a.Rule(when=a.Comparison(">", a.Comparison(">", a.Number(1), a.Number(2)), a.Number(3)))
    with pytest.raises(a.UnhandledNode, match=r"the predicate compiler .* Comparison .*numeric_Comparison"):
        predicate.generate_source(rule, lambda node: "c")

    class Unknown:
        pass

    with pytest.raises(TypeError, match="the printer does not handle Unknown nodes"):
        printer.print_expr(Unknown())


def _nested_operators(levels: int) -> str:
    return "last(a.b) > " + " + ".join(["1"] * levels)


def test_one_nesting_limit_for_operators():
    assert monitors_dsl.validate(_nested_operators(MAX_NESTING - 1)) == []  # the comparison is one more level
    (problem,) = monitors_dsl.validate(_nested_operators(MAX_NESTING))
    assert (problem.code, problem.message) == ("too-deeply-nested",
                                               f"this condition nests more than {MAX_NESTING} operators deep")


def test_one_nesting_limit_for_parentheses():
    inside = MAX_NESTING  # open at once: `last(…)` is closed before these open
    assert monitors_dsl.validate("last(a.b) > " + "(" * inside + "1" + ")" * inside) == []
    (problem,) = monitors_dsl.validate("last(a.b) > " + "(" * (inside + 1) + "1" + ")" * (inside + 1))
    assert problem.code == "too-deeply-nested" and problem.column == len("last(a.b) > ") + inside + 1
    assert f"{MAX_NESTING} levels" in problem.message


def test_the_nesting_scan_skips_parentheses_the_grammar_reads_as_text():
    many = "(" * (MAX_NESTING + 5)
    assert _nesting_problem(f'last(a.b{{t="{many}"}}) > 1 # {many}') is None
    assert _nesting_problem(f"last(`{many}`.b) > 1") is None
    assert _nesting_problem(many) == MAX_NESTING


def test_recovery_lexemes_come_from_the_grammar():
    text = 'rule `a b` { when last(x.y{t="a}b"}) > 5m # when }\n title """x\n}""" message \'unclosed\n}'
    kinds = [(lex.kind, lex.text) for lex in _lexemes(text)]
    assert ("quoted", "`a b`") in kinds
    assert ("str", '"a}b"') in kinds
    assert ("long", '"""x\n}"""') in kinds
    assert ("str", "'unclosed") in kinds  # an unclosed quote runs to the end of its line
    assert not any("when }" in t for _, t in kinds)  # the comment is skipped
    assert ("other", "5") in kinds and ("word", "m") in kinds


def test_the_printer_quotes_exactly_what_the_grammar_does_not_read_as_a_name():
    import re

    name = re.compile(terminal_pattern("NAME") + r"\Z")
    for candidate in ("cpu", "_x9", "9x", "a-b", "a b", "é", ""):
        printed = printer.print_name(candidate)
        assert (printed == candidate) == bool(name.match(candidate)), candidate
