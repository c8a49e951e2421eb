"""Errors the service layer raises for a caller's mistake; each message says what is wrong and how to fix it.

Error tree::

    ServiceError          .code, .message, .details (safe to show to the caller)
    ├── NotFound          unknown id or name — also another user's, answered identically
    ├── Conflict          a name already taken
    └── InvalidInput      a bad argument
        └── InvalidRule   rule text with errors: .details has the diagnostics and a valid example

Messages never contain a stored secret (a channel URL) nor any user's data but the caller's own.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Conflict", "InvalidInput", "InvalidRule", "NotFound", "ServiceError"]


class ServiceError(Exception):
    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **self.details}


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class InvalidInput(ServiceError):
    code = "invalid_input"


class InvalidRule(InvalidInput):
    code = "invalid_rule"
