"""Turning service results and service errors into tool results.

A success carries the pydantic model as structured content (and as JSON text).
A ``ServiceError`` becomes an ``isError`` result whose text is the error message
and whose structured content holds the same facts as fields — ``error``, a stable
``code``, a ``hint``, and for an invalid rule every diagnostic and a valid example.
A store or key failure is answered in the same shape; anything unexpected is logged
without the caller's arguments and answered with a generic message — never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from ..service import ServiceError, Unavailable
from ..store.secrets import SecretKeyError

__all__ = ["error_result", "respond", "store_unavailable"]

log = logging.getLogger("monitors_mcp.tools")

M = TypeVar("M", bound=BaseModel)


def error_result(error: ServiceError) -> CallToolResult:
    text = f"{error.message}\nHint: {error.hint}" if error.hint and error.hint not in error.message else error.message
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
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
        return error_result(Unavailable(f"The server's encryption key is not usable: {exc}", code="secret_key",
                                        hint="The server's operator must set MONITORS_SECRET_KEY to the key the "
                                             "channels were stored with; nothing was changed."))
    except SQLAlchemyError as exc:
        log.error("tool %s: database error %s", tool, type(exc).__name__)
        return error_result(store_unavailable())
    return CallToolResult(
        content=[TextContent(type="text", text=result.model_dump_json())],
        structured_content=result.model_dump(mode="json"),
    )


def store_unavailable() -> Unavailable:
    return Unavailable("The rule store is not reachable right now; nothing was changed.", code="store_unavailable",
                       hint="Try again shortly; if it persists, the server's operator should check the database.")
