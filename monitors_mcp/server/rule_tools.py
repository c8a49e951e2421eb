"""Tools for alert rules: validate, create, list, get, update, delete; silences. Thin: each calls the service."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..schemas import RuleDeleted, RuleDetail, RuleOut, RulePage, SilenceList, SilenceOut, ValidationOut
from .backend import Backend
from .respond import respond

__all__ = ["register_rule_tools"]

RuleText = Annotated[
    str,
    Field(description="A condition, or one rule NAME { when ... } block"),
]
RuleRef = Annotated[int | str, Field(description="Rule id or rule name")]
Limit = Annotated[int | None, Field(ge=1, le=200, description="Page size, default 50")]
Cursor = Annotated[str | None, Field(description="next_cursor from the previous page")]
DataLater = Annotated[bool, Field(description="true: accept names not in the data yet")]

READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def register_rule_tools(mcp: MCPServer, backend: Backend) -> None:
    @mcp.tool(
        annotations=READ,
        description=(
            "Check a rule without storing it: diagnostics (line, column, hint), canonical text, per rule its "
            "SQL and English reading, its tests' results, notes. Look names up with describe_data first."
        ),
    )
    def validate_alert_rule(rule: RuleText, data_arrives_later: DataLater = False
                            ) -> Annotated[CallToolResult, ValidationOut]:
        return respond("validate_alert_rule",
                       lambda: backend.workspace().rules.validate(rule, data_arrives_later))

    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False),
        description=(
            "Store a new alert rule: a bare condition (then pass name), e.g. "
            'last(crypto.price{symbol="BTC"}) > 70000, or one block '
            "rule NAME { when COND  for 5m  severity critical  notify CHANNEL }. Names are unique per "
            "user. A measurement or field the data lacks is an error (see describe_data) unless "
            "data_arrives_later=true. dry_run=true stores nothing. Test blocks in the text run first; a "
            "failing one refuses the rule."
        ),
    )
    def create_alert_rule(
        rule: RuleText,
        name: Annotated[str | None, Field(description="Rule name when rule is a bare condition")] = None,
        dry_run: Annotated[bool, Field(description="Validate only, store nothing")] = False,
        data_arrives_later: DataLater = False,
    ) -> Annotated[CallToolResult, RuleOut]:
        return respond("create_alert_rule",
                       lambda: backend.workspace().rules.create(rule, name, dry_run, data_arrives_later))

    @mcp.tool(
        annotations=READ,
        description=(
            "List your alert rules by name, with how many series are firing. query filters on name or "
            "condition text (case-insensitive substring). Page with cursor=next_cursor."
        ),
    )
    def list_alert_rules(
        query: Annotated[str | None, Field(description="Substring of name or condition")] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, RulePage]:
        return respond("list_alert_rules", lambda: backend.workspace().rules.list(query, limit, cursor))

    @mcp.tool(
        annotations=READ,
        description=(
            "One rule by id or name: text, canonical form, channels, silence, tests, and each series' "
            "state (inactive, pending, firing; flapping_since), last values and open alert's notifications."
        ),
    )
    def get_alert_rule(
        rule: RuleRef,
        run_tests: Annotated[bool, Field(description="Run the rule's test blocks again")] = False,
    ) -> Annotated[CallToolResult, RuleDetail]:
        return respond("get_alert_rule", lambda: backend.workspace().rules.get(rule, run_tests))

    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
        description=(
            "Change a rule; what you leave out is kept. text replaces the rule text, keeping its name "
            "(another name is an error unless rename=true); enabled=false pauses it, true resumes it. "
            "Names are checked as in create_alert_rule."
        ),
    )
    def update_alert_rule(
        rule: RuleRef,
        text: Annotated[str | None, Field(description="New full rule text")] = None,
        enabled: Annotated[bool | None, Field(description="Pause (false) or resume (true)")] = None,
        rename: Annotated[bool, Field(description="true: take the new name written in text")] = False,
        data_arrives_later: DataLater = False,
    ) -> Annotated[CallToolResult, RuleOut]:
        return respond("update_alert_rule", lambda: backend.workspace().rules.update(
            rule, text, enabled, rename, data_arrives_later))

    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False),
        description=(
            "Delete a rule by id or name: it stops running and its name is free again; its past "
            "alerts stay in list_alerts. To pause instead, use update_alert_rule with enabled=false."
        ),
    )
    def delete_alert_rule(rule: RuleRef) -> Annotated[CallToolResult, RuleDeleted]:
        return respond("delete_alert_rule", lambda: backend.workspace().rules.delete(rule))

    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False),
        description=(
            "Mute a rule's notifications for a while (alerts are still recorded): duration (30m, 2h, 1d) "
            "or until (ISO 8601), and start (ISO 8601) for a silence that begins later. One overlapping "
            "the rule's silence extends it (extended=true)."
        ),
    )
    def silence_alert_rule(
        rule: RuleRef,
        duration: Annotated[str | None, Field(description="How long, e.g. 2h")] = None,
        until: Annotated[str | None, Field(description="End time, ISO 8601")] = None,
        start: Annotated[str | None, Field(description="Start time, ISO 8601; default now")] = None,
        comment: Annotated[str | None, Field(description="Why, for people")] = None,
    ) -> Annotated[CallToolResult, SilenceOut]:
        return respond(
            "silence_alert_rule", lambda: backend.workspace().silences.add(rule, duration, until, comment, start)
        )

    @mcp.tool(
        annotations=READ,
        description="Silences in force or still to come, of one rule (id or name) or of all your rules.",
    )
    def list_silences(rule: Annotated[int | str | None, Field(description="Rule id or name")] = None
                      ) -> Annotated[CallToolResult, SilenceList]:
        return respond("list_silences", lambda: backend.workspace().silences.list(rule))

    @mcp.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
        description="End a silence now (id from list_silences); one that has not begun is cancelled.",
    )
    def end_silence(silence: Annotated[int, Field(description="Silence id")]) -> Annotated[CallToolResult, SilenceOut]:
        return respond("end_silence", lambda: backend.workspace().silences.end(silence))
