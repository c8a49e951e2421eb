"""The monitors-mcp command: users and tokens, one-line errors, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from monitors_mcp.cli import main
from monitors_mcp.service import UserService
from monitors_mcp.store import Database


def run(db: Database, capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    code = main(["--database-url", db.url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_user_and_token_lifecycle(db: Database, capsys) -> None:  # noqa: ANN001
    name = f"cli-{uuid.uuid4().hex[:8]}"
    code, out, _ = run(db, capsys, "user", "add", name)
    assert code == 0 and name in out
    code, out, err = run(db, capsys, "token", "create", name)
    token = out.strip()
    assert code == 0 and token.startswith("mon_") and "shown only this once" in err
    users = UserService(db)
    assert users.verify_token(token) == users.user_id(name)
    token_id = users.list_tokens(name)[0].id
    code, out, _ = run(db, capsys, "token", "list", name)
    assert token not in out and "active" in out
    code, out, _ = run(db, capsys, "token", "revoke", str(token_id))
    assert code == 0 and "revoked" in out
    assert users.verify_token(token) is None


@pytest.mark.parametrize(
    ("args", "message", "exit_code"),
    [
        (["user", "add", "has space"], "without spaces", 2),  # a bad value, as argparse answers bad flags
        (["token", "create", "no-such-user-xyz"], "No user named 'no-such-user-xyz'", 1),
        (["token", "revoke", "987654"], "No token with id 987654", 1),
    ],
)
def test_errors_are_one_line(db: Database, capsys, args: list[str], message: str, exit_code: int) -> None:  # noqa: ANN001
    code, out, err = run(db, capsys, *args)
    assert code == exit_code and out == ""
    assert err.startswith("monitors-mcp: error: ") and message in err and err.count("\n") == 1


def test_unreachable_database_is_one_line_without_the_password() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitors_mcp", "--database-url", "mysql+pymysql://root:pw-s3cret@127.0.0.1:1/x", "user", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("monitors-mcp: error: database error")
    assert "Traceback" not in result.stderr and "pw-s3cret" not in result.stderr
