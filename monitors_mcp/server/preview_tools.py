"""``preview_alert_rule``: what a rule would have done over past data, with a chart.

It runs the engine's backtest (the live runner over simulated time) on the
engine's configured source (``MONITORS_ENGINE_DATA_DIR``, or InfluxDB 3 through
``INFLUXDB3_HOST`` / ``INFLUXDB3_DATABASE`` / ``INFLUXDB3_AUTH_TOKEN``), reached
through the engine's entry point (``service.engine_link``), and answers with the
same summary as ``monitors backtest --format json`` plus the chart as an image.
The rule is text, or a stored rule's id or name. Without the engine, or without
a source, the answer is an error saying what to install or set.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from ..service import InvalidInput, ServiceError, Workspace
from ..service.engine_link import open_source, use_engine
from ..service.language import parse_one
from ..service.limits import MAX_RULE_TEXT, check_length, preview_bounds
from ..service.rules import stored_rule_text
from ..service.times import check_moment, parse_duration, parse_time
from .backend import Backend
from .respond import error_result

__all__ = ["register_preview_tool", "PreviewOut", "MAX_PREVIEW"]

MAX_PREVIEW = timedelta(days=31)
_REF = re.compile(r"^(?:\d{1,18}|[A-Za-z_][A-Za-z0-9_]{0,127})$")
_DURATION = re.compile(r"^(?:[0-9]+[wdhms])+$")


class PreviewTransition(BaseModel):
    at: str
    labels: dict[str, str]
    from_: str = Field(alias="from")
    to: str
    severity: str | None

    model_config = {"populate_by_name": True}


class PreviewDelivery(BaseModel):
    """status: pending (sent), muted, silenced or suppressed (held, with reason)."""

    channel: str
    status: str
    reason: str | None = None


class PreviewNotification(BaseModel):
    at: str
    labels: dict[str, str]
    kind: str
    title: str
    message: str
    severity: str | None = None
    #: a firing notice sent when what held it (a mute window, a silence, a dependency) ended
    late: bool = False
    #: a firing notice of ``escalate to``
    escalated: bool = False
    deliveries: list[PreviewDelivery] = []


class PreviewOut(BaseModel):
    since: str
    until: str
    evaluations: int
    transitions: list[PreviewTransition]
    notifications: list[PreviewNotification]
    errors: list[str]
    #: set when the preview stopped at its time limit: how far it got
    note: str | None = None


def _note(result: dict, seconds: float) -> str | None:
    stopped = result.get("stopped_at")
    if not stopped:
        return None
    return (f"The preview stopped at {stopped} after its {seconds:g} s: the results cover since up to then "
            f"({result['evaluations']:,} evaluations). Preview a shorter span to see the rest.")


def _parse_time(text: str, now: datetime, what: str) -> datetime:
    """A duration before ``now`` (24h, 7d) or an RFC 3339 time, within the ranges ``service.times`` allows."""
    value = text.strip()
    if value[:1] in tuple("0123456789") and _DURATION.match(value):
        return check_moment(what, now - parse_duration(what, value))
    try:
        return parse_time(what, value)
    except InvalidInput as error:
        if "outside the times" in error.message:
            raise
        raise InvalidInput(f"{what} must be an RFC 3339 time such as 2024-05-01T12:00:00Z, or a duration "
                           f"before now such as 24h or 7d; got {text[:40]!r}.",
                           hint=f"e.g. {what}=\"7d\" or {what}=\"2024-05-01T12:00:00Z\"") from None


def _span(seconds: int) -> str:
    """A span in the duration syntax, largest units first: 7d, 3d12h, 41h40m."""
    parts, left = [], int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts[:2]) or "0s"


def _check_work(start: datetime, end: datetime, every_seconds: int, max_evaluations: int) -> None:
    """Refuse before any work a preview that would run more evaluations than allowed, saying the longest span."""
    every = max(int(every_seconds), 1)
    evaluations = int((end - start).total_seconds()) // every
    if evaluations > max_evaluations:
        longest = _span(every * max_evaluations)
        raise InvalidInput(
            f"This preview would run {evaluations:,} evaluations (one every {_span(every)} from since to until); "
            f"a preview runs at most {max_evaluations:,}, so for this rule it covers at most {longest}.",
            code="preview_too_long", allowed=f"at most {longest} for a rule evaluated every {_span(every)}",
            hint=f'e.g. since="{longest}", or a rule with a longer `every`')


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _rule_text(workspace: Workspace | None, rule: str | int) -> tuple[str, str | None]:
    """(text, stored name): ``rule`` is rule text, or a stored rule's id or name."""
    if isinstance(rule, int) or (isinstance(rule, str) and _REF.match(rule.strip())):
        if workspace is None:
            raise InvalidInput("A stored rule needs a caller to look it up.")
        return stored_rule_text(workspace.rules, rule)  # a single word cannot be rule text
    return str(rule), None


