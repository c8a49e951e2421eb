"""Delivery through apprise: one outcome per channel URL, retries with backoff up to a deadline.

:func:`deliver` takes a rendered notification and the decrypted apprise URLs
of its channels and returns one :class:`DeliveryOutcome` per URL, in order.
Each URL gets its own ``apprise.Apprise`` object, so a retry goes only to the
channels that failed and each outcome is read from apprise's own per-service
result (``AppriseResult`` → ``NotifyResult`` → attempts and their logs).

- An attempt that fails is retried after ``first_delay``, then twice that, …
  (at most ``max_delay``), as long as the next attempt can start before the
  deadline; the outcome then says why the last attempt failed.
- An attempt that times out may still have been delivered; it is retried too
  (at-least-once), and the outcome is marked ``uncertain``.
- A URL apprise does not accept fails at once, without retries; so does one
  whose host is, or resolves to, an internal address the operator has not
  allowed (``monitors_mcp.store.destinations``; checked again before each retry).
- Each attempt uses a fresh ``apprise.Apprise`` object: apprise throttles
  repeated sends through one plugin instance (e-mail: seconds), which would
  eat the deadline. An attempt apprise gave up waiting for keeps running in
  apprise's worker thread and may still deliver: hence ``uncertain``.

The engine writes the notification log (idempotency key) only for delivered
outcomes, so a crash between sending and logging can only resend, never lose.
Reasons and targets are redacted: channel secrets never appear in outcomes or
logs (see :mod:`engine.notify.redact`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from monitors_mcp.store.destinations import DestinationRefused, check_destination

from .redact import display_target, protect_url, redact
from .render import RenderedNotification

__all__ = ["RetryPolicy", "DeliveryOutcome", "deliver", "deliver_async"]

log = logging.getLogger(__name__)

_REASON_LIMIT = 500


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to try one channel (seconds).

    Attempts are spaced ``first_delay``, ``first_delay * factor``, … (at most
    ``max_delay``); each may take ``attempt_timeout``; no attempt starts with
    less than ``min_attempt`` (or ``attempt_timeout`` if smaller) left before
    ``deadline``, counted from the first attempt.
    """

    deadline: float = 300.0
    first_delay: float = 1.0
    max_delay: float = 60.0
    factor: float = 2.0
    attempt_timeout: float = 30.0
    min_attempt: float = 1.0

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_delay, self.first_delay * self.factor ** (attempt - 1))


@dataclass(frozen=True)
class DeliveryOutcome:
    """The result of delivering one notification to one channel URL.

    ``index`` is the URL's position in the list given; ``target`` is safe to
    show and store (``scheme://host:port/…``); ``reason`` says why the last
    attempt failed (``None`` when delivered); ``uncertain`` is set when an
    attempt timed out, since it may have been delivered anyway.
    """

    index: int
    target: str
    delivered: bool
    attempts: int
    reason: str | None = None
    service: str | None = None
    uncertain: bool = False
    elapsed: float = 0.0


def _asset():
    import apprise

    return apprise.AppriseAsset(storage_mode="memory", secure_logging=True, default_service_retry=0)


def _reason(service_result, fallback: str) -> str:
    """The failure reason from apprise's captured logs (warnings first, then exception details)."""
    warnings, details = [], []
    for entry in service_result.logs():
        if entry.level in ("WARNING", "ERROR", "CRITICAL", "DEPRECATION WARNING"):
            warnings.append(entry.message)
        elif "Exception" in entry.message or "Response Details" in entry.message:
            details.append(entry.message)
    parts = warnings[-2:] + details[-1:]
    text = redact(" ".join(" ".join(p.split()) for p in parts)) if parts else fallback
    return text if len(text) <= _REASON_LIMIT else text[:_REASON_LIMIT - 1] + "…"


