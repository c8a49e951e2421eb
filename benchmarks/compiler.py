"""The compiled predicate against a hand-written lambda and rule-engine, and the compile rate.

    python benchmarks/compiler.py [--rounds 15] [--calls 200000] [--write docs/benchmarks.md]

Predicate: ``CompiledRule.condition(row)`` (the generated, three-valued
function) against a lambda a careful person would write for the same
condition with the same no-data handling, over the same rows, in interleaved
rounds; the ratio is taken per round, and its median and spread reported.
rule-engine's ``Rule.matches`` runs the same condition written in its own
language over rows without missing values (it has no three-valued logic).
Compile rate: rule text → ``CompiledRule`` (parse, check, terms, predicate
source, ``compile()``) over the shared fixture rules.
"""

from __future__ import annotations

import argparse
import os
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
from tests.fixtures.valid_rules import VALID_RULES  # noqa: E402

from _report import write_section  # noqa: E402

# (name, rule text, rule-engine text, the hand-written lambda with the term columns to fill in, rows of values)
CASES = [
    (
        "one comparison",
        'last(crypto.price{symbol="BTC"}) > 70000',
        "price > 70000",
        "lambda r: None if (v := r[{0!r}]) is None else v > 70000",
        [(71000.0,), (69000.0,), (None,)],
    ),
    (
        "ratio of counts",
        'count(http.requests{status=~"^5"}, 5m) / count(http.requests, 5m) > 5%',
        "errors / total > 0.05",
        "lambda r: None if (e := r[{0!r}]) is None or (t := r[{1!r}]) is None or t == 0 else e / t > 0.05",
        [(10, 100), (1, 100), (0, 0)],
    ),
    (
        "two comparisons, and",
        "avg(cpu.usage, 5m) > 90 and max(cpu.temp, 5m) < 50",
        "usage > 90 and temp < 50",
        "lambda r: False if (x := None if (u := r[{0!r}]) is None else u > 90) is False"
        " or (y := None if (t := r[{1!r}]) is None else t < 50) is False"
        " else (None if x is None or y is None else True)",
        [(95.0, 40.0), (80.0, 40.0), (95.0, None)],
    ),
]


def _time(function, rows, calls: int) -> float:
    """Seconds per call of ``function`` over ``rows`` in turn."""
    per_row = max(1, calls // len(rows))
    start = time.perf_counter()
    for row in rows:
        for _ in range(per_row):
            function(row)
    return (time.perf_counter() - start) / (per_row * len(rows))


def _compile_rate(texts, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for text in texts:
            monitors_dsl.compile_rule(text)
    return repeat * len(texts) / (time.perf_counter() - start)


def _spread(values, fmt: str) -> str:
    return f"{format(min(values), fmt)}–{format(max(values), fmt)}"


def predicate_rows(args) -> list[str]:
    lines = ["| condition | generated (ns/call) | hand-written lambda (ns/call) | ratio: median (spread) "
             "| rule-engine `matches` (ns/call) |", "|---|---:|---:|---:|---:|"]
    for name, text, theirs, hand, values in CASES:
        compiled = monitors_dsl.compile_rule(text)
        columns = [t.column for t in compiled.terms]
        rows = [dict(zip(columns, v)) for v in values]
        lam = eval(hand.format(*columns))  # the lambda as a person writes it, row keys as literals
        for row in rows:
            assert lam(row) is compiled.condition(row), (name, row)
        engine_rule = rule_engine.Rule(theirs)
        names = [n for n in re.findall(r"[a-z]+", theirs) if n not in ("and", "or", "not")]
        engine_rows = [dict(zip(names, v)) for v in values if None not in v and 0 not in v[1:]]
        generated, handwritten, engine = [], [], []
        for _ in range(args.rounds):
            generated.append(_time(compiled.condition, rows, args.calls))
            handwritten.append(_time(lam, rows, args.calls))
            engine.append(_time(engine_rule.matches, engine_rows, args.calls // 20))
        ratios = [g / h for g, h in zip(generated, handwritten)]
        lines.append(f"| {name}: `{text}` | {statistics.median(generated) * 1e9:.0f} "
                     f"| {statistics.median(handwritten) * 1e9:.0f} "
                     f"| **{statistics.median(ratios):.2f}x** ({_spread(ratios, '.2f')}) "
                     f"| {statistics.median(engine) * 1e9:,.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5, help="passes over the fixture rules per compile round")
    parser.add_argument("--write", metavar="FILE", help="replace this benchmark's section in a markdown file")
    args = parser.parse_args()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    singles = [t for t in VALID_RULES if len(monitors_dsl.parse(t)) == 1]
    monitors_dsl.compile_rule(singles[0])  # build the parser once, outside the timing
    predicate = predicate_rows(args)
    rates = [_compile_rate(singles, args.repeat) for _ in range(max(3, args.rounds // 3))]

    lines = [
        "## Compiler",
        "",
        f"`python benchmarks/compiler.py` — {args.rounds} interleaved rounds, Python {platform.python_version()}, "
        f"{platform.machine()} ({os.cpu_count()} CPUs, load average {load:.1f} at the start), "
        f"rule-engine {getattr(rule_engine, '__version__', '?')}.",
        "",
        "Predicate evaluation: the generated function (`CompiledRule.condition`) against a hand-written lambda "
        "of the same condition with the same no-data handling, over the same rows (values, and a row with no "
        "data). Ratio per round, generated / hand-written; goal at most 1.1x. rule-engine runs the same "
        "condition in its own language over the rows without missing values.",
        "",
        *predicate,
        "",
        f"Compile rate, rule text → `CompiledRule` (parse, check, terms, predicate source, `compile()`), "
        f"{len(singles)} fixture rules: median **{statistics.median(rates):,.0f} rules/s** "
        f"(spread {_spread(rates, ',.0f')}).",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_section(Path(args.write), report)


if __name__ == "__main__":
    main()
