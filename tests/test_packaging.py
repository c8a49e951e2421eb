"""The wheel: grammar files inside it, the language usable from outside the source tree,
and a base install free of the engine's heavy packages."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE_PACKAGES = ("pyarrow", "datafusion", "influxdb_client_3", "apprise", "prometheus_client")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    (built,) = out.glob("monitors_mcp-*.whl")
    return built


def test_wheel_ships_the_grammar_and_the_three_packages(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "monitors_dsl/_grammars/monitors.lark" in names
    for package in ("monitors_dsl/__init__.py", "monitors_mcp/__init__.py", "engine/__init__.py"):
        assert package in names
    assert not [n for n in names if n.startswith(("engine/k8s/", "engine/Dockerfile", "tests/"))]


def test_base_install_validates_rules_and_brings_no_engine_packages(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True,
                   timeout=900)
    script = (
        "import importlib.util, json, monitors_dsl\n"
        "assert 'site-packages' in monitors_dsl.__file__, monitors_dsl.__file__\n"
        "d = monitors_dsl.validate('lats(a.b) > 1')\n"
        "missing = [m for m in %r if importlib.util.find_spec(m) is None]\n"
        "print(json.dumps({'code': d[0].code, 'column': d[0].column, 'missing': missing}))\n" % (ENGINE_PACKAGES,)
    )
    result = subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    import json

    answer = json.loads(result.stdout)
    assert answer["code"] == "unknown-function" and answer["column"] == 1
    assert answer["missing"] == list(ENGINE_PACKAGES), "the base install brought engine packages"
    check = subprocess.run([str(env_dir / "bin" / "monitors"), "check", "-"], input="last(a.b) > 1\n",
                           capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert check.returncode == 0, check.stderr
