"""The server imports only the standard library and its declared run-time dependencies.

The tests install the test set (requirements/test.txt), which holds more than the run-time set: a module
that imports a package only the tests bring (httpx, say) passes every other test and fails at start-up in
production (`scripts/serve`, the Docker image install requirements/runtime.txt).
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
# Imported lazily, only when their optional extra is installed (authserver/tracing.py: the `otel` extra).
OPTIONAL = {"opentelemetry"}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {Requirement(r).name.lower().replace("_", "-") for r in project["dependencies"]}


def _imports(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_every_third_party_import_of_the_server_is_a_declared_runtime_dependency() -> None:
    declared = _declared()
    distributions = packages_distributions()
    missing: dict[str, str] = {}
    for path in sorted((ROOT / "authserver").rglob("*.py")):
        for root in _imports(path) - set(sys.stdlib_module_names) - {"authserver"} - OPTIONAL:
            providers = {name.lower().replace("_", "-") for name in distributions.get(root, [root])}
            if not providers & declared:
                missing[root] = str(path.relative_to(ROOT))
    assert not missing, f"imported but not in [project] dependencies: {missing}"
