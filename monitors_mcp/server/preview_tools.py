"""``preview_alert_rule``: what a rule would have done over past data, with a chart.

It runs the engine's backtest (the live runner over simulated time) on the
engine's configured source (``engine.config``: ``MONITORS_ENGINE_DATA_DIR`` or
InfluxDB 3 through ``INFLUXDB3_HOST`` / ``INFLUXDB3_DATABASE`` /
``INFLUXDB3_AUTH_TOKEN``), and answers with the same summary as
``monitors backtest --format json`` plus the chart as an image. The engine's
packages are imported only when the tool runs; without them the tool says
what to install.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from ..service import ServiceError
from ..service.language import parse_one
from ..service.limits import MAX_RULE_TEXT, check_length
from .backend import Backend
from .respond import error_result

__all__ = ["register_preview_tool", "PreviewOut", "MAX_PREVIEW"]

MAX_PREVIEW = timedelta(days=31)
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class PreviewTransition(BaseModel):
    at: str
    labels: dict[str, str]
    from_: str = Field(alias="from")
    to: str
    severity: str | None

    model_config = {"populate_by_name": True}


class PreviewNotification(BaseModel):
    at: str
    labels: dict[str, str]
    kind: str
    title: str
    message: str


class PreviewOut(BaseModel):
    since: str
    until: str
    evaluations: int
    transitions: list[PreviewTransition]
    notifications: list[PreviewNotification]
    errors: list[str]


def _parse_time(text: str, now: datetime, what: str) -> datetime:
    text = text.strip()
    match = _DURATION.match(text)
    if text and match and any(match.groups()):
        weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return now - timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ToolError(f"{what} must be an RFC 3339 time such as 2024-05-01T12:00:00Z, or a duration "
                        f"before now such as 24h or 7d; got {text[:40]!r}.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def preview(rule_text: str, since: str, until: str | None) -> CallToolResult:
    try:
        check_length("rule", rule_text, MAX_RULE_TEXT)
        parsed = parse_one(rule_text)
    except ServiceError as error:
        return error_result(error)
    for what, value in (("since", since), ("until", until or "")):
        if len(value) > 64:
            raise ToolError(f"{what} is too long: give an RFC 3339 time or a duration such as 24h.")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = _parse_time(since, now, "since")
    end = _parse_time(until, now, "until") if until else now
    if end <= start:
        raise ToolError("until must be after since.")
    if end - start > MAX_PREVIEW:
        raise ToolError("A preview covers at most 31 days; shorten since/until.")
    try:
        from engine.backtest import backtest
        from engine.chart import render_chart
        from engine.config import ConfigError, load_config
        from engine.rules import rule_from_text
        from engine.sources import SourceError
    except ImportError as error:
        raise ToolError(f"Previews need the engine's packages ({error.name}); install them with: "
                        'pip install "monitors-mcp[engine]"') from None
    try:
        source = load_config().open_source()
    except ConfigError as error:
        raise ToolError(f"No time-series source is configured for previews: {error}") from None
    except SourceError as error:
        raise ToolError(f"The time-series source cannot be opened: {error}") from None
    try:
        with source:
            rule = rule_from_text(parsed.canonical, name=parsed.name)
            result = backtest([rule], source, start, end)
    except SourceError as error:
        raise ToolError(f"The time-series source failed: {error}") from None
    except ValueError as error:
        raise ToolError(str(error)) from None
    (summary,) = result.to_json()["rules"]
    errors = sorted({f"{_iso(at)}: {message}" for at, _, message in result.errors})[:10]
    out = PreviewOut(since=_iso(start), until=_iso(end), evaluations=result.ticks,
                     transitions=[PreviewTransition.model_validate(t) for t in summary["transitions"]],
                     notifications=[PreviewNotification.model_validate(n) for n in summary["notifications"]],
                     errors=errors)
    content: list[Any] = [TextContent(type="text", text=out.model_dump_json(by_alias=True))]
    try:
        png = render_chart(result)
        content.append(ImageContent(type="image", data=base64.b64encode(png).decode("ascii"), mime_type="image/png"))
    except ImportError:
        pass  # no chart without matplotlib; the summary stands on its own
    return CallToolResult(content=content, structured_content=out.model_dump(mode="json", by_alias=True))


def register_preview_tool(mcp: MCPServer, backend: Backend) -> None:
    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True),
        description=(
            "Replay a rule over past data before storing it: the state changes and the notifications it "
            "would have sent between since and until, and a chart of the series, thresholds and firing "
            "spans. since/until: RFC 3339 or a duration before now (24h, 7d); at most 31 days. "
            "Stores nothing."
        ),
    )
    def preview_alert_rule(
        rule: Annotated[str, Field(description="Rule text, as for validate_alert_rule")],
        since: Annotated[str, Field(description="Start: RFC 3339 or a duration before now, e.g. 24h")],
        until: Annotated[str | None, Field(description="End: RFC 3339 or a duration before now; default now")] = None,
    ) -> Annotated[CallToolResult, PreviewOut]:
        backend.current_user()  # previews need an authenticated caller like every other tool
        return preview(rule, since, until)
