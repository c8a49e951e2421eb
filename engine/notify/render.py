"""Rendering ``title`` and ``message``: the bounded sandbox, a 64 KiB output cap, clear errors.

:func:`render_template` renders one template through ``generate()``, counting
the bytes of each chunk against ``Limits.output_bytes`` and checking the
deadline between chunks (the sandbox checks it inside loops and calls too).
Every way a template can fail — syntax, an undefined variable, a sandbox
refusal, a time or size limit, an exception in a filter — becomes one
:class:`RenderError` naming the template and, where known, its line.

:func:`render_notification` renders a state-machine notification with the
rule's templates, or the defaults when the rule has none. A rule's own
templates render in a worker process with a memory limit (:mod:`.worker`);
the defaults, which are ours, render in this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from .defaults import DEFAULT_GROUP_MESSAGE, DEFAULT_GROUP_TITLE, DEFAULT_MESSAGE, DEFAULT_TITLE
from .sandbox import LimitExceeded, Limits, bounded_sandbox, budget
from .variables import template_variables

__all__ = ["RenderError", "RenderedNotification", "render_template", "render_notification", "render_group",
           "notify_type"]


class RenderError(Exception):
    """A template could not be rendered; the message says which, where and why."""

    def __init__(self, template: str, reason: str, line: int | None = None) -> None:
        self.template = template
        self.reason = reason
        self.line = line
        where = f"{template} template" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class RenderedNotification:
    """What the notifier sends: text, an apprise notification type, and the key."""

    title: str
    body: str
    notify_type: str = "info"
    idempotency_key: str | None = None
    kind: str | None = None


def _template_line(error: BaseException) -> int | None:
    """The template line an exception was raised at (Jinja rewrites tracebacks to it)."""
    line = getattr(error, "lineno", None)
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_template(source: str, variables: Mapping[str, Any], *, limits: Limits = Limits(),
                    name: str = "message") -> str:
    """Render ``source`` with ``variables`` under ``limits``; raise :class:`RenderError`."""
    env = bounded_sandbox()
    try:
        template = env.template(source)
    except TemplateSyntaxError as error:
        raise RenderError(name, f"syntax error: {error.message}", error.lineno) from None
    chunks: list[str] = []
    size = 0
    with budget(limits) as current:
        stream = template.generate(**variables)
        try:
            for chunk in stream:
                size += len(chunk.encode("utf-8", "surrogatepass"))
                if size > limits.output_bytes:
                    raise RenderError(name, f"output is larger than {limits.output_bytes // 1024} KiB")
                current.tick()
                chunks.append(chunk)
        except RenderError:
            raise
        except LimitExceeded as error:
            raise RenderError(name, str(error), _template_line(error)) from None
        except UndefinedError as error:
            raise RenderError(name, f"{error.message}", _template_line(error)) from None
        except SecurityError as error:
            raise RenderError(name, f"not allowed: {error}", _template_line(error)) from None
        except RecursionError as error:
            raise RenderError(name, "recursion too deep", _template_line(error)) from None
        except MemoryError as error:
            raise RenderError(name, "out of memory", _template_line(error)) from None
        except Exception as error:  # a filter or operator raised: the template is at fault
            raise RenderError(name, f"{type(error).__name__}: {error}", _template_line(error)) from None
        finally:
            stream.close()
    return "".join(chunks)


def _render_pair(title: str | None, message: str | None, variables: Mapping[str, Any],
                 limits: Limits) -> tuple[str, str]:
    """Title and message: a rule's own templates in a worker process (``.worker``), the defaults here."""
    from .worker import render_pool

    pool = render_pool() if title is not None or message is not None else None
    if pool is None:
        return (render_template(title if title is not None else DEFAULT_TITLE, variables, limits=limits, name="title"),
                render_template(message if message is not None else DEFAULT_MESSAGE, variables, limits=limits,
                                name="message"))
    texts = pool.render([("title", title if title is not None else DEFAULT_TITLE),
                         ("message", message if message is not None else DEFAULT_MESSAGE)], variables, limits)
    return texts[0], texts[1]


def notify_type(kind: str | None, severity: str | None) -> str:
    """Apprise's notification type: ``success`` when resolved, else by severity."""
    if kind == "resolved":
        return "success"
    return {"critical": "failure", "warning": "warning"}.get(severity or "", "info")


def render_notification(notification, *, rule_name: str | None, condition: str,
                        labels: Mapping[str, str] | None = None, description: str | None = None,
                        title: str | None = None, message: str | None = None,
                        limits: Limits = Limits()) -> RenderedNotification:
    """Render an ``engine.state.Notification`` with the rule's templates (or the defaults).

    ``title``/``message`` are the rule's templates, ``None`` for the defaults.
    Raises :class:`RenderError` when a template fails.
    """
    variables = template_variables(notification, rule_name=rule_name, condition=condition,
                                   labels=labels, description=description)
    title_text, body = _render_pair(title, message, variables, limits)
    return RenderedNotification(
        title=title_text.strip(),
        body=body,
        notify_type=notify_type(notification.kind, notification.severity),
        idempotency_key=notification.idempotency_key,
        kind=notification.kind,
    )


_SEVERITY_ORDER = {"critical": 3, "warning": 2, "info": 1}
_MAX_LISTED_TITLE = 300


def render_group(alerts: list[Mapping[str, Any]], *, group: Mapping[str, str] | None = None,
                 title: str | None = None, message: str | None = None,
                 limits: Limits = Limits()) -> RenderedNotification:
    """One message for several notifications of a grouped channel.

    ``alerts``: each notification's template variables (:func:`~.variables.template_variables`) plus its
    rendered ``title``, oldest first; ``group``: the group's values of the channel's ``group_by`` labels;
    ``title``/``message``: group templates, ``None`` for the defaults (which render in this process).
    Raises :class:`RenderError` when a template fails.
    """
    listed = [{**alert, "title": str(alert.get("title") or "")[:_MAX_LISTED_TITLE]} for alert in alerts]
    firing = [alert for alert in listed if alert.get("state") != "resolved"]
    resolved = [alert for alert in listed if alert.get("state") == "resolved"]
    severity = max((alert.get("severity") for alert in firing if alert.get("severity")),
                   key=lambda name: _SEVERITY_ORDER.get(name, 0), default=None)
    variables = {"alerts": listed, "firing": firing, "resolved": resolved, "group": dict(group or {}),
                 "severity": severity}
    if title is None and message is None:
        title_text = render_template(DEFAULT_GROUP_TITLE, variables, limits=limits, name="group title")
        body = render_template(DEFAULT_GROUP_MESSAGE, variables, limits=limits, name="group message")
    else:
        from .worker import render_pool

        sources = [("group title", title if title is not None else DEFAULT_GROUP_TITLE),
                   ("group message", message if message is not None else DEFAULT_GROUP_MESSAGE)]
        pool = render_pool()
        if pool is None:
            title_text, body = (render_template(text, variables, limits=limits, name=name) for name, text in sources)
        else:
            title_text, body = pool.render(sources, variables, limits)
    return RenderedNotification(
        title=title_text.strip(),
        body=body,
        notify_type="success" if not firing else notify_type("firing", severity),
        kind="group",
    )
