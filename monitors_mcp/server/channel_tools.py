"""Tools for notification channels: named apprise URLs that rules name in their notify clause."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..schemas import ChannelDeleted, ChannelList, ChannelOut
from .backend import Backend
from .respond import respond

__all__ = ["register_channel_tools"]

ChannelName = Annotated[str, Field(description="Channel name, e.g. trading_slack")]
Policies = dict[str, Any] | None  # its keys are in add_notification_channel's description (service/channel_policies.py)


def register_channel_tools(mcp: MCPServer, backend: Backend) -> None:
    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False),
        description=(
            "Add a channel for 'notify NAME' with one apprise URL (e.g. slack://A/B/C, "
            "mailtos://user:pass@host), stored encrypted, never shown. policies: group_by "
            "(labels or rule; one message per group after group_wait 30s, then every group_interval 5m), "
            "mute_during (a time window), group_title/group_message (Jinja over alerts)."
        ),
    )
    def add_notification_channel(
        name: ChannelName,
        apprise_url: Annotated[str, Field(description="One apprise URL")],
        policies: Policies = None,
    ) -> Annotated[CallToolResult, ChannelOut]:
        return respond("add_notification_channel",
                       lambda: backend.workspace().channels.add(name, apprise_url, policies))

    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
        description=(
            "Change a channel's apprise URL or policies (see add_notification_channel; omitted keys kept, "
            "null = default). Names cannot change."
        ),
    )
    def update_notification_channel(
        name: ChannelName,
        apprise_url: str | None = None,
        policies: Policies = None,
    ) -> Annotated[CallToolResult, ChannelOut]:
        return respond("update_notification_channel",
                       lambda: backend.workspace().channels.update(name, apprise_url, policies))

    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
        description="Your notification channels: name, scheme, service, host if a plain host name, policies.",
    )
    def list_notification_channels() -> Annotated[CallToolResult, ChannelList]:
        return respond("list_notification_channels", lambda: backend.workspace().channels.list())

    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False),
        description="Delete a notification channel by name; lists the rules that still name it in notify.",
    )
    def delete_notification_channel(name: ChannelName) -> Annotated[CallToolResult, ChannelDeleted]:
        return respond("delete_notification_channel", lambda: backend.workspace().channels.delete(name))
