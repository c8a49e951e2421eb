"""A rule disabled, deleted or given a new condition closes its open alerts quietly and starts afresh;
a cosmetic change (title, channels) keeps them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from monitors_mcp.store import Alert, AlertEvent, Database, RuleState
from tests.support.mcp_client import BTC, add_alerts


def open_alerts(db: Database, rule_id: int) -> int:  # noqa: F811
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Alert).where(Alert.rule_id == rule_id,
                                                                      Alert.state == "firing"))


def states(db: Database, rule_id: int) -> int:  # noqa: F811
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(RuleState).where(RuleState.rule_id == rule_id))


@pytest.mark.parametrize("action", ["disable", "delete", "new condition"])
def test_closing_actions_resolve_open_alerts_without_losing_history(db, workspace, alice, action):  # noqa: F811
    ws = workspace(alice)
    rule = ws.rules.create(BTC, name=f"btc_{action.replace(' ', '_')}")
    add_alerts(db, rule.id, alice, 2)
    assert open_alerts(db, rule.id) >= 1
    if action == "disable":
        ws.rules.update(rule.id, enabled=False)
    elif action == "delete":
        ws.rules.delete(rule.id)
    else:
        ws.rules.update(rule.id, text='last(crypto.price{symbol="BTC"}) > 80000')
    assert open_alerts(db, rule.id) == 0 and states(db, rule.id) == 0
    with db.session() as s:
        kinds = s.scalars(select(AlertEvent.kind).join(Alert).where(Alert.rule_id == rule.id)).all()
    assert "closed" in kinds
    assert len(ws.alerts.list(rule=rule.id).alerts) == 2  # the history stays


def test_a_cosmetic_change_keeps_open_alerts(db, workspace, alice):  # noqa: F811
    ws = workspace(alice)
    rule = ws.rules.create(BTC, name="btc_cosmetic")
    add_alerts(db, rule.id, alice, 2)
    before = open_alerts(db, rule.id)
    ws.rules.update(rule.id, text='rule btc_cosmetic { when last(crypto.price{symbol="BTC"}) > 70000\n'
                                  ' title "New title" }')
    assert open_alerts(db, rule.id) == before
