"""Dockerfile, docker-compose.yml and .dockerignore, checked statically (no Docker engine in CI).

The compose file's environment is interpolated the way Compose does it (``${NAME:-default}``, ``${NAME:?error}``)
and loaded through :func:`load_settings`, so a misspelt setting or an unsafe combination fails here.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from authserver.keys.encryption import generate_key
from authserver.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def interpolate(value: str, variables: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if variables.get(name):
            return variables[name]
        if op == ":-":
            return arg
        raise KeyError(f"{name} is required: {arg}")

    return INTERPOLATION.sub(substitute, value)


def dockerfile_stages() -> list[list[str]]:
    """Instructions (continuation lines joined), split into build stages."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base, "base image given once as ARG PYTHON_IMAGE"
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", base[1]), f"pinned patch-level slim tag, got {base[1]}"
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert all(stage[0].split()[1] == "${PYTHON_IMAGE}" for stage in stages)
    runtime = stages[-1]
    assert any(i.startswith("COPY --from=build") for i in runtime), "runtime installs what the build stage made"
    assert not any(i.upper().startswith("ADD ") for i in runtime)


def test_runtime_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    runtime = dockerfile_stages()[-1]
    users = [i.split(maxsplit=1)[1] for i in runtime if i.upper().startswith("USER ")]
    assert users, "USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    last_user = max(n for n, i in enumerate(runtime) if i.upper().startswith("USER "))
    assert not any(i.upper().startswith("RUN ") for i in runtime[last_user:]), "nothing runs as root after USER"
    healthcheck = [i for i in runtime if i.upper().startswith("HEALTHCHECK ")]
    assert len(healthcheck) == 1
    assert "/healthz" in healthcheck[0] and "urllib.request" in healthcheck[0]
    assert "curl" not in healthcheck[0] and "wget" not in healthcheck[0], "slim image has neither"


def test_runtime_ships_migrations_and_serves_on_all_interfaces() -> None:
    runtime = dockerfile_stages()[-1]
    copies = [i for i in runtime if i.upper().startswith("COPY ")]
    assert any(shlex.split(i)[1] == "migrations" for i in copies)
    env = " ".join(i for i in runtime if i.upper().startswith("ENV "))
    assert "AUTHSERVER_MIGRATIONS=/app/migrations" in env
    assert "AUTHSERVER_DATABASE__URL" not in env, "a baked-in setting would override a mounted TOML file"
    entrypoint = json.loads(next(i for i in runtime if i.upper().startswith("ENTRYPOINT "))[len("ENTRYPOINT "):])
    command = json.loads(next(i for i in runtime if i.upper().startswith("CMD "))[len("CMD "):])
    assert entrypoint + command == ["authserver", "serve", "--host", "0.0.0.0"]


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "*.db", "authserver-secrets.json", ".env", "test-artifacts"} <= ignored
    # What the Dockerfile copies must not be ignored.
    assert not ignored & {"authserver", "migrations", "config", "pyproject.toml", "README.md"}


def test_compose_runs_authserver_on_postgres_16_and_redis_7_with_healthchecks() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for name in ("postgres", "redis", "authserver"):
        assert services[name]["healthcheck"]["test"], name
    authserver = services["authserver"]
    assert authserver["build"] == "."
    assert authserver["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert all(port.startswith("127.0.0.1:") for port in authserver["ports"]), "published on loopback by default"


def test_compose_environment_names_real_settings_and_loads() -> None:
    environment = compose()["services"]["authserver"]["environment"]
    groups = {f.name: f.type for f in Settings.__dataclass_fields__.values()}
    for key in environment:
        if not key.startswith("AUTHSERVER_"):
            continue  # e.g. PROMETHEUS_MULTIPROC_DIR, checked below
        group, _, name = key.removeprefix("AUTHSERVER_").lower().partition("__")
        assert group in groups and name in getattr(Settings(), group).__dataclass_fields__, f"unknown setting {key}"
    variables = {"AUTHSERVER_ENCRYPTION_KEYS": json.dumps({"k1": generate_key()})}
    environ = {key: interpolate(str(value), variables) for key, value in environment.items()}
    settings = load_settings(environ)
    assert settings.database.url.startswith("postgresql+asyncpg://authserver:")
    assert settings.database.url.endswith("@postgres:5432/authserver")
    assert settings.cache.url == "redis://redis:6379/0"
    assert settings.server.issuer == "http://127.0.0.1:8000"
    assert settings.cookie_secure is False
    assert settings.security.active_encryption_key == "k1"


def test_compose_refuses_to_start_without_an_encryption_key() -> None:
    environment = compose()["services"]["authserver"]["environment"]
    with pytest.raises(KeyError, match="AUTHSERVER_ENCRYPTION_KEYS"):
        for value in environment.values():
            interpolate(str(value), {})


def test_compose_in_production_mode_needs_an_https_issuer() -> None:
    environment = compose()["services"]["authserver"]["environment"]
    variables = {"AUTHSERVER_ENCRYPTION_KEYS": json.dumps({"k1": generate_key()}), "AUTHSERVER_PRODUCTION": "true"}
    environ = {key: interpolate(str(value), variables) for key, value in environment.items()}
    with pytest.raises(SettingsError, match="https"):
        load_settings(environ)
    variables["AUTHSERVER_ISSUER"] = "https://auth.cmipro.example"
    environ = {key: interpolate(str(value), variables) for key, value in environment.items()}
    assert load_settings(environ).server.production


def test_compose_workers_share_one_metrics_folder() -> None:
    """Several workers: prometheus_client multiprocess mode needs PROMETHEUS_MULTIPROC_DIR, a folder the
    non-root user can write, empty at start (a tmpfs is, and goes with the container)."""
    authserver = compose()["services"]["authserver"]
    environment = authserver["environment"]
    variables = {"AUTHSERVER_ENCRYPTION_KEYS": json.dumps({"k1": generate_key()})}
    settings = load_settings({key: interpolate(str(value), variables) for key, value in environment.items()})
    assert settings.server.workers > 1
    directory = environment.get("PROMETHEUS_MULTIPROC_DIR")
    assert directory and directory.startswith("/"), "several workers need PROMETHEUS_MULTIPROC_DIR"
    mounts = {str(entry).split(":", 1)[0]: str(entry) for entry in authserver.get("tmpfs", [])}
    assert directory in mounts, "the folder is a tmpfs mount"
    assert "mode=1777" in mounts[directory] or "uid=10001" in mounts[directory], "writable by the image's non-root user"
    runtime = dockerfile_stages()[-1]
    assert not any(directory in i for i in runtime if i.upper().startswith("VOLUME ")), "never a persistent volume"
