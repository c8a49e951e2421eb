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

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_length(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidInput(f"{what} is {len(value):,} characters long; the limit is {limit:,}. Shorten it.")


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
