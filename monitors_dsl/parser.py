"""Text → syntax tree, with every problem the parser can find reported by position.

The whole text is parsed in one go. When that fails on a rule document, the
document is cut into its rules and clauses (by brace depth and clause keywords,
over a scanner made of the grammar's own terminals) and each clause is parsed
on its own, so one broken clause does not hide the errors of the others.

The builder only builds: what the grammar lets through but the language does
not (unknown functions, wrong arguments, values out of range …) is checked by
``check.NodeChecks`` as each node is made.
"""

from __future__ import annotations

import functools
import re
from typing import Iterator, NamedTuple

from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast as a
from .ast import INCOMPLETE
from .check import FUNCTIONS, MAX_NESTING, NodeChecks
from .errors import Diagnostics, closest
from .fastparse import fast_parse
from .grammar import ignored_terminals, terminal_pattern
from .grammar import parser as lark_parser
from .hints import (
    UNIT_WORDS,
    clause_hint,
    missing_brace,
    number_suffix,
    offset_inside_call,
    spaced_duration,
)
from .slo import SLO_CLAUSES, SloChecks
from .slo import assemble as assemble_slo
from .source import SourceText
from .windows import DEFAULT_ZONE, TimeWindow, WindowSpan
from .testblocks import Document, Test, TestBuilder, recover_test

__all__ = ["SourceText", "parse_text", "INCOMPLETE", "MAX_TEXT_LENGTH", "MAX_NESTING", "CLAUSE_KEYWORDS", "FUNCTIONS"]

MAX_TEXT_LENGTH = 256 * 1024

CLAUSE_KEYWORDS = (
    "when", "critical when", "warning when", "info when", "resolve when", "group by", "every", "for",
    "keep firing for", "on no data", "severity", "labels", "notify", "repeat every", "title", "message",
    "description", "active during", "mute during", "escalate", "depends on",
)
_CLAUSE_FIRST_WORDS = {
    "when", "resolve", "group", "every", "for", "keep", "on", "severity", "labels", "notify", "repeat",
    "title", "message", "description", "active", "mute", "escalate", "depends",
}
#: clause words that start a clause only before their second word (a tag or channel may be named `mute`)
_CLAUSE_SECOND_WORDS = {"active": "during", "mute": "during", "escalate": "to", "depends": "on"}
#: words after which a name stands (a group tag, a channel, a rule, a tag of `depends on … on`)
_TAKES_NAMES = {"by", "notify", "to", "on", "rule", "slo", "test", "for"}
_SEVERITY_WORDS = {"critical", "warning", "info"}
#: the first words of an slo block's own clauses (`slow page` starts with `slow`)
_SLO_FIRST_WORDS = {"bad", "total", "objective", "page", "slow", "ticket"}
#: the words that open a block of a document
_BLOCK_WORDS = {"rule", "slo", "test"}
_DURATION_PART = re.compile(r"([0-9]+)([smhdw])")
_UNIT_SECONDS = dict(a.DURATION_UNITS)
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)", re.S)
_SIMPLE_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "`": "`"}


class _Name(NamedTuple):
    value: str
    span: a.Span


class _Clause(NamedTuple):
    keyword: str
    value: object
    span: a.Span
    names: tuple = ()


class _WindowPart(NamedTuple):
    kind: str  # "days" or "times"
    value: tuple | None  # day numbers, or one (start, end) in minutes; None when written wrong


class _WindowSpan(NamedTuple):
    value: WindowSpan | None
    span: a.Span


class _Window(NamedTuple):
    window: TimeWindow | None  # None when nothing or something wrong was written (a diagnostic says which)
    empty: bool  # nothing at all was written


# --- tree → AST -----------------------------------------------------------------


