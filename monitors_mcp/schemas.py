"""What the service returns and the tools send back as structured output (pydantic models).

Field descriptions are kept short: every one of them is sent to the model in
``tools/list``, whose size is budgeted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "DataOut",
    "MeasurementOut",
    "TagOut",
    "AlertOut",
    "AlertPage",
    "ChannelDeleted",
    "ChannelList",
    "ChannelOut",
    "DiagnosticOut",
    "NotificationOut",
    "RuleDeleted",
    "RuleDetail",
    "RuleOut",
    "RulePage",
    "RuleReading",
    "RuleSummary",
    "SeriesState",
    "SilenceList",
    "SilenceOut",
    "ValidationOut",
]


class DiagnosticOut(BaseModel):
    severity: Literal["error", "warning"]
    code: str
    message: str
    line: int
    column: int
    end_line: int
    end_column: int
    hint: str | None = None


class RuleReading(BaseModel):
    name: str | None
    sql: str | None = None
    english: str | None = None


class ValidationOut(BaseModel):
    valid: bool
    diagnostics: list[DiagnosticOut]
    canonical: str | None = None
    rules: list[RuleReading] = Field(default_factory=list, description="Per rule: SQL and plain-English reading")
    tests: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class RuleOut(BaseModel):
    id: int | None = Field(description="None on a dry run")
    name: str
    enabled: bool
    version: int
    text: str
    canonical: str
    notify: list[str]
    created_at: datetime | None = None
    updated_at: datetime | None = None
    stored: bool = True
    tests: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class RuleSummary(BaseModel):
    id: int
    name: str
    enabled: bool
    version: int
    canonical: str
    firing_series: int
    updated_at: datetime


class RulePage(BaseModel):
    rules: list[RuleSummary]
    next_cursor: str | None = Field(None, description="cursor for the next page; None at the end")


class SeriesState(BaseModel):
    labels: dict[str, Any]
    state: str
    severity: str | None
    since: datetime | None
    last_evaluated_at: datetime | None = Field(description="When last_values were recorded")
    last_values: dict[str, Any] | None = Field(description="Refreshed every few minutes while firing")
    flapping_since: datetime | None = Field(None, description="Flapping (notifications held) since then")
    notifications: list[NotificationOut] = Field(default_factory=list, description="Of its open alert")


class RuleDetail(RuleOut):
    series: list[SeriesState] = Field(default_factory=list)
    series_total: int = 0
    silenced_until: datetime | None = None
    error: str | None = Field(None, description="Why its last evaluation failed (series keep their state)")
    error_at: datetime | None = None


class RuleDeleted(BaseModel):
    deleted: bool
    id: int
    name: str
    note: str


class NotificationOut(BaseModel):
    """kind: firing, resolved, escalation, repeat; status: sent, pending, failed, silenced, muted, suppressed."""

    channel: str
    kind: str
    status: str
    at: datetime
    reason: str | None = Field(description="Why it failed or is held")
    next_attempt_at: datetime | None


class AlertOut(BaseModel):
    id: int
    rule_id: int
    rule_name: str
    rule_deleted: bool
    labels: dict[str, Any]
    severity: str
    state: Literal["firing", "resolved"]
    started_at: datetime
    resolved_at: datetime | None
    values_at_start: dict[str, Any] | None
    values_at_resolution: dict[str, Any] | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    notifications: list[NotificationOut] = Field(default_factory=list)


class AlertPage(BaseModel):
    alerts: list[AlertOut]
    next_cursor: str | None = Field(None, description="cursor for the next page; None at the end")


class SilenceOut(BaseModel):
    id: int
    rule_id: int
    rule_name: str
    starts_at: datetime
    ends_at: datetime
    comment: str | None
    active: bool = Field(True, description="In force now")
    extended: bool = Field(False, description="An overlapping silence was extended instead of adding one")


class SilenceList(BaseModel):
    silences: list[SilenceOut]


class ChannelOut(BaseModel):
    name: str
    scheme: str
    host: str | None = Field(description="Plain host names only")
    service: str | None
    created_at: datetime
    policies: dict[str, Any]


class ChannelList(BaseModel):
    channels: list[ChannelOut]


class ChannelDeleted(BaseModel):
    deleted: str
    rules_still_notifying: list[str] = Field(description="Rules still naming it")


class TagOut(BaseModel):
    name: str
    values: list[str] = Field(description="Most frequent first")
    more_values: bool = Field(description="More values exist")


class MeasurementOut(BaseModel):
    name: str
    fields: dict[str, str] = Field(description="Field name: type")
    tags: list[TagOut]
    last_written_at: datetime | None


class DataOut(BaseModel):
    source: str
    measurements: list[str]
    measurements_total: int
    measurement: MeasurementOut | None = None
