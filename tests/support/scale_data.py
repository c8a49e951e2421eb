"""Generated rules and prices shared by the fast-path tests: rules of few shapes over many symbols."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
import pyarrow as pa
import monitors_dsl


T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


MIN = timedelta(minutes=1)


SYMBOLS = ["A", "B", "C"]


def random_rule(rng: random.Random, index: int) -> str:
    op = rng.choice([">", ">=", "<", "<=", "=="])
    k = rng.choice([9, 10, 11, 10.5, 12, 8])
    symbol = rng.choice(SYMBOLS)
    term = f'last(crypto.price{{symbol="{symbol}"}}, 1m)'
    grouped = rng.random() < 0.25
    if grouped:
        term = "last(crypto.price, 1m)"
    if rng.random() < 0.3:
        k2 = rng.choice([9, 10, 11, 12])
        conditions = f"critical when {term} {op} {k2}\n    warning when {k} {rng.choice(['<', '>'])} {term}"
    else:
        conditions = f"when {term} {op} {k}"
    clauses = [conditions]
    if grouped:
        clauses.append("group by symbol")
    if rng.random() < 0.3:
        clauses.append(f"for {rng.choice([1, 2])}m")
    if rng.random() < 0.2:
        clauses.append(f"keep firing for {rng.choice([1, 2])}m")
    if rng.random() < 0.3:
        clauses.append(f"on no data {rng.choice(['ok', 'alert', 'keep'])}")
    if rng.random() < 0.2:
        clauses.append("repeat every 2m")
    if rng.random() < 0.2:
        clauses.append(f"resolve when {term} {rng.choice(['<', '>'])} {rng.choice([9, 10, 11])}")
    if rng.random() < 0.2:
        clauses.append(f"severity {rng.choice(['info', 'critical'])}")
    body = "\n    ".join(clauses)
    return monitors_dsl.canonical(f"rule r{index} {{\n    {body}\n}}")


def random_data(rng: random.Random, minutes: int) -> pa.Table:
    times, symbols, values = [], [], []
    for m in range(minutes):
        for s in SYMBOLS:
            if rng.random() < 0.15:
                continue  # no data this minute
            times.append(T0 + m * MIN - timedelta(seconds=1))
            symbols.append(s)
            values.append(float(rng.choice([8, 9, 9.5, 10, 10.5, 11, 12])))
    return pa.table({"time": times, "symbol": symbols, "price": values})
