"""The engine at scale: N rules over 1,000 series on the embedded source, from a store.

    python benchmarks/engine_scale.py                 # 100,000 rules, SQLite; then 1k / 10k / 100k
    python benchmarks/engine_scale.py --rules 20000 --sizes 1000,10000 --ticks 5 --no-write

Rules (a realistic mix, per-user thresholds over 1,000 symbols): about 85 %
``last(crypto.price{symbol="S"}) > X`` or ``< X``, 8 % with ``for 2m``, 4 %
critical/warning pairs, 2 % ``group by symbol`` over all symbols, 1 % other
functions (``avg``, ``max``, ``pct_change``). Thresholds sit 2–40 % away from
the price, so a few rules cross each tick as the prices move.

Measured per tick (after a first tick that reads the states): queries, engine
CPU outside the queries (process CPU time minus the time spent inside
``source.query``), wall time; peak RSS (``resource.getrusage``); cold start
(store → rules built → first tick done). Medians and spreads over the ticks.
With ``MONITORS_TEST_MYSQL_URL`` set, the same on MariaDB (a database created
for the run and dropped after). Writes ``## Engine at scale`` in
``docs/benchmarks.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import re
import resource
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pyarrow as pa  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from _report import write_section  # noqa: E402
from engine.evaluate import Evaluator  # noqa: E402
from engine.main import tune_garbage_collector  # noqa: E402
from engine.repository import SqlRepository  # noqa: E402
from engine.rules import StoreRules  # noqa: E402
from engine.runner import Runner  # noqa: E402
from engine.sources import DataFusionSource  # noqa: E402
from monitors_mcp.store import Database, Rule, User  # noqa: E402

SERIES = 1000
MIN = timedelta(minutes=1)
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def symbols() -> list[str]:
    return [f"S{i:04d}" for i in range(SERIES)]


def base_prices(rng: random.Random) -> dict[str, float]:
    return {s: round(rng.uniform(1, 100_000), 2) for s in symbols()}


def rule_texts(n: int, rng: random.Random, prices: dict[str, float]) -> list[str]:
    names = symbols()
    out = []
    for i in range(n):
        s = names[i % SERIES]
        p = prices[s]
        up = rng.random() < 0.5
        k = round(p * (1 + rng.uniform(0.02, 0.4)) if up else p * (1 - rng.uniform(0.02, 0.4)), 2)
        op = ">" if up else "<"
        term = f'last(crypto.price{{symbol="{s}"}})'
        r = rng.random()
        if r < 0.85:
            out.append(f"{term} {op} {k}")
        elif r < 0.93:
            out.append(f"rule r{i} {{\n    when {term} {op} {k}\n    for 2m\n}}")
        elif r < 0.97:
            k2 = round(k * (1.05 if up else 0.95), 2)
            out.append(f"rule r{i} {{\n    critical when {term} {op} {k2}\n    warning when {term} {op} {k}\n}}")
        elif r < 0.99:
            out.append(f"rule r{i} {{\n    when last(crypto.price) > {round(rng.uniform(90_000, 200_000), 2)}\n"
                       f"    group by symbol\n}}")
        else:
            fn = rng.choice(["avg(crypto.price{symbol=\"%s\"}, 5m) > %s", "max(crypto.price{symbol=\"%s\"}, 5m) > %s",
                             "pct_change(crypto.price{symbol=\"%s\"}, 5m) > %s%%"])
            value = round(rng.uniform(1, 10), 1) if "pct" in fn else round(p * 1.1, 2)
            out.append(fn % (s, value))
    return out


def data(prices: dict[str, float], minutes: int, rng: random.Random) -> pa.Table:
    times, syms, values = [], [], []
    current = dict(prices)
    for m in range(-10, minutes + 1):
        for s in current:
            current[s] *= 1 + rng.gauss(0, 0.01)
            times.append(T0 + m * MIN)
            syms.append(s)
            values.append(current[s])
    return pa.table({"time": times, "symbol": syms, "price": values})


_NUMBER = re.compile(r'(?<![\w.])\d+(?:\.\d+)?%?(?![\w"])')
_NAME = re.compile(r"^rule (r\d+) ")


def canonical_texts(texts: list[str]) -> list[str]:
    """Canonical texts, printing each form (numbers and name aside) once."""
    import monitors_dsl
    from monitors_dsl.printer import print_number

    forms: dict[str, str] = {}
    out = []
    for text in texts:
        name = _NAME.match(text)
        body = _NAME.sub("rule rX ", text) if name else text
        numbers = _NUMBER.findall(body)
        key = _NUMBER.sub("1", body)
        form = forms.get(key)
        if form is None:
            form = forms[key] = monitors_dsl.canonical(key)
        values = iter(numbers)

        def number(_match, values=values):
            t = next(values)
            return print_number(float(t[:-1])) + "%" if t.endswith("%") else print_number(float(t))

        c = _NUMBER.sub(number, form)
        out.append(c.replace("rule rX ", f"rule {name.group(1)} ", 1) if name else c)
    return out


def fill_store(db: Database, texts: list[str]) -> None:
    with db.session() as session:
        session.execute(insert(User), [{"id": u + 1, "name": f"user{u}"} for u in range(100)])
    rows = [{"owner_id": i % 100 + 1, "name": f"rule{i}", "live_name": f"rule{i}", "text": text, "canonical": c,
             "enabled": True, "version": 1, "every_seconds": 60}
            for i, (text, c) in enumerate(zip(texts, canonical_texts(texts)))]
    with db.session() as session:
        for start in range(0, len(rows), 5000):
            session.execute(insert(Rule), rows[start:start + 5000])


class Timed:
    """Wraps a source, adding up the wall time spent inside ``query`` and the CPU of its threads."""

    def __init__(self, source) -> None:
        self.source = source
        self.seconds = 0.0
        self.count = 0
        self.lock = threading.Lock()

    def query(self, sql: str):
        began = time.perf_counter()
        try:
            return self.source.query(sql)
        finally:
            with self.lock:
                self.seconds += time.perf_counter() - began
                self.count += 1


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Fallbacks(logging.Handler):
    """Counts the batched store writes that failed and were written rule by rule (a slow path)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "one by one" in record.getMessage()