class _Builder(TestBuilder):
    """Builds AST nodes bottom-up, one method per grammar rule or alias, each called with
    ``(meta, children)``. What the grammar lets through but the language does not is
    checked by ``check.NodeChecks`` as each node is made; the builder only reports
    malformed literals (escapes, unquoted tag values)."""

    def __init__(self, source: SourceText, diags: Diagnostics, base: int = 0):
        self.source = source
        self.diags = diags
        self.base = base
        self.checks = NodeChecks(diags)
        self._expr = self.checks.expression

    def transform(self, tree):
        """Builds the AST for a Lark parse tree (the slow path's trees)."""
        if not isinstance(tree, Tree):
            return tree
        children = [self.transform(child) for child in tree.children]
        return getattr(self, tree.data)(tree.meta, children)

    # spans ---------------------------------------------------------------
    def _meta_span(self, meta) -> a.Span:
        if getattr(meta, "empty", True):
            return a.NO_SPAN
        return self.source.span(self.base + meta.start_pos, self.base + meta.end_pos)

    def _token_span(self, token: Token) -> a.Span:
        return self.source.span(self.base + token.start_pos, self.base + token.end_pos)

    # leaves ----------------------------------------------------------------
    def _duration_token(self, token: Token) -> a.Duration:
        span = self._token_span(token)
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(str(token)))
        return a.Duration(self.checks.duration(str(token), seconds, span), span=span)

    def _string_value(self, token: Token) -> str:
        raw = str(token)
        body = raw[3:-3] if raw.startswith('"""') else raw[1:-1]
        offset = token.start_pos + (3 if raw.startswith('"""') else 1)
        return self._unescape(body, offset)

    def _unescape(self, body: str, offset: int) -> str:
        if "\\" not in body:
            return body

        def replace(match: re.Match) -> str:
            code = match.group(1)
            if code in _SIMPLE_ESCAPES:
                return _SIMPLE_ESCAPES[code]
            if code.startswith("u") and len(code) == 5:
                return chr(int(code[1:], 16))
            start = self.base + offset + match.start()
            self.diags.add(
                "invalid-escape",
                f"unknown escape `\\{code}` in a string",
                self.source.span(start, start + 1 + len(code)),
                "use \\\\ \\\" \\' \\n \\t or \\uXXXX; write \\\\ for a backslash",
            )
            return code

        return _ESCAPE.sub(replace, body)

    def name(self, meta, children) -> _Name:
        (token,) = children
        raw = str(token)
        if token.type == "QUOTED_NAME":
            value = self._unescape(raw[1:-1], token.start_pos + 1)
            self.checks.quoted_name(value, self._token_span(token))
        else:
            value = raw
        return _Name(value, self._token_span(token))

    def string(self, meta, children) -> tuple[str, a.Span]:
        (token,) = children
        return self._string_value(token), self._token_span(token)

    def bad_value(self, meta, children):
        (token,) = children
        span = self._token_span(token)
        self.diags.add(
            "unquoted-value",
            f"tag values are strings: `{token}` must be quoted",
            span,
            f'write "{token}"',
        )
        return str(token), span

    # expressions ---------------------------------------------------------
    def number(self, meta, children) -> a.Number:
        (token,) = children
        return a.Number(self._number(token, str(token)), span=self._token_span(token))

    def percent(self, meta, children) -> a.Number:
        (token,) = children
        return a.Number(self._number(token, str(token)[:-1]), percent=True, span=self._token_span(token))

    def _number(self, token: Token, text: str) -> float:
        return self.checks.number(str(token), float(text.replace("_", "")), self._token_span(token))

    def duration(self, meta, children) -> a.Duration:
        return self._duration_token(children[0])

    def negate(self, meta, children):
        operand = self._expr(children[0])
        span = self._meta_span(meta)
        if isinstance(operand, a.Number):
            return a.Number(-operand.literal, operand.percent, span=span)
        return a.Negate(operand, span=span)

    def arith(self, meta, children):
        left, op, right = children
        return a.Arithmetic(str(op), self._expr(left), self._expr(right), span=self._meta_span(meta))

    def compare(self, meta, children):
        left, op, right = children
        return a.Comparison(str(op), self._expr(left), self._expr(right), span=self._meta_span(meta))

    def and_(self, meta, children):
        return a.Logical("and", self._expr(children[0]), self._expr(children[1]), span=self._meta_span(meta))

    def or_(self, meta, children):
        return a.Logical("or", self._expr(children[0]), self._expr(children[1]), span=self._meta_span(meta))

    def not_(self, meta, children):
        return a.Not(self._expr(children[0]), span=self._meta_span(meta))

    # selectors -----------------------------------------------------------
    def selector(self, meta, children) -> a.Selector:
        measurement, field, filters = children
        return a.Selector(measurement.value, field.value, tuple(filters or ()), span=self._meta_span(meta))

    def filters(self, meta, children):
        return tuple(f for f in children if f is not None)

    def filter_simple(self, meta, children) -> a.Filter:
        tag, op, (value, _) = children
        return a.Filter(tag.value, str(op), value, span=self._meta_span(meta))

    def filter_in(self, meta, children) -> a.Filter:
        tag, *values = children
        return a.Filter(tag.value, "in", tuple(v for v, _ in values), span=self._meta_span(meta))

    def filter_not_in(self, meta, children) -> a.Filter:
        tag, *values = children
        return a.Filter(tag.value, "not in", tuple(v for v, _ in values), span=self._meta_span(meta))

    # calls ---------------------------------------------------------------
    def call(self, meta, children):
        name_token, *args, offset_token = children
        offset = self._duration_token(offset_token) if offset_token is not None else None
        return self.checks.call(str(name_token), [arg for arg in args if arg is not None], offset,
                                self._meta_span(meta), self._token_span(name_token))

    # clauses ---------------------------------------------------------------
    def when(self, meta, children):
        return _Clause("when", self._expr(children[0]), self._meta_span(meta))

    def severity_when(self, meta, children):
        word, cond = children
        return _Clause(f"{str(word).lower()} when", self._expr(cond), self._meta_span(meta))

    def resolve_when(self, meta, children):
        return _Clause("resolve when", self._expr(children[0]), self._meta_span(meta))

    def group_by(self, meta, children):
        return _Clause("group by", tuple(n.value for n in children), self._meta_span(meta), tuple(children))

    def every(self, meta, children):
        return _Clause("every", self._duration_token(children[0]), self._meta_span(meta))

    def for_(self, meta, children):
        return _Clause("for", self._duration_token(children[0]), self._meta_span(meta))

    def keep_firing_for(self, meta, children):
        return _Clause("keep firing for", self._duration_token(children[0]), self._meta_span(meta))

    def repeat_every(self, meta, children):
        return _Clause("repeat every", self._duration_token(children[0]), self._meta_span(meta))

    def on_no_data(self, meta, children):
        (token,) = children
        value = self.checks.no_data_action(str(token), self._token_span(token))
        return _Clause("on no data", value, self._meta_span(meta))

    def severity(self, meta, children):
        (token,) = children
        value = self.checks.severity(str(token), self._token_span(token))
        return _Clause("severity", value, self._meta_span(meta))

    def label(self, meta, children):
        key, op, (value, _) = children
        self.checks.label(key.value, str(op), self._token_span(op), value)
        return key, value

    def labels(self, meta, children):
        self.checks.labels([key for key, _ in children])
        pairs = tuple((k.value, v) for k, v in children)
        return _Clause("labels", pairs, self._meta_span(meta), tuple(k for k, _ in children))

    def notify(self, meta, children):
        return _Clause("notify", tuple(n.value for n in children), self._meta_span(meta), tuple(children))

    def text_clause(self, meta, children):
        keyword, (value, value_span) = children
        return _Clause(str(keyword).lower(), value, self._meta_span(meta), (_Name(value, value_span),))

    # where a rule holds and who hears of it (docs/language.md, "Time windows" and after) ------------
    def notify(self, meta, children):
        span = self._meta_span(meta)
        return _Clause("notify", a.Route(tuple(n.value for n in children), span=span), span, tuple(children))

    def on_list(self, meta, children):
        items = tuple(c if isinstance(c, _Name) else _Name(str(c), self._token_span(c)) for c in children)
        return _Clause("on", tuple(item.value for item in items), self._meta_span(meta), items)

    def escalate(self, meta, children):
        *channels, token = children
        span = self._meta_span(meta)
        after = self._duration_token(token)
        return _Clause("escalate", a.Escalation(tuple(n.value for n in channels), after, span=span), span,
                       tuple(channels))

    def escalate_negative(self, meta, children):
        *channels, token = children
        span = self._meta_span(meta)
        after = self._duration_token(token)
        minus = self.source.text.rfind("-", 0, self.base + token.start_pos)
        after = a.Duration(-after.seconds, span=self.source.span(minus, after.span.end))
        return _Clause("escalate", a.Escalation(tuple(n.value for n in channels), after, span=span), span,
                       tuple(channels))

    def depends_on(self, meta, children):
        (rule,) = children
        span = self._meta_span(meta)
        return _Clause("depends on", a.Dependency(rule.value, span=span), span, (rule,))

    def active_during(self, meta, children):
        return self._window_clause("active during", meta, children[0])

    def mute_during(self, meta, children):
        return self._window_clause("mute during", meta, children[0])

    def _window_clause(self, keyword: str, meta, written: "_Window") -> _Clause:
        span = self._meta_span(meta)
        if written.empty:
            self.checks.empty_window(keyword, span)
        return _Clause(keyword, written.window, span)

    def day(self, meta, children):
        first, last = children
        start = self.checks.day(str(first), self._token_span(first))
        end = self.checks.day(str(last), self._token_span(last)) if last is not None else start
        if start is None or end is None:
            return _WindowPart("days", None)
        return _WindowPart("days", tuple((start + k) % 7 for k in range((end - start) % 7 + 1)))

    def time_range(self, meta, children):
        start, end = (self.checks.clock_time(str(t), self._token_span(t)) for t in children)
        return _WindowPart("times", None if start is None or end is None else ((start, end),))

    def span(self, meta, children):
        if any(part.value is None for part in children):
            return _WindowSpan(None, self._meta_span(meta))
        days = [d for part in children if part.kind == "days" for d in part.value]
        times = [t for part in children if part.kind == "times" for t in part.value]
        return _WindowSpan(WindowSpan(days, times), self._meta_span(meta))

    def or_span(self, meta, children):
        (span,) = children
        if span is None:
            self.checks.empty_span(self._meta_span(meta))
            return _WindowSpan(None, self._meta_span(meta))
        return _WindowSpan(span.value, self._meta_span(meta))  # from its `or`

    def window(self, meta, children):
        first, *rest, zone = children
        spans = list(rest)
        if first is None:
            if not spans:
                if zone is None:
                    return _Window(None, True)
                self.checks.empty_window(None, self._meta_span(meta))
                return _Window(None, False)
            where = spans[0].span
            self.checks.empty_span(self.source.span(where.start, where.start + 2))
        else:
            spans.insert(0, first)
        name = DEFAULT_ZONE if zone is None else self.checks.zone(zone[0], zone[1])
        if first is None or name is None or any(s.value is None for s in spans):
            return _Window(None, False)
        return _Window(TimeWindow([s.value for s in spans], name), False)

    # slo blocks (monitors_dsl/slo.py) ----------------------------------------
    def slo_bad(self, meta, children):
        return _Clause("bad", SloChecks(self.diags).term("bad", self._expr(children[0])), self._meta_span(meta))

    def slo_total(self, meta, children):
        return _Clause("total", SloChecks(self.diags).term("total", self._expr(children[0])),
                       self._meta_span(meta))

    def _threshold(self, token: Token) -> a.Number:
        return (self.percent if token.type == "PERCENT" else self.number)(None, [token])

    def slo_objective(self, meta, children):
        value = SloChecks(self.diags).objective(self._threshold(children[0]))
        return _Clause("objective", value, self._meta_span(meta))

    def burn(self, meta, children):
        threshold, long, short = children
        return (self._threshold(threshold), self._duration_token(long) if long is not None else None,
                self._duration_token(short) if short is not None else None)

    def _burn_clause(self, keyword: str, meta, children) -> _Clause:
        span = self._meta_span(meta)
        return _Clause(keyword, SloChecks(self.diags).burn(keyword, *children[0], span), span)

    def slo_page(self, meta, children):
        return self._burn_clause("page", meta, children)

    def slo_slow_page(self, meta, children):
        return self._burn_clause("slow page", meta, children)

    def slo_ticket(self, meta, children):
        return self._burn_clause("ticket", meta, children)

    def slo(self, meta, children):
        name, *clauses = children
        return assemble_slo(name, clauses, self._meta_span(meta), self.diags, assemble_rule, INCOMPLETE)

    # documents -------------------------------------------------------------
    def rule(self, meta, children):
        name, *clauses = children
        return assemble_rule(name, clauses, self._meta_span(meta), self.diags)

    def document(self, meta, children):
        return Document([c for c in children if not isinstance(c, Test)], [c for c in children if isinstance(c, Test)])

    def body(self, meta, children):
        return [assemble_rule(None, children, self._meta_span(meta), self.diags)]

    def start(self, meta, children):
        (child,) = children
        if isinstance(child, list):
            return child
        condition = self._expr(child)
        return [a.Rule(when=condition, span=self._meta_span(meta), clause_spans={"when": self._meta_span(meta)})]


