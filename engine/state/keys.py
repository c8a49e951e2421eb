"""Idempotency keys: the same notification always gets the same key.

A key is the SHA-256 of ``(rule id, series key, kind, evaluation time)``, so a
tick that is run again after a crash, or by another replica after a lease
takeover, produces keys that the notification log has already seen.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from .model import format_time

__all__ = ["idempotency_key"]


def idempotency_key(rule_id: str, series_key: str, kind: str, at: datetime) -> str:
    """Hex SHA-256 of the four parts (JSON-encoded, so no two tuples collide)."""
    text = json.dumps([str(rule_id), str(series_key), kind, format_time(at)], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