def run(url: str, n: int, ticks: int, seed: int = 7) -> dict:
    tune_garbage_collector()  # as monitors-engine does
    fallbacks = _Fallbacks()
    logging.getLogger("engine.repository.sql").addHandler(fallbacks)
    rng = random.Random(seed)
    prices = base_prices(rng)
    texts = rule_texts(n, rng, prices)
    db = Database(url)
    db.migrate()
    fill_store(db, texts)
    source = DataFusionSource()
    source.add_table("crypto", data(prices, ticks + 2, rng))
    timed = Timed(source)

    began_wall, began_cpu = time.perf_counter(), time.process_time()
    rules = StoreRules(db)
    loaded = rules.current()
    built = time.perf_counter() - began_wall
    runner = Runner(rules, SqlRepository(db), Evaluator(timed))
    first = runner.tick(T0, all_rules=True)
    cold = time.perf_counter() - began_wall
    cold_cpu = time.process_time() - began_cpu

    walls, cpus, queries, scans, transitions, process_cpus, query_seconds = [], [], [], [], [], [], []
    for t in range(1, ticks + 1):
        timed.seconds = 0.0
        w0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
        report = runner.tick(T0 + t * MIN, all_rules=True)
        wall = time.perf_counter() - w0
        walls.append(wall)
        # the queries run on worker threads: the tick's own thread's CPU time is the engine outside them
        cpus.append(time.thread_time() - c0)
        process_cpus.append(time.process_time() - p0)
        query_seconds.append(timed.seconds)
        queries.append(report.queries)
        scans.append(report.scans)
        transitions.append(report.transitions)
    full = runner.rules.builder.full_compiles
    after_change = _tick_after_a_change(db, runner, T0 + (ticks + 1) * MIN)
    db.dispose()
    if fallbacks.count:
        raise RuntimeError(f"{fallbacks.count} batched store writes failed and were written rule by rule")
    return {
        "after_change": after_change,
        "rules": n, "loaded": len(loaded), "full_compiles": full, "built": built, "cold": cold,
        "cold_cpu": cold_cpu, "first_queries": first.queries, "walls": walls, "cpus": cpus, "queries": queries,
        "scans": scans,
        "transitions": transitions, "rss": peak_rss_mb(), "process_cpus": process_cpus,
        "query_seconds": query_seconds,
        "terms": first.evaluation.plan.term_count if first.evaluation else 0,
    }