_FIELD_OF_CLAUSE = {
    "when": "when", "critical when": "critical_when", "warning when": "warning_when", "info when": "info_when",
    "resolve when": "resolve_when", "group by": "group_by", "every": "every", "for": "for_",
    "keep firing for": "keep_firing_for", "on no data": "on_no_data", "severity": "severity", "labels": "labels",
    "notify": "notify", "repeat every": "repeat_every", "title": "title", "message": "message",
    "description": "description", "active during": "active_during", "mute during": "mute_during",
    "escalate": "escalate", "depends on": "depends_on",
}


def assemble_rule(name: _Name | None, clauses, span: a.Span, diags: Diagnostics) -> a.Rule:
    """One ``Rule`` from its clauses; a clause given twice is reported and the first kept."""
    values: dict = {}
    spans: dict = {}
    checks = NodeChecks(diags)
    routes: list[a.Route] = []
    previous = None
    for clause in clauses:
        if clause.keyword in SLO_CLAUSES:
            SloChecks(diags).slo_clause(clause.keyword, clause.span)
            continue
        if clause.keyword in ("notify", "on"):
            _routing_clause(clause, routes, spans, values, previous, checks)
            previous = clause
            continue
        previous = clause
        if not checks.clause_once(clause.keyword, clause.span, spans.get(clause.keyword)):
            continue
        values[_FIELD_OF_CLAUSE[clause.keyword]] = clause.value
        spans[clause.keyword] = clause.span
        for index, item in enumerate(clause.names):
            spans[(clause.keyword, index)] = item.span
    if routes:
        values["routes"] = tuple(routes)
    if name is not None:
        spans["name"] = name.span
    return a.Rule(name=name.value if name is not None else None, span=span, clause_spans=spans, **values)


