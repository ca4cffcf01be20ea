# syntax=docker/dockerfile:1
# authserver image: a wheel built in one stage, installed into a slim runtime that runs as a non-root user.
#   docker build -t authserver:local .   (the tag docker-compose.yml and docs/getting-started.md use)
#   docker compose up            (PostgreSQL + Redis + authserver; see docker-compose.yml)
# Pinned base: bump the tag deliberately (and rebuild) for Python security releases.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Every dependency at the version and sha256 the lock file names (requirements/runtime.txt, made by
# scripts/lock), then the authserver wheel without resolving anything: the runtime stage installs these
# wheels offline and needs no compiler.
COPY requirements/runtime.txt ./requirements/runtime.txt
RUN pip wheel --wheel-dir /wheels --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY authserver ./authserver
RUN pip wheel --wheel-dir /wheels --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN groupadd --system --gid 10001 authserver \
 && useradd --system --uid 10001 --gid authserver --home-dir /app --no-create-home --shell /usr/sbin/nologin authserver
COPY --from=build /wheels /wheels
# pip check: the lock covers everything authserver asks for (else: bash scripts/lock).
RUN pip install --no-index --no-deps /wheels/*.whl && pip check && rm -rf /wheels

WORKDIR /app
COPY migrations ./migrations
COPY config ./config
# The working directory /app/data holds the SQLite file and the generated key file when the image runs the
# embedded default (relative defaults ./authserver.db, ./authserver-secrets.json); with PostgreSQL it stays empty.
# Settings are deliberately not baked in as environment variables (they would override a mounted TOML file),
# except the bind address, which a container always needs.
RUN mkdir -p /app/data && chown authserver:authserver /app/data
ENV AUTHSERVER_MIGRATIONS=/app/migrations \
    AUTHSERVER_SERVER__HOST=0.0.0.0
VOLUME ["/app/data"]
WORKDIR /app/data

USER authserver:authserver
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('AUTHSERVER_SERVER__PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["authserver"]
CMD ["serve", "--host", "0.0.0.0"]
