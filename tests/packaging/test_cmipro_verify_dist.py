"""cmipro_verify is its own distribution (cmipro_verify/pyproject.toml): a data API or a Lambda installs it with
joserfc and httpx only, never the server stack; Starlette comes only with the ``starlette`` extra.

The wheel is built with pip from a copy of the folder (so no build/ or egg-info is left in the repository), with
the locked setuptools of the test set instead of an isolated build environment (no index round trip), and
installed into fresh virtual environments with this machine's pip configuration and cache.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "cmipro_verify"
# What the verifier itself needs (and what those pull in) may be shared with the server; nothing else may come.
SHARED = {"joserfc", "httpx", "cryptography"}


def server_only_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    names |= {"authserver", "sqlalchemy", "starlette", "authlib", "uvicorn", "asyncpg", "redis", "alembic"}
    return names - SHARED


def run(*args: str | Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def pip(python: Path, *args: str | Path, cwd: Path) -> str:
    """This environment's pip, acting on another interpreter (no pip needed inside the new venv)."""
    return run(sys.executable, "-m", "pip", "--python", python, *args, "--disable-pip-version-check", cwd=cwd)


def fresh_venv(path: Path) -> Path:
    venv.create(path, with_pip=False, symlinks=True)
    return path / "bin" / "python"


def installed(python: Path, cwd: Path) -> set[str]:
    return {canonicalize_name(d["name"]) for d in json.loads(pip(python, "list", "--format", "json", cwd=cwd))}


def copy_source(to: Path) -> Path:
    return Path(shutil.copytree(SOURCE, to / "cmipro_verify", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")))


# Run with -I (isolated): neither the working directory nor PYTHONPATH is on sys.path, only site-packages.
PROBE = """
import importlib.util, json
import cmipro_verify
from cmipro_verify import Verifier
Verifier(issuer="https://auth.cmipro.example", audience="https://api.cmipro.example")
try:
    import cmipro_verify.starlette
    starlette = "importable"
except ModuleNotFoundError as exc:
    starlette = exc.name
print(json.dumps({"file": cmipro_verify.__file__, "authserver": importlib.util.find_spec("authserver") is not None,
                  "starlette": starlette}))
"""


def probe(python: Path, cwd: Path) -> dict[str, object]:
    seen: dict[str, object] = json.loads(run(python, "-I", "-c", PROBE, cwd=cwd))
    return seen


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("cmipro-wheel")
    source = copy_source(work / "src")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
        "-w", work / "dist", source, cwd=work)
    (built,) = (work / "dist").glob("cmipro_verify-*.whl")
    return built


def test_the_modules_import_only_the_standard_library_and_the_declared_dependencies() -> None:
    """A new import (say cryptography for a thumbprint) must be declared in cmipro_verify/pyproject.toml first."""
    project = tomllib.loads((SOURCE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {Requirement(r).name.replace("-", "_") for r in project["dependencies"]}
    extras = {Requirement(r).name.replace("-", "_") for r in project["optional-dependencies"]["starlette"]}
    for path in SOURCE.glob("*.py"):
        allowed = set(sys.stdlib_module_names) | declared | {"cmipro_verify"} | (extras if path.name == "starlette.py" else set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name}:{node.lineno} imports {sorted(roots - allowed)}"


def test_the_wheel_holds_the_module_files_and_nothing_of_the_server(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    package = {n for n in names if not n.startswith("cmipro_verify-")}
    expected = {f"cmipro_verify/{p.name}" for p in SOURCE.glob("*.py")} | {"cmipro_verify/py.typed"}
    assert package == expected
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [Requirement(line.split(":", 1)[1]) for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert {canonicalize_name(r.name) for r in requires if r.marker is None} == {"joserfc", "httpx", "cryptography"}
    assert {canonicalize_name(r.name) for r in requires if r.marker is not None} == {"starlette"}


def test_a_clean_venv_gets_the_verifier_without_the_server_stack(wheel: Path, tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    pip(python, "install", "-q", wheel, cwd=tmp_path)
    have = installed(python, tmp_path)
    assert {"cmipro-verify", "joserfc", "httpx"} <= have
    assert not have & server_only_dependencies(), sorted(have & server_only_dependencies())
    seen = probe(python, tmp_path)
    assert Path(str(seen["file"])).is_relative_to(tmp_path / "venv")
    assert seen["authserver"] is False
    assert seen["starlette"] == "starlette", "cmipro_verify.starlette needs the extra"


def test_an_editable_install_serves_the_source_folder_and_nothing_beside_it(tmp_path: Path) -> None:
    source = copy_source(tmp_path / "src")
    (tmp_path / "src" / "authserver").mkdir()  # a sibling package must not become importable
    (tmp_path / "src" / "authserver" / "__init__.py").write_text("")
    python = fresh_venv(tmp_path / "venv")
    # What `pip install -e` does, with the test set's setuptools: the PEP 660 hook builds an editable wheel,
    # which is installed (its dependencies are the regular wheel's, above; here only the import path matters).
    hook = "import sys; from setuptools import build_meta; print(build_meta.build_editable(sys.argv[1]))"
    built = run(sys.executable, "-c", hook, tmp_path / "editable", cwd=source).strip().splitlines()[-1]
    pip(python, "install", "-q", "--no-deps", "--no-index", tmp_path / "editable" / built, cwd=tmp_path)
    # Located without being imported (httpx is not installed here).
    where = (
        "import importlib.util as u, json; s = u.find_spec('cmipro_verify'); "
        "print(json.dumps([s.origin, list(s.submodule_search_locations), u.find_spec('authserver') is None]))"
    )
    origin, search, no_sibling = json.loads(run(python, "-I", "-c", where, cwd=tmp_path))
    assert (origin, search) == (str(source / "__init__.py"), [str(source)])
    assert no_sibling
