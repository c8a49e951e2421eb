"""A lean LALR driver over the tables Lark builds from ``grammars/monitors.lark``.

Lark's general machinery (token objects with line counters, parse trees with
propagated positions, then a transformer pass) costs most of a rule's parse
time. For valid text this driver walks the same LALR tables with the same
contextual lexers, tracks positions on its own stacks and calls the tree
builder's methods directly, producing exactly the rules the normal path does.
On any lexing or parsing error it gives up (returns None) and the caller falls
back to the normal path, which produces the detailed diagnostics.

If Lark's tables cannot be read (its internals changed), every text takes the
normal path: still correct, only slower. That is logged once as a warning and
:func:`lean_tables_error` says why, so a test can fail on it.
"""

from __future__ import annotations

import functools
import logging

from lark import Token
from lark.parse_tree_builder import maybe_create_child_filter

from .grammar import parser as lark_parser

__all__ = ["fast_parse", "lean_tables_error"]

log = logging.getLogger(__name__)
_LOAD_ERRORS: list[str] = []


class _Meta:
    __slots__ = ("start_pos", "end_pos", "empty")

    def __init__(self, start_pos: int, end_pos: int):
        self.start_pos = start_pos
        self.end_pos = end_pos
        self.empty = False


class _Token(str):
    """A token as the builder needs it: its text, ``type``, ``start_pos`` and ``end_pos``."""

    type: str
    start_pos: int
    end_pos: int


def _token(type_: str, value: str, start: int, end: int) -> _Token:
    token = _Token(value)
    token.type = type_
    token.start_pos = start
    token.end_pos = end
    return token


class _Inline:
    """Children of a helper rule (``__x_star_n``), spliced into the parent by the child filter."""

    __slots__ = ("children",)

    def __init__(self, children):
        self.children = children


class _Tables:
    """Lark's LALR tables and lexers, copied into plain lists, dicts, strings and ints.

    Actions are ints: ``n >= 0`` shifts to state ``n``; ``n < 0`` reduces by rule ``~n``.
    """

    def __init__(self):
        from lark.parsers.lalr_analysis import Shift

        lark = lark_parser()
        frontend = lark.parser
        table = frontend.parser.parser.parse_table
        rule_list = list(lark.rules)
        rule_index = {id(rule): i for i, rule in enumerate(rule_list)}
        size = max(table.states) + 1
        self.states: list[dict[str, int]] = [{} for _ in range(size)]
        for state, actions in table.states.items():
            row = self.states[state]
            for symbol, (kind, arg) in actions.items():
                row[str(symbol)] = arg if kind is Shift else ~rule_index[id(arg)]
        self.start_states = {str(k): v for k, v in table.start_states.items()}
        self.end_states = {str(k): v for k, v in table.end_states.items()}
        # Per-state lexers: (compiled alternations, retyping callbacks, ignored types).
        self.lexers: list = [None] * size
        for state, basic in frontend.lexer.lexers.items():
            self.lexers[state] = (tuple(basic.scanner._mres), dict(basic.callback), frozenset(basic.ignore_types))
        # Per-rule reduction recipe.
        placeholders = lark.options.maybe_placeholders
        self.rules: list[tuple] = []
        for rule in rule_list:
            empty = rule.options.empty_indices if placeholders else ()
            factory = maybe_create_child_filter(rule.expansion, False, False, empty or None)
            # The factory wraps a node builder; an identity builder leaves just the filtering.
            child_filter = factory(_identity) if factory is not None else None
            name = rule.alias or rule.origin.name
            expand1 = bool(rule.options.expand1) and not rule.alias
            # `a -> b` where b is a rule: the value passes through untouched.
            passthrough = expand1 and len(rule.expansion) == 1 and not rule.expansion[0].is_term
            self.rules.append((
                len(rule.expansion),
                str(rule.origin.name),
                str(name),
                child_filter,
                rule.origin.name.startswith("_"),
                expand1,
                passthrough,
            ))
        # (state below, state, lookahead) → state after a chain of unit-rule reductions.
        self.climbs: dict[tuple, int] = {}
        # Terminals the tree keeps; the others (keywords, punctuation) need no token object.
        self.kept_terminals = frozenset(
            str(sym.name) for rule in rule_list for sym in rule.expansion if sym.is_term and not sym.filter_out
        )


