"""Errors the service layer raises for a caller's mistake; each message says what is wrong and how to fix it.

Error tree::

    ServiceError          .code, .message, .hint, .details (safe to show to the caller)
    ├── NotFound          unknown id or name — also another user's, answered identically
    ├── Conflict          a name already taken
    ├── Unavailable       something the call needs is missing or down: the engine's packages, the
    │                     time-series source, the store (``code`` says which)
    └── InvalidInput      a bad argument
        └── InvalidRule   rule text with errors: .details has the diagnostics and a valid example

Every error is answered in one shape (``to_dict``), that of a validation diagnostic:
a stable ``code`` programs may match on, the ``message`` (also as ``error``), a
``hint`` saying what to do next, and the details.
Messages never contain a stored secret (a channel URL) nor any user's data but the caller's own.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Conflict", "InvalidInput", "InvalidRule", "NotFound", "ServiceError", "Unavailable"]


class ServiceError(Exception):
    code = "error"
    default_hint = "Read the message, change what it names and call again."

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.hint = hint or self.default_hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, "message": self.message, "hint": self.hint,
                **self.details}


class NotFound(ServiceError):
    code = "not_found"
    default_hint = ("Look the id or name up first: list_alert_rules, list_alerts, list_silences or "
                    "list_notification_channels.")


class Conflict(ServiceError):
    code = "conflict"
    default_hint = "Choose another name, or change the existing one with its update tool."


class Unavailable(ServiceError):
    code = "unavailable"
    default_hint = "Nothing was changed; try again shortly."


class InvalidInput(ServiceError):
    code = "invalid_input"
    default_hint = "Fix the argument the message names and call again."


class InvalidRule(InvalidInput):
    code = "invalid_rule"
    default_hint = "Fix every diagnostic (each has a line, column and hint), then call again."
