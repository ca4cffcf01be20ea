"""The lock files (requirements/*.txt, written by scripts/lock) agree with pyproject.toml: every declared dependency
is pinned at a version its specifier allows, with hashes, and the run-time set is the test set's versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)(?P<rest>[^\n]*(?:\n[ \t]+[^\n]*)*)", re.M)


def pins(name: str) -> dict[str, tuple[Version, str]]:
    text = (ROOT / "requirements" / f"{name}.txt").read_text(encoding="utf-8")
    return {canonicalize_name(m["name"]): (Version(m["version"]), m["rest"]) for m in PIN.finditer(text)}


def project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


@pytest.mark.parametrize("lock, groups", [("runtime", ["dependencies"]), ("test", ["dependencies", "test"])])
def test_every_declared_dependency_is_pinned_within_its_specifier(lock: str, groups: list[str]) -> None:
    locked = pins(lock)
    declared = [
        Requirement(r)
        for group in groups
        for r in (project()["dependencies"] if group == "dependencies" else project()["optional-dependencies"][group])
    ]
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements/{lock}.txt: run bash scripts/lock"
        assert requirement.specifier.contains(locked[name][0], prereleases=True), (name, locked[name][0])


def test_every_pin_carries_hashes_and_nothing_is_a_local_path() -> None:
    for lock in ("runtime", "test"):
        text = (ROOT / "requirements" / f"{lock}.txt").read_text(encoding="utf-8")
        assert not re.search(r"^\s*(-e|--editable|file:|\.{0,2}/)", text, re.M), "pip's hash-checking mode refuses those"
        for name, (_, rest) in pins(lock).items():
            assert "--hash=sha256:" in rest, f"{name} in {lock}.txt has no hash"


def test_the_runtime_set_is_the_test_sets_versions_without_test_tools() -> None:
    runtime, test = pins("runtime"), pins("test")
    assert {name: v for name, (v, _) in runtime.items()} == {name: test[name][0] for name in runtime}
    assert not runtime.keys() & {"pytest", "playwright", "mypy", "ruff", "python-multipart"}