def _tick_after_a_change(db: Database, runner: Runner, at: datetime) -> float:
    """Engine CPU of a tick right after one rule's threshold was changed (the rules read and laid out again)."""
    from sqlalchemy import select, update

    with db.session() as session:
        rule_id, text = session.execute(select(Rule.id, Rule.canonical).order_by(Rule.id).limit(1)).one()
        changed = _NUMBER.sub(lambda m: m.group(0)[:-1] + "7" if m.group(0)[-1].isdigit() else m.group(0), text, 1)
        session.execute(update(Rule).where(Rule.id == rule_id).values(canonical=changed, text=changed,
                                                                      version=Rule.version + 1))
    began = time.thread_time()
    runner.tick(at, all_rules=True)
    return time.thread_time() - began


def machine_speed() -> float:
    """Milliseconds for a fixed pure-Python workload (dict and str work, best of 5): how fast this machine is
    at the time of the run (its speed drifts; the engine's figures move with it)."""
    import timeit

    def work() -> None:
        d = {}
        for i in range(200_000):
            d[i] = str(i)

    return min(timeit.repeat(work, number=1, repeat=5)) * 1000


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--ticks", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs at the largest size on SQLite, each with "
                        "the machine speed read just before it (this machine's speed drifts)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--results", type=Path, help="a JSON file of earlier runs: kept, merged with this run's "
                        "(by store and size) and rendered together")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    speed = [machine_speed()]
    backends = [("sqlite", None)]
    mysql = os.environ.get("MONITORS_TEST_MYSQL_URL")
    if mysql:
        backends.append(("mariadb", mysql))

    results = []
    for backend, base in backends:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s} | {args.rules}) if backend == "sqlite" \
            else [args.rules]
        for n in sizes:
            repeats = max(1, args.repeat) if base is None and n == max(sizes) else 1
            with tempfile.TemporaryDirectory() as tmp:
                if base is None:
                    runs = []
                    for k in range(repeats):
                        before = machine_speed()
                        runs.append(_child(f"sqlite:///{tmp}/monitors{k}.db", n, args.ticks))
                        runs[-1]["speed"] = before
                    runs.sort(key=lambda r: statistics.median(r["cpus"]))
                    result = runs[len(runs) // 2]  # the run with the median engine CPU
                    result["runs"] = [(statistics.median(r["cpus"]), r["speed"]) for r in runs]
                else:
                    from tests.support import mariadb

                    url = mariadb.database_url(base, f"bench_scale_{n}")
                    try:
                        result = _child(url, n, args.ticks)
                    finally:
                        mariadb.drop_database(url)
            result["backend"] = backend
            results.append(result)
            print(f"{backend} {n:>7} rules: terms {result['terms']}, scans/tick {result['scans'][0]}, "
                  f"queries/tick {result['queries'][0]}, "
                  f"engine CPU/tick {spread(result['cpus'])} s, wall/tick {spread(result['walls'])} s, "
                  f"cold start {result['cold']:.1f} s (rules built {result['built']:.1f} s, "
                  f"{result['full_compiles']} full compiles), peak RSS {result['rss']:.0f} MB, "
                  f"transitions/tick {statistics.median(result['transitions']):.0f}", flush=True)
    if args.results is not None:
        import json

        earlier = json.loads(args.results.read_text()) if args.results.exists() else []
        fresh = {(r["backend"], r["rules"]) for r in results}
        results = sorted([r for r in earlier if (r["backend"], r["rules"]) not in fresh] + results,
                         key=lambda r: (r["backend"] != "sqlite", r["backend"], r["rules"]))
        args.results.write_text(json.dumps(results))
    speed.append(machine_speed())
    section = render(results, load, args.ticks, speed)
    print(section)
    if not args.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", section)


def _child(url: str, n: int, ticks: int) -> dict:
    """One measurement in a fresh process, so that peak RSS is that run's."""
    import json
    import subprocess

    code = ("import json, sys; sys.path.insert(0, %r); from benchmarks.engine_scale import run; "
            "print('RESULT ' + json.dumps(run(%r, %d, %d)))") % (str(ROOT), url, n, ticks)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line[7:])


