"""Grouped channels: which group a notification is in, and when a group's message is due.

A channel with ``group_by`` sends the notifications of one group as one message. A notification's group is
the values of the channel's ``group_by`` labels in its alert's labels (``rule`` is the rule's name; a label
the alert does not have counts as empty).

A group's timing (``notification_groups``): ``pending_since``, when a dispatcher first saw an unsent
notification of the group since its last message, and ``last_sent_at``, when that message went. The
group's next message is due at

    max(pending_since + group_wait, last_sent_at + group_interval)

so the first notification of a new group waits ``group_wait`` for others, newer ones after a message wait
until ``group_interval`` after it, and a group quiet for longer than ``group_interval`` starts again with
``group_wait``. With ``group_interval >= group_wait`` no notification waits longer than ``group_interval``
after it was first seen (plus a retry's backoff when a message failed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

__all__ = ["DEFAULT_GROUP_INTERVAL", "DEFAULT_GROUP_WAIT", "group_due", "group_key", "group_labels"]

DEFAULT_GROUP_WAIT = 30
DEFAULT_GROUP_INTERVAL = 300
RULE = "rule"


def group_labels(group_by: Sequence[str], payload: Mapping) -> dict[str, str]:
    """The values of the ``group_by`` labels of an outbox payload (``rule``: the rule's name)."""
    labels = payload.get("labels") or {}
    rule = payload.get("rule") or {}
    out = {}
    for name in group_by:
        if name == RULE:
            out[name] = str(rule.get("name") or rule.get("condition") or "")
        else:
            value = labels.get(name)
            out[name] = "" if value is None else str(value)
    return out


def group_key(labels: Mapping[str, str], group_by: Sequence[str]) -> str:
    """A digest of the group's values, in the order of ``group_by`` (64 hex characters)."""
    text = json.dumps([[name, labels.get(name, "")] for name in group_by], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def group_due(pending_since: datetime, last_sent_at: datetime | None, *, wait_seconds: int | None,
              interval_seconds: int | None) -> datetime:
    """When the group's next message may go (``None`` waits are the defaults, 30 s and 300 s)."""
    wait = DEFAULT_GROUP_WAIT if wait_seconds is None else wait_seconds
    interval = DEFAULT_GROUP_INTERVAL if interval_seconds is None else interval_seconds
    due = pending_since + timedelta(seconds=wait)
    if last_sent_at is not None:
        due = max(due, last_sent_at + timedelta(seconds=interval))
    return due
