"""The variables a ``title``/``message`` template sees (contract section 4).

The contract's variables (``monitors_dsl.templates.TEMPLATE_VARIABLES``) are
always present. The default templates also read ``kind``,
``previous_severity`` and ``direction``, which rules cannot use (the checker
rejects names outside the contract).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.state.model import format_time

__all__ = ["template_variables"]


def template_variables(notification, *, rule_name: str | None, condition: str,
                       labels: Mapping[str, str] | None = None,
                       description: str | None = None) -> dict[str, Any]:
    """The template variables for an ``engine.state.Notification``.

    A bare condition has no name: ``rule`` is then the condition's text.
    Times are RFC 3339 text; ``value`` is ``None`` when the term had no data
    (it prints as ``no data``).
    """
    return {
        "rule": rule_name if rule_name else condition.strip(),
        "severity": notification.severity,
        "state": notification.state,
        "value": notification.value,
        "values": dict(notification.values),
        "labels": dict(labels or {}),
        "started_at": format_time(notification.started_at),
        "evaluated_at": format_time(notification.at),
        "condition": condition.strip(),
        "description": description or "",
        "kind": notification.kind,
        "previous_severity": notification.previous_severity,
        "direction": notification.direction,
        "escalated": bool(getattr(notification, "escalated", False)),
    }
