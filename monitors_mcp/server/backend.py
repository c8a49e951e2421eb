"""What the tools need at run time: the store, the encryption keys, and who is calling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mcp.server.auth.middleware.auth_context import get_access_token
from ..service import ServiceError, Workspace
from ..store import Database
from ..store.secrets import SecretBox

__all__ = ["Backend", "bearer_can_write", "bearer_user", "fixed_user"]

WRITE_SCOPE = "monitors:write"  # the scope every credential that may change things carries (see monitors_mcp.auth)


def fixed_user(user_id: int) -> Callable[[], int]:
    """The stdio transport (and in-process clients): one user for the whole connection."""
    return lambda: user_id


def bearer_user() -> int:
    """The HTTP transport: the user the request's bearer token maps to (see ``auth``)."""
    token = get_access_token()
    if token is None or not token.subject or not token.subject.isdigit():
        raise ServiceError("Not authenticated.", code="unauthenticated",
                           hint="send an Authorization: Bearer <token> header (monitors-mcp token create USER)")
    return int(token.subject)


def bearer_can_write() -> bool:
    """The HTTP transport: False for a read-only credential (one without the write scope)."""
    token = get_access_token()
    return token is not None and WRITE_SCOPE in token.scopes


@dataclass
class Backend:
    db: Database
    secrets: SecretBox
    current_user: Callable[[], int]

    def workspace(self) -> Workspace:
        return Workspace(self.db, self.current_user(), self.secrets)
