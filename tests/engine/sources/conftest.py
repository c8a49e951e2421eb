"""Fixtures for the source tests: a data directory, and the test InfluxDB 3 endpoint (one per test)."""

from __future__ import annotations

import pytest

from tests.support.influx_server import TOKEN, InfluxServer


@pytest.fixture
def influx():
    """A fresh test InfluxDB 3 endpoint on free ports of 127.0.0.1, stopped after the test."""
    with InfluxServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def write_client(influx):
    """The real influxdb3-python client for database ``db`` (writes over HTTP, queries over Flight)."""
    client = influx.client("db")
    yield client
    client.close()
