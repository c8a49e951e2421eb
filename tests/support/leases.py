"""Helpers shared by the lease, health and fault tests: a MariaDB store per module and xdist worker."""

from __future__ import annotations

import hashlib
import os
import re

import pytest

from monitors_mcp.store import Database
from tests.support.store import mysql_base_url
from tests.support import mariadb

__all__ = ["mysql_database", "drop", "wipe", "store"]


def mysql_database(request, tag: str = "") -> Database:
    """A fresh, migrated MariaDB database for this test module (or ``tag``) and xdist worker."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    module = re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])[:24]
    digest = hashlib.sha1(f"{request.module.__name__}{tag}{os.getpid()}".encode()).hexdigest()[:6]
    url = mariadb.database_url(mysql_base_url(), f"mt_{worker}_{module}{tag}_{digest}")
    db = Database(url)
    db.migrate()
    return db


@pytest.fixture(scope="module")
def store(request):
    """A MariaDB store for the test module that imports this fixture, dropped after it."""
    database = mysql_database(request)
    yield database
    drop(database)


def drop(db: Database) -> None:
    db.dispose()
    mariadb.drop_database(db.url)


def wipe(db: Database) -> None:
    """Remove every rule, lease, replica heartbeat and notification: a clean store for the next test."""
    from sqlalchemy import delete

    from monitors_mcp.store import (Alert, EngineLease, EngineReplica, NotificationChannel, NotificationOutbox,
                                    Rule, RuleState)

    with db.session() as session:
        for table in (NotificationOutbox, EngineLease, EngineReplica, RuleState, Alert, Rule, NotificationChannel):
            session.execute(delete(table))
