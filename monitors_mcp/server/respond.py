"""Turning service results and service errors into tool results.

A success carries the pydantic model as structured content (and as JSON text).
A ``ServiceError`` becomes an ``isError`` result whose text is the error message
and whose structured content holds the same facts as fields (for an invalid rule:
every diagnostic and a valid example). Anything unexpected is logged without the
caller's arguments and answered with a generic message — never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from ..service import ServiceError
from ..store.secrets import SecretKeyError

__all__ = ["error_result", "respond"]

log = logging.getLogger("monitors_mcp.tools")

M = TypeVar("M", bound=BaseModel)


def error_result(error: ServiceError) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=error.message)],
        structured_content=error.to_dict(),
        is_error=True,
    )


def respond(tool: str, action: Callable[[], M]) -> CallToolResult:
    try:
        result = action()
    except ServiceError as exc:
        return error_result(exc)
    except SecretKeyError as exc:
        log.error("tool %s: %s", tool, exc)
        raise ToolError(f"The server's encryption key is not usable: {exc}") from None
    except SQLAlchemyError as exc:
        log.error("tool %s: database error %s", tool, type(exc).__name__)
        raise ToolError("The rule store is not reachable right now; nothing was changed. Try again shortly.") from None
    return CallToolResult(
        content=[TextContent(type="text", text=result.model_dump_json())],
        structured_content=result.model_dump(mode="json"),
    )
