"""The MCP server's tools as the tests expect them: name → (read only, destructive, idempotent)."""

from __future__ import annotations



EXPECTED_TOOLS = {
    "describe_data": (True, False, True),
    "validate_alert_rule": (True, False, True),
    "create_alert_rule": (False, False, False),
    "list_alert_rules": (True, False, True),
    "get_alert_rule": (True, False, True),
    "update_alert_rule": (False, False, True),
    "delete_alert_rule": (False, True, False),
    "list_alerts": (True, False, True),
    "acknowledge_alert": (False, False, True),
    "silence_alert_rule": (False, False, False),
    "list_silences": (True, False, True),
    "end_silence": (False, False, True),
    "add_notification_channel": (False, False, False),
    "update_notification_channel": (False, False, True),
    "list_notification_channels": (True, False, True),
    "delete_notification_channel": (False, True, False),
    "preview_alert_rule": (True, False, True),
}
