"""`monitors demo`, the README's first command: rule created, alert fired, message delivered, alert listed."""

from __future__ import annotations

import json

from monitors_dsl.cli import main


def test_demo_fires_delivers_and_lists_the_alert(tmp_path, capsys):
    code = main(["demo", "--keep", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Alert me if Bitcoin goes above $70k" in out
    assert 'when last(crypto.price{symbol="BTC"}, 5m) > 70000' in out
    assert "→  firing" in out and "→  resolved" in out
    assert "The webhook received 2 notifications:" in out
    assert "BTC above 70k: BTC is at 70" in out
    listed = [json.loads(line.strip()) for line in out.splitlines() if line.strip().startswith('{"id"')]
    assert [(a["rule"], a["state"], a["severity"]) for a in listed] == [("btc_above_70k", "resolved", "critical")]
    assert listed[0]["values_at_start"] != listed[0]["values_at_resolution"]
    assert (tmp_path / "monitors.db").exists() and (tmp_path / "crypto.csv").exists()
