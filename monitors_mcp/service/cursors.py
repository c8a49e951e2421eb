"""Opaque page cursors for keyset pagination: a position, not an offset, so pages stay stable
while new rows arrive."""

from __future__ import annotations

import base64
import json
from typing import Any

from .errors import InvalidInput

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(kind: str, *position: Any) -> str:
    raw = json.dumps([kind, *position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor.strip() + "=" * (-len(cursor.strip()) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(value, list) or value[0] != kind or len(value) != arity + 1:
            raise ValueError
        return value[1:]
    except (ValueError, TypeError, IndexError, UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput(
            "cursor is not one this tool returned: pass next_cursor from the previous page unchanged, "
            "or leave cursor out to start from the first page."
        ) from None
