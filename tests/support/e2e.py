"""The end-to-end set-up shared by the engine's end-to-end tests: times, the engine command, the endpoints."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
import pytest
from cryptography.fernet import Fernet
from monitors_mcp.store import Database
from monitors_mcp.store.secrets import SecretBox
from tests.support.influx_server import InfluxServer
from tests.support.receivers import HttpReceiver, SmtpReceiver


ENGINE = [sys.executable, "-m", "engine.main"]


ROOT = Path(__file__).resolve().parents[2]


NS = 1_000_000_000


T = 1_714_564_800  # 2024-05-01T12:00:00Z


def at(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def engine(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(ENGINE + list(args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def setup(tmp_path):
    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'monitors.db'}"
    db = Database(url)
    db.migrate()
    with InfluxServer(token="e2e-token") as influx, HttpReceiver() as http, \
            SmtpReceiver(user="alerts", password="mail-s3cret") as smtp:
        env = dict(os.environ, MONITORS_DATABASE_URL=url, MONITORS_SECRET_KEY=key, INFLUXDB3_HOST=influx.flight_url,
                   INFLUXDB3_DATABASE="markets", INFLUXDB3_AUTH_TOKEN="e2e-token", PYTHONPATH=str(ROOT))
        env.pop("MONITORS_ENGINE_DATA_DIR", None)
        yield db, SecretBox([key]), influx, http, smtp, env
    db.dispose()