def _identity(children):
    return children


@functools.cache
def _tables() -> _Tables | None:
    try:
        return _Tables()
    except Exception as error:  # Lark internals changed: the normal path still works, more slowly
        _LOAD_ERRORS.append(f"{type(error).__name__}: {error}")
        log.warning("the lean parser's tables did not load (%s): every text takes Lark's slower path",
                    _LOAD_ERRORS[-1])
        return None


def lean_tables_error() -> str | None:
    """Why the lean parser's tables did not load (every text then takes Lark's path), or ``None`` when they
    did (loading them first if need be)."""
    if _tables() is not None:
        return None
    return _LOAD_ERRORS[-1] if _LOAD_ERRORS else "the tables did not load"


def fast_parse(text: str, builder, start: str = "start"):
    """The builder's result for ``text``, or None when the text does not parse cleanly."""
    tables = _tables()
    if tables is None:
        return None
    states = tables.states
    lexers = tables.lexers
    rules = tables.rules
    kept_terminals = tables.kept_terminals
    climbs = tables.climbs
    end_state = tables.end_states[start]
    state_stack = [tables.start_states[start]]
    values: list = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    length = len(text)
    while True:
        # Lex one token with the lexer of the current state.
        mres, callbacks, ignore = lexers[state_stack[-1]]
        token = None
        while pos < length:
            for mre in mres:
                match = mre.match(text, pos)
                if match:
                    break
            else:
                return None
            type_ = match.lastgroup
            end = match.end()
            if type_ in ignore:
                pos = end
                continue
            if type_ in callbacks:
                type_ = callbacks[type_](Token(type_, match.group(0))).type
            token = _token(type_, match.group(0), pos, end) if type_ in kept_terminals else None
            token_start, token_end = pos, end
            pos = end
            break
        else:
            type_ = "$END"
        # Feed it: reduce as long as the table says so, then shift.
        while True:
            action = states[state_stack[-1]].get(type_)
            if action is None:
                return None
            if action >= 0:
                state_stack.append(action)
                values.append(token)
                starts.append(token_start)
                ends.append(token_end)
                break
            size, origin, name, child_filter, inline, expand1, passthrough = rules[~action]
            if passthrough:
                # Climb a chain of unit rules (atom → unary → … → or_expr) in one step.
                below = state_stack[-2]
                key = (below, state_stack[-1], type_)
                top = climbs.get(key)
                if top is None:
                    top = states[below][origin]
                    while not (type_ == "$END" and top == end_state):
                        step = states[top].get(type_)
                        if step is None or step >= 0 or not rules[~step][6]:
                            break
                        top = states[below][rules[~step][1]]
                    climbs[key] = top
                state_stack[-1] = top
                if type_ == "$END" and top == end_state:
                    return values[-1]
                continue
            if size:
                children = values[-size:]
                first, last = starts[-size], ends[-1]
                del values[-size:], starts[-size:], ends[-size:], state_stack[-size:]
            else:
                children = []
                first = last = ends[-1] if ends else 0
            kept = child_filter(children) if child_filter is not None else children
            if inline:
                result = _Inline(kept)
            elif expand1 and len(kept) == 1:
                result = kept[0]
            else:
                method = getattr(builder, name)
                result = method(_Meta(first, last), kept)
            state_stack.append(states[state_stack[-1]][origin])
            values.append(result)
            starts.append(first)
            ends.append(last)
            if type_ == "$END" and state_stack[-1] == end_state:
                return values[-1]
        if type_ == "$END":
            return None
