"""The engine and Prometheus side by side: the same rules on the same series, measured in one run.

    python benchmarks/vs_prometheus.py                       # 1,000 / 10,000 / 100,000 rules, 60 s cycles
    python benchmarks/vs_prometheus.py --sizes 1000 --interval 10 --cycles 3 --no-write   # a quick look

Prometheus: ``prometheus`` from ``PATH`` (Debian's package is installed when it is
missing). The 1,000 series of ``benchmarks/engine_scale.py`` are served on
127.0.0.1 in the Prometheus text format, each price moving at each scrape; the
same rule mix (same seed, same texts) is translated into Prometheus alerting
rules (``translate``), one rule group per user of the mix (100 groups, which
Prometheus evaluates concurrently). Scrape and evaluation interval are both
``--interval`` (60 s by default: one point a minute, as in the engine's data).
Per evaluation cycle (one wall-clock interval, in which every group evaluates
once) the Prometheus process's CPU time (``/proc``), minus the median of the
same for a Prometheus scraping the same series without rules; the sum of its
rule groups' last durations (``prometheus_rule_group_last_duration_seconds``);
its RSS and peak RSS (``VmHWM``).

The engine: the same rules in a SQLite store (filled by another process), the
same prices in the embedded source, every rule evaluated at each tick; process
CPU per tick (DataFusion's threads included) and peak RSS of a process that
only reads the rules and ticks.

Medians (min–max) over the cycles; ratios Prometheus / engine. Everything on
127.0.0.1; every process started here is stopped; the run gives up after
``--max-minutes``. Writes ``## Side by side with Prometheus`` in
``docs/benchmarks.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import write_section  # noqa: E402
from engine_scale import (T0, MIN, base_prices, data, fill_store, machine_speed, rule_texts,  # noqa: E402
                          symbols)

SEED = 7
USERS = 100  # engine_scale.fill_store gives rule i to user i % 100


# --- the rules in Prometheus's language -------------------------------------------------------------------

_NUMBER = re.compile(r'(?<![\w.])\d+(?:\.\d+)?%?(?![\w"])')
_FUNCTIONS = {"last": "last_over_time", "avg": "avg_over_time", "max": "max_over_time", "min": "min_over_time"}


def _duration(seconds: int) -> str:
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _selector(selector) -> str:
    name = f"{selector.measurement}_{selector.field}"
    filters = []
    for f in selector.filters:
        if f.op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"no translation for the filter {f.tag} {f.op}")
        filters.append(f'{f.tag}{f.op}{json.dumps(f.value)}')
    return name + ("{" + ",".join(filters) + "}" if filters else "")


def _expr(node, interval: int) -> str:
    from monitors_dsl import ast as a

    if isinstance(node, a.Comparison):
        return f"{_expr(node.left, interval)} {node.op} {_expr(node.right, interval)}"
    if isinstance(node, a.Number):
        text = repr(node.literal) if node.literal != int(node.literal) else str(int(node.literal))
        return f"{text} / 100" if node.percent else text
    if isinstance(node, a.Aggregate):
        if node.offset.seconds:
            raise ValueError("no translation for an aggregate with offset")
        window = _duration(node.window.seconds)
        selector = _selector(node.selector)
        if node.function in _FUNCTIONS:
            return f"{_FUNCTIONS[node.function]}({selector}[{window}])"
        if node.function == "pct_change":
            # (last - first) / abs(first) over the window; with one point per interval, the first point in
            # (T - window, T] is the value at T - window + interval
            first = f"{selector} offset {_duration(node.window.seconds - interval)}"
            return f"(last_over_time({selector}[{window}]) - {first}) / abs({first})"
    raise ValueError(f"no translation for {type(node).__name__}")


def translate(text: str, interval: int, name: str, forms: dict | None = None) -> list[dict]:
    """The Prometheus alerting rules for one rule of the mix: ``for`` → ``for``, a severity pair → two rules
    (labelled with their severity), ``group by symbol`` → the rule without the symbol filter (Prometheus keeps
    one alert per series). ``forms`` caches the translation of each text with its numbers set aside."""
    numbers = _NUMBER.findall(text)
    key = _NUMBER.sub("#", text)
    cached = None if forms is None else forms.get(key)
    if cached is None:
        import monitors_dsl

        sentinels = iter(range(1_000_001, 1_000_001 + len(numbers)))
        masked = _NUMBER.sub(lambda m: str(next(sentinels)) + ("%" if m.group(0).endswith("%") else ""), text)
        rule = monitors_dsl.parse(masked)[0]
        if rule.group_by not in ((), ("symbol",)) or rule.keep_firing_for.seconds:
            raise ValueError(f"no translation for {text!r}")
        cached = []
        for severity, condition in rule.conditions:
            entry = {"alert": "", "expr": _expr(condition, interval)}
            if rule.for_.seconds:
                entry["for"] = _duration(rule.for_.seconds)
            entry["labels"] = {"severity": severity}
            cached.append(json.dumps(entry))
        if forms is not None:
            forms[key] = cached
    out = []
    for template in cached:
        for index, number in enumerate(numbers):
            template = template.replace(str(1_000_001 + index), number.rstrip("%"))
        entry = json.loads(template)
        entry["alert"] = name
        out.append(entry)
    return out


def rules_file(texts: list[str], interval: int, path: Path) -> int:
    """Writes the mix as Prometheus rule groups (one per user; JSON, which YAML reads); returns the number of
    Prometheus rules."""
    groups = [{"name": f"user{u}", "interval": f"{interval}s", "rules": []} for u in range(USERS)]
    forms: dict = {}
    count = 0
    for i, text in enumerate(texts):
        rules = translate(text, interval, f"rule{i}", forms)
        groups[i % USERS]["rules"].extend(rules)
        count += len(rules)
    path.write_text(json.dumps({"groups": [g for g in groups if g["rules"]]}))
    return count


# --- the series, served to Prometheus ------------------------------------------------------------------------

class Exporter:
    """``/metrics`` on 127.0.0.1: ``crypto_price{symbol="S…"}`` for the 1,000 symbols, every price moving by a
    random step (1 % standard deviation, as in engine_scale's data) at each scrape."""

    def __init__(self, prices: dict[str, float], seed: int) -> None:
        self.prices = dict(prices)
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server interface
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.body().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def body(self) -> str:
        with self.lock:
            self.scrapes += 1
            lines = ["# HELP crypto_price Price of the symbol.", "# TYPE crypto_price gauge"]
            for symbol in self.prices:
                self.prices[symbol] *= 1 + self.rng.gauss(0, 0.01)
                lines.append(f'crypto_price{{symbol="{symbol}"}} {self.prices[symbol]:.6f}')
            return "\n".join(lines) + "\n"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- Prometheus ----------------------------------------------------------------------------------------------

_CLOCK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    """One Prometheus server on 127.0.0.1 with its data in ``workdir``; ``stop()`` ends it."""

    def __init__(self, binary: str, workdir: Path, exporter_port: int, interval: int, rules: Path | None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": f"{interval}s", "evaluation_interval": f"{interval}s",
                       "scrape_timeout": f"{min(interval, 10)}s"},
            "rule_files": [str(rules)] if rules else [],
            "scrape_configs": [{"job_name": "prices", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
        }
        (workdir / "prometheus.yml").write_text(json.dumps(config))
        self.port = _free_port()
        self.log = open(workdir / "prometheus.log", "ab")  # noqa: SIM115 - handed to the process
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, start_new_session=True)
        self.workdir = workdir

    def _get(self, path: str, timeout: float = 30.0) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as response:
            return response.read()

    def wait_ready(self, deadline: float) -> float:
        """Seconds from start until ``/-/ready`` answers (rules loaded)."""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited at start (code {self.process.returncode}); see "
                                   f"{self.workdir / 'prometheus.log'}")
            try:
                self._get("/-/ready", timeout=2)
                return time.monotonic() - self.started
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("prometheus was not ready in time")

    def metrics(self) -> dict[str, list[tuple[str, float]]]:
        """The rule-group and TSDB metrics of its own ``/metrics``: name → [(labels, value)]."""
        out: dict[str, list[tuple[str, float]]] = {}
        for line in self._get("/metrics").decode().splitlines():
            if not line.startswith(("prometheus_rule_", "prometheus_tsdb_head_series ")):
                continue
            head, _, value = line.rpartition(" ")
            name, _, labels = head.partition("{")
            out.setdefault(name, []).append((labels, float(value)))
        return out

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK  # utime, stime

    def memory_mb(self) -> tuple[float, float]:
        """(RSS, peak RSS) in MB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
        return rss, hwm

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def _total(metrics: dict, name: str) -> float:
    return sum(value for _, value in metrics.get(name, ()))


def measure_prometheus(binary: str, workdir: Path, exporter: Exporter, interval: int, cycles: int,
                       rules: Path | None, groups: int, deadline: float) -> dict:
    """CPU, rule group durations and memory of one Prometheus over ``cycles`` evaluation cycles, after every
    group has evaluated twice (or, without rules, after two scrapes)."""
    prom = Prometheus(binary, workdir, exporter.port, interval, rules)
    try:
        ready = prom.wait_ready(deadline)
        while True:  # warm up
            if time.monotonic() > deadline:
                raise TimeoutError("the run took longer than --max-minutes (warming up Prometheus)")
            if rules is None:
                if exporter.scrapes >= 2:
                    break
            else:
                iterations = prom.metrics().get("prometheus_rule_group_iterations_total", [])
                if len(iterations) >= groups and min(v for _, v in iterations) >= 2:
                    break
            time.sleep(1)
        cpus, durations, rss, missed, iterations = [], [], [], [], []
        before = prom.metrics()
        last_cpu, last_missed = prom.cpu_seconds(), _total(before, "prometheus_rule_group_iterations_missed_total")
        last_iterations = _total(before, "prometheus_rule_group_iterations_total")
        next_at = time.monotonic() + interval
        for _ in range(cycles):
            if next_at > deadline:
                raise TimeoutError("the run took longer than --max-minutes (measuring Prometheus)")
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            cpu = prom.cpu_seconds()
            metrics = prom.metrics()
            cpus.append(cpu - last_cpu)
            last_cpu = cpu
            durations.append(_total(metrics, "prometheus_rule_group_last_duration_seconds"))
            now_missed = _total(metrics, "prometheus_rule_group_iterations_missed_total")
            missed.append(now_missed - last_missed)
            last_missed = now_missed
            now_iterations = _total(metrics, "prometheus_rule_group_iterations_total")
            iterations.append(now_iterations - last_iterations)
            last_iterations = now_iterations
            rss.append(prom.memory_mb()[0])
        failures = _total(metrics, "prometheus_rule_evaluation_failures_total")
        series = _total(metrics, "prometheus_tsdb_head_series")
        peak = prom.memory_mb()[1]
        slowest = max((v for _, v in metrics.get("prometheus_rule_group_last_duration_seconds", [])), default=0.0)
    finally:
        prom.stop()
    return {"ready": ready, "cpus": cpus, "durations": durations, "rss": rss, "peak": peak, "iterations": iterations,
            "missed": sum(missed), "failures": failures, "head_series": series, "slowest_group": slowest}


# --- the engine ----------------------------------------------------------------------------------------------

def engine_run(url: str, parquet: str, ticks: int, profile: bool = False) -> dict:
    """In a fresh process: the rules read from the store, a first tick (the states read), then ``ticks`` ticks;
    process CPU and wall per tick, peak RSS. ``profile``: also print where the ticks' time goes (cProfile)."""
    import resource

    from engine.evaluate import Evaluator
    from engine.main import tune_garbage_collector
    from engine.repository import SqlRepository
    from engine.rules import StoreRules
    from engine.runner import Runner
    from engine.sources import DataFusionSource
    from monitors_mcp.store import Database

    tune_garbage_collector()
    db = Database(url)
    source = DataFusionSource()
    import pyarrow.parquet as pq

    source.add_table("crypto", pq.read_table(parquet))
    began = time.perf_counter()
    runner = Runner(StoreRules(db), SqlRepository(db), Evaluator(source))
    runner.tick(T0, all_rules=True)
    cold = time.perf_counter() - began
    cpus, walls, transitions = [], [], []
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    for t in range(1, ticks + 1):
        if profiler is not None:
            profiler.enable()
        w0, p0 = time.perf_counter(), time.process_time()
        report = runner.tick(T0 + t * MIN, all_rules=True)
        cpus.append(time.process_time() - p0)
        walls.append(time.perf_counter() - w0)
        if profiler is not None:
            profiler.disable()
        transitions.append(report.transitions)
    if profiler is not None:
        import pstats

        stats = pstats.Stats(profiler).sort_stats("cumulative")
        stats.print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
    import tracemalloc

    if tracemalloc.is_tracing():  # --trace-memory: what the rules, states and layout hold, runner alive
        print_allocations()
    db.dispose()
    return {"cpus": cpus, "walls": walls, "transitions": transitions, "cold": cold,
            "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure_engine(tmp: Path, texts: list[str], table, ticks: int, trace: bool = False,
                   profile: bool = False) -> dict:
    import pyarrow.parquet as pq

    url = f"sqlite:///{tmp / 'monitors.db'}"
    filler = ("import json, sys; sys.path.insert(0, %r); sys.path.insert(0, %r); "
              "from engine_scale import fill_store; from monitors_mcp.store import Database; "
              "db = Database(%r); db.migrate(); fill_store(db, json.load(sys.stdin)); db.dispose()"
              ) % (str(ROOT), str(ROOT / "benchmarks"), url)
    subprocess.run([sys.executable, "-c", filler], input=json.dumps(texts), text=True, check=True)
    parquet = tmp / "crypto.parquet"
    pq.write_table(table, parquet)
    code = ("import json, sys; sys.path.insert(0, %r); from benchmarks.vs_prometheus import engine_run; "
            "print('RESULT ' + json.dumps(engine_run(%r, %r, %d, %r)))") % (str(ROOT), url, str(parquet), ticks,
                                                                            profile)
    if trace:
        code = "import tracemalloc; tracemalloc.start(1); " + code
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if not line.startswith("RESULT "):
            print(line)
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def print_allocations(limit: int = 25) -> None:
    """With ``--trace-memory``: the live allocations after the ticks, by file and by line."""
    import gc
    import tracemalloc

    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    total = sum(s.size for s in snapshot.statistics("filename"))
    print(f"traced live memory: {total / 2**20:.1f} MB (peak {tracemalloc.get_traced_memory()[1] / 2**20:.1f} MB)")
    for stat in snapshot.statistics("filename")[:limit]:
        print(f"  {stat.size / 2**20:8.1f} MB  {stat.count:>9,} blocks  {stat.traceback[0].filename}")
    for stat in snapshot.statistics("lineno")[:limit]:
        frame = stat.traceback[0]
        print(f"  {stat.size / 2**20:8.1f} MB  {stat.count:>9,} blocks  {frame.filename}:{frame.lineno}")