def render(results: list[dict], load: float, ticks: int, speed: list[float] | None = None) -> str:
    lines = [
        "## Engine at scale",
        "",
        "`python benchmarks/engine_scale.py` — N rules in the store (about 85 % `last(crypto.price{symbol=\"S\"}) > X` "
        "or `< X` with per-user thresholds over 1,000 symbols, 8 % with `for 2m`, 4 % critical/warning pairs, "
        "2 % `group by symbol`, 1 % `avg`/`max`/`pct_change`), 1,000 series in the embedded source (DataFusion) "
        "whose prices move each minute; every rule evaluated at each tick (`all_rules`). "
        f"{ticks} measured ticks after the first; medians (min–max). Engine CPU = CPU time of the thread running the tick "
        "(the queries run on worker threads, so this is the engine outside `source.query`, but for turning "
        "answers into lists, done on the workers); process CPU includes DataFusion's. Cold start = rules read from the store and built, then the first tick "
        "(which also reads the series states).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now():%Y-%m-%d}; load average {load:.1f} at the start"
        + (f"; machine speed reference {speed[0]:.1f} ms at the start, {speed[-1]:.1f} ms at the end (a fixed "
           "pure-Python loop, `machine_speed()`: lower is faster; this machine's speed drifts within a day, and "
           "the engine's figures move with it: compare runs with this in mind)" if speed else "") + ".",
        "",
        "| store | rules | distinct terms | scans / tick | queries / tick | engine CPU / tick (s) | "
        "process CPU / tick (s) | wall / tick (s) | cold start (s) | peak RSS (MB) | transitions / tick |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['backend']} | {r['rules']:,} | {r['terms']:,} | {r['scans'][0]:,} | {r['queries'][0]:,} | "
                     f"{spread(r['cpus'])} | {spread(r['process_cpus'])} | {spread(r['walls'])} | {r['cold']:.1f} | "
                     f"{r['rss']:.0f} | {statistics.median(r['transitions']):.0f} |")
    repeated = [r for r in results if len(r.get("runs", ())) > 1]
    for r in repeated:
        lines += ["", f"{r['backend']}, {r['rules']:,} rules, {len(r['runs'])} runs (the table shows the median one): "
                  "engine CPU per tick " + ", ".join(f"{cpu:.3f} s (speed reference {ref:.1f} ms)"
                                                     for cpu, ref in r["runs"]) + "."]
    changed = [f"{r['backend']} {r['rules']:,} rules: {r['after_change']:.2f} s" for r in results if "after_change" in r]
    if changed:
        lines += ["", "A tick right after one rule's threshold was changed (the rules read again, only that one "
                  "built, and laid out from the last layout), engine CPU: " + "; ".join(changed) + "."]
    lines += ["", *PREVIOUS, "", *BEFORE, "", *CHANGES]
    if not any(r["backend"] == "mariadb" for r in results):
        lines += ["", "Not measured in this run: the MariaDB store (set `MONITORS_TEST_MYSQL_URL`)."]
    big = [r for r in results if r["rules"] == max(x["rules"] for x in results) and r["backend"] == "sqlite"]
    if big:
        r = big[0]
        cpu = statistics.median(r["cpus"])
        scans, queries = r["scans"][0], r["queries"][0]
        goal = 100_000
        at = f"at {r['rules']:,} rules (SQLite{'' if r['rules'] >= goal else f'; the goal is for {goal:,}, not run here'})"
        lines += [
            "",
            f"Goals {at}: queries per tick at most the distinct scans, not growing with rules ({queries:,} "
            f"queries for {scans:,} scans and {r['terms']:,} distinct terms) — "
            f"{'met' if queries <= scans else 'not met'}; "
            f"engine CPU under 0.5 s per tick: {cpu:.2f} s — {'met' if cpu < 0.5 else 'not met'}"
            f"{'' if r['rules'] >= goal else ' at this size'}; "
            f"RSS under 500 MB: {r['rss']:.0f} MB — {'met' if r['rss'] < 500 else 'not met'}; "
            f"cold start under 30 s: {r['cold']:.1f} s — {'met' if r['cold'] < 30 else 'not met'}"
            f"{'' if r['rules'] >= goal else ' at this size'}.".replace("— not met", "— **not met**"),
        ]
    return "\n".join(lines) + "\n"


