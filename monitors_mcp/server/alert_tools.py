"""Tools for alert history: list it, acknowledge an alert."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..schemas import AlertOut, AlertPage
from .backend import Backend
from .respond import respond

__all__ = ["register_alert_tools"]


def register_alert_tools(mcp: MCPServer, backend: Backend) -> None:
    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
        description=(
            "Your alerts, newest first, one per firing episode of a series: labels, severity, times, values, "
            "each notification's channel and status. For 'show me recent alerts' use since=24h. Filters: "
            "rule (id or name), state, since (24h, 7d or ISO time; alerts firing at any time since). Page "
            "with cursor=next_cursor."
        ),
    )
    def list_alerts(
        rule: Annotated[int | str | None, Field(description="Rule id or name")] = None,
        state: Annotated[Literal["firing", "resolved"] | None, Field(description="Only this state")] = None,
        since: Annotated[str | None, Field(description="24h, 7d, or an ISO 8601 time")] = None,
        limit: Annotated[int | None, Field(ge=1, le=200, description="Page size, default 50")] = None,
        cursor: Annotated[str | None, Field(description="next_cursor from the previous page")] = None,
    ) -> Annotated[CallToolResult, AlertPage]:
        return respond("list_alerts", lambda: backend.workspace().alerts.list(rule, state, since, limit, cursor))

    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
        description="Mark an alert (id from list_alerts) as seen by you. Acknowledging twice changes nothing.",
    )
    def acknowledge_alert(alert: Annotated[int, Field(description="Alert id")]) -> Annotated[CallToolResult, AlertOut]:
        return respond("acknowledge_alert", lambda: backend.workspace().alerts.acknowledge(alert))