def _routing_clause(clause: _Clause, routes: list, spans: dict, values: dict, previous: _Clause | None,
                    checks: NodeChecks) -> None:
    """Takes in a ``notify`` clause (one route each; may be given several times) or an ``on LIST`` clause
    (the severities of the `notify` just before it, or the tags of the `depends on` just before it).

    Spans: ``("route", r)`` is the r-th `notify` clause (with its `on`); ``("route", r, "channel", i)`` its
    i-th channel; ``("route", r, "severity", j)`` its j-th severity; ``("depends on", 0)`` the rule named,
    ``("depends on", 1 + k)`` its k-th tag; ``"notify"`` the first `notify` clause.
    """
    if clause.keyword == "notify":
        index = len(routes)
        routes.append(clause.value)
        spans.setdefault("notify", clause.span)
        spans[("route", index)] = clause.span
        for i, item in enumerate(clause.names):
            spans[("route", index, "channel", i)] = item.span
        return
    target = previous.keyword if previous is not None else None
    if target == "notify" and routes and routes[-1] is previous.value:
        index = len(routes) - 1
        severities = []
        for j, item in enumerate(clause.names):
            spans[("route", index, "severity", j)] = item.span
            severity = checks.route_severity(item.value, item.span)
            if severity is not None:
                severities.append(severity)
        whole = a.Span(previous.span.start, clause.span.end, previous.span.line_starts)
        route = a.Route(previous.value.channels, tuple(severities), span=whole)
        routes[-1] = route
        spans[("route", index)] = whole
        if spans.get("notify") is previous.span:
            spans["notify"] = whole
        return
    if target == "depends on" and values.get("depends_on") is previous.value:
        whole = a.Span(previous.span.start, clause.span.end, previous.span.line_starts)
        values["depends_on"] = a.Dependency(previous.value.rule, clause.value, span=whole)
        spans["depends on"] = whole
        for k, item in enumerate(clause.names):
            spans[("depends on", 1 + k)] = item.span
        return
    if target not in ("notify", "depends on"):  # after a `notify` or `depends on` given twice: reported
        checks.misplaced_on(clause.span, target)


# --- syntax errors in words -----------------------------------------------------------

_TERMINAL_WORDS = {
    "NAME": "a name", "QUOTED_NAME": "a `quoted name`", "NUMBER": "a number", "PERCENT": "a percentage",
    "DURATION": "a duration such as 5m", "STRING": "a string", "LONG_STRING": "a string",
    "COMPARE": "a comparison (> >= < <= == !=)", "ADD_OP": "+ or -", "MUL_OP": "* or /",
    "FILTER_OP": "= =~ !~", "NE": "!=", "LPAR": "`(`", "RPAR": "`)`", "LBRACE": "`{`", "RBRACE": "`}`", "COMMA": "`,`",
    "DOT": "`.`", "MINUS": "`-`", "SEVERITY_WORD": "critical/warning/info", "TEMPLATE_KEYWORD": "title/message/description",
    "TIME": "a time such as 09:00",
    "$END": "the end of the text", "SERIES_VALUES": "`:` and the values",
}


_TOKEN_NOUNS = {"NAME": "name", "TIME": "time", "NUMBER": "number", "PERCENT": "percentage", "DURATION": "duration",
                "STRING": "string", "LONG_STRING": "string", "COMPARE": "operator", "NE": "operator",
                "ADD_OP": "operator", "MUL_OP": "operator", "FILTER_OP": "operator"}