#: The figures before rules with nothing to step were skipped and a firing series' values were kept once per
#: period (SQLite, 7 measured ticks, same machine, load average 0.9).
PREVIOUS = [
    "Previous (every rule's result walked at every tick, the merged queries planned again at every tick, a "
    "firing series' new values written at every evaluation; SQLite, 7 measured ticks, same machine, load "
    "average 0.9):",
    "",
    "| store | rules | distinct terms | scans / tick | queries / tick | engine CPU / tick (s) | "
    "process CPU / tick (s) | wall / tick (s) | cold start (s) | peak RSS (MB) | transitions / tick |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    "| sqlite | 1,000 | 982 | 982 | 2 | 0.440 (0.260–0.535) | 0.510 (0.307–0.600) | 0.508 (0.298–0.590) | 1.7 | "
    "242 | 43 |",
    "| sqlite | 10,000 | 1,097 | 1,001 | 2 | 1.200 (1.060–1.403) | 1.263 (1.124–1.469) | 1.272 (1.136–1.487) | "
    "5.3 | 280 | 275 |",
    "| sqlite | 100,000 | 1,896 | 1,001 | 2 | 7.236 (5.969–7.902) | 7.311 (6.036–7.973) | 7.476 (6.141–8.155) | "
    "22.6 | 489 | 2192 |",
]

#: Earlier: before a tick's alert writes were batched (SQLite, 5 measured ticks, same machine, load average 0.9).
BEFORE = [
    "Before that (each rule that opens, changes or closes an alert or queues notifications in its own ORM "
    "transaction; SQLite, 5 measured ticks, same machine, load average 0.9): 1,000 rules 0.621 s of engine "
    "CPU per tick, 10,000 rules 2.334 s, 100,000 rules 14.798 s (cold start 43.2 s). And with one query per "
    "scan and one store transaction per changed rule (load average 5–6): 1,000 rules 1.64 s, 10,000 rules "
    "7.00 s, 982 and 1,001 queries per tick.",
]

#: What the figures reflect (kept with the section when the script rewrites it).
CHANGES = [
    "What a tick costs now: the rules are laid out once per set of rules (`engine/evaluate.py`: the plan of "
    "merged queries, the rules grouped by the scans they read and, within, by shape with their thresholds "
    "sorted), and each tick only moves the plan's SQL to its time. Rules of one shape are decided together by "
    "binary search over their thresholds, and a rule is stepped only when its condition may hold for one of "
    "its series or one of its series is active (pending, firing, or with something to send): at 100,000 "
    "rules about 97 % of the rules are skipped at each tick without a Python object built for them. A "
    "firing series whose values alone changed is not written at every evaluation but once per period of "
    "`values_every` seconds (300 by default), at a point of the period fixed per series (so series that "
    "started firing together are spread over the period), and then only its values are written. Store "
    "writes are handed to the driver as plain tuples in batches (`executemany`), alerts opened in a tick "
    "are inserted in one batch and their ids read back by rule, series and start, and each stored series' "
    "row id is remembered with its state. The engine raises the garbage collector's thresholds (the "
    "engine's long-lived rules and states made full collections frequent and costly); the benchmark does "
    "the same as `monitors-engine`.",
    "",
    "This machine's speed drifts (see the reference above): runs of the same tick path earlier the same day, "
    "when 1,000 rules took 0.016–0.018 s per tick, gave 0.41–0.47 s at 100,000 rules on SQLite and "
    "0.48–0.53 s on MariaDB; when 1,000 rules took 0.021–0.025 s, 0.53–0.57 s and 0.55–0.58 s.",
    "",
    "What the remaining engine CPU is (100,000 rules, about 2,200 transitions and 2,300 series whose values "
    "are kept per tick): writing them (about 0.26 s: alerts opened and closed, their events, the series "
    "states, in SQLite), stepping them (about 0.1 s), and a fixed part (about 0.1 s: deciding the candidate "
    "rules, reading the rules' fingerprint, the tick's bookkeeping).",
    "",
    "A rule created, changed or deleted: the rules' ids and versions are read again and only the rules "
    "whose version changed are read in full and built; a set of rules that differs from the last one by a "
    "few rules whose terms are already queried is laid out from the last layout (the plan kept, the shape "
    "cohorts touched rebuilt), else laid out afresh (before: about 1.4 s of engine CPU for that tick at "
    "100,000 rules).",
]


if __name__ == "__main__":
    main()
