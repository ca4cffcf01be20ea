"""Examples in the docs say what the code does: the /readyz answer lists every check the endpoint makes, and
the image tag the Dockerfile tells you to build is the one compose and the docs run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml
from starlette.applications import Starlette

ROOT = Path(__file__).resolve().parents[2]


async def test_readyz_example_lists_every_check(http: httpx.AsyncClient, app: Starlette) -> None:
    text = (ROOT / "docs/getting-started.md").read_text()
    example = json.loads(re.search(r"/readyz\s+#\s*(\{.*\})", text).group(1))  # type: ignore[union-attr]
    served = (await http.get("/readyz")).json()
    assert example == served


def test_the_built_tag_is_the_one_that_runs() -> None:
    built = re.search(r"docker build -t (\S+) \.", (ROOT / "Dockerfile").read_text()).group(1)  # type: ignore[union-attr]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["authserver"]["image"] == built
    assert f" {built}\n" in (ROOT / "docs/getting-started.md").read_text()