def preview(rule_text: str | int, since: str, until: str | None, workspace: Workspace | None = None
            ) -> CallToolResult:
    try:
        return _preview(rule_text, since, until, workspace)
    except ServiceError as error:
        return error_result(error)


def _preview(rule: str | int, since: str, until: str | None, workspace: Workspace | None) -> CallToolResult:
    text, stored_name = _rule_text(workspace, rule)
    check_length("rule", text, MAX_RULE_TEXT, characters=False)  # the rule's diagnostics place them
    parsed = parse_one(text)
    for what, value in (("since", since), ("until", until or "")):
        if len(value) > 64:
            raise InvalidInput(f"{what} is too long: give an RFC 3339 time or a duration such as 24h.")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = _parse_time(since, now, "since")
    end = _parse_time(until, now, "until") if until else now
    if end <= start:
        raise InvalidInput("until must be after since.", hint="leave until out to preview up to now")
    max_evaluations, seconds = preview_bounds()
    _check_work(start, end, parsed.every_seconds, max_evaluations)
    if end - start > MAX_PREVIEW:
        raise InvalidInput("A preview covers at most 31 days; shorten since/until.", code="preview_too_long",
                           hint='e.g. since="30d", or since and until 31 days apart at most')
    dependencies = []
    if parsed.depends_on and workspace is not None and parsed.depends_on != (parsed.name or stored_name):
        try:  # run alongside, so that the notifications it holds show as held
            dependencies.append((parsed.depends_on, stored_rule_text(workspace.rules, parsed.depends_on)[0]))
        except ServiceError:
            pass  # a dependency that does not exist holds nothing
    windows = {}
    if workspace is not None and parsed.notify:  # the caller's channels' mute windows hold as they would live
        windows = {c.name: c.policies.get("mute_during") for c in workspace.channels.list().channels
                   if c.policies.get("mute_during")}
    with open_source() as source:
        result = use_engine(lambda: source.preview(parsed.canonical, parsed.name or stored_name, start, end,
                                                   seconds=seconds, dependencies=dependencies, channels=windows))
    png = result["chart_png"]
    out = PreviewOut(since=_iso(start), until=_iso(end), evaluations=result["evaluations"],
                     transitions=[PreviewTransition.model_validate(t) for t in result["transitions"]],
                     notifications=[PreviewNotification.model_validate(n) for n in result["notifications"]],
                     errors=result["errors"], note=_note(result, seconds))
    content: list[Any] = [TextContent(type="text", text=out.model_dump_json(by_alias=True))]
    if png is not None:
        content.append(ImageContent(type="image", data=base64.b64encode(png).decode("ascii"), mime_type="image/png"))
    return CallToolResult(content=content, structured_content=out.model_dump(mode="json", by_alias=True))


def register_preview_tool(mcp: MCPServer, backend: Backend) -> None:
    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True),
        description=(
            "Replay a rule (text, or a stored rule's id or name) over past data: the state changes and "
            "notifications (sent or held, per channel) between since and until, and a chart. since/until: "
            "RFC 3339 or a duration before now (24h, 7d); at most 31 days. Stores nothing."
        ),
    )
    def preview_alert_rule(
        rule: Annotated[int | str, Field(description="Rule text, or a stored rule's id or name")],
        since: Annotated[str, Field(description="Start: RFC 3339 or a duration before now, e.g. 24h")],
        until: Annotated[str | None, Field(description="End: RFC 3339 or a duration before now; default now")] = None,
    ) -> Annotated[CallToolResult, PreviewOut]:
        try:
            workspace = backend.workspace()  # previews need an authenticated caller like every other tool
        except ServiceError as error:
            return error_result(error)
        return preview(rule, since, until, workspace)
