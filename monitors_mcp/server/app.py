"""Building the MCP server: tools, resources and prompt over one store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, TextContent
from pydantic import ValidationError

from ..store import Database
from ..store.secrets import SecretBox
from .alert_tools import register_alert_tools
from .backend import Backend
from .channel_tools import register_channel_tools
from .guides import register_guides
from .preview_tools import register_preview_tool
from .rule_tools import register_rule_tools

__all__ = ["INSTRUCTIONS", "MonitorsServer", "build_server"]

INSTRUCTIONS = """Alert rules on time series. A person says what they want to be alerted about;
write it as a rule in the monitors language (see the resource monitors://docs/language and the
prompt write_alert_rule), check it with validate_alert_rule, store it with create_alert_rule.
list_alerts answers "show me recent alerts". Rules send notifications to channels named in
their notify clause (add_notification_channel). Everything is private to the calling user."""


class MonitorsServer(MCPServer):
    """``MCPServer`` whose answer to arguments that fail the input schema is one short line per
    field, without echoing the values (an argument may be a secret URL)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            problems = [
                {"field": ".".join(str(p) for p in err["loc"]) or "arguments", "problem": err["msg"]}
                for err in cause.errors()
            ]
            lines = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
            message = f"Invalid arguments for {name}: {lines}. Check the types in the tool's input schema."
            return CallToolResult(
                content=[TextContent(type="text", text=message)],
                structured_content={"error": message, "code": "invalid_arguments", "fields": problems},
                is_error=True,
            )


def build_server(
    db: Database,
    secrets: SecretBox,
    current_user: Callable[[], int],
    *,
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
    log_level: str = "WARNING",
) -> MCPServer:
    from .. import __version__

    mcp = MonitorsServer(
        "monitors",
        title="Monitors",
        instructions=INSTRUCTIONS,
        version=__version__,
        token_verifier=token_verifier,
        auth=auth,
        log_level=log_level,  # type: ignore[arg-type]
    )
    backend = Backend(db=db, secrets=secrets, current_user=current_user)
    register_rule_tools(mcp, backend)
    register_alert_tools(mcp, backend)
    register_channel_tools(mcp, backend)
    register_preview_tool(mcp, backend)
    register_guides(mcp)
    return mcp
