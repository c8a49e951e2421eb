"""The limiters behind per-user call limits, in this process and in Redis: a slot is taken only
under the limit, given back on release, and runs out by itself when its holder never returns."""

from __future__ import annotations

import os
import uuid

import anyio
import pytest

from monitors_mcp.concurrency import CallLimits, LimitReached, LocalLimiter, RedisLimiter, call_limits_from_env
from tests.support import redis_server

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["local", "redis"])
async def limiter(request):  # noqa: ANN001, ANN201
    if request.param == "local":
        yield LocalLimiter()
        return
    url = redis_server.server_url()
    if url is None:
        if os.environ.get("MONITORS_REQUIRE_REDIS") == "1":
            pytest.fail("Redis is not reachable")
        url = redis_server.start()
    redis = RedisLimiter(url, prefix=f"monitors-test:{uuid.uuid4().hex[:8]}:")
    yield redis
    await redis.close()


async def test_slots_up_to_the_limit_then_none_until_one_is_released(limiter) -> None:  # noqa: ANN001
    first, second = await limiter.acquire("k", 2, 30), await limiter.acquire("k", 2, 30)
    assert first and second and first != second
    assert await limiter.acquire("k", 2, 30) is None
    assert await limiter.acquire("other", 2, 30)  # keys are independent
    assert await limiter.held("k") == 2
    await limiter.release("k", first)
    assert await limiter.held("k") == 1
    assert await limiter.acquire("k", 2, 30)


async def test_a_slot_never_released_runs_out(limiter) -> None:  # noqa: ANN001
    assert await limiter.acquire("dead", 1, 0.3)
    assert await limiter.acquire("dead", 1, 0.3) is None
    await anyio.sleep(0.5)
    assert await limiter.acquire("dead", 1, 0.3)


async def test_call_limits_per_user_and_per_tool(limiter) -> None:  # noqa: ANN001
    limits = CallLimits(limiter, per_user=3, per_tool={"preview_alert_rule": 1})
    async with limits.hold(1, "preview_alert_rule"):
        with pytest.raises(LimitReached, match="1 preview_alert_rule calls running"):
            async with limits.hold(1, "preview_alert_rule"):
                pass
        async with limits.hold(2, "preview_alert_rule"):  # another user
            pass
        async with limits.hold(1, "list_alerts"), limits.hold(1, "list_alerts"):
            with pytest.raises(LimitReached, match="3 tool calls running"):
                async with limits.hold(1, "list_alerts"):
                    pass
    assert await limiter.held("user:1:calls") == 0 and await limiter.held("user:1:tool:preview_alert_rule") == 0


def test_settings_from_the_environment() -> None:
    limits = call_limits_from_env(None, {"MONITORS_MAX_CONCURRENT_CALLS": "5", "MONITORS_MAX_CONCURRENT_PREVIEWS": "1"})
    assert isinstance(limits.limiter, LocalLimiter) and limits.per_user == 5
    assert limits.per_tool == {"preview_alert_rule": 1}
    with pytest.raises(ValueError, match="MONITORS_MAX_CONCURRENT_CALLS must be a whole number"):
        call_limits_from_env(None, {"MONITORS_MAX_CONCURRENT_CALLS": "0"})
