"""Settings every test runs with.

The tests' notification receivers listen on 127.0.0.1, an address channels may not
target by default: allow it (and only it) the way an operator would. Tests of the
refusal itself clear the setting.
"""

from __future__ import annotations

import os

#: the store fixtures (``db`` over SQLite and MariaDB, users, secrets, workspaces) for every test
pytest_plugins = ["tests.support.store"]

os.environ.setdefault("MONITORS_CHANNEL_ALLOW_HOSTS", "127.0.0.1,::1,localhost")
