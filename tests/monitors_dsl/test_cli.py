"""The `monitors check` and `monitors fmt` commands, as a person runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitors_dsl.cli import main

BROKEN = 'rule btc {\n    when lats(crypto.price{symbol="BTC"}) > 70000\n    evry 1m\n}\n'
GOOD = 'rule btc {\n    when last(crypto.price{symbol="BTC"}, 5m) > 70000\n}\n'


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_points_a_caret_at_each_mistake(tmp_path, capsys):
    path = tmp_path / "broken.rules"
    path.write_text(BROKEN)
    code, out, _ = run(capsys, "check", str(path))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"{path}:2:10: error: unknown function `lats`"
    assert lines[1] == '        when lats(crypto.price{symbol="BTC"}) > 70000'
    assert lines[2] == "             ^~~~"
    assert lines[3].startswith("    hint: did you mean `last`?")
    assert f"{path}:3:5: error: `evry` does not start a clause" in out
    assert "hint: did you mean `every`?" in out


def test_check_clean_file_exits_zero_with_a_summary(tmp_path, capsys):
    path = tmp_path / "good.rules"
    path.write_text(GOOD)
    code, out, err = run(capsys, "check", str(path))
    assert (code, out) == (0, "")
    assert "0 errors" in err and "1 rule ok" in err


def test_check_json_lists_file_and_diagnostic_fields(tmp_path, capsys):
    path = tmp_path / "broken.rules"
    path.write_text(BROKEN)
    code, out, _ = run(capsys, "check", "--format", "json", str(path))
    assert code == 1
    payload = json.loads(out)
    assert [(p["file"], p["code"], p["line"], p["column"]) for p in payload] == [
        (str(path), "unknown-function", 2, 10), (str(path), "unknown-clause", 3, 5)]
    assert set(payload[0]) == {"file", "severity", "message", "line", "column", "end_line", "end_column", "hint", "code"}


def test_check_reads_standard_input(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("last(a.b) > 5m\n"))
    code, out, _ = run(capsys, "check", "-")
    assert code == 1 and out.startswith("<stdin>:1:13: error:")


def test_warnings_alone_pass_unless_strict(tmp_path, capsys):
    path = tmp_path / "w.rules"
    path.write_text("pct_change(a.b, 1h) > 5\n")
    assert run(capsys, "check", str(path))[0] == 0
    assert run(capsys, "check", "--strict", str(path))[0] == 1


@pytest.mark.parametrize("argv", [["check"], ["fmt"], ["nosuchcommand"], ["check", "--format", "xml", "x"], []])
def test_usage_errors_exit_two(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_missing_and_unreadable_files_exit_two(tmp_path, capsys):
    code, _, err = run(capsys, "check", str(tmp_path / "nope.rules"))
    assert code == 2 and "no such file" in err
    (tmp_path / "bin.rules").write_bytes(b"\xff\xfe\x00")
    code, _, err = run(capsys, "check", str(tmp_path / "bin.rules"))
    assert code == 2 and "not UTF-8" in err
    code, _, err = run(capsys, "check", str(tmp_path))
    assert code == 2 and "directory" in err


def test_fmt_prints_canonical_text(tmp_path, capsys):
    path = tmp_path / "r.rules"
    path.write_text("RULE btc { WHEN LAST(crypto.price{symbol='BTC'}) > 70_000 EVERY 1m }")
    code, out, _ = run(capsys, "fmt", str(path))
    assert code == 0 and out == GOOD


def test_fmt_check_and_write(tmp_path, capsys):
    path = tmp_path / "r.rules"
    path.write_text("rule btc { when last(crypto.price{symbol='BTC'}) > 70000 }")
    assert run(capsys, "fmt", "--check", str(path))[0] == 1
    assert run(capsys, "fmt", "--write", str(path))[0] == 0
    assert path.read_text() == GOOD
    assert run(capsys, "fmt", "--check", str(path))[0] == 0


def test_fmt_refuses_broken_files_and_leaves_them_alone(tmp_path, capsys):
    path = tmp_path / "broken.rules"
    path.write_text(BROKEN)
    code, out, err = run(capsys, "fmt", "--write", str(path))
    assert code == 1 and "unknown function" in err
    assert path.read_text() == BROKEN


def test_console_script_runs_without_traceback(tmp_path):
    path = tmp_path / "broken.rules"
    path.write_text(BROKEN)
    exe = Path(sys.executable).parent / "monitors"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "monitors_dsl.cli"]
    result = subprocess.run(command + ["check", str(path)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "^~~~" in result.stdout
    help_text = subprocess.run(command + ["--help"], capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0 and "check" in help_text.stdout and "fmt" in help_text.stdout