# --- the run -------------------------------------------------------------------------------------------------

def spread(values: list[float], digits: int = 3) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def ratio(theirs: list[float], ours: list[float]) -> str:
    """Median over median, and the range from the least favourable pair to the most favourable."""
    mid = statistics.median(theirs) / statistics.median(ours)
    return f"{mid:.1f}× ({min(theirs) / max(ours):.1f}–{max(theirs) / min(ours):.1f}×)"


def prometheus_binary() -> str:
    from tests.support import prometheus

    prometheus.install()
    path = prometheus.binary("prometheus")
    if path is None:
        raise SystemExit("prometheus is not installed and could not be installed")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--interval", type=int, default=60, help="scrape and evaluation interval, seconds")
    parser.add_argument("--cycles", type=int, default=5, help="measured evaluation cycles (and engine ticks)")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="give up (and stop everything) after this")
    parser.add_argument("--trace-memory", action="store_true", help="also print the engine's live allocations "
                        "(tracemalloc) at the largest size")
    parser.add_argument("--profile", action="store_true", help="also print where the engine's ticks spend "
                        "their time (cProfile) at the largest size")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--results", type=Path, help="also write the measurements to this JSON file")
    parser.add_argument("--render", type=Path, metavar="RESULTS", help="measure nothing: write the section from "
                        "a --results file of an earlier run")
    args = parser.parse_args()
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        section = render(**saved)
        print(section)
        if not args.no_write:
            write_section(ROOT / "docs" / "benchmarks.md", section)
        return
    # a SIGTERM ends the run through the same `finally` blocks as an error: every server started here is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.interval < 5 or args.interval > 300 or args.cycles < 2:
        parser.error("--interval must be 5–300 s and --cycles at least 2")
    began = time.monotonic()
    deadline = began + args.max_minutes * 60
    load = os.getloadavg()
    speed = [machine_speed()]
    binary = prometheus_binary()
    from tests.support.prometheus import version

    prom_version = ".".join(map(str, version(binary)))
    sizes = sorted({int(s) for s in args.sizes.split(",") if s})

    rng = random.Random(SEED)  # as engine_scale.run: prices, then the rules' thresholds, then the data
    prices = base_prices(rng)
    all_texts = rule_texts(max(sizes), rng, prices)
    table = data(prices, args.cycles + 2, rng)

    results, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="vs-prometheus-") as tmp_name:
        tmp = Path(tmp_name)
        exporter = Exporter(prices, SEED + 1)
        try:
            print(f"prometheus {prom_version}: baseline without rules, {args.cycles} cycles of {args.interval} s",
                  flush=True)
            baseline = measure_prometheus(binary, tmp / "baseline", exporter, args.interval, args.cycles, None,
                                          0, deadline)
            print(f"  CPU per cycle {spread(baseline['cpus'])} s, RSS {spread(baseline['rss'], 0)} MB", flush=True)
            for n in sizes:
                try:
                    results.append(measure_size(n, all_texts[:n], table, tmp, binary, exporter, baseline, args,
                                                deadline, largest=n == max(sizes)))
                except TimeoutError as error:
                    print(f"{n:>7} rules: not measured: {error}", flush=True)
                    skipped.append(n)
                    break
                finally:
                    if args.results is not None:  # what was measured so far, should the run not finish
                        args.results.write_text(json.dumps({"results": results, "baseline": baseline}))
        finally:
            exporter.stop()
    speed.append(machine_speed())
    saved = {"results": results, "baseline": baseline, "load": load, "load_end": os.getloadavg(), "speed": speed,
             "interval": args.interval, "cycles": args.cycles, "prom_version": prom_version,
             "minutes": (time.monotonic() - began) / 60, "date": f"{datetime.now():%Y-%m-%d}", "skipped": skipped}
    if args.results is not None:
        args.results.write_text(json.dumps(saved))
    section = render(**saved)
    print(section)
    if not args.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", section)


