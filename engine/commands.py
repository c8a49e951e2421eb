"""The engine's ``monitors`` commands, plugged in through the ``monitors.commands`` entry points.

    monitors eval FILE --data DIR --at T [--format json]
    monitors eval FILE --influxdb3 [--host URL] [--database DB] --at T
    monitors backtest FILE --data DIR --from T1 --to T2
    monitors test FILE… [--format json] [--junit FILE]

``eval`` evaluates each rule of FILE once, at time T (RFC 3339), and prints
per series its labels, each term's value and the decision, then the
notifications that evaluation would send from a fresh start (no series known
before), each with what becomes of it on each channel — as the engine's runner
decides them: routes, ``mute during``, ``depends on`` between the file's rules. The data comes
from the embedded source over a directory (or file) of CSV / Parquet data, or
from InfluxDB 3 (``INFLUXDB3_HOST``, ``INFLUXDB3_DATABASE``,
``INFLUXDB3_AUTH_TOKEN``; ``--host``/``--database`` override the first two).

JSON output, stable::

    {"rules": [{"name": str|null, "active": bool,
      "series": [{"labels": {tag: value},
      "values": {"<canonical term text>": number|bool|null},
      "result": true|false|null, "severity": "critical"|"warning"|"info"|null}],
      "notifications": [{"at", "labels", "kind", "severity", "late", "escalated", "title", "message",
        "deliveries": [{"channel": str, "status": "pending"|"muted"|"silenced"|"suppressed",
                        "reason": str|null}]}],
      "error": str|null}]}

``active`` is false when T is outside the rule's ``active during`` window (every
firing condition is then false).

A rule whose terms the source refuses has an ``error`` and no series; the
other rules are evaluated all the same, and the command exits 1.

Each command module registers itself with one ``register_*`` function; this
module imports the heavy engine packages only when a command runs.
"""

from __future__ import annotations

import importlib
import json
import math
import sys

from monitors_dsl.cli import CommandError, UsageError, format_diagnostic, read_source

__all__ = ["register_eval", "register_backtest", "register_test", "evaluate", "render_text", "render_backtest_text",
           "junit_xml"]

_INSTALL = 'install them with: pip install "monitors-mcp[engine]"'


def register_eval(subparsers) -> None:
    """Adds ``monitors eval`` to the ``monitors`` command."""
    cmd = subparsers.add_parser(
        "eval", help="evaluate rules once at a given time over data",
        description="Evaluate each rule of FILE once at time T and print, per series, its labels, "
                    "each term's value and the decision.",
        epilog="Data files: <measurement>.csv (a `time` column in RFC 3339, text columns are tags, "
               "numeric columns are fields) or <measurement>.parquet. See docs/sources.md.",
    )
    cmd.add_argument("file", metavar="FILE", help="rule file, or - for standard input")
    where = cmd.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", metavar="DIR", help="directory (or one file) of CSV / Parquet data")
    where.add_argument("--influxdb3", action="store_true",
                       help="query InfluxDB 3 (INFLUXDB3_HOST, INFLUXDB3_DATABASE, INFLUXDB3_AUTH_TOKEN)")
    cmd.add_argument("--host", help="InfluxDB 3 address, e.g. http://localhost:8181 (with --influxdb3)")
    cmd.add_argument("--database", help="InfluxDB 3 database (with --influxdb3)")
    cmd.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                     help="query deadline for InfluxDB 3 (default: 30)")
    cmd.add_argument("--at", required=True, metavar="T", help="evaluation time, RFC 3339 (2024-05-01T12:00:00Z)")
    cmd.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    cmd.set_defaults(handler=_cmd_eval)


def _engine_part(module: str, command: str):
    """The engine module ``module``, or a usage error naming what ``monitors COMMAND`` lacks and how to
    install it."""
    try:
        return importlib.import_module(f"engine.{module}")
    except ImportError as error:
        raise UsageError(f"`monitors {command}` needs the engine's packages ({error.name or error}); "
                         f"{_INSTALL}") from None


def _open_source(args, sources):
    if args.data is not None:
        if args.host or args.database:
            raise UsageError("--host and --database go with --influxdb3, not --data")
        return sources.DataFusionSource(args.data)
    return sources.InfluxDB3Source(args.host, args.database, timeout=args.timeout)


