"""Building the MCP server: tools, resources and prompt over one store."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from ..store import Database
from ..store.secrets import SecretBox
from .alert_tools import register_alert_tools
from .backend import Backend
from .channel_tools import register_channel_tools
from .guides import register_guides
from .rule_tools import register_rule_tools

__all__ = ["INSTRUCTIONS", "build_server"]

INSTRUCTIONS = """Alert rules on time series. A person says what they want to be alerted about;
write it as a rule in the monitors language (see the resource monitors://docs/language and the
prompt write_alert_rule), check it with validate_alert_rule, store it with create_alert_rule.
list_alerts answers "show me recent alerts". Rules send notifications to channels named in
their notify clause (add_notification_channel). Everything is private to the calling user."""


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

    mcp = MCPServer(
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
    register_guides(mcp)
    return mcp
