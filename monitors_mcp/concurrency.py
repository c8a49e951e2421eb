"""Per-user concurrency limits on tool calls, kept where every server replica sees them.

A *limiter* holds counted slots under a key: ``acquire(key, limit, ttl)`` takes one
when fewer than ``limit`` are held and returns a handle (else None), ``release``
gives it back, and a slot not given back (its replica was killed) runs out after
``ttl`` seconds. ``LocalLimiter`` keeps slots in this process — right for one
server process; ``RedisLimiter`` keeps them in Redis (one sorted set per key,
scored by expiry, changed by one Lua script so that a check and a take are one
step; the clock is Redis's own, so replicas' clocks need not agree) — right for
replicas behind one address, where a user's calls land anywhere.

``CallLimits`` applies them to tool calls: at most ``per_user`` calls of one user
in flight at once, and per tool (``per_tool``, e.g. previews) or group of tools
(``per_group``: the tools that check rule text share one number) fewer still. A call
over a limit is refused at once with a message saying what the limit is; it never
waits, so one user's flood cannot queue up in front of anyone else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "CallLimits",
    "LimitReached",
    "Limiter",
    "LocalLimiter",
    "RedisLimiter",
    "call_limits_from_env",
]

log = logging.getLogger(__name__)

DEFAULT_PER_USER = 8
DEFAULT_PER_TOOL = {"preview_alert_rule": 2}
#: tools that share one per-user limit: checking rule text (parse, check, compile) is the costly part of each
GROUPS = {"rule_checks": frozenset({"validate_alert_rule", "create_alert_rule", "update_alert_rule"})}
DEFAULT_PER_GROUP = {"rule_checks": 2}
#: how long a slot lasts if its holder never gives it back (a killed replica): longer than any call
DEFAULT_SLOT_TTL = 300.0


class Limiter(Protocol):
    async def acquire(self, key: str, limit: int, ttl: float) -> str | None: ...

    async def release(self, key: str, handle: str) -> None: ...

    async def held(self, key: str) -> int: ...


@dataclass
class LocalLimiter:
    """Slots in this process's memory (one event loop)."""

    _slots: dict[str, dict[str, float]] = field(default_factory=dict)

    async def acquire(self, key: str, limit: int, ttl: float) -> str | None:
        now = time.monotonic()
        slots = {h: t for h, t in self._slots.get(key, {}).items() if t > now}
        if len(slots) >= limit:
            self._slots[key] = slots
            return None
        handle = uuid.uuid4().hex
        slots[handle] = now + ttl
        self._slots[key] = slots
        return handle

    async def release(self, key: str, handle: str) -> None:
        slots = self._slots.get(key)
        if slots is not None:
            slots.pop(handle, None)
            if not slots:
                self._slots.pop(key, None)

    async def held(self, key: str) -> int:
        now = time.monotonic()
        return sum(1 for t in self._slots.get(key, {}).values() if t > now)


_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""

_HELD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


class RedisLimiter:
    """Slots in Redis, shared by every replica using the same URL and prefix."""

    def __init__(self, url: str, *, prefix: str = "monitors:limits:", timeout: float = 2.0) -> None:
        import redis.asyncio

        self.url = url
        self.prefix = prefix
        self._redis = redis.asyncio.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._held = self._redis.register_script(_HELD)

    async def acquire(self, key: str, limit: int, ttl: float) -> str | None:
        handle = uuid.uuid4().hex
        taken = await self._acquire(keys=[self.prefix + key], args=[limit, max(1, int(ttl * 1000)), handle])
        return handle if int(taken) == 1 else None

    async def release(self, key: str, handle: str) -> None:
        await self._redis.zrem(self.prefix + key, handle)

    async def held(self, key: str) -> int:
        return int(await self._held(keys=[self.prefix + key]))

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()


class LimitReached(Exception):
    """A call over a limit; ``message`` says which limit and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class CallLimits:
    limiter: Limiter
    per_user: int = DEFAULT_PER_USER
    per_tool: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PER_TOOL))
    ttl: float = DEFAULT_SLOT_TTL
    #: per user, for the tools of each of ``GROUPS`` together
    per_group: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PER_GROUP))

    @asynccontextmanager
    async def hold(self, user_id: int, tool: str) -> AsyncIterator[None]:
        """A slot for one call of ``tool`` by ``user_id`` while the block runs; ``LimitReached`` when over."""
        held: list[tuple[str, str]] = []
        try:
            wanted = [(f"user:{user_id}:calls", self.per_user, None)]
            if tool in self.per_tool:
                wanted.append((f"user:{user_id}:tool:{tool}", self.per_tool[tool], tool))
            for group, tools in GROUPS.items():
                if tool in tools and group in self.per_group:
                    wanted.append((f"user:{user_id}:group:{group}", self.per_group[group],
                                   "/".join(sorted(tools))))
            for key, limit, which in wanted:
                handle = await self.limiter.acquire(key, limit, self.ttl)
                if handle is None:
                    what = f"{which} calls" if which else "tool calls"
                    raise LimitReached(
                        f"You already have {limit} {what} running, the most allowed at once; "
                        "wait for one to finish, then call again.")
                held.append((key, handle))
            yield
        finally:
            for key, handle in reversed(held):
                try:
                    await asyncio.shield(self.limiter.release(key, handle))
                except Exception as error:  # the slot runs out by itself after ttl
                    log.warning("could not release a call slot: %s", type(error).__name__)


def call_limits_from_env(redis_url: str | None, env: dict[str, str] | None = None) -> CallLimits:
    """The limits the server runs with: in Redis when ``redis_url`` is given, else in this process.

    ``MONITORS_MAX_CONCURRENT_CALLS`` (per user, default 8),
    ``MONITORS_MAX_CONCURRENT_PREVIEWS`` (per user, default 2) and
    ``MONITORS_MAX_CONCURRENT_RULE_CHECKS`` (validate/create/update together, per user, default 2) set the numbers;
    ``MONITORS_REDIS_PREFIX`` the keys' prefix (default ``monitors:limits:``), for several
    deployments on one Redis."""
    env = os.environ if env is None else env
    per_user = _positive(env, "MONITORS_MAX_CONCURRENT_CALLS", DEFAULT_PER_USER)
    previews = _positive(env, "MONITORS_MAX_CONCURRENT_PREVIEWS", DEFAULT_PER_TOOL["preview_alert_rule"])
    checks = _positive(env, "MONITORS_MAX_CONCURRENT_RULE_CHECKS", DEFAULT_PER_GROUP["rule_checks"])
    prefix = env.get("MONITORS_REDIS_PREFIX") or "monitors:limits:"
    limiter: Limiter = RedisLimiter(redis_url, prefix=prefix) if redis_url else LocalLimiter()
    return CallLimits(limiter, per_user=per_user, per_tool={"preview_alert_rule": previews},
                      per_group={"rule_checks": checks})


def _positive(env, name: str, default: int) -> int:  # noqa: ANN001
    text = env.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a whole number of calls, 1 or more; got {text[:20]!r}")
    return value
