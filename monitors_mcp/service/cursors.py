"""Opaque page cursors for keyset pagination: a position, not an offset, so pages stay stable
while new rows arrive.

A cursor comes back from the caller, so decoding checks everything before it
reaches a query: its length, its nesting, and that each position is of the
kind this cursor holds (an id is a whole number in the store's range, a name
is short text, a time is an ISO 8601 time in range). Anything else is the
one ``InvalidInput`` saying to pass ``next_cursor`` unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Any

from .errors import InvalidInput

__all__ = ["MAX_CURSOR", "decode_cursor", "encode_cursor"]

MAX_CURSOR = 2_000
_MAX_ID = 2**63 - 1
_MAX_TEXT = 512
# What each position of a cursor kind holds; kinds not listed hold ids and short text.
_POSITIONS = {"rules": ("text", "id"), "alerts": ("time", "id")}


def encode_cursor(kind: str, *position: Any) -> str:
    raw = json.dumps([kind, *position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _fits(kind: str, value: Any) -> bool:
    if kind == "id":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_ID
    if not isinstance(value, str) or len(value) > _MAX_TEXT or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return False
    if kind == "time":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return False
        return 1970 <= moment.year <= 9998 and moment.utcoffset() in (None, timedelta(0))
    return True


def decode_cursor(kind: str, cursor: str, arity: int) -> list[Any]:
    try:
        text = cursor.strip()
        if not text or len(text) > MAX_CURSOR or not text.isascii():
            raise ValueError
        padded = text + "=" * (-len(text) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(value, list) or len(value) != arity + 1 or value[0] != kind:
            raise ValueError
        positions = _POSITIONS.get(kind, ())
        for index, item in enumerate(value[1:]):
            expected = positions[index] if index < len(positions) else ("id" if isinstance(item, int) else "text")
            if not _fits(expected, item):
                raise ValueError
        return value[1:]
    except (ValueError, TypeError, IndexError, UnicodeDecodeError, RecursionError, binascii.Error):
        raise InvalidInput(
            "cursor is not one this tool returned: pass next_cursor from the previous page unchanged, "
            "or leave cursor out to start from the first page."
        ) from None
