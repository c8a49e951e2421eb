"""Database connection: which URL, how the engine is built, and bringing the schema up to date.

The schema is created only by the Alembic migrations shipped in this package
(``migrate``); nothing calls ``metadata.create_all``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

__all__ = [
    "DATABASE_URL_ENV",
    "Database",
    "default_database_url",
    "migrate",
    "redact_url",
]

DATABASE_URL_ENV = "MONITORS_DATABASE_URL"
_APP_NAME = "monitors-mcp"


def data_dir() -> Path:
    """The per-user data directory (created on demand)."""
    import platformdirs

    path = Path(os.environ.get("MONITORS_DATA_DIR") or platformdirs.user_data_dir(_APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_database_url() -> str:
    """``$MONITORS_DATABASE_URL``, else a SQLite file in the user's data directory."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    return f"sqlite:///{data_dir() / 'monitors.db'}"


def redact_url(url: str) -> str:
    """The URL with any password masked, safe to print or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is not echoed at all
        return "<invalid database URL>"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # with the write-ahead log, NORMAL syncs at checkpoints rather than at every commit: a power cut can lose
    # the last commits but never corrupts the file (SQLite's recommended setting for WAL)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite gets foreign keys, WAL and a shared in-memory
    connection (``StaticPool``, as tools run on worker threads); MySQL gets utf8mb4,
    connection health checks and a pool as large as the tools' worker threads."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        in_memory = database in ("", ":memory:") or "mode=memory" in str(parsed.query)
        if in_memory:
            engine = sa.create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        if not in_memory:
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        return engine
    if parsed.get_backend_name() == "mysql":
        query = dict(parsed.query)
        query.setdefault("charset", "utf8mb4")
        # Tools run on up to 40 worker threads: a pool of 5 (the default) closes every connection past
        # the fifth as soon as it is returned, so concurrent calls each paid a new connection (TCP, the
        # handshake, a TLS context). Twenty stay open; twenty more come and go under bursts.
        return sa.create_engine(parsed.set(query=query), pool_pre_ping=True, pool_recycle=3600,
                                pool_size=20, max_overflow=20)
    return sa.create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema of ``engine``'s database to ``revision`` with the shipped migrations."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "monitors_mcp.store:migrations")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


class Database:
    """One database: its engine and a session factory."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        self.url = url or default_database_url()
        self.engine = engine or create_db_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
