"""The package boundaries of the design's architecture table, checked on every import of the three packages.

Every ``import`` and ``from … import`` is read from the source (those inside functions too, so a lazy import
counts), relative imports resolved, and checked against what each package may and must not import.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: the engine's heavy packages, kept out of the base install (monitors_dsl and monitors_mcp)
ENGINE_PACKAGES = {"pyarrow", "datafusion", "influxdb_client_3", "apprise", "prometheus_client", "matplotlib",
                   "numpy"}

#: package → (top-level modules it may import besides the standard library and itself, forbidden prefixes);
#: an engine package the base install lacks may be used by monitors_mcp only where its absence is handled
#: (``except ImportError``); ``engine`` never
RULES = {
    "monitors_dsl": ({"lark", "jinja2", "markupsafe"},
                     ("monitors_mcp", "engine", "sqlalchemy", "mcp", "pydantic", "redis", *ENGINE_PACKAGES)),
    "monitors_mcp": (None, ("engine", *ENGINE_PACKAGES)),
    "engine": (None, ("mcp", "monitors_mcp.server", "monitors_mcp.service", "monitors_mcp.auth",
                      "monitors_mcp.cli", "monitors_mcp.http_app", "monitors_mcp.demo")),
}


def _guarded(tree: ast.AST) -> set[int]:
    """Lines of imports inside ``try: … except ImportError`` (optional: the module works without them)."""
    lines = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        names = set()
        for handler in node.handlers:
            kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            names |= {k.id for k in kinds if isinstance(k, ast.Name)}
        if names & {"ImportError", "ModuleNotFoundError"}:
            for inner in node.body:
                lines |= {n.lineno for n in ast.walk(inner) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return lines


def imports_of(path: Path, package: str, *, optional: bool = True) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path`` (a module of ``package``), relative ones resolved;
    ``optional=False`` leaves out the imports guarded by ``except ImportError``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    guarded = set() if optional else _guarded(tree)
    inside = path.is_relative_to(ROOT)
    parts = list(path.relative_to(ROOT).with_suffix("").parts) if inside else [package, path.stem]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    here = parts if path.name == "__init__.py" else parts[:-1]
    out = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in guarded:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((node.lineno, module))
    return out


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(RULES))
def test_every_import_keeps_to_the_architecture_table(package: str) -> None:
    allowed, forbidden = RULES[package]
    problems = []
    for path in _modules(package):
        unguarded = set(imports_of(path, package, optional=False))
        for line, module in imports_of(path, package):
            top = module.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line}: imports {module}"
            optional = package == "monitors_mcp" and top in ENGINE_PACKAGES and (line, module) not in unguarded
            if any(module == f or module.startswith(f + ".") for f in forbidden) and not optional:
                problems.append(where)
            elif allowed is not None and top not in allowed and top != package and top not in sys.stdlib_module_names:
                problems.append(where + " (not in what the package may import)")
    assert not problems, "\n".join(problems)


def test_the_scan_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The check is not vacuous: an import inside a function and a relative one are both found."""
    module = ROOT / "monitors_mcp" / "service" / "engine_link.py"
    found = {name for _, name in imports_of(module, "monitors_mcp")}
    assert "monitors_mcp.service.errors" in found  # `from .errors import …`
    sample = ROOT / "monitors_mcp" / "demo.py"
    lazy = {name for _, name in imports_of(sample, "monitors_mcp")}
    assert "monitors_mcp.service.engine_link" in lazy  # imported inside run_demo
    optional = tmp_path / "optional.py"
    optional.write_text("try:\n    import apprise\nexcept ImportError:\n    apprise = None\nimport engine\n")
    assert [m for _, m in imports_of(optional, "x", optional=False)] == ["engine"]
