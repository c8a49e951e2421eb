"""The MCP server: thin tools over the service layer, the docs as resources, one prompt."""

from .app import INSTRUCTIONS, build_server
from .backend import bearer_can_write, bearer_user, fixed_user

__all__ = ["INSTRUCTIONS", "bearer_can_write", "bearer_user", "build_server", "fixed_user"]
