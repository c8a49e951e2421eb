"""End to end through real parts: line protocol into the test InfluxDB 3 endpoint, a rule and channels created
through the service the MCP tools call, the real ``monitors-engine`` command, real HTTP and SMTP receivers,
and ``list_alerts`` reading the alert back."""

from __future__ import annotations

import signal
import subprocess
import time


from monitors_mcp.service import UserService, Workspace
from tests.support.e2e import ENGINE, NS, ROOT, T, at, engine, setup  # noqa: F401


def test_alert_from_line_protocol_to_http_and_smtp_exactly_once(setup) -> None:
    db, secrets, influx, http, smtp, env = setup
    writer = influx.client("markets")
    writer.write(f"crypto,symbol=BTC price=69000 {(T - 30) * NS}")
    writer.write(f"crypto,symbol=ETH price=3000 {(T - 30) * NS}")

    user = UserService(db).add_user("trader")
    ws = Workspace(db, user, secrets)
    ws.channels.add("hook", http.url("json", "/hook"))
    ws.channels.add("mail", smtp.url(to="desk@example.com"))
    ws.rules.create('rule btc_above_70k {\n  when last(crypto.price{symbol="BTC"}, 1m) > 70000\n'
                    '  severity critical\n  notify hook, mail\n'
                    '  title "BTC above 70k"\n  message "BTC is at {{ value | round(0) }} USD"\n}')

    quiet = engine(env, "run", "--once", "--at", at(T))
    assert quiet.returncode == 0, quiet.stderr
    assert "0 notifications" in quiet.stdout and http.count == 0 and smtp.count == 0

    writer.write(f"crypto,symbol=BTC price=71234 {(T + 30) * NS}")
    writer.close()
    fired = engine(env, "run", "--once", "--at", at(T + 60))
    assert fired.returncode == 0, fired.stderr
    assert "sent 2" in fired.stdout
    assert http.wait_for(1) and smtp.wait_for(1)

    for moment in (T + 60, T + 120):  # the same tick again, then a later one still firing: nothing new
        again = engine(env, "run", "--once", "--at", at(moment))
        assert again.returncode == 0, again.stderr
        assert "0 notifications" in again.stdout and "sent 0" in again.stdout
    time.sleep(0.3)
    assert http.count == 1 and smtp.count == 1
    assert http.received[0].data["title"] == "BTC above 70k"
    assert http.received[0].data["message"] == "BTC is at 71234.0 USD"
    assert "BTC is at 71234.0 USD" in smtp.received[0].data.get("body", smtp.received[0].body.decode())
    for secret in ("mail-s3cret", "e2e-token"):
        assert secret not in fired.stdout + fired.stderr

    (alert,) = ws.alerts.list().alerts
    assert alert.rule_name == "btc_above_70k" and alert.state == "firing" and alert.severity == "critical"
    assert alert.values_at_start == {'last(crypto.price{symbol="BTC"}, 1m)': 71234.0}


def test_bad_configuration_is_one_line_without_traceback(setup) -> None:
    *_, env = setup
    result = engine(dict(env, INFLUXDB3_HOST="", INFLUXDB3_DATABASE=""), "run", "--once")
    assert result.returncode == 2
    assert "no time-series source" in result.stderr and "Traceback" not in result.stderr
    bad_key = engine(dict(env, MONITORS_SECRET_KEY="not-a-key"), "run", "--once")
    assert bad_key.returncode != 0 and "Traceback" not in bad_key.stderr and "Fernet" in bad_key.stderr


def test_live_loop_stops_on_sigterm_with_exit_0(setup, tmp_path) -> None:
    *_, env = setup
    data = tmp_path / "data"
    data.mkdir()
    (data / "crypto.csv").write_text("time,symbol,price\n2024-05-01T11:59:00Z,BTC,71000\n")
    process = subprocess.Popen(ENGINE + ["run", "--data", str(data)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            if "engine running" in line:
                break
        assert any("engine running" in line for line in lines), "".join(lines)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
