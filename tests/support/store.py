"""Fixtures for the store, service, MCP server and engine tests (a pytest plugin: ``tests/conftest.py``).

``db`` is parametrised over SQLite and MariaDB (the MariaDB case is marked ``mysql``):
one fresh database per test module and xdist worker, schema made by the migrations.
Tests isolate themselves further by working as freshly created users.
When ``MONITORS_REQUIRE_MYSQL=1`` and no MariaDB answers, the MariaDB cases fail.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator

import pytest

from monitors_mcp.service import UserService, Workspace
from monitors_mcp.store import Database
from monitors_mcp.store.secrets import SecretBox
from tests.support import mariadb

BACKENDS = ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def mysql_base_url() -> str:
    url = mariadb.server_url()
    if url is None:
        message = "MariaDB is not reachable (set MONITORS_TEST_MYSQL_URL or run scripts/test.sh)"
        if os.environ.get("MONITORS_REQUIRE_MYSQL") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


def _database_name(request: pytest.FixtureRequest) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    module = re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])[:30]
    digest = hashlib.sha1(f"{request.module.__name__}{os.getpid()}".encode()).hexdigest()[:6]
    return f"mt_{worker}_{module}_{digest}"


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("store") / "monitors.db"
        database = Database(f"sqlite:///{path}")
        database.migrate()
        yield database
        database.dispose()
        return
    url = mariadb.database_url(mysql_base_url(), _database_name(request))
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()
    mariadb.drop_database(url)


@pytest.fixture(scope="session")
def secrets() -> SecretBox:
    return SecretBox.generate()


@pytest.fixture
def new_user(db: Database):  # noqa: ANN201
    """A function making a fresh user; returns its id."""

    def make(prefix: str = "u") -> int:
        return UserService(db).add_user(f"{prefix}-{uuid.uuid4().hex[:12]}")

    return make


@pytest.fixture
def alice(new_user) -> int:  # noqa: ANN001
    return new_user("alice")


@pytest.fixture
def bob(new_user) -> int:  # noqa: ANN001
    return new_user("bob")


@pytest.fixture
def workspace(db: Database, secrets: SecretBox):  # noqa: ANN201
    return lambda user_id: Workspace(db, user_id, secrets)
