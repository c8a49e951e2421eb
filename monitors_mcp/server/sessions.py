"""Streamable HTTP sessions: a cap per user and a short idle timeout, so one user cannot use them all up.

The SDK's session manager caps sessions for the whole process (a request that
would open one more gets 503) and closes a session after 30 idle minutes, so
one token opening thousands of sessions locks every other user out. Here:

- each user may hold at most ``per_user`` open sessions (``MONITORS_MAX_SESSIONS_PER_USER``,
  default :data:`DEFAULT_PER_USER`); one more is answered 429 with a message
  saying the limit and how to free a session, while other users open theirs;
- an idle session closes after ``idle_seconds`` (``MONITORS_SESSION_IDLE_SECONDS``,
  default :data:`DEFAULT_IDLE_SECONDS`), freeing its place;
- the process-wide cap stays (``MONITORS_MAX_SESSIONS``, default :data:`DEFAULT_MAX_SESSIONS`).

Sessions live in this process's memory (a stateless server keeps none), so
they are counted here, behind the small :class:`SessionCounter` interface.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..service.limits import whole_setting

__all__ = [
    "DEFAULT_IDLE_SECONDS",
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_PER_USER",
    "LocalSessionCounter",
    "SessionCounter",
    "SessionLimits",
    "limit_sessions",
    "session_limits_from_env",
]

DEFAULT_PER_USER = 16
DEFAULT_IDLE_SECONDS = 300.0
DEFAULT_MAX_SESSIONS = 2_000


class SessionCounter(Protocol):
    """Open sessions per user: ``open`` takes a place (False when the user is at ``limit``)."""

    def open(self, user: str, session_id: str, limit: int) -> bool: ...

    def close(self, session_id: str) -> None: ...

    def held(self, user: str) -> int: ...


@dataclass
class LocalSessionCounter:
    """Places in this process's memory."""

    _owner: dict[str, str] = field(default_factory=dict)
    _count: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, user: str, session_id: str, limit: int) -> bool:
        with self._lock:
            if self._count.get(user, 0) >= limit:
                return False
            self._owner[session_id] = user
            self._count[user] = self._count.get(user, 0) + 1
            return True

    def close(self, session_id: str) -> None:
        with self._lock:
            user = self._owner.pop(session_id, None)
            if user is not None:
                left = self._count.get(user, 1) - 1
                if left > 0:
                    self._count[user] = left
                else:
                    self._count.pop(user, None)

    def held(self, user: str) -> int:
        with self._lock:
            return self._count.get(user, 0)


@dataclass(frozen=True)
class SessionLimits:
    per_user: int = DEFAULT_PER_USER
    idle_seconds: float = DEFAULT_IDLE_SECONDS
    max_sessions: int = DEFAULT_MAX_SESSIONS


def session_limits_from_env(env: dict[str, str] | None = None) -> SessionLimits:
    env = os.environ if env is None else env
    return SessionLimits(
        per_user=whole_setting(env, "MONITORS_MAX_SESSIONS_PER_USER", DEFAULT_PER_USER, 1, 10_000),
        idle_seconds=float(whole_setting(env, "MONITORS_SESSION_IDLE_SECONDS", int(DEFAULT_IDLE_SECONDS), 5, 86_400)),
        max_sessions=whole_setting(env, "MONITORS_MAX_SESSIONS", DEFAULT_MAX_SESSIONS, 1, 1_000_000),
    )


class _OverUserCap(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _user_key(requestor: Any) -> str:
    if requestor is None:
        return "anonymous"
    get = requestor.get if isinstance(requestor, dict) else lambda name: getattr(requestor, name, None)
    return f"{get('issuer') or ''}|{get('subject') or get('client_id') or ''}"


def limit_sessions(manager: Any, limits: SessionLimits, counter: SessionCounter | None = None) -> None:
    """Give the SDK's ``StreamableHTTPSessionManager`` ``manager`` the per-user cap and idle timeout."""
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager, _error_response

    counter = counter or LocalSessionCounter()
    minutes = f"{limits.idle_seconds / 60:g} minute" + ("" if limits.idle_seconds == 60 else "s")

    class PerUserSessions(StreamableHTTPSessionManager):
        async def _handle_stateful_request(self, scope, receive, send) -> None:  # noqa: ANN001
            try:
                await super()._handle_stateful_request(scope, receive, send)
            except _OverUserCap as over:
                await _error_response(over.message, 429)(scope, receive, send)

        def _admit_session(self, requestor):  # noqa: ANN001, ANN202
            transport = super()._admit_session(requestor)
            if transport is None:
                return None
            session_id = transport.mcp_session_id
            if not counter.open(_user_key(requestor), session_id, limits.per_user):
                self._server_instances.pop(session_id, None)
                self._session_owners.pop(session_id, None)
                raise _OverUserCap(
                    f"You have {limits.per_user} sessions open, the most one user may hold at once. "
                    f"Reuse an open session (send its Mcp-Session-Id), close one (HTTP DELETE), "
                    f"or wait: an idle session closes after {minutes}.")
            return transport

        async def _discard_session(self, session_id, transport) -> None:  # noqa: ANN001
            counter.close(session_id)
            await super()._discard_session(session_id, transport)

    manager.__class__ = PerUserSessions
    manager.session_idle_timeout = limits.idle_seconds
    manager.max_sessions = limits.max_sessions
    manager.session_counter = counter