def _attempt(apobj, message: RenderedNotification, timeout: float):
    """One apprise call → ``(delivered, timed_out, reason, service name)``."""
    from apprise import AppriseResultStatus

    result = apobj.notify(body=message.body, title=message.title, notify_type=message.notify_type,
                          body_format="text", timeout=max(timeout, 0.001), log_level=logging.DEBUG)
    try:
        services = list(result)
        if not services:
            calls = [e.message for e in result.call_logs()]
            return False, False, redact(calls[-1] if calls else f"not sent ({result.status.name.lower()})"), None
        service = services[0]
        if service.status == AppriseResultStatus.SUCCESS:
            return True, False, None, service.name
        if service.status == AppriseResultStatus.TIMEOUT:
            return False, True, f"no answer within {timeout:.3g} s (it may still have been delivered)", \
                service.name
        return False, False, _reason(service, "failed"), service.name
    finally:
        result.close()


def _refused(url: str) -> str | None:
    """Why ``url`` may not be sent to (an internal address, a method other than POST), or None."""
    try:
        check_destination(url)
    except DestinationRefused as refused:
        return redact(f"not sent: {refused}")
    return None


def _deliver_one(index: int, url: str, message: RenderedNotification, policy: RetryPolicy,
                 sleep: Callable[[float], None], clock: Callable[[], float]) -> DeliveryOutcome:
    import apprise

    target = display_target(url)
    if not apprise.Apprise(asset=_asset()).add(url):  # (the first call loads apprise's plugins)
        return DeliveryOutcome(index, target, False, 0, "not a notification URL apprise accepts")
    refused = _refused(url)
    if refused is not None:
        return DeliveryOutcome(index, target, False, 0, refused)
    start = clock()
    deadline = start + policy.deadline
    attempts, uncertain, reason, service, failure = 0, False, None, None, None
    shortest = min(policy.attempt_timeout, policy.min_attempt)
    while True:
        attempts += 1
        if attempts > 1 and (refused := _refused(url)) is not None:  # a name may resolve elsewhere by now
            return DeliveryOutcome(index, target, False, attempts - 1, refused, service, uncertain, clock() - start)
        timeout = min(policy.attempt_timeout, max(deadline - clock(), 0.0))
        # a fresh apprise object per attempt: a plugin throttles repeated sends on one instance
        apobj = apprise.Apprise(asset=_asset())
        apobj.add(url)
        try:
            delivered, timed_out, reason, service = _attempt(apobj, message, timeout)
        except Exception as error:  # a plugin bug must not take the engine down
            delivered, timed_out, reason = False, False, redact(f"{type(error).__name__}: {error}")
        uncertain = uncertain or timed_out
        if delivered:
            return DeliveryOutcome(index, target, True, attempts, None, service, uncertain, clock() - start)
        if timed_out and failure:
            reason = f"{reason}; before that: {failure}"
        elif not timed_out:
            failure = reason
        wait = policy.delay(attempts)
        if clock() + wait + shortest > deadline:
            reason = f"{reason} (gave up after {attempts} attempt{'s' if attempts > 1 else ''} " \
                     f"within the {policy.deadline:g} s deadline)"
            log.warning("notification %s to %s failed: %s", message.idempotency_key, target, reason)
            return DeliveryOutcome(index, target, False, attempts, reason, service, uncertain, clock() - start)
        log.info("notification %s to %s: attempt %d failed (%s); retrying in %.3g s",
                 message.idempotency_key, target, attempts, reason, wait)
        sleep(wait)


def deliver(message: RenderedNotification, urls: Sequence[str], policy: RetryPolicy = RetryPolicy(), *,
            sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.monotonic) -> list[DeliveryOutcome]:
    """Send ``message`` to every URL (concurrently), retrying each up to the deadline."""
    urls = list(urls)
    for url in urls:
        protect_url(url)  # before apprise sees the URL, so it cannot log it
    if not urls:
        return []
    if len(urls) == 1:
        return [_deliver_one(0, urls[0], message, policy, sleep, clock)]
    with ThreadPoolExecutor(max_workers=min(8, len(urls)), thread_name_prefix="notify") as pool:
        futures = [pool.submit(_deliver_one, i, url, message, policy, sleep, clock) for i, url in enumerate(urls)]
        return [future.result() for future in futures]


async def deliver_async(message: RenderedNotification, urls: Sequence[str],
                        policy: RetryPolicy = RetryPolicy()) -> list[DeliveryOutcome]:
    """:func:`deliver` in a worker thread, for the engine's event loop."""
    return await asyncio.to_thread(deliver, message, urls, policy)
