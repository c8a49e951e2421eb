"""Leases on SQLite: one engine holds everything; a second one is refused with one clear reason,
unless the first was a process of this host that is gone."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from engine.leases import LeasedRules, LeaseConflict
from engine.rules import StoreRules
from monitors_mcp.service import UserService, Workspace
from monitors_mcp.store import Database
from monitors_mcp.store.secrets import SecretBox


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'monitors.db'}")
    database.migrate()
    ws = Workspace(database, UserService(database).add_user("solo"), SecretBox.generate())
    for i in range(3):
        ws.rules.create(f'rule r{i} {{ when last(crypto.price{{symbol="BTC"}}, 1m) > {i} }}')
    yield database
    database.dispose()


def leased(db, name: str) -> LeasedRules:
    return LeasedRules(StoreRules(db), db, name, lease_duration=30)


def test_one_engine_holds_every_rule(db) -> None:
    a = leased(db, "a")
    a.acquire()
    assert a.exclusive and len(a.held) == 3 and len(a.current()) == 3


def test_a_second_engine_is_refused_while_the_first_is_live(db) -> None:
    leased(db, "first").acquire()
    with pytest.raises(LeaseConflict) as caught:
        leased(db, "second").acquire()
    message = str(caught.value)
    assert "another engine (first) is running on this SQLite store" in message and "\n" not in message


def test_released_leases_let_the_next_engine_start(db) -> None:
    first = leased(db, "first")
    first.acquire()
    first.release()
    second = leased(db, "second")
    second.acquire()
    assert len(second.held) == 3 and second.takeovers == 0


def test_a_dead_process_of_this_host_does_not_block(db) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = f"{socket.gethostname()}-{int(gone.stdout)}"
    leased(db, dead).acquire()
    second = leased(db, "second")
    second.acquire()
    assert len(second.held) == 3 and second.takeovers == 3
