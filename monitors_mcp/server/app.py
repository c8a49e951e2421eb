"""Building the MCP server: tools, resources and prompt over one store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult
from mcp_types import Tool as MCPTool
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from ..service import InvalidInput, NotFound, ServiceError
from ..store import Database
from ..store.secrets import SecretBox
from .alert_tools import register_alert_tools
from .backend import Backend
from .channel_tools import register_channel_tools
from .data_tools import register_data_tools
from .guides import register_guides
from .preview_tools import register_preview_tool
from .respond import error_result, store_unavailable
from .rule_tools import register_rule_tools

__all__ = ["INSTRUCTIONS", "MonitorsServer", "build_server", "compact_schema"]

INSTRUCTIONS = """Alert rules on time series. A person says what they want to be alerted about;
look the names up first with describe_data (measurements, then one measurement's fields, tags and
tag values: never guess a name), write the rule in the monitors language (see the resource
monitors://docs/language and the prompt write_alert_rule), check it with validate_alert_rule,
store it with create_alert_rule.
list_alerts answers "show me recent alerts". Rules send notifications to channels named in
their notify clause (add_notification_channel). Everything is private to the calling user."""


class MonitorsServer(MCPServer):
    """``MCPServer`` whose every failed call is answered in one shape — ``error``, a stable ``code``, a
    ``hint`` — as structured content (arguments that fail the input schema get one short line per field,
    without echoing the values: an argument may be a secret URL), and whose tool list is sent compact
    (``compact_schema``).

    A caller for whom ``can_write()`` is False (a read-only token) is shown only the tools
    annotated ``readOnlyHint`` and can call only those; a tool without the annotation counts
    as one that writes.

    With ``limits`` (``monitors_mcp.concurrency.CallLimits``) a user's calls in flight are
    counted — in Redis when replicas share them — and a call over a limit is refused at once."""

    can_write: Callable[[], bool] = staticmethod(lambda: True)
    limits: Any = None
    current_user: Callable[[], int] | None = None

    def _reads_only(self, name: str) -> bool:
        tool = self._tool_manager.get_tool(name)
        return tool is not None and tool.annotations is not None and tool.annotations.read_only_hint is True

    async def list_tools(self) -> list[MCPTool]:
        tools = await super().list_tools()
        if not self.can_write():
            tools = [tool for tool in tools if self._reads_only(tool.name)]
        for tool in tools:
            tool.input_schema = compact_schema(tool.input_schema)
            if tool.output_schema is not None:
                tool.output_schema = compact_schema(tool.output_schema, output=True)
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        if self._tool_manager.get_tool(name) is None:
            return error_result(NotFound(f"There is no tool {name[:64]!r}.", code="unknown_tool",
                                         hint="Call tools/list for the tools this server has."))
        if not self._reads_only(name) and not self.can_write():
            return error_result(ServiceError(
                f"{name} changes your rules, alerts or channels, and this token is read-only.",
                code="read_only_token",
                hint="Use only the tools tools/list shows, or ask the operator for a token that may write."))
        if self.limits is not None and self.current_user is not None:
            from ..concurrency import LimitReached

            try:
                async with self.limits.hold(self.current_user(), name):
                    return await self._call(name, arguments, context)
            except LimitReached as exc:
                return error_result(ServiceError(exc.message, code="too_many_concurrent_calls",
                                                 hint="Wait for your other calls to finish, then call again."))
            except ServiceError as exc:  # not authenticated (``bearer_user``)
                return error_result(exc)
            except ToolError as exc:
                return _failure(name, exc)
        return await self._call(name, arguments, context)

    async def _call(self, name: str, arguments: dict[str, Any], context: Any) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            return _failure(name, exc)


def _failure(name: str, exc: ToolError) -> CallToolResult:
    cause = exc.__cause__
    if isinstance(cause, ServiceError):
        return error_result(cause)
    if isinstance(cause, SQLAlchemyError):
        return error_result(store_unavailable())
    if isinstance(exc, UnexpectedToolError):
        return error_result(ServiceError(
            f"{name} failed inside the server.", code="internal",
            hint="Try the call once more; if it fails again, tell the person: the server's log has the cause."))
    if isinstance(cause, ValidationError):
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "arguments", "problem": err["msg"]}
            for err in cause.errors()
        ]
        lines = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return error_result(InvalidInput(f"Invalid arguments for {name}: {lines}.", code="invalid_arguments",
                                         hint="Check the names and types in the tool's input schema.",
                                         fields=problems))
    return error_result(ServiceError(str(exc), code="tool_error"))


def compact_schema(schema: Any, *, output: bool = False) -> Any:
    """The same JSON Schema without what only costs the model's context: pydantic's generated ``title``
    on every object and property, ``additionalProperties: true`` (the default), and ``anyOf: [X, null]``
    where ``type: [X, "null"]`` says the same; in an ``output`` schema also ``default`` and ``required``
    (a result always carries every field, ``null`` when it has no value)."""
    if isinstance(schema, list):
        return [compact_schema(item, output=output) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if (key == "title" and isinstance(value, str)) or (key == "additionalProperties" and value is True) \
                or (output and key in ("default", "required") and not isinstance(value, dict)):
            continue
        if key == "properties" and isinstance(value, dict):  # property names are data, never keywords
            out[key] = {name: compact_schema(prop, output=output) for name, prop in value.items()}
            continue
        out[key] = compact_schema(value, output=output)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if isinstance(other, dict) and isinstance(other.get("type"), str) and set(other) <= {"type", "format"}:
            del out["anyOf"]
            out.update(other)
            out["type"] = [other["type"], "null"]
    return out


def build_server(
    db: Database,
    secrets: SecretBox,
    current_user: Callable[[], int],
    *,
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
    log_level: str = "WARNING",
    can_write: Callable[[], bool] | None = None,
    limits: Any = None,
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
    if can_write is not None:  # the HTTP transport: read-only tokens see and call only the read tools
        mcp.can_write = can_write  # type: ignore[method-assign]
    if limits is not None:  # per-user calls in flight (monitors_mcp.concurrency.CallLimits)
        mcp.limits, mcp.current_user = limits, current_user
    backend = Backend(db=db, secrets=secrets, current_user=current_user)
    register_data_tools(mcp, backend)
    register_rule_tools(mcp, backend)
    register_alert_tools(mcp, backend)
    register_channel_tools(mcp, backend)
    register_preview_tool(mcp, backend)
    register_guides(mcp)
    return mcp
