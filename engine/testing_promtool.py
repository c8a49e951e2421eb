"""Prometheus rule tests (``promtool test rules`` files) as monitors test blocks.

A promtool test file names Prometheus rule files; monitors rules are named
instead by a ``monitors_rules:`` key (paths relative to the YAML file), or are
the ``.rules`` files given beside it on the ``monitors test`` command line::

    monitors_rules: [alerts.rules]
    tests:
      - interval: 1m
        input_series:
          - series: 'up{job="api", instance="a"}'
            values: '1 1 0x10'
        alert_rule_test:
          - eval_time: 5m
            alertname: api_down
            exp_alerts:
              - exp_labels: {instance: a, severity: critical}

What is carried over: ``input_series`` (series ``name{tag="v"}`` is measurement
``name``, field ``value``, the tags as written; ``values`` in the same
notation; ``interval``, else ``evaluation_interval``, else 1m), and each
``alert_rule_test``: ``alertname`` is the rule, ``eval_time`` the time, each
``exp_alerts`` entry an ``expect firing`` with the entry's labels that the
rule's alerts carry (its ``group by`` tags and ``labels``; a ``severity`` label
naming critical, warning or info is the expected severity), and an empty
``exp_alerts`` an ``expect inactive``. What is not: ``rule_files`` (Prometheus
rules), ``exp_annotations``, ``promql_expr_test``, ``external_labels``, other
labels of ``exp_labels``, and the completeness of ``exp_alerts`` (a firing
series it does not list is not an error). Each is named in a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from monitors_dsl import ast as a
from monitors_dsl import parse
from monitors_dsl.errors import DslError
from monitors_dsl.printer import print_duration, print_name, print_string

__all__ = ["PromtoolError", "Converted", "convert_promtool", "is_promtool_file"]

_DURATION = re.compile(r"(?:[0-9]+(?:ms|[smhdwy]))+")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 365 * 86400}
_SERIES = re.compile(r"\s*(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)?\s*(?:\{(?P<labels>.*)\})?\s*\Z", re.S)
_LABEL = re.compile(r'\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*(?:,|\Z)', re.S)


class PromtoolError(ValueError):
    """A promtool test file that cannot be read: ``line`` (1-based) says where."""

    def __init__(self, message: str, line: int = 1):
        super().__init__(message)
        self.line = line


@dataclass
class Converted:
    """A rule document made of the named rules and the file's tests; ``origin`` maps each of its lines
    (index = line − 1) to ``(file, line)`` where it came from."""

    text: str
    origin: list[tuple[str, int]]
    notes: list[str] = field(default_factory=list)
    #: the document's lines up to this one are the rules (their own tests are not the file's)
    rules_end: int = 0

    def where(self, line: int) -> tuple[str, int]:
        return self.origin[line - 1] if 1 <= line <= len(self.origin) else self.origin[-1]


def is_promtool_file(name: str) -> bool:
    return name.lower().endswith((".yml", ".yaml"))


def _seconds(text, line: int, what: str) -> int:
    value = str(text).strip()
    if not _DURATION.fullmatch(value):
        raise PromtoolError(f"{what}: `{value}` is not a duration (e.g. 1m, 30s, 1h30m)", line)
    seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"([0-9]+)(ms|[smhdwy])", value))
    if seconds != int(seconds):
        raise PromtoolError(f"{what}: `{value}` is not a whole number of seconds; the rule language counts in "
                            "seconds", line)
    return int(seconds)


def _map(node) -> dict:
    return {key.value: value for key, value in node.value} if isinstance(node, yaml.MappingNode) else {}


def _key_line(node, key: str) -> int:
    """The line of ``key`` in mapping ``node``."""
    return next((k.start_mark.line + 1 for k, _ in node.value if k.value == key), _line(node))


def _items(node) -> list:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _scalar(node) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _line(node) -> int:
    return node.start_mark.line + 1


def _series(text: str, line: int) -> tuple[str, dict[str, str]]:
    match = _SERIES.match(text)
    if match is None or not match.group("name"):
        raise PromtoolError(f"series `{text}` is not written name{{label=\"value\", …}}", line)
    labels, rest = {}, (match.group("labels") or "").strip()
    while rest:
        pair = _LABEL.match(rest)
        if pair is None:
            raise PromtoolError(f"series `{text}`: cannot read the labels `{rest}`", line)
        value = bytes(pair.group("value"), "utf-8").decode("unicode_escape")
        if pair.group("key") == "__name__":
            raise PromtoolError(f"series `{text}`: give the name before the braces, not as __name__", line)
        labels[pair.group("key")] = value
        rest = rest[pair.end():].strip()
    return match.group("name"), labels


def convert_promtool(name: str, text: str, rule_files: list[tuple[str, str]], *, read=None) -> Converted:
    """``text`` (a promtool test file named ``name``) as one monitors document with its rules.

    ``rule_files`` are ``(name, text)`` of the ``.rules`` files given with it, used when the file has no
    ``monitors_rules`` key; ``read(path) -> str`` reads the files that key names."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise PromtoolError(f"not YAML: {getattr(error, 'problem', None) or error}",
                            mark.line + 1 if mark else 1) from None
    if not isinstance(root, yaml.MappingNode):
        raise PromtoolError("a promtool test file is a mapping with `tests:`", 1)
    top = _map(root)
    notes: list[str] = []
    named = top.get("monitors_rules")
    if named is not None:
        paths = [_scalar(item) for item in _items(named)] if isinstance(named, yaml.SequenceNode) else [_scalar(named)]
        if not paths or any(p is None for p in paths):
            raise PromtoolError("monitors_rules: a list of .rules files", _line(named))
        base = Path(name).parent
        reader = read or (lambda path: Path(path).read_text(encoding="utf-8"))
        rule_files = [(str(base / p), reader(str(base / p))) for p in paths]
    if not rule_files:
        raise PromtoolError("no monitors rules to test: add `monitors_rules: [FILE.rules]` to the file, or give the "
                            ".rules file on the command line beside it", 1)
    if "rule_files" in top:
        notes.append(f"{name}: rule_files (Prometheus rules) are not read; the tests run against "
                     + ", ".join(n for n, _ in rule_files))
    lines: list[str] = []
    origin: list[tuple[str, int]] = []
    for rule_name, rule_text in rule_files:
        number = 0
        for number, line in enumerate(rule_text.rstrip("\n").split("\n"), start=1):
            lines.append(line)
            origin.append((rule_name, number))
        lines.append("")
        origin.append((rule_name, number + 1))
    rules_end = len(lines)
    try:
        rules = parse("\n".join(lines))
    except DslError:
        rules = []  # the rules' own diagnostics are reported when the document is checked
    default_interval = top.get("evaluation_interval")
    default = _seconds(_scalar(default_interval), _line(default_interval), "evaluation_interval") \
        if default_interval is not None else 60
    tests = top.get("tests")
    if tests is None or not isinstance(tests, yaml.SequenceNode):
        raise PromtoolError("`tests:` (a list) is missing", _line(tests) if tests is not None else 1)
    for index, test_node in enumerate(_items(tests), start=1):
        _convert_test(name, index, test_node, default, rules, lines, origin, notes)
    return Converted("\n".join(lines) + "\n", origin, notes, rules_end)