def measure_size(n: int, texts: list[str], table, tmp: Path, binary: str, exporter: Exporter, baseline: dict,
                 args, deadline: float, largest: bool) -> dict:
    """The engine, then Prometheus, on the first ``n`` rules of the mix."""
    import shutil

    (tmp / f"engine{n}").mkdir()
    ours = measure_engine(tmp / f"engine{n}", texts, table, args.cycles,
                          trace=args.trace_memory and largest, profile=args.profile and largest)
    shutil.rmtree(tmp / f"engine{n}", ignore_errors=True)
    print(f"{n:>7} rules, engine: process CPU per tick {spread(ours['cpus'])} s, peak RSS {ours['peak']:.0f} MB",
          flush=True)
    rules_path = tmp / f"rules{n}.yml"
    prom_rules = rules_file(texts, args.interval, rules_path)
    if time.monotonic() > deadline:
        raise TimeoutError("the run took longer than --max-minutes")
    theirs = measure_prometheus(binary, tmp / f"prometheus{n}", exporter, args.interval, args.cycles,
                                rules_path, min(USERS, n), deadline)
    shutil.rmtree(tmp / f"prometheus{n}", ignore_errors=True)
    # CPU per evaluation cycle: over each interval, the CPU above the no-rules median, divided by the cycles the
    # groups completed in it (one when none was missed: a loaded machine makes Prometheus skip iterations)
    base = statistics.median(baseline["cpus"])
    groups = min(USERS, n)
    theirs["net"] = [max(c - base, 1e-6) / (i / groups) for c, i in zip(theirs["cpus"], theirs["iterations"]) if i]
    theirs["prom_rules"] = prom_rules
    print(f"{n:>7} rules, prometheus ({prom_rules:,} rules): CPU per cycle {spread(theirs['cpus'])} s, "
          f"minus baseline {spread(theirs['net'])} s, rule groups {spread(theirs['durations'])} s, "
          f"peak RSS {theirs['peak']:.0f} MB, missed iterations {theirs['missed']:.0f}; "
          f"CPU ratio {ratio(theirs['net'], ours['cpus'])}", flush=True)
    return {"rules": n, "ours": ours, "theirs": theirs}


