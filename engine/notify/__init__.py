"""Notifications: render ``title``/``message`` safely, deliver through apprise, keep secrets out of logs.

    rendered = render_notification(notification, rule_name="btc_above_70k", condition=text,
                                   labels={"symbol": "BTC"}, title=rule.title, message=rule.message)
    outcomes = deliver(rendered, decrypted_urls, RetryPolicy(deadline=300))
    # write the notification log (rendered.idempotency_key) for each delivered outcome

- :mod:`.sandbox` — the bounded Jinja2 sandbox (time, value size, total size);
- :mod:`.render` — rendering with a 64 KiB output cap and :class:`RenderError`;
- :mod:`.defaults` — the title and message used when a rule has none;
- :mod:`.variables` — the template variables of a notification;
- :mod:`.deliver` — apprise delivery, per-URL outcomes, retries with backoff;
- :mod:`.redact` — the log filter that masks channel secrets;
- :mod:`.dispatch` — the dispatcher: outbox rows → rendered → delivered → ``sent``, with retries, per-alert
  order and claims between replicas (imported as ``engine.notify.dispatch``: it reads the store).
"""

from .defaults import DEFAULT_GROUP_MESSAGE, DEFAULT_GROUP_TITLE, DEFAULT_MESSAGE, DEFAULT_TITLE
from .deliver import DeliveryOutcome, RetryPolicy, deliver, deliver_async
from .redact import display_target, protect_logs, protect_url, redact
from .render import (RenderedNotification, RenderError, notify_type, render_group, render_notification,
                     render_template)
from .sandbox import BoundedSandbox, LimitExceeded, Limits, bounded_sandbox
from .variables import template_variables

__all__ = [
    "Limits",
    "LimitExceeded",
    "BoundedSandbox",
    "bounded_sandbox",
    "RenderError",
    "RenderedNotification",
    "render_template",
    "render_notification",
    "render_group",
    "notify_type",
    "template_variables",
    "DEFAULT_TITLE",
    "DEFAULT_MESSAGE",
    "DEFAULT_GROUP_TITLE",
    "DEFAULT_GROUP_MESSAGE",
    "RetryPolicy",
    "DeliveryOutcome",
    "deliver",
    "deliver_async",
    "redact",
    "protect_logs",
    "protect_url",
    "display_target",
]
