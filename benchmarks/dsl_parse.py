"""Parse + check rate of the rule language, against PyPI's rule-engine in the same run.

    python benchmarks/dsl_parse.py [--rounds 7] [--write docs/benchmarks.md]

Measures `monitors_dsl.validate` (parse and every check) over the shared fixture
rules, and `rule_engine.Rule(text)` over the same conditions translated to
rule-engine's syntax (each aggregate becomes a variable, each tag filter an
extra `and tag == "v"` test, so both parsers see a comparable expression).
Prints medians and spreads over several interleaved rounds, and the ratio.
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rule_engine  # noqa: E402

import monitors_dsl  # noqa: E402
from monitors_dsl import ast as a  # noqa: E402
from tests.fixtures.valid_rules import VALID_RULES  # noqa: E402

from _report import write_section  # noqa: E402


def to_rule_engine(node) -> str:
    """A rule-engine expression with the same shape as one of our conditions."""
    if isinstance(node, a.Number):
        return repr(node.value)
    if isinstance(node, a.Aggregate):
        name = f"{node.function}_{node.selector.measurement}_{node.selector.field}"
        name = re.sub(r"\W", "_", name)
        tests = []
        for flt in node.selector.filters:
            tag = re.sub(r"\W", "_", flt.tag)
            if flt.op in ("in", "not in"):
                values = ", ".join(repr(v) for v in flt.value)
                tests.append(f"{tag} {'in' if flt.op == 'in' else 'not in'} [{values}]")
            else:
                op = {"=": "==", "!=": "!="}.get(flt.op, flt.op)
                tests.append(f"{tag} {op} {flt.value!r}")
        if node.function == "absent":
            return "(" + " and ".join([f"{name} == null"] + tests) + ")"
        return f"({name} + 0)" if not tests else "(" + name + " * (" + " and ".join(tests) + " ? 1 : 0))"
    if isinstance(node, a.Abs):
        return f"$abs({to_rule_engine(node.operand)})"
    if isinstance(node, a.Negate):
        return f"-({to_rule_engine(node.operand)})"
    if isinstance(node, (a.Arithmetic, a.Comparison)):
        return f"({to_rule_engine(node.left)} {node.op} {to_rule_engine(node.right)})"
    if isinstance(node, a.Logical):
        return f"({to_rule_engine(node.left)} {node.op} {to_rule_engine(node.right)})"
    if isinstance(node, a.Not):
        return f"not ({to_rule_engine(node.operand)})"
    raise TypeError(type(node).__name__)


def conditions() -> list[str]:
    return [t for t in VALID_RULES if monitors_dsl.parse(t)[0].name is None and "\n" not in t and "when" not in t]


def rate(function, texts, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for text in texts:
            function(text)
    return repeat * len(texts) / (time.perf_counter() - start)


def spread(values) -> str:
    return f"{min(values):,.0f}–{max(values):,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--write", metavar="FILE", help="replace this benchmark's section in a markdown file")
    args = parser.parse_args()

    ours_conditions, theirs = [], []
    for text in conditions():
        expression = to_rule_engine(monitors_dsl.parse(text)[0].when)
        try:
            rule_engine.Rule(expression)
        except rule_engine.errors.EngineError:
            continue  # a name rule-engine reserves (e.g. a tag called `in`): leave the pair out
        ours_conditions.append(text)
        theirs.append(expression)

    monitors_dsl.validate(VALID_RULES[0])  # build the parser once, outside the timing
    samples = {"all": [], "conditions": [], "rule_engine": []}
    for _ in range(args.rounds):
        samples["rule_engine"].append(rate(rule_engine.Rule, theirs, args.repeat))
        samples["conditions"].append(rate(monitors_dsl.validate, ours_conditions, args.repeat))
        samples["all"].append(rate(monitors_dsl.validate, VALID_RULES, args.repeat))
    ratios = [c / r for c, r in zip(samples["conditions"], samples["rule_engine"])]
    median = {k: statistics.median(v) for k, v in samples.items()}

    lines = [
        "## Rule language: parse and check",
        "",
        f"`python benchmarks/dsl_parse.py` — {args.rounds} interleaved rounds, Python {platform.python_version()}, "
        f"{platform.machine()}, rule-engine {getattr(rule_engine, '__version__', '?')}.",
        "",
        "| what | rules per second (median) | spread (min–max) |",
        "|---|---:|---:|",
        f"| `monitors_dsl.validate`, {len(ours_conditions)} fixture conditions | {median['conditions']:,.0f} | {spread(samples['conditions'])} |",
        f"| `rule_engine.Rule(text)`, the same conditions translated | {median['rule_engine']:,.0f} | {spread(samples['rule_engine'])} |",
        f"| `monitors_dsl.validate`, all {len(VALID_RULES)} fixture rules (documents, templates) | {median['all']:,.0f} | {spread(samples['all'])} |",
        "",
        f"Ratio against rule-engine (same run, per round): median **{statistics.median(ratios):.2f}x**, "
        f"spread {min(ratios):.2f}x–{max(ratios):.2f}x. Goal: at least 3x.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_section(Path(args.write), report)


if __name__ == "__main__":
    main()
