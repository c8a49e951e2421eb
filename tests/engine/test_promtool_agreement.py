"""The same answers as Prometheus where both languages say the same thing, checked by promtool.

Generated series (integer prices with gaps, one point a minute from the Unix
epoch, as ``promtool test rules`` lays them out) and generated rules both
languages express — a threshold on the last value in a window, ``for``,
``keep firing for``, one series or several with ``group by`` — are run through
``monitors backtest``; the alerts firing at each minute are written as a
``promtool test rules`` file (``input_series``, ``alert_rule_test`` with
``exp_alerts``) beside the same rules in Prometheus's language, and promtool
must find every expected alert and no other. Windows are whole minutes plus
30 s, so no point sits on a window's left end (Prometheus 2.x ranges include
it, ours exclude it). The rules say ``on no data ok``: Prometheus drops a
series with no points in the window from the result, which ends its alert
(``keep_firing_for`` aside); docs/language.md lists the differences.

Rule files and test files are written as JSON, which YAML reads as it is.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import subprocess
from dataclasses import dataclass

import pytest

from monitors_dsl.cli import main as monitors
from tests.support import prometheus

SYMBOLS = ("S0", "S1", "S2", "S3")
MINUTES = 40
SEEDS = range(5)
RULES_PER_SEED = 10


@pytest.fixture(scope="module")
def promtool() -> str:
    return prometheus.promtool_for_tests()


@dataclass(frozen=True)
class Case:
    """One generated rule, in both languages."""

    name: str
    symbol: str | None  # None: every symbol, `group by symbol`
    op: str
    threshold: float
    window: str
    for_: int  # minutes
    keep: int  # minutes

    def ours(self) -> str:
        selector = "crypto.price" + (f'{{symbol="{self.symbol}"}}' if self.symbol else "")
        lines = [f"rule {self.name} {{", f"    when last({selector}, {self.window}) {self.op} {self.threshold}"]
        if self.symbol is None:
            lines.append("    group by symbol")
        if self.for_:
            lines.append(f"    for {self.for_}m")
        if self.keep:
            lines.append(f"    keep firing for {self.keep}m")
        lines += ["    on no data ok", "}"]
        return "\n".join(lines)

    def theirs(self) -> dict:
        selector = "crypto_price" + (f'{{symbol="{self.symbol}"}}' if self.symbol else "")
        rule = {"alert": self.name, "expr": f"last_over_time({selector}[{self.window}]) {self.op} {self.threshold}"}
        if self.for_:
            rule["for"] = f"{self.for_}m"
        if self.keep:
            rule["keep_firing_for"] = f"{self.keep}m"
        return rule


def series(rng: random.Random) -> dict[str, list[int | None]]:
    """A random walk per symbol, one value a minute; ``None`` where a point is missing (single gaps and
    runs long enough to empty the shorter windows)."""
    out = {}
    for symbol in SYMBOLS:
        value, values, gap = 100, [], 0
        for _ in range(MINUTES + 1):
            value += rng.choice((-3, -2, -1, 0, 1, 2, 3))
            if gap == 0 and rng.random() < 0.08:
                gap = rng.choice((1, 2, 4))
            values.append(None if gap else value)
            gap = max(0, gap - 1)
        out[symbol] = values
    return out


def cases(rng: random.Random, seed: int, data: dict[str, list[int | None]]) -> list[Case]:
    out = []
    for i in range(RULES_PER_SEED):
        symbol = None if i % 4 == 3 else rng.choice(SYMBOLS)
        seen = [v for s in ((symbol,) if symbol else SYMBOLS) for v in data[s] if v is not None]
        out.append(Case(
            name=f"seed{seed}_r{i}", symbol=symbol, op=rng.choice((">", "<")),
            threshold=rng.choice(seen) + 0.5,  # never equal to a value: no tie to read differently
            window=rng.choice(("1m30s", "2m30s", "4m30s")),
            for_=rng.choice((0, 0, 1, 2, 3)), keep=rng.choice((0, 0, 1, 2, 4)),
        ))
    return out


def firing(report: dict, case: Case) -> dict[int, list[str]]:
    """The symbols firing at each minute, from the backtest's transitions (ours: the alert's labels are the
    group tags; a rule over one series has none, and the series is the selector's symbol)."""
    rule = next(r for r in report["rules"] if r["name"] == case.name)
    state: dict[str, str] = {}
    transitions = sorted(rule["transitions"], key=lambda t: t["at"])
    out: dict[int, list[str]] = {}
    index = 0
    for minute in range(MINUTES + 1):
        stamp = f"1970-01-01T00:{minute:02d}:00Z"
        while index < len(transitions) and transitions[index]["at"] <= stamp:
            t = transitions[index]
            state[t["labels"].get("symbol", case.symbol)] = t["to"]
            index += 1
        out[minute] = sorted(s for s, st in state.items() if st == "firing")
    return out


def backtest(tmp_path, seed: int, data: dict[str, list[int | None]], rules: list[Case]) -> dict:
    folder = tmp_path / f"seed{seed}"
    folder.mkdir()
    lines = ["time,symbol,price"]
    for minute in range(MINUTES + 1):
        for symbol in SYMBOLS:
            if data[symbol][minute] is not None:
                lines.append(f"1970-01-01T00:{minute:02d}:00Z,{symbol},{data[symbol][minute]}")
    (folder / "crypto.csv").write_text("\n".join(lines) + "\n")
    (folder / "rules.monitors").write_text("\n\n".join(case.ours() for case in rules) + "\n")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = monitors(["backtest", str(folder / "rules.monitors"), "--data", str(folder / "crypto.csv"),
                         "--from", "1970-01-01T00:00:00Z", "--to", f"1970-01-01T00:{MINUTES:02d}:00Z",
                         "--format", "json"])
    assert code == 0, err.getvalue()
    assert "warning" not in err.getvalue(), err.getvalue()
    return json.loads(out.getvalue())


def promtool_values(values: list[int | None]) -> str:
    return " ".join("_" if v is None else str(v) for v in values)


def test_backtest_agrees_with_promtool(promtool, tmp_path):
    groups, test_groups, expected_firing = [], [], 0
    for seed in SEEDS:
        rng = random.Random(seed)
        data = series(rng)
        rules = cases(rng, seed, data)
        report = backtest(tmp_path, seed, data, rules)
        groups.append({"name": f"seed{seed}", "interval": "1m", "rules": [case.theirs() for case in rules]})
        checks = []
        for case in rules:
            for minute, symbols in firing(report, case).items():
                expected_firing += len(symbols)
                checks.append({"eval_time": f"{minute}m", "alertname": case.name,
                               "exp_alerts": [{"exp_labels": {"symbol": s}} for s in symbols]})
        test_groups.append({
            "name": f"seed {seed}",
            "interval": "1m",
            "input_series": [{"series": f'crypto_price{{symbol="{s}"}}', "values": promtool_values(data[s])}
                             for s in SYMBOLS],
            "alert_rule_test": checks,
        })
    assert expected_firing > 100, "the generated cases should fire often enough to say something"
    (tmp_path / "rules.yml").write_text(json.dumps({"groups": groups}, indent=1))
    (tmp_path / "tests.yml").write_text(json.dumps(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": test_groups}, indent=1))
    run = subprocess.run([promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, (
        f"promtool disagrees with `monitors backtest` (files in {tmp_path}):\n{run.stdout[-6000:]}{run.stderr[-3000:]}")
