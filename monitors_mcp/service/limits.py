"""Size limits and name rules for what callers send; one place so tools, service and docs agree."""

from __future__ import annotations

import re

from .errors import InvalidInput

__all__ = [
    "MAX_COMMENT",
    "MAX_LIMIT",
    "MAX_NAME",
    "MAX_QUERY",
    "MAX_RULE_TEXT",
    "MAX_URL",
    "PREVIEW_EVALUATIONS",
    "PREVIEW_SECONDS",
    "preview_bounds",
    "whole_setting",
    "check_characters",
    "check_length",
    "check_name",
    "clamp_limit",
]

MAX_RULE_TEXT = 20_000
MAX_NAME = 128
MAX_QUERY = 200
MAX_URL = 2_000
MAX_COMMENT = 500
MAX_LIMIT = 200
DEFAULT_LIMIT = 50

#: A preview runs at most this many evaluations (7 days of a rule evaluated every minute) …
PREVIEW_EVALUATIONS = 10_080
#: … and stops after this many seconds of wall time, answering with what it computed.
PREVIEW_SECONDS = 30.0

_SURROGATE = re.compile("[\ud800-\udfff]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def preview_bounds(env: dict[str, str] | None = None) -> tuple[int, float]:
    """(evaluations, seconds) a preview may use: ``MONITORS_PREVIEW_MAX_EVALUATIONS``, ``MONITORS_PREVIEW_SECONDS``."""
    import os

    env = os.environ if env is None else env
    evaluations = whole_setting(env, "MONITORS_PREVIEW_MAX_EVALUATIONS", PREVIEW_EVALUATIONS, 1, 10_000_000)
    seconds = whole_setting(env, "MONITORS_PREVIEW_SECONDS", int(PREVIEW_SECONDS), 1, 3_600)
    return evaluations, float(seconds)


def whole_setting(env, name: str, default: int, low: int, high: int) -> int:  # noqa: ANN001
    """An operator's setting ``name`` in ``env``: a whole number from ``low`` to ``high``, else ``default``
    when unset; anything else is a ``ValueError`` naming the setting and its range."""
    text = (env.get(name) or "").strip()
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{name} must be a whole number from {low:,} to {high:,}; got {text[:20]!r}")
    return int(text)


def check_length(what: str, value: str, limit: int, *, characters: bool = True) -> None:
    """``value`` is text of at most ``limit`` characters that the store can hold (no lone surrogates).

    ``characters=False`` leaves the characters to the caller: rule text reports a lone surrogate as
    a diagnostic with its line and column instead."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text; got {type(value).__name__}.")
    if len(value) > limit:
        raise InvalidInput(f"{what} is {len(value):,} characters long; the limit is {limit:,}. Shorten it.",
                           allowed=f"at most {limit:,} characters")
    if characters:
        check_characters(what, value)


def check_characters(what: str, value: str) -> None:
    """Refuse lone UTF-16 surrogates: half characters that no store, source or channel can encode."""
    found = _SURROGATE.search(value)
    if found is not None:
        raise InvalidInput(
            f"{what} holds a lone surrogate (U+{ord(found.group()):04X}) at character {found.start() + 1}: half "
            "of a character, which cannot be stored. Send the text as proper Unicode.")


def check_name(what: str, name: str) -> str:
    """A rule or channel name: an identifier, as the rule language writes it."""
    name = name.strip()
    if not name:
        raise InvalidInput(f"{what} is empty; give a short identifier such as btc_above_70k.")
    check_length(what, name, MAX_NAME)
    if not _NAME.match(name):
        raise InvalidInput(
            f"{what} {name[:60]!r} is not a valid name: use letters, digits and underscores, "
            "starting with a letter or underscore (for example btc_above_70k)."
        )
    return name


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1 or limit > MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}; got {limit}.")
    return limit
