"""``describe_data``: the names in the configured time-series source, to write rules that match the data."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..schemas import DataOut
from ..service.data import DataService
from .backend import Backend
from .respond import respond

__all__ = ["register_data_tools"]


def register_data_tools(mcp: MCPServer, backend: Backend) -> None:
    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True),
        description=(
            "Look up names before writing a rule: without measurement, the measurements; with one, its "
            "fields and types, tags with their most frequent values, and when it was last written. Use "
            "the exact names in rules (measurement.field{tag=\"value\"})."
        ),
    )
    def describe_data(
        measurement: Annotated[str | None, Field(description="A measurement to describe")] = None,
    ) -> Annotated[CallToolResult, DataOut]:
        def run() -> DataOut:
            backend.current_user()  # an authenticated caller, like every other tool
            return DataService().describe(measurement)

        return respond("describe_data", run)