def _terminal_word(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    if name.startswith("_"):
        return f"`{name[1:].lower()}`"
    if name.startswith("__ANON"):
        return "more text"
    return name.lower()


_TAKES_DURATION = re.compile(r"(?:,|\boffset|\bevery|\bfor|\bafter-?)\s*$", re.IGNORECASE)
_IN_CALL = re.compile(r"[(,{]\s*$")


def _possible(expected, text: str, start: int) -> set:
    """``expected`` without what cannot stand at ``start``: a duration stands only after a call's `,`,
    after `offset` and after the clauses that take one (`every`, `for`, `keep firing for`, `repeat every`);
    a `quoted name` (a series or a tag) only inside a call or `{…}` — elsewhere a series needs a function
    around it."""
    possible = set(expected)
    before = text[:start]
    if "DURATION" in possible and not _TAKES_DURATION.search(before):
        possible.discard("DURATION")
    if "QUOTED_NAME" in possible and "NAME" in possible and not _IN_CALL.search(before):
        possible.discard("QUOTED_NAME")
    return possible


def _expected_words(expected) -> str:
    words = sorted({_terminal_word(t) for t in expected})
    if len(words) > 8:
        words = words[:8] + ["…"]
    return ", ".join(words)


def report_syntax_error(error: UnexpectedInput, source: SourceText, diags: Diagnostics, base: int, segment_end: int,
                        *, in_rule: bool) -> int:
    """Turns Lark's error into a diagnostic; returns the absolute offset where the problem starts."""
    text = source.text
    if isinstance(error, UnexpectedToken) and error.token.type == "SERIES_VALUES" \
            and "SERIES_VALUES" not in error.expected:  # a test series' `:` anywhere else is a stray character
        error = UnexpectedCharacters(text[base:segment_end], error.token.start_pos, 0, 0)
    if isinstance(error, UnexpectedCharacters):
        start = base + error.pos_in_stream
        char = text[start] if start < len(text) else ""
        span = source.span(start, start + 1)
        message, hint = _character_problem(text, start, char)
        diags.add("unexpected-character", message, span, hint)
        return start
    if isinstance(error, UnexpectedEOF):
        end = segment_end
        while end > base and text[end - 1].isspace():
            end -= 1
        span = source.span(max(base, end - 1), end)
        expected = _possible(error.expected, text, end)
        hint = f"expected {_expected_words(expected)}"
        if "RPAR" in expected:
            hint = "a `(` is not closed; " + hint
        diags.add("unexpected-end", "the text ends too early", span, hint)
        return end
    assert isinstance(error, UnexpectedToken)
    token = error.token
    expected = set(error.expected) | set(getattr(error, "accepts", None) or ())
    if token.type == "$END":
        return report_syntax_error(UnexpectedEOF(expected), source, diags, base, segment_end, in_rule=in_rule)
    start = base + token.start_pos
    span = source.span(start, base + token.end_pos)
    value = str(token)
    hint = f"expected {_expected_words(_possible(expected, text, start))}"
    if token.type in _TOKEN_NOUNS:
        message = f"unexpected {_TOKEN_NOUNS[token.type]} `{value}`"
    else:
        message = f"unexpected `{value}`"
    code = "syntax-error"
    previous = text[start - 1] if start > 0 else ""
    following = text[base + token.end_pos] if base + token.end_pos < len(text) else ""
    spaced = spaced_duration(text, start) if token.type == "NAME" else None
    after = re.match(r"\s+([A-Za-z]+)", text[base + token.end_pos:])
    braces = missing_brace(text, base, start) if token.type in ("DURATION", "NUMBER", "PERCENT", "RPAR") else None
    if token.type in ("NUMBER", "DURATION", "PERCENT") and "TIME" in expected:
        message = f"`{value}` is not a time of day"
        hint = "write times as HH:MM-HH:MM, e.g. 09:00-17:00 (24-hour clock)"
    elif spaced is not None:
        begin, stop, written = spaced
        span = source.span(begin, stop)
        message = f"`{' '.join(text[begin:stop].split())}` is not a duration"
        hint = f"write `{written}`: a number and a unit letter s, m, h, d or w, with no space"
    elif token.type == "NUMBER" and "DURATION" in expected and after and after.group(1).lower() in UNIT_WORDS:
        stop = base + token.end_pos + after.end()
        span = source.span(start, stop)
        message = f"`{value} {after.group(1)}` is not a duration"
        hint = f"write `{value}{UNIT_WORDS[after.group(1).lower()]}`: a number and a unit letter, with no space"
    elif token.type == "FILTER_OP" and value == "=" and following in "<>" and following:
        span = source.span(start, start + 2)
        message = f"`={following}` is not an operator"
        hint = f"did you mean `{following}=`?"
    elif braces is not None:
        message = "a `{` is not closed"
        hint = f"a `}}` is missing: write `{braces}` and then `{value}`"
    elif value.lower() == "offset" and ("RPAR" in expected or "COMMA" in expected):
        rewritten = offset_inside_call(text, start)
        message = "`offset` goes after the call's `)`, not inside it"
        hint = f"write `{rewritten}`" if rewritten else "move `offset DURATION` after the `)`"
    elif token.type == "NAME" and previous.isdigit() and number_suffix(text, start) is not None:
        begin, stop, written = number_suffix(text, start)
        span = source.span(begin, stop)
        message = f"`{text[begin:stop]}` is not a number"
        hint = f"write `{written}` (or with `_` between thousands: {int(float(written)):_})" \
            if float(written) == int(float(written)) else f"write `{written}`"
    elif token.type == "NAME" and previous.isdigit() and value.lower() in UNIT_WORDS \
            and UNIT_WORDS[value.lower()] != value:
        number = re.search(r"\d+$", text[:start]).group(0)
        span = source.span(start - len(number), base + token.end_pos)
        message = f"`{number}{value}` is not a duration"
        hint = f"write `{number}{UNIT_WORDS[value.lower()]}`: units are s, m, h, d or w"
    elif token.type == "NUMBER" and "DURATION" in expected and following.isalpha():
        message = f"`{_word_at(text, base + token.end_pos)}` is not a duration"
        hint = "durations are a whole number with a lower-case unit s, m, h, d or w (e.g. 90s, 5m, 1h30m)"
    elif token.type == "NUMBER" and "DURATION" in expected:
        message = f"`{value}` needs a unit"
        hint = f"write a duration such as {value}s or {value}m"
    elif token.type == "COMMA" and previous.isdigit() and following.isdigit():
        message = "numbers are written without thousands separators"
        hint = f"write {_word_at(text, start - 1)}{_word_at(text, start + 1)} or use `_`: 70_000"
    elif token.type == "NAME" and previous.isdigit():
        message = f"`{_word_at(text, start)}` is not a number or a duration"
        hint = "durations are a whole number with s, m, h, d or w (e.g. 90s, 5m, 1h30m); numbers have no unit"
    elif token.type == "_SLO" and in_rule:
        code = "unknown-clause"
        message = "`slo` starts a block of its own, beside the rules, not a clause"
        hint = clause_hint("slo")
    elif token.type in ("NAME", "SEVERITY_WORD", "TEMPLATE_KEYWORD") and ("$END" in expected or "RBRACE" in expected) and in_rule:
        code = "unknown-clause"
        message = f"`{value}` does not start a clause"
        instead = clause_hint(value)
        suggestion = closest(value, CLAUSE_KEYWORDS + tuple(w.split()[0] for w in CLAUSE_KEYWORDS))
        if instead is not None and not instead.startswith("did you mean"):
            hint = instead
        else:
            hint = ((instead + " ") if instead else (f"did you mean `{suggestion}`? " if suggestion else "")) \
                + "clauses: " + ", ".join(CLAUSE_KEYWORDS)
    elif token.type == "NAME" and ("_AND" in expected or "_OR" in expected):
        suggestion = closest(value, ("and", "or", "offset", "not"))
        message = f"unexpected name `{value}` after a complete expression"
        hint = (f"did you mean `{suggestion}`? " if suggestion else "") + "join conditions with `and` / `or`"
    elif token.type == "FILTER_OP" and value == "=" and "COMPARE" in expected:
        message = "`=` is not a comparison"
        hint = "write `==` to compare numbers; `=` is only for tag filters inside `{…}`"
    elif token.type == "FILTER_OP" and "STRING" in expected:
        message = f"`{value}` cannot follow a filter operator"
        hint = 'inside `{…}` write tag = "value" with a single `=`'
    elif token.type in ("COMPARE", "NE") and "FILTER_OP" in expected:
        message = f"`{value}` is not a tag filter operator"
        hint = 'inside `{…}` write tag = "value", tag != "value", tag =~ "regex" or tag in ("a", "b")'
    elif token.type == "DOT" and "LPAR" in expected:
        message = "a series needs an aggregate around it"
        hint = "write e.g. `last(cpu.usage)`; a series is measurement.field"
    elif token.type in ("RPAR", "COMMA") and "DOT" in expected:
        message = "a series is written measurement.field"
        hint = "e.g. `cpu.usage_user` or `crypto.price{symbol=\"BTC\"}`"
    elif token.type == "LBRACE" and "DOT" in expected:
        message = "a series is written measurement.field{…}: the field is missing"
        hint = "e.g. `crypto.price{symbol=\"BTC\"}`"
    diags.add(code, message, span, hint)
    return start


def _word_at(text: str, start: int) -> str:
    end = start
    begin = start
    while begin > 0 and (text[begin - 1].isalnum() or text[begin - 1] in "._"):
        begin -= 1
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    return text[begin:end]


def _character_problem(text: str, start: int, char: str) -> tuple[str, str | None]:
    pair = text[start:start + 2]
    if pair == "&&":
        return "`&&` is not an operator", "write `and`"
    if pair == "||":
        return "`||` is not an operator", "write `or`"
    if char == "!":
        return "`!` is not an operator", "write `not` to negate, `!=` to compare"
    if char in "\"'":
        return "this string is not closed", f"add the closing {char} on the same line, or use \"\"\"…\"\"\" for text over several lines"
    if char == "`":
        return "this backtick name is not closed", "add the closing ` on the same line"
    if char == "%":
        return "`%` must follow a number directly", "write 5% (no space), meaning 0.05"
    if char == ":":
        tag = re.search(f"({terminal_pattern('NAME')}|{terminal_pattern('QUOTED_NAME')})\\s*$", text[:start])
        value = re.match(f"\\s*({terminal_pattern('STRING')}|[A-Za-z0-9_.-]+)", text[start + 1:])
        if tag and value:
            literal = value.group(1) if value.group(1)[0] in "\"'" else f'"{value.group(1)}"'
            return "`:` is not a filter operator", f"write {tag.group(1)}={literal}"
        return "`:` is not a filter operator", 'inside `{…}` write tag="value"'
    if char == "$":
        return "`$` is not part of the language", "write numbers without currency signs: 70000"
    if char == ",":
        return "unexpected `,`", "numbers are written without thousands separators: 70000 or 70_000"
    if char in ";":
        return "`;` is not used", "clauses are separated by whitespace or newlines"
    if char == "[":
        return "`[` is not used", "the window goes after a comma: avg(cpu.usage, 5m)"
    if char == "^":
        return "`^` is not an operator", "powers are not supported; multiply instead"
    if not char.isprintable() or char.isspace():
        return f"unexpected character U+{ord(char):04X}", "remove it"
    return f"unexpected character `{char}`", None


# --- recovery: cut a broken document into rules and clauses ------------------------------

class _Lexeme(NamedTuple):
    kind: str  # "word", "str", "long", "quoted" or "other"
    text: str
    start: int
    end: int


#: the grammar's terminals the recovery tells apart, and the kind each lexeme gets
_RECOVERY_KINDS = {"LONG_STRING": "long", "STRING": "str", "QUOTED_NAME": "quoted", "NAME": "word"}
#: a quote the grammar's terminals do not close runs to the end of its line (`"""` to the end of the text)
_UNCLOSED = re.compile(r'(?P<long>"""[\s\S]*)|(?P<str>["\'][^\n]*)|(?P<quoted>`[^\n]*)')


@functools.cache
def _scanners() -> tuple[re.Pattern, re.Pattern]:
    """(recovery scanner, nesting scanner), both from the grammar's own terminals."""
    ignored = [(name, "skip") for name in ignored_terminals()]
    groups = ignored + list(_RECOVERY_KINDS.items())
    recovery = re.compile("|".join(f"(?P<{name}>{terminal_pattern(name)})" for name, _ in groups))
    nesting = re.compile("|".join(f"(?P<{name}>{terminal_pattern(name)})" for name in (
        *ignored_terminals(), "LONG_STRING", "STRING", "QUOTED_NAME", "LPAR", "RPAR")))
    return recovery, nesting


def _lexemes(text: str) -> Iterator[_Lexeme]:
    """The text's words, strings, names and other characters, for cutting a broken document apart."""
    scanner = _scanners()[0].match
    kinds = _RECOVERY_KINDS
    pos, length = 0, len(text)
    while pos < length:
        match = scanner(text, pos)
        if match is None or (match.lastgroup == "STRING" and text.startswith('"""', pos)):
            match = _UNCLOSED.match(text, pos)
            if match is None:
                # Whitespace the grammar does not know (U+00A0 …) separates lexemes here, as it always has.
                if not text[pos].isspace():
                    yield _Lexeme("other", text[pos], pos, pos + 1)
                pos += 1
                continue
            kind = match.lastgroup
        else:
            kind = kinds.get(match.lastgroup)  # None: whitespace or a comment
        if kind is not None:
            yield _Lexeme(kind, match.group(), pos, match.end())
        pos = match.end()


def _is_clause_start(lexemes: list[_Lexeme], i: int) -> bool:
    lex = lexemes[i]
    if lex.kind != "word":
        return False
    word = lex.text.lower()
    prev = lexemes[i - 1].text.lower() if i > 0 and lexemes[i - 1].kind == "word" else ""
    nxt = lexemes[i + 1].text.lower() if i + 1 < len(lexemes) and lexemes[i + 1].kind == "word" else ""
    if word in _SEVERITY_WORDS:
        return nxt == "when" and prev != "severity"
    if word in _SLO_FIRST_WORDS:  # only as an slo clause is written: not a series, tag or channel so named
        after = lexemes[i + 1].text if i + 1 < len(lexemes) else ""
        if word in ("bad", "total"):  # `bad sum(…)`
            return lexemes[i + 1].kind == "word" and i + 2 < len(lexemes) and lexemes[i + 2].text == "(" \
                if i + 1 < len(lexemes) else False
        if word == "slow":
            return nxt == "page"
        if word == "page" and prev == "slow":
            return False
        if after == "." and i + 2 < len(lexemes):  # `page .5` (but not `page.views`)
            after = lexemes[i + 2].text if lexemes[i + 2].start == lexemes[i + 1].end else ""
        return after[:1].isdigit()  # `page 14.4 …`, `objective 99.9%`
    if word not in _CLAUSE_FIRST_WORDS:
        return False
    if word in _CLAUSE_SECOND_WORDS and nxt != _CLAUSE_SECOND_WORDS[word]:
        # without its second word, a clause start only where no name is taken (`group by a, mute` is a tag)
        before = lexemes[i - 1].text if i > 0 else ""
        return before not in (",", ".", "(", "{", "`") and prev not in _TAKES_NAMES
    if word == "on" and prev == "depends":
        return False
    if word == "every" and prev == "repeat":
        return False
    if word == "for" and prev == "firing":
        return False
    if word == "when" and prev in _SEVERITY_WORDS | {"resolve"}:
        return False
    return True


def _recover_document(source: SourceText, diags: Diagnostics) -> list[a.Rule]:
    text = source.text
    lexemes = list(_lexemes(text))
    rules = Document()
    i = 0
    while i < len(lexemes) and len(diags.items) < diags.LIMIT:
        lex = lexemes[i]
        if lex.kind == "word" and lex.text.lower() == "test":
            test, i = recover_test(lexemes, i, source, diags, _Builder, lambda part, start: lark_parser().parse(
                part, start=start), lambda error, start, end: report_syntax_error(error, source, diags, start, end,
                                                                                  in_rule=False))
            if test is not None:
                rules.tests.append(test)
            continue
        if not (lex.kind == "word" and lex.text.lower() in _BLOCK_WORDS):
            stop = i
            while stop < len(lexemes) and not (lexemes[stop].kind == "word"
                                               and lexemes[stop].text.lower() in _BLOCK_WORDS):
                stop += 1
            diags.add("syntax-error", f"unexpected `{lex.text}` outside a rule", source.span(lex.start, lex.end),
                      "a document is a list of `rule NAME { … }` blocks")
            i = stop
            continue
        rule_start = lex.start
        i += 1
        name = None
        if i < len(lexemes) and lexemes[i].kind in ("word", "quoted") and lexemes[i].text != "{":
            name_lex = lexemes[i]
            raw = name_lex.text
            value = raw[1:-1] if name_lex.kind == "quoted" and len(raw) > 1 and raw.endswith("`") else raw
            name = _Name(value, source.span(name_lex.start, name_lex.end))
            i += 1
        else:
            where = lexemes[i] if i < len(lexemes) else lex
            diags.add("missing-rule-name", "a rule needs a name after `rule`", source.span(where.start, where.end),
                      "write e.g. `rule btc_above_70k { … }`")
        if i >= len(lexemes) or lexemes[i].text != "{":
            where = lexemes[i] if i < len(lexemes) else lexemes[-1]
            diags.add("syntax-error", "expected `{` after the rule name", source.span(where.start, where.end),
                      "write `rule NAME { when … }`")
            while i < len(lexemes) and lexemes[i].text != "{" and not (
                    lexemes[i].kind == "word" and lexemes[i].text.lower() in _BLOCK_WORDS):
                i += 1
            if i >= len(lexemes) or lexemes[i].text != "{":
                continue
        i += 1
        # Body: up to the matching brace.
        depth = 1
        body_start = i
        while i < len(lexemes):
            t = lexemes[i].text
            if t == "{":
                depth += 1
            elif t == "}":
                depth -= 1
                if depth == 0:
                    break
            elif depth > 1 and lexemes[i].kind == "word" and t.lower() in _BLOCK_WORDS and i + 2 < len(lexemes) \
                    and lexemes[i + 2].text == "{":
                break  # a filter brace was never closed; the next rule starts here
            i += 1
        body = lexemes[body_start:i]
        closed = i < len(lexemes) and lexemes[i].text == "}"
        end_offset = lexemes[i].end if closed else (lexemes[i - 1].end if i > body_start else lexemes[body_start - 1].end)
        if not closed:
            last = lexemes[i - 1] if i > 0 else lex
            diags.add("unclosed-rule", f"rule `{name.value if name else '?'}` is not closed",
                      source.span(last.start, last.end), "add `}` at the end of the rule")
        else:
            i += 1
        clauses, complete = _parse_clauses(body, source, diags)
        if lex.text.lower() == "slo":
            rule = assemble_slo(name, clauses, source.span(rule_start, end_offset), diags, assemble_rule, INCOMPLETE)
        else:
            rule = assemble_rule(name, clauses, source.span(rule_start, end_offset), diags)
        rules.append(rule if complete else _mark_incomplete(rule))
    return rules


def _mark_incomplete(rule: a.Rule) -> a.Rule:
    """Flags a rule whose text had syntax errors, so rule-level checks skip it."""
    rule.clause_spans[INCOMPLETE] = True
    return rule


def _parse_clauses(body: list[_Lexeme], source: SourceText, diags: Diagnostics) -> tuple[list[_Clause], bool]:
    starts = [k for k in range(len(body)) if _is_clause_start(body, k)]
    complete = True
    clauses: list[_Clause] = []
    if body and (not starts or starts[0] != 0):
        first = body[0]
        suggestion = closest(first.text, CLAUSE_KEYWORDS + tuple(w.split()[0] for w in CLAUSE_KEYWORDS))
        diags.add("unknown-clause", f"`{first.text}` does not start a clause", source.span(first.start, first.end),
                  (f"did you mean `{suggestion}`? " if suggestion else "") + "clauses: " + ", ".join(CLAUSE_KEYWORDS))
        complete = False
    bounds = [(body[s].start, body[starts[n + 1] - 1].end if n + 1 < len(starts) else body[-1].end)
              for n, s in enumerate(starts)]
    for start, end in bounds:
        tree = None
        while tree is None and end > start:
            try:
                tree = lark_parser().parse(source.text[start:end], start="clause")
            except UnexpectedInput as error:
                problem = report_syntax_error(error, source, diags, start, end, in_rule=True)
                complete = False
                # When the clause could have ended before the bad word, keep what came before it.
                could_end = isinstance(error, UnexpectedToken) and bool({"$END", "RBRACE", "_WHEN"} & set(error.expected))
                end = problem if could_end and start < problem < end else start
        if tree is None:
            continue
        try:
            clause = _Builder(source, diags, base=start).transform(tree)
        except RecursionError as error:
            _report_builder_failure(error, source, diags, start, end)
            complete = False
            continue
        clauses.append(clause)
    return clauses, complete


def _report_builder_failure(error: RecursionError, source, diags, start, end):
    diags.add("too-deeply-nested", "the expression is nested too deeply", source.span(start, end),
              f"use at most {MAX_NESTING} levels of parentheses and operators")


# --- entry point ---------------------------------------------------------------------------


def _nesting_problem(text: str) -> int | None:
    """Offset of the first `(` past the nesting limit, if any (checked before parsing, on the grammar's
    tokens: a parenthesis inside a string, a quoted name or a comment does not count)."""
    depth = 0
    for match in _scanners()[1].finditer(text):
        kind = match.lastgroup
        if kind == "LPAR":
            depth += 1
            if depth > MAX_NESTING:
                return match.start()
        elif kind == "RPAR":
            depth = max(0, depth - 1)
    return None


def _text_kind(text: str) -> str:
    """"document", "body" (clauses without a header) or "condition", from the first words."""
    lexemes = []
    for lex in _lexemes(text):
        lexemes.append(lex)
        if len(lexemes) == 2:
            break
    if lexemes and lexemes[0].kind == "word" and lexemes[0].text.lower() in _BLOCK_WORDS:
        return "document"
    if lexemes and _is_clause_start(lexemes, 0):
        return "body"
    return "condition"


def _recover_body(source: SourceText, diags: Diagnostics) -> list[a.Rule]:
    lexemes = list(_lexemes(source.text))
    clauses, complete = _parse_clauses(lexemes, source, diags)
    rule = assemble_rule(None, clauses, source.span(lexemes[0].start, lexemes[-1].end), diags)
    return [rule if complete else _mark_incomplete(rule)]


def parse_text(text: str, diags: Diagnostics) -> tuple[SourceText, list[a.Rule]]:
    """Parses ``text`` into rules, adding every problem found to ``diags``."""
    source = SourceText(text)
    if len(text) > MAX_TEXT_LENGTH:
        diags.add("text-too-long", f"the text is {len(text):,} characters long; at most {MAX_TEXT_LENGTH:,} are read",
                  source.span(MAX_TEXT_LENGTH, MAX_TEXT_LENGTH + 1), "split the rules over several calls or files")
        return source, []
    deep = _nesting_problem(text) if text.count("(") > MAX_NESTING else None
    if deep is not None:
        diags.add("too-deeply-nested", f"parentheses are nested more than {MAX_NESTING} levels deep",
                  source.span(deep, deep + 1), "simplify the expression")
        return source, []
    attempt = Diagnostics()
    rules = fast_parse(text, _Builder(source, attempt))
    if rules is not None:
        diags.items.extend(attempt.items)
        diags._seen |= attempt._seen
        return source, rules
    if not text.strip() or not any(True for _ in _lexemes(text)):
        diags.add("empty", "there is no rule in this text", source.span(0, len(text)),
                  'write a condition such as `last(crypto.price{symbol="BTC"}) > 70000` or a `rule NAME { … }` block')
        return source, []
    try:
        tree = lark_parser().parse(text, start="start")
    except UnexpectedInput as error:
        kind = _text_kind(text)
        if kind == "document":
            return source, _recover_document(source, diags)
        if kind == "body":
            return source, _recover_body(source, diags)
        report_syntax_error(error, source, diags, 0, len(text), in_rule=False)
        return source, []
    try:
        rules = _Builder(source, diags).transform(tree)
    except RecursionError as error:
        _report_builder_failure(error, source, diags, 0, len(text))
        return source, []
    return source, rules


#: what may follow a word of a window written on its own (``parse_window``)
_WINDOW_TERMINALS = {"COMMA", "MINUS", "TIME", "NAME", "_OR", "_IN", "STRING", "LONG_STRING", "$END"}


def parse_window_text(text: str, diags: Diagnostics) -> TimeWindow | None:
    """The time window written in ``text`` (``monitors_dsl.windows.parse_window``), every problem added to
    ``diags``; ``None`` when it has errors."""
    source = SourceText(text)
    if len(text) > MAX_TEXT_LENGTH:
        diags.add("text-too-long", f"the text is {len(text):,} characters long; at most {MAX_TEXT_LENGTH:,} are read",
                  source.span(MAX_TEXT_LENGTH, MAX_TEXT_LENGTH + 1), "write a shorter window")
        return None
    attempt = Diagnostics()
    written = fast_parse(text, _Builder(source, attempt), start="window")
    if written is not None:
        diags.items.extend(attempt.items)
        diags._seen |= attempt._seen
    else:
        try:
            tree = lark_parser().parse(text, start="window")
        except UnexpectedInput as error:
            if isinstance(error, UnexpectedToken):  # the state is shared with rules: only a window's words
                error.expected = set(error.expected) & _WINDOW_TERMINALS
                error._accepts = set(error.accepts or ()) & _WINDOW_TERMINALS
            report_syntax_error(error, source, diags, 0, len(text), in_rule=False)
            return None
        written = _Builder(source, diags).transform(tree)
    if written.empty:
        NodeChecks(diags).empty_window(None, source.span(0, len(text)))
    return written.window
