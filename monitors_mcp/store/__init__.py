"""The rule and alert store: models, migrations, database connection and secret encryption.

Importable without the MCP server: the engine uses this package directly.
"""

from .db import Database, default_database_url, migrate
from .models import (
    Alert,
    AlertEvent,
    ApiToken,
    Base,
    EngineLease,
    EngineReplica,
    NotificationChannel,
    NotificationGroup,
    NotificationLog,
    NotificationOutbox,
    Rule,
    RuleChannel,
    RuleState,
    Silence,
    User,
)

__all__ = [
    "Alert",
    "AlertEvent",
    "ApiToken",
    "Base",
    "Database",
    "EngineLease",
    "EngineReplica",
    "NotificationChannel",
    "NotificationGroup",
    "NotificationLog",
    "NotificationOutbox",
    "Rule",
    "RuleChannel",
    "RuleState",
    "Silence",
    "User",
    "default_database_url",
    "migrate",
]