def _compile(name: str, text: str, schema):
    """The compiled rules of ``text``; diagnostics go to stderr, errors stop the command."""
    import monitors_dsl

    display = "<stdin>" if name == "-" else name
    diagnostics = monitors_dsl.validate(text, schema=schema)
    for diag in diagnostics:
        print(format_diagnostic(display, text, diag), file=sys.stderr)
    if any(d.severity == "error" for d in diagnostics):
        raise CommandError(f"{display}: the rules have errors; nothing was evaluated")
    rules = monitors_dsl.parse(text)
    if not rules:
        raise CommandError(f"{display}: no rule to evaluate")
    return [monitors_dsl.compile_rule(rule) for rule in rules]


def _value(value):
    """A term's value as JSON holds it: numbers, booleans (``absent``), null for no data."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate(compiled, source, at) -> dict:
    """``{"rules": [...]}`` for compiled rules evaluated once at ``at`` (datetime or ns) on ``source``.

    The rules are evaluated as the engine evaluates them (shared queries, the same rows); a rule whose
    terms the source refuses gets ``"error"`` and no series, and the others are evaluated all the same.
    """
    from datetime import datetime, timezone

    from engine.backtest import notifications_json
    from engine.evaluate import Evaluator
    from engine.repository import MemoryRepository
    from engine.rules import build_rule
    from engine.runner import Runner, StaticRules

    class OneTick(MemoryRepository):
        def errored(self):  # unknown: every rule is decided and shown, none skipped
            return None

    if isinstance(at, int):
        at = datetime.fromtimestamp(at / 1e9, tz=timezone.utc)
    rules = [build_rule(rule, id=f"#{index}") for index, rule in enumerate(compiled, start=1)]
    repository = OneTick()
    report = Runner(StaticRules(rules), repository, Evaluator(source, query_timeout=None)).tick(at, all_rules=True)
    failed = {rule_id: error for rule_id, error in report.errors.items()}
    by_id = {result.rule.id: result for result in report.evaluation.results}
    out = []
    for rule in rules:
        result = by_id[rule.id]
        error = result.error or failed.get(rule.id)
        series = []
        if result.error is None:
            for s in sorted(result.series, key=lambda s: [s.labels.get(tag, "") for tag in rule.group_by]):
                series.append({
                    "labels": {tag: s.labels.get(tag, "") for tag in rule.group_by},
                    "values": {term.text: _value(s.row.get(term.column)) for term in rule.value_terms},
                    "result": s.decision.result,
                    "severity": s.decision.severity,
                })
        out.append({"name": rule.name, "active": result.active, "series": series,
                    "notifications": notifications_json(repository, rule), "error": error})
    return {"rules": out}


def _cell(value) -> str:
    if value is None:
        return "no data"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".12g")
    return str(value)


def render_text(report: dict, at_text: str) -> str:
    """One readable table per rule: labels, term values, result and severity."""
    blocks = []
    for index, rule in enumerate(report["rules"], start=1):
        title = f"rule {rule['name']}" if rule["name"] else f"rule #{index}"
        inactive = "" if rule.get("active", True) else " (outside its active during window: not firing)"
        lines = [f"{title} at {at_text}{inactive}"]
        if rule.get("error"):
            lines.append(f"  error: {rule['error']}")
            blocks.append("\n".join(lines))
            continue
        if not rule["series"]:
            lines.append("  (no series)")
            blocks.append("\n".join(lines))
            continue
        tags = list(rule["series"][0]["labels"])
        terms = list(rule["series"][0]["values"])
        header = tags + terms + ["result", "severity"]
        rows = [[_cell(s["labels"][t]) for t in tags] + [_cell(s["values"][t]) for t in terms]
                + [_cell(s["result"]), s["severity"] or "-"] for s in rule["series"]]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        for cells in [header] + rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
        for n in rule.get("notifications", ()):
            lines.extend(_notification_lines(n, message=False))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# Times the sources can query: they count nanoseconds from 1970 in 64 bits (up to 2262), less room for windows.
_EARLIEST, _LATEST = 0, 7_258_118_400  # 1970-01-01T00:00:00Z, 2200-01-01T00:00:00Z


def _check_range(flag: str, seconds: float) -> None:
    if not _EARLIEST <= seconds < _LATEST:
        raise UsageError(f"{flag}: the time is outside what the sources can query; give a time from "
                         "1970-01-01T00:00:00Z to 2199-12-31T23:59:59Z")


def _cmd_eval(args) -> int:
    sources = _engine_part("sources", "eval")
    try:
        at = sources.parse_rfc3339(args.at)
    except ValueError as error:
        raise UsageError(f"--at: {error}") from None
    _check_range("--at", at // 1_000_000_000)
    text = read_source(args.file)
    try:
        with _open_source(args, sources) as source:
            compiled = _compile(args.file, text, source.schema())
            report = evaluate(compiled, source, at)
    except sources.SourceError as error:
        notes = "".join(f" ({note})" for note in getattr(error, "__notes__", ()))
        raise CommandError(f"{error}{notes}") from None
    if args.format == "json":
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_text(report, sources.format_rfc3339(at)))
    return 1 if any(rule["error"] for rule in report["rules"]) else 0


# --- monitors backtest ------------------------------------------------------------------


def register_backtest(subparsers) -> None:
    """Adds ``monitors backtest`` to the ``monitors`` command."""
    cmd = subparsers.add_parser(
        "backtest", help="replay rules over past data and show what would have fired",
        description="Run the engine's scheduler, state machine and templates over simulated time from T1 to T2 "
                    "and print the state changes and the notifications that would have been sent.",
    )
    cmd.add_argument("file", metavar="FILE", help="rule file, or - for standard input")
    cmd.add_argument("--data", required=True, metavar="DIR", help="directory (or one file) of CSV / Parquet data")
    cmd.add_argument("--from", dest="start", required=True, metavar="T1", help="first evaluation time, RFC 3339 (inclusive)")
    cmd.add_argument("--to", dest="end", required=True, metavar="T2", help="last evaluation time, RFC 3339 (inclusive)")
    cmd.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    cmd.add_argument("--chart", metavar="PNG", help="also draw each series, the thresholds and the firing spans")
    cmd.set_defaults(handler=_cmd_backtest)


def _cmd_backtest(args) -> int:
    sources = _engine_part("sources", "backtest")
    try:
        from engine.sources._time import parse_rfc3339_datetime

        start = parse_rfc3339_datetime(args.start)
        end = parse_rfc3339_datetime(args.end)
    except ValueError as error:
        raise UsageError(f"--from/--to: {error}") from None
    except OverflowError:  # a time past 9999 or before year 1 once its offset is applied
        _check_range("--from/--to", -1)
    _check_range("--from", start.timestamp())
    _check_range("--to", end.timestamp())
    if end < start:
        raise UsageError("--to is before --from")
    text = read_source(args.file)
    from engine.backtest import BacktestTooLong, backtest
    from engine.rules import rules_from_text

    try:
        with sources.DataFusionSource(args.data) as source:
            _compile(args.file, text, source.schema())
            rules = rules_from_text(text)
            result = backtest(rules, source, start, end)
    except sources.SourceError as error:
        raise CommandError(str(error)) from None
    except BacktestTooLong as error:
        raise UsageError(f"--from/--to: {error}") from None
    except ValueError as error:
        raise CommandError(str(error)) from None
    report = result.to_json()
    if args.chart:
        from engine.chart import render_chart

        try:
            png = render_chart(result)
        except ImportError as error:
            raise CommandError(f"--chart needs matplotlib ({error.name}); {_INSTALL}") from None
        try:
            with open(args.chart, "wb") as handle:
                handle.write(png)
        except OSError as error:
            raise CommandError(f"{args.chart}: {error.strerror or error}") from None
    for at, rule_id, error in result.errors[:20]:
        from engine.backtest import format_rfc3339

        print(f"warning: {rule_id} at {format_rfc3339(at)}: {error}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_backtest_text(report, result.ticks))
    return 0


def render_backtest_text(report: dict, ticks: int) -> str:
    """Transitions and notifications per rule, one line each."""
    blocks = []
    for index, rule in enumerate(report["rules"], start=1):
        lines = [f"rule {rule['name'] or f'#{index}'}"]
        if not rule["transitions"]:
            lines.append("  no state changes")
        for t in rule["transitions"]:
            labels = _labels_text(t["labels"])
            severity = f" ({t['severity']})" if t["severity"] else ""
            lines.append(f"  {t['at']}  {t['from']} → {t['to']}{severity}  {labels}".rstrip())
        for n in rule["notifications"]:
            lines.extend(_notification_lines(n))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + f"\n\n{ticks} evaluation{'s' * (ticks != 1)}\n"


def _notification_lines(n: dict, *, message: bool = True) -> list[str]:
    """A notification: when, its kind (``late``, ``escalated``), title and labels, what became of it on each
    channel, then (``message``) its message."""
    marks = [word for word in ("late", "escalated") if n.get(word)]
    kind = n["kind"] + (f" ({', '.join(marks)})" if marks else "")
    lines = [f"  {n['at']}  notify {kind}: {n['title']}  {_labels_text(n['labels'])}".rstrip()]
    for d in n.get("deliveries", ()):
        if d["status"] == "pending":
            lines.append(f"      → {d['channel']}: sent")
        else:
            reason = d["reason"] or d["status"]
            held = reason if reason.startswith(d["status"]) else f"{d['status']} ({reason})"
            lines.append(f"      → {d['channel']}: held, {held}")
    if message:
        lines.extend(f"      {line}" for line in n["message"].splitlines() if line.strip())
    return lines


def _labels_text(labels: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


# --- monitors test ------------------------------------------------------------------------


def register_test(subparsers) -> None:
    """Adds ``monitors test`` to the ``monitors`` command."""
    cmd = subparsers.add_parser(
        "test", help="run the test blocks of rule files",
        description="Run every `test` block of each rule file (and the tests of promtool test files, .yml/.yaml) "
                    "against its rules, with the engine's backtest over the tests' own series.",
        epilog="A promtool test file names its monitors rules with `monitors_rules: [FILE.rules]`, or takes the "
               ".rules files given beside it. Exit codes: 0 every test passed, 1 a test failed or a file has errors, "
               "2 usage error. See docs/language.md, \"Tests\".",
    )
    cmd.add_argument("files", nargs="+", metavar="FILE", help="rule file, promtool test file, or - for standard input")
    cmd.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    cmd.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    cmd.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    cmd.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    cmd.set_defaults(handler=_cmd_test)


class _TestFile:
    """One file's results: its diagnostics, its tests' results and timings, notes, and where lines came from."""

    def __init__(self, name: str, text: str, where=None) -> None:
        self.name, self.text = name, text
        self.display = "<stdin>" if name == "-" else name
        self.where = where or (lambda line: (self.display, line))
        self.diagnostics: list = []
        self.results: list = []
        self.seconds: list[float] = []
        self.notes: list[str] = []
        self.error: str | None = None
        self.converted = where is not None
        #: tests written before this line are not this file's (a promtool file's rules keep their own tests)
        self.tests_from = 0

    @property
    def failed(self) -> bool:
        return self.error is not None or any(d.severity == "error" for d in self.diagnostics) \
            or any(not r.passed for r in self.results)


def _run_document(entry: _TestFile, testing) -> None:
    import time

    from monitors_dsl._api import analyze

    document, entry.diagnostics = analyze(entry.text)
    if any(d.severity == "error" for d in entry.diagnostics):
        return
    for test in document.tests:
        if test.span.line <= entry.tests_from:
            continue
        began = time.perf_counter()
        entry.results.append(testing.run_test(document, test))
        entry.seconds.append(time.perf_counter() - began)


def _load_test_files(names: list[str]) -> list[_TestFile]:
    def is_promtool_file(name: str) -> bool:
        return name.lower().endswith((".yml", ".yaml"))

    texts = [(name, read_source(name)) for name in names]
    if any(is_promtool_file(name) for name in names):
        try:
            from engine.testing_promtool import PromtoolError, convert_promtool
        except ImportError as error:
            raise UsageError(f"reading promtool test files needs PyYAML ({error.name or error}); {_INSTALL}") from None
    rule_files = [(n, t) for n, t in texts if not is_promtool_file(n)]
    entries = []
    for name, text in texts:
        if not is_promtool_file(name):
            entries.append(_TestFile(name, text))
            continue
        try:
            converted = convert_promtool(name, text, [(("<stdin>" if n == "-" else n), t) for n, t in rule_files],
                                         read=read_source)
        except PromtoolError as error:
            entry = _TestFile(name, text)
            entry.error = f"{name}:{error.line}: {error}"
            entries.append(entry)
            continue
        entry = _TestFile(name, converted.text, converted.where)
        entry.notes = converted.notes
        entry.tests_from = converted.rules_end
        entries.append(entry)
    return entries


def _test_report(entries: list[_TestFile]) -> dict:
    files = []
    for entry in entries:
        diagnostics = []
        for d in entry.diagnostics:
            file, line = entry.where(d.line)
            diagnostics.append({**d.to_dict(), "file": file, "line": line, "end_line": line + d.end_line - d.line})
        tests = []
        for result, seconds in zip(entry.results, entry.seconds):
            item = result.to_dict()
            item["file"], item["line"] = entry.where(result.line)
            item["seconds"] = round(seconds, 3)
            for failure in item["failures"]:
                failure["file"], failure["line"] = entry.where(failure["line"])
            tests.append(item)
        files.append({"file": entry.display, "error": entry.error, "diagnostics": diagnostics, "tests": tests,
                      "notes": entry.notes})
    results = [r for e in entries for r in e.results]
    return {"files": files, "summary": {
        "files": len(entries), "tests": len(results), "passed": sum(r.passed for r in results),
        "failed": sum(not r.passed for r in results),
        "files_with_errors": sum(e.error is not None or any(d.severity == "error" for d in e.diagnostics)
                                 for e in entries)}}


def _print_test_text(entries: list[_TestFile], verbose: bool) -> None:
    for entry in entries:
        for note in entry.notes:
            print(f"note: {note}", file=sys.stderr)
        if entry.error is not None:
            print(f"{entry.error}", file=sys.stderr)
            continue
        for diag in entry.diagnostics:
            file, line = entry.where(diag.line)
            if not entry.converted:
                print(format_diagnostic(entry.display, entry.text, diag), file=sys.stderr)
            else:
                print(f"{file}:{line}:{diag.column}: {diag.severity}: {diag.message}"
                      + (f" ({diag.hint})" if diag.hint else ""), file=sys.stderr)
        for result in entry.results:
            file, line = entry.where(result.line)
            if result.error is not None:
                print(f"{file}:{line}: FAIL test {result.name}: {result.error}")
            for failure in result.failures:
                ffile, fline = entry.where(failure.line)
                print(f"{ffile}:{fline}: FAIL test {result.name}: {failure.expectation}")
                print(f"    expected: {failure.expected}")
                print(f"    seen:     {failure.seen}")
            if result.passed and verbose:
                print(f"{file}:{line}: ok test {result.name} ({result.expectations} expectation"
                      f"{'s' * (result.expectations != 1)})")


def _summary_line(report: dict) -> str:
    s = report["summary"]
    text = f"{s['files']} file{'s' * (s['files'] != 1)}, {s['tests']} test{'s' * (s['tests'] != 1)}: " \
           f"{s['passed']} passed, {s['failed']} failed"
    if s["files_with_errors"]:
        text += f", {s['files_with_errors']} file{'s' * (s['files_with_errors'] != 1)} with errors"
    return text


def junit_xml(entries: list[_TestFile]) -> str:
    """The results as JUnit XML: ``testsuites`` → a ``testsuite`` per file → a ``testcase`` per test, with a
    ``failure`` per failed expectation and an ``error`` for a test (or a file) that could not run."""
    import xml.etree.ElementTree as ET

    report = _test_report(entries)
    errors_total = 0
    suites = ET.Element("testsuites", name="monitors test")
    total_time = 0.0
    for entry, data in zip(entries, report["files"]):
        suite = ET.SubElement(suites, "testsuite", name=entry.display)
        errors = 0
        suite_time = 0.0
        problems = [d for d in data["diagnostics"] if d["severity"] == "error"]
        if entry.error is not None or problems:
            case = ET.SubElement(suite, "testcase", name="(rules and tests)", classname=entry.display, time="0")
            text = entry.error or "\n".join(f"{d['file']}:{d['line']}:{d['column']}: {d['message']}" for d in problems)
            ET.SubElement(case, "error", message=text.split("\n")[0], type="invalid").text = text
            errors += 1
        for test in data["tests"]:
            case = ET.SubElement(suite, "testcase", name=test["name"], classname=entry.display,
                                 file=str(test["file"]), line=str(test["line"]), time=f"{test['seconds']:.3f}")
            suite_time += test["seconds"]
            if test["error"] is not None:
                ET.SubElement(case, "error", message=test["error"], type="error").text = test["error"]
                errors += 1
            for failure in test["failures"]:
                body = f"{failure['file']}:{failure['line']}: {failure['expectation']}\n" \
                       f"expected: {failure['expected']}\nseen: {failure['seen']}"
                ET.SubElement(case, "failure", message=failure["expectation"], type="expectation").text = body
        failures = sum(1 for t in data["tests"] if t["failures"] and t["error"] is None)
        suite.set("tests", str(len(data["tests"]) + (1 if entry.error is not None or problems else 0)))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("time", f"{suite_time:.3f}")
        errors_total += errors
        total_time += suite_time
    suites.set("tests", str(sum(int(x.get("tests")) for x in suites)))
    suites.set("failures", str(sum(int(x.get("failures")) for x in suites)))
    suites.set("errors", str(errors_total))
    suites.set("time", f"{total_time:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _cmd_test(args) -> int:
    testing = _engine_part("testing", "test")
    entries = _load_test_files(args.files)
    for entry in entries:
        if entry.error is None:
            _run_document(entry, testing)
    report = _test_report(entries)
    if args.junit:
        try:
            with open(args.junit, "w", encoding="utf-8") as handle:
                handle.write(junit_xml(entries))
        except OSError as error:
            raise UsageError(f"--junit {args.junit}: {error.strerror or error}") from None
    if args.format == "json":
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_test_text(entries, args.verbose)
        if not args.quiet:
            print(_summary_line(report), file=sys.stderr)
    return 1 if any(entry.failed for entry in entries) else 0
