"""The monitors rule language: parse, check and print alert rules.

    >>> import monitors_dsl
    >>> monitors_dsl.validate('last(crypto.price{symbol="BTC"}) > 70000')
    []
    >>> monitors_dsl.canonical('LAST(crypto.price{symbol="BTC"}) > 70_000')
    'last(crypto.price{symbol="BTC"}, 5m) > 70000\\n'
"""

from ._api import canonical, parse, validate
from .ast import Rule
from .compiler import CompiledRule, Decision, Term, compile_rule
from .errors import Diagnostic, DslError
from .schema import MeasurementSchema, Schema
from .windows import TimeWindow, parse_window
from .testblocks import EngineUnavailable, TestFailure, TestResult, run_tests

__all__ = [
    "validate",
    "parse",
    "canonical",
    "Diagnostic",
    "DslError",
    "Rule",
    "Schema",
    "MeasurementSchema",
    "compile_rule",
    "CompiledRule",
    "Decision",
    "Term",
    "TimeWindow",
    "parse_window",
    "run_tests",
    "TestResult",
    "TestFailure",
    "EngineUnavailable",
]
