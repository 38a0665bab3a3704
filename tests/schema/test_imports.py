"""The package boundaries: the contract loads no web, database or network library, and
each package imports only the packages below it (DESIGN.md, Folders)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FACTORY_NAMES = {"create_app", "DEFAULTS", "job_config"}
HEAVY = ("flask", "sqlalchemy", "httpx", "rq", "redis", "feedgen", "werkzeug", "psycopg")

# Which of our packages each package may import.
ALLOWED = {
    "schema": {"schema"},
    "federation": {"schema", "federation"},
    "publisher": {"schema", "federation", "publisher"},
    "aggregator": {"schema", "federation", "aggregator"},
    "bench": {"schema", "federation", "publisher", "aggregator", "demo", "bench"},
}
OURS = {"schema", "federation", "publisher", "aggregator", "demo", "bench", "tests", "widgets"}


def test_importing_the_contract_loads_no_web_database_or_network_library() -> None:
    code = (
        "import sys, schema, schema.rpde, schema.schedule, schema.price, schema.vocab\n"
        "schema.validate_activity({})\n"
        f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing schema loaded {out.stdout.strip()}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_packages_below_it(package: str) -> None:
    wrong = []
    for path in _modules(package):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in OURS and top not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)


# The console script is the one module of a package that builds its app: it is an entry
# point, like the WSGI server given "publisher:create_app()". Jobs, hubs and blueprints
# never do; they read ``<package>.settings`` or a plain settings mapping handed to them.
ENTRY_POINT = "cli.py"


@pytest.mark.parametrize("package", ["publisher", "aggregator"])
def test_no_module_imports_its_own_app_factory(package: str) -> None:
    wrong = []
    for path in _modules(package):
        if path.name == "__init__.py" and path.parent.name == package:
            continue
        allowed = {"create_app"} if path == ROOT / package / ENTRY_POINT else set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == package and node.level == 0:
                factory_names = {alias.name for alias in node.names} & FACTORY_NAMES - allowed
                if factory_names:
                    wrong.append(f"{path.relative_to(ROOT)} imports {sorted(factory_names)}")
    assert not wrong, "modules that import their app factory's module:\n" + "\n".join(wrong)
