"""Delivery through apprise to real receivers on 127.0.0.1: exactly once, retries, deadlines."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from engine.notify import DeliveryOutcome, RenderedNotification, RetryPolicy, deliver, deliver_async
from tests.support.receivers import HttpReceiver, SmtpReceiver

MESSAGE = RenderedNotification(title="[CRITICAL] btc is firing", body="BTC is at 75000 USD\nsecond line",
                               notify_type="failure", idempotency_key="k1", kind="firing")
QUICK = RetryPolicy(deadline=4.0, first_delay=0.05, max_delay=0.2, attempt_timeout=2.0, min_attempt=0.1)


@pytest.fixture
def http():
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp():
    with SmtpReceiver(user="alerts", password="Sm7p-Pa55:w@rd") as receiver:
        yield receiver


def test_json_and_form_arrive_exactly_once(http):
    outcomes = deliver(MESSAGE, [http.url("json", "/json"), http.url("form", "/form")], QUICK)
    assert [o.delivered for o in outcomes] == [True, True]
    assert [o.attempts for o in outcomes] == [1, 1]
    assert [o.service for o in outcomes] == ["JSON", "Form"]
    time.sleep(0.2)  # nothing late
    assert http.count == 2
    by_path = {r.path: r.data for r in http.received}
    assert by_path["/json"]["title"] == MESSAGE.title and by_path["/json"]["message"] == MESSAGE.body
    assert by_path["/json"]["type"] == "failure"
    assert by_path["/form"]["title"] == MESSAGE.title and by_path["/form"]["message"] == MESSAGE.body


def test_mail_arrives_exactly_once_with_login(smtp):
    (outcome,) = deliver(MESSAGE, [smtp.url(to="ops@example.com")], QUICK)
    assert outcome.delivered and outcome.attempts == 1 and outcome.service == "E-Mail"
    assert smtp.wait_for(1)
    time.sleep(0.2)
    assert smtp.count == 1
    mail = smtp.received[0].data
    assert mail["subject"] == MESSAGE.title and mail["to"] == ["ops@example.com"]
    assert "BTC is at 75000 USD" in mail["body"] and mail["authenticated"]


def test_outcomes_are_per_url_in_order(http, smtp):
    http.fail_next(100)
    urls = [smtp.url(), http.url("json", "/down"), "nosuchscheme://token"]
    outcomes = deliver(MESSAGE, urls, RetryPolicy(deadline=1.5, first_delay=0.05, max_delay=0.2, min_attempt=0.1))
    assert [o.index for o in outcomes] == [0, 1, 2]
    assert [o.delivered for o in outcomes] == [True, False, False]
    assert "500" in outcomes[1].reason and "gave up after" in outcomes[1].reason
    assert outcomes[2].attempts == 0 and "not a notification URL" in outcomes[2].reason
    assert smtp.count == 1 and http.count == 0


def test_http_errors_are_retried_with_backoff(http):
    http.fail_next(3)
    sleeps = []
    (outcome,) = deliver(MESSAGE, [http.url()], QUICK, sleep=lambda s: (sleeps.append(s), time.sleep(s)))
    assert outcome.delivered and outcome.attempts == 4
    assert sleeps == [0.05, 0.1, 0.2]  # doubling, capped at max_delay
    assert http.rejected == 3 and http.count == 1


def test_smtp_temporary_failure_is_retried(smtp):
    smtp.fail_next(2)
    (outcome,) = deliver(MESSAGE, [smtp.url()], QUICK)
    assert outcome.delivered and outcome.attempts == 3
    assert smtp.rejected == 2 and smtp.count == 1


def test_receiver_down_then_up_is_delivered_within_the_deadline(http):
    url = http.url()
    http.down()
    threading.Timer(0.6, http.up).start()
    start = time.monotonic()
    (outcome,) = deliver(MESSAGE, [url], QUICK)
    assert outcome.delivered and outcome.attempts > 1
    assert time.monotonic() - start < QUICK.deadline
    time.sleep(0.2)
    assert http.count == 1


def test_smtp_down_then_up(smtp):
    url = smtp.url()
    smtp.down()
    threading.Timer(0.6, smtp.up).start()
    (outcome,) = deliver(MESSAGE, [url], QUICK)
    assert outcome.delivered and outcome.attempts > 1
    assert smtp.wait_for(1) and smtp.count == 1


def test_down_past_the_deadline_is_failed_with_the_reason(http, smtp):
    http.down()
    smtp.down()
    policy = RetryPolicy(deadline=1.0, first_delay=0.05, max_delay=0.1, min_attempt=0.1)
    start = time.monotonic()
    outcomes = deliver(MESSAGE, [http.url(), smtp.url()], policy)
    assert time.monotonic() - start < 3.0
    for outcome in outcomes:
        assert isinstance(outcome, DeliveryOutcome)
        assert not outcome.delivered and outcome.attempts >= 2
        assert "connection error" in outcome.reason.lower()
        assert "within the 1 s deadline" in outcome.reason
    http.up()
    smtp.up()
    time.sleep(0.3)  # nothing is sent behind the caller's back
    assert http.count == 0 and smtp.count == 0


def test_a_slow_answer_is_a_timeout_that_may_have_been_delivered(http):
    http.delay = 0.8
    policy = RetryPolicy(deadline=1.4, first_delay=0.05, attempt_timeout=0.3, min_attempt=0.1)
    (outcome,) = deliver(MESSAGE, [http.url()], policy)
    assert not outcome.delivered and outcome.uncertain
    assert "may still have been delivered" in outcome.reason
    # the receiver got it anyway: the engine must treat "uncertain" as possibly sent
    assert http.wait_for(1, timeout=3)


def test_no_urls_no_outcomes():
    assert deliver(MESSAGE, []) == []


def test_async_wrapper(http):
    (outcome,) = asyncio.run(deliver_async(MESSAGE, [http.url()], QUICK))
    assert outcome.delivered and http.count == 1


def test_retry_policy_delays():
    policy = RetryPolicy(first_delay=1, factor=2, max_delay=5)
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_from_state_machine_to_receiver(http):
    from datetime import datetime, timedelta, timezone

    from engine.notify import render_notification
    from engine.state import Clauses, Evaluation, SeriesState, step

    term = 'last(crypto.price{symbol="BTC"}, 5m)'
    t0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
    state, keys = SeriesState(), []
    for minute, price in enumerate([69000.0, 71000.0, 72000.0, 69500.0]):
        severity = "critical" if price > 70000 else None
        result = step(state, Evaluation(at=t0 + timedelta(minutes=minute), severity=severity,
                                        values={term: price}, value=price),
                      Clauses(), rule_id="42", series_key="{}")
        state = result.state
        for notification in result.notifications:
            rendered = render_notification(notification, rule_name="btc_above_70k", condition=f"{term} > 70000",
                                           message="BTC {{ state }} at {{ value | round(0) }}")
            (outcome,) = deliver(rendered, [http.url()], QUICK)
            assert outcome.delivered
            keys.append(rendered.idempotency_key)
    assert [r.data["message"] for r in http.received] == ["BTC firing at 71000.0", "BTC resolved at 69500.0"]
    assert [r.data["type"] for r in http.received] == ["failure", "success"]
    assert len(set(keys)) == 2