def _emit(lines, origin, text: str, where: tuple[str, int]) -> None:
    lines.append(text)
    origin.append(where)


def _convert_test(name, index, node, default, rules, lines, origin, notes) -> None:
    test = _map(node)
    for key in ("promql_expr_test", "external_labels", "external_url"):
        if key in test:
            notes.append(f"{name}:{_key_line(node, key)}: {key} is not carried over")
    interval = _seconds(_scalar(test["interval"]), _line(test["interval"]), "interval") if "interval" in test \
        else default
    series_lines = []
    for item in _items(test.get("input_series")):
        entry = _map(item)
        if "series" not in entry or "values" not in entry:
            raise PromtoolError("an input_series entry needs `series` and `values`", _line(item))
        measurement, labels = _series(_scalar(entry["series"]) or "", _line(entry["series"]))
        tags = ", ".join(f"{print_name(k)}={print_string(v)}" for k, v in labels.items())
        selector = f"{print_name(measurement)}.value" + (f"{{{tags}}}" if tags else "")
        values = " ".join((_scalar(entry["values"]) or "").split())
        series_lines.append((f"    series {selector} every {print_duration(interval)}: {values}",
                             (name, _line(entry["values"]))))
    by_rule: dict[str, list] = {}
    for item in _items(test.get("alert_rule_test")):
        entry = _map(item)
        if "alertname" not in entry or "eval_time" not in entry:
            raise PromtoolError("an alert_rule_test entry needs `alertname` and `eval_time`", _line(item))
        by_rule.setdefault(_scalar(entry["alertname"]) or "", []).append(entry)
    if not by_rule:
        notes.append(f"{name}:{_line(node)}: test {index} has no alert_rule_test; nothing of it is run")
    label = _scalar(test["name"]) if "name" in test else None
    for alertname, entries in by_rule.items():
        test_name = re.sub(r"[^A-Za-z0-9_]", "_", f"{label or f'promtool_{index}'}_{alertname}")
        header_at = (name, _line(entries[0]["alertname"]))
        _emit(lines, origin, f"test {print_name(test_name)} for {print_name(alertname)} {{", header_at)
        for text, where in series_lines:
            _emit(lines, origin, text, where)
        rule = next((r for r in rules if r.name == alertname), None)
        carried = set(rule.group_by) | {k for k, _ in rule.labels} if rule is not None else None
        for entry in entries:
            at_node = entry["eval_time"]
            at = print_duration(_seconds(_scalar(at_node), _line(at_node), "eval_time"))
            expected = _items(entry.get("exp_alerts"))
            if not expected:
                _emit(lines, origin, f"    expect inactive at {at}", (name, _line(at_node)))
            for alert in expected:
                fields = _map(alert)
                if "exp_annotations" in fields:
                    notes.append(f"{name}:{_key_line(alert, 'exp_annotations')}: exp_annotations are not checked")
                pairs = [(k.value, _scalar(v) or "") for k, v in getattr(fields.get("exp_labels"), "value", [])]
                severity = None
                kept, dropped = [], []
                for key, value in pairs:
                    if key == "severity" and value in a.SEVERITIES and "severity" not in (carried or ()):
                        severity = value
                    elif key == "alertname":
                        continue
                    elif carried is None or key in carried:
                        kept.append((key, value))
                    else:
                        dropped.append(key)
                if dropped:
                    notes.append(f"{name}:{_line(alert)}: labels {', '.join(dropped)} are not labels of rule "
                                 f"{alertname}'s alerts and are not checked")
                text = f"    expect firing at {at}"
                if kept:
                    text += " labels " + ", ".join(f"{print_name(k)} = {print_string(v)}" for k, v in kept)
                if severity:
                    text += f" severity {severity}"
                _emit(lines, origin, text, (name, _line(alert)))
        _emit(lines, origin, "}", header_at)
        _emit(lines, origin, "", header_at)
