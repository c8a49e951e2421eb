"""Channel secrets never reach a log record, a captured apprise log or a delivery outcome."""

from __future__ import annotations

import io
import logging

import pytest

from engine.notify import RenderedNotification, RetryPolicy, deliver, display_target, protect_logs, redact
from engine.notify.redact import RedactingFilter, SecretRedactor, url_secrets
from tests.support.receivers import HttpReceiver, SmtpReceiver

MESSAGE = RenderedNotification(title="t", body="b", notify_type="warning", idempotency_key="k")
POLICY = RetryPolicy(deadline=0.8, first_delay=0.05, max_delay=0.1, attempt_timeout=0.5, min_attempt=0.1)
PATIENT = RetryPolicy(deadline=5.0, first_delay=0.05, max_delay=0.1, attempt_timeout=4.0, min_attempt=0.1)

JSON_SECRETS = ("JsonPa55word", "T0KEN-abc123xyz", "HeaderSecret42", "QuerySecret42", "Bearer-Zq9")
SMTP_PASSWORD = "Sm7p!Pass:w0rd"


def json_url(receiver: HttpReceiver, scheme: str = "json") -> str:
    return (f"{scheme}://hookuser:JsonPa55word@127.0.0.1:{receiver.port}/hooks/T0KEN-abc123xyz"
            "?+X-Api-Key=HeaderSecret42&+Authorization=Bearer%20Bearer-Zq9&-token=QuerySecret42")


@pytest.fixture
def all_logs(caplog):
    """Everything apprise and urllib3 log, down to TRACE, through caplog and a handler of our own."""
    caplog.set_level(1)
    caplog.set_level(1, logger="apprise")
    caplog.set_level(1, logger="urllib3")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(1)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    apprise_logger = logging.getLogger("apprise")
    apprise_logger.addHandler(handler)
    try:
        yield lambda: caplog.text + "\n" + stream.getvalue() + "\n" + "\n".join(
            r.getMessage() for r in caplog.records)
    finally:
        apprise_logger.removeHandler(handler)


def assert_clean(text: str, secrets) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} leaked"


def test_successful_and_failing_http_deliveries_log_no_secret(all_logs):
    with HttpReceiver() as http:
        ok = deliver(MESSAGE, [json_url(http), json_url(http, "form")], PATIENT)
        assert [o.delivered for o in ok] == [True, True]
        received = http.received[0]
        assert received.headers.get("X-Api-Key") == "HeaderSecret42"  # the header really was a secret sent
        http.fail_next(100)
        failed = deliver(MESSAGE, [json_url(http)], POLICY)
        http.down()
        refused = deliver(MESSAGE, [json_url(http)], POLICY)
    assert not failed[0].delivered and not refused[0].delivered
    text = all_logs()
    assert "JSON POST URL" in text or "Loaded JSON URL" in text  # apprise did log at debug/trace level
    assert "***" in text
    assert_clean(text, JSON_SECRETS)
    for outcome in ok + failed + refused:
        assert_clean(repr(outcome), JSON_SECRETS)


def test_smtp_password_is_not_logged(all_logs):
    with SmtpReceiver(user="alerts", password=SMTP_PASSWORD) as smtp:
        (ok,) = deliver(MESSAGE, [smtp.url()], PATIENT)
        assert ok.delivered
        smtp.down()
        (refused,) = deliver(MESSAGE, [smtp.url()], POLICY)
        assert not refused.delivered
    text = all_logs()
    assert "Login ID" in text or "SMTP" in text
    assert_clean(text + repr(ok) + repr(refused), (SMTP_PASSWORD, "Sm7p%21Pass%3Aw0rd"))


def test_an_invalid_url_is_not_echoed(all_logs):
    (outcome,) = deliver(MESSAGE, ["slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#%%bad"], POLICY)
    assert_clean(all_logs() + repr(outcome), ("TIiajkdnlazkcOXrIdevi7FQ", "A1BRTD4JD", "T1JJ3T3L2"))


@pytest.mark.parametrize(("url", "secrets"), [
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general",
     ["T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ"]),
    ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", ["4174216298", "JHMHI8qBe7bk2ZwO5U711o3dV_js"]),
    ("tgram://123456789:ABCdefGhIJKlmnOPQRstuvWXyz/12345678", ["ABCdefGhIJKlmnOPQRstuvWXyz", "12345678"]),
    ("mailto://me:hunter2@smtp.example.com?to=ops@example.com", ["hunter2"]),
    ("jsons://example.com/api?+Authorization=Bearer%20abc.def.ghi&-key=zz9", ["abc.def.ghi", "zz9"]),
    ("ntfy://user:p%40ss@ntfy.example.com/alerts-topic-42", ["p@ss", "p%40ss", "alerts-topic-42"]),
])
def test_url_secrets_cover_tokens_passwords_headers_and_parameters(url, secrets):
    redactor = SecretRedactor()
    redactor.add_url(url)
    for secret in secrets:
        assert secret in url_secrets(url)
        assert redactor.redact(f"sent to {secret}!") == "sent to ***!"
    assert redactor.redact(f"loaded {url}") != f"loaded {url}"
    # hosts and settings stay readable
    assert redactor.redact("example.com method=POST mode=insecure") == "example.com method=POST mode=insecure"


def test_any_url_password_is_masked_even_if_unknown():
    assert redact("connecting to smtps://bob:NeverSeen99@mail.example.com:465") == \
        "connecting to smtps://bob:***@mail.example.com:465"


def test_display_target_shows_only_scheme_host_and_port():
    assert display_target("json://u:p@127.0.0.1:8080/hooks/T0KEN?+X=1") == "json://127.0.0.1:8080/…"
    assert display_target("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js") == "discord://***/…"
    assert display_target("mailto://me:pw@smtp.example.com") == "mailto://smtp.example.com"
    assert display_target("tgram://123456789:ABCdefGhIJKlmnOPQRstuvWXyz/12345678") == "tgram://***/…"
    assert display_target("not a url") == "***"


def test_filter_redacts_arguments_and_exception_text():
    redactor = SecretRedactor()
    redactor.add_url("json://host.example/hook/SuperSecret123")
    logger = logging.getLogger("tests.redact.filter")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.addFilter(RedactingFilter(redactor))
    try:
        logger.warning("posting to %s", "/hook/SuperSecret123")
        try:
            raise ValueError("bad url /hook/SuperSecret123")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "SuperSecret123" not in text
    assert "posting to /hook/***" in text and "ValueError: bad url /hook/***" in text


def test_protect_logs_is_idempotent():
    protect_logs()
    protect_logs()
    filters = logging.getLogger("apprise").filters
    assert sum(isinstance(f, RedactingFilter) for f in filters) == 1