def render(results: list[dict], baseline: dict, load: tuple, load_end: tuple, speed: list[float], interval: int,
           cycles: int, prom_version: str, minutes: float, date: str, skipped: list[int] = ()) -> str:
    lines = [
        "## Side by side with Prometheus",
        "",
        f"`python benchmarks/vs_prometheus.py` — the rule mix of `engine_scale.py` (same seed, same texts) run by "
        f"the engine and by Prometheus {prom_version} (Debian's package) in the same run, on the same 1,000 series. "
        "Prometheus scrapes the series from 127.0.0.1 in its text format, each price moving at each scrape; the "
        "rules are translated into Prometheus alerting rules (`last(crypto.price{symbol=\"S\"}) > k` → "
        "`last_over_time(crypto_price{symbol=\"S\"}[5m]) > k`, `for` → `for`, a critical/warning pair → two rules, "
        "a `group by symbol` rule → one rule without the symbol filter, `avg`/`max` → `avg_over_time`/"
        "`max_over_time`, `pct_change` → `(last_over_time(x[5m]) - x offset 4m) / abs(x offset 4m)`), one rule "
        f"group per user of the mix (100 groups, evaluated concurrently). Scrape and evaluation interval "
        f"{interval} s; {cycles} measured cycles after every group has evaluated twice. Prometheus CPU "
        "per cycle = its process CPU time over one interval (`/proc`), minus the median of the same for a "
        "Prometheus scraping the same series without rules, divided by the evaluation cycles its groups completed "
        "in that interval (1 unless it missed iterations); rule groups = the sum of its groups' last "
        "durations (`prometheus_rule_group_last_duration_seconds`: wall time, groups run concurrently on the "
        "2 CPUs). The engine: the same rules in a SQLite store, the same prices in the embedded source, every "
        "rule evaluated at each tick, process CPU per tick (DataFusion's threads included); its peak RSS is "
        "that of a process that reads the rules and ticks (the store is filled by another). Medians "
        "(min–max); ratios Prometheus / engine (median over median; range from the least to the most "
        "favourable pair).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{date}; load average {load[0]:.1f} at the start, {load_end[0]:.1f} at the end; "
        f"machine speed reference {speed[0]:.1f} ms at the start, {speed[-1]:.1f} ms at the end (`machine_speed()` "
        f"of `engine_scale.py`: lower is faster); the whole run took {minutes:.0f} min. Prometheus without rules: "
        f"{spread(baseline['cpus'])} s of CPU per interval (scraping, the TSDB), RSS {spread(baseline['rss'], 0)} MB.",
        "",
        "| rules | Prometheus rules | Prometheus CPU / cycle (s) | minus no rules (s) | rule groups, sum (s) | "
        "engine process CPU / tick (s) | CPU ratio | Prometheus RSS (MB) | Prometheus peak RSS (MB) | "
        "engine peak RSS (MB) | peak RSS ratio, Prometheus / engine |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ours, theirs = r["ours"], r["theirs"]
        lines.append(
            f"| {r['rules']:,} | {theirs['prom_rules']:,} | {spread(theirs['cpus'])} | {spread(theirs['net'])} | "
            f"{spread(theirs['durations'])} | {spread(ours['cpus'])} | **{ratio(theirs['net'], ours['cpus'])}** | "
            f"{spread(theirs['rss'], 0)} | {theirs['peak']:.0f} | {ours['peak']:.0f} | "
            f"**{theirs['peak'] / ours['peak']:.2f}×** |")
    notes = []
    for r in results:
        theirs = r["theirs"]
        if theirs["missed"]:
            notes.append(f"at {r['rules']:,} rules Prometheus skipped {theirs['missed']:.0f} group iterations over "
                         f"the {len(theirs['cpus'])} measured intervals: its groups, running concurrently on the "
                         "shared CPUs, took longer than the interval (the rule groups column is the sum of their "
                         "wall times, not CPU), so its CPU per cycle is divided by the cycles the groups completed")
        if theirs["failures"]:
            notes.append(f"at {r['rules']:,} rules Prometheus counted {theirs['failures']:.0f} rule evaluation "
                         "failures")
    if skipped:
        notes.append(f"{skipped[0]:,} rules and above were not measured: the run reached its time limit")
    if notes:
        lines += ["", "Note: " + "; ".join(notes) + "."]
    lines += ["", "Goals (ratios from this run): " + goals(results) + "."]
    if "not met" in lines[-1]:
        lines[-1] += (" Where the engine's CPU goes, below, is what is left: about half of it is writing each "
                      "tick's state changes to the store, which Prometheus does not do.")
    lines += ["", *NOTES, "", *BREAKDOWN]
    return "\n".join(lines) + "\n"


def goals(results: list[dict]) -> str:
    by_size = {r["rules"]: r for r in results}
    out = []
    for n, target in ((100_000, 30), (10_000, 15)):
        r = by_size.get(n)
        if r is None:
            out.append(f"{n:,} rules not run")
            continue
        cpu = statistics.median(r["theirs"]["net"]) / statistics.median(r["ours"]["cpus"])
        out.append(f"at {n:,} rules at least {target}× less CPU per evaluation: {cpu:.1f}× — "
                   + ("met" if cpu >= target else "**not met**"))
    r = by_size.get(100_000)
    if r is not None:
        ours, theirs = r["ours"]["peak"], r["theirs"]["peak"]
        out.append(f"at 100,000 rules peak memory below Prometheus's: {ours:.0f} MB against {theirs:.0f} MB — "
                   + ("met" if ours < theirs else "**not met**"))
    return "; ".join(out)


#: What the figures include (kept with the section when the script rewrites it).
NOTES = [
    "What each side does per cycle: Prometheus runs one PromQL query per Prometheus rule (each selecting its series from the index and reading its window's samples), updates each rule's "
    "alerts and writes the `ALERTS` / `ALERTS_FOR_STATE` series of active alerts into its TSDB. The engine "
    "runs two merged SQL queries for all rules on the embedded DataFusion source, decides the rules of one "
    "shape together by binary search over their thresholds, steps only the rules whose condition may hold or "
    "whose series is active, and writes the state changes to its SQLite store. The memory figures are not "
    "of the same things: Prometheus's include its TSDB (the 1,000 series and the alert series, in memory); "
    "the engine's include the embedded source's data (small here; in production the series live in "
    "InfluxDB) and the store's client.",
]


#: Where the engine's CPU and memory go at 100,000 rules, measured apart from the table's run with ``--profile``
#: and ``--trace-memory`` and RSS read after each stage (same machine, same day).
BREAKDOWN = [
    "Where the engine's CPU goes at 100,000 rules (`--profile`: cProfile over 5 ticks, shares of the tick): "
    "writing the tick's results to the store 52 % (about 2,200 transitions and the changed series states per "
    "tick: building the rows, JSON-encoding states and values, SQLAlchemy's type processing, SQLite's "
    "`executemany` and commit), stepping the series through the state machine 22 %, deciding the rules "
    "(candidates by binary search over the thresholds, then their decisions) 12 %, the rest (waiting for the "
    "two queries on DataFusion's threads, the tick's bookkeeping) 14 %. Prometheus keeps its alerts' state in "
    "memory and writes only the `ALERTS` series; about half of the engine's CPU per tick is the persistence that "
    "makes its alerts survive a restart and be shared by replicas. What sets the engine's cost at this size is "
    "the number of rules whose series change state at a tick (the mix's thresholds sit 2–40 % from prices that "
    "move 1 % a minute: about 2 % of the rules each tick), not the number of rules; Prometheus's grows with "
    "every rule, one query each. At 10,000 rules the same profile gives: store writes 43 %, deciding the rules "
    "19 %, the two queries (waited for on DataFusion's threads) 14 %, stepping the series 16 %, the rest 8 %: "
    "the queries and the tick's fixed costs weigh more, which is why the ratio is lower at 10,000 rules than "
    "at 100,000.",
    "",
    "Where the engine's memory goes at 100,000 rules (RSS after each stage of one process, and `--trace-memory` "
    "for the Python objects): the process with its libraries imported and the embedded source holding the "
    "1,000 series (Python, pyarrow, DataFusion, SQLAlchemy) 182 MB, where Prometheus without rules is 45 MB; "
    "the 100,000 rules read and built +153 MB (125 MB of Python objects: the rule objects 29 MB, their "
    "bindings to shared shapes 14 MB, the generated predicates of the 6,573 distinct shapes 17 MB, the rules' "
    "texts and names as read from the store 19 MB, parsed shapes, clauses and the rest); the first tick +123 MB "
    "(the layout and plan 29 MB, the series states 6 MB, and what the first tick allocates while it reads every "
    "series' state and the queries' answers, which the allocators keep: the later ticks stay at that level). "
    "About 2.8 KB per rule beyond the fixed part.",
]


if __name__ == "__main__":
    main()
