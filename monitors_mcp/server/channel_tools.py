"""Tools for notification channels: named apprise URLs that rules name in their notify clause."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..schemas import ChannelDeleted, ChannelList, ChannelOut
from .backend import Backend
from .respond import respond

__all__ = ["register_channel_tools"]

ChannelName = Annotated[str, Field(description="Channel name, e.g. trading_slack")]


def register_channel_tools(mcp: MCPServer, backend: Backend) -> None:
    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False),
        description=(
            "Add a notification channel: a name rules use in 'notify NAME', and exactly one apprise URL, "
            "e.g. slack://TokenA/TokenB/TokenC, discord://id/token, mailtos://user:pass@example.com, "
            "jsons://host/path, ntfys://host/topic. The URL is stored encrypted and never shown again."
        ),
    )
    def add_notification_channel(
        name: ChannelName,
        apprise_url: Annotated[str, Field(description="One apprise URL")],
    ) -> Annotated[CallToolResult, ChannelOut]:
        return respond("add_notification_channel", lambda: backend.workspace().channels.add(name, apprise_url))

    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
        description="Your notification channels: name, scheme, service, and host where it is a plain host name.",
    )
    def list_notification_channels() -> Annotated[CallToolResult, ChannelList]:
        return respond("list_notification_channels", lambda: backend.workspace().channels.list())

    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False),
        description="Delete a notification channel by name; lists the rules that still name it in notify.",
    )
    def delete_notification_channel(name: ChannelName) -> Annotated[CallToolResult, ChannelDeleted]:
        return respond("delete_notification_channel", lambda: backend.workspace().channels.delete(name))
