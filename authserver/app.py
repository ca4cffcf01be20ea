"""The composition root: settings in, a Starlette application out. Only here are concrete parts chosen."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from authserver.accounts.passwords import Passwords
from authserver.admin.service import AdminService
from authserver.clock import Clock, SystemClock
from authserver.endpoints.discovery import build_metadata, metadata_endpoint
from authserver.events import SecurityEvents
from authserver.grants.authorization_code import AuthorizationCodeGrant
from authserver.grants.base import TokenGrant
from authserver.grants.client_credentials import ClientCredentialsGrant
from authserver.grants.refresh_token import RefreshTokenGrant
from authserver.interaction.policy import InteractionStore
from authserver.keys.encryption import Encryptor, load_or_create_key_file
from authserver.keys.keystore import KeyStore
from authserver.metrics import Metrics, mark_worker_dead
from authserver.middleware.body_limit import BodyLimitMiddleware
from authserver.middleware.metrics import MetricsMiddleware
from authserver.middleware.request_id import RequestIdMiddleware
from authserver.middleware.security_headers import SecurityHeadersMiddleware
from authserver.routes import build_routes
from authserver.services import Services
from authserver.settings import Settings
from authserver.shutdown import install_drain_on_sigterm
from authserver.storage.cache import create_cache
from authserver.storage.sql.accounts import SqlAccountStore
from authserver.storage.sql.clients import SqlClientStore
from authserver.storage.sql.engine import create_engine, create_sessionmaker
from authserver.storage.sql.sessions import SqlConsentStore, SqlSessionStore
from authserver.storage.sql.tokens import SqlTokenStore
from authserver.tokens.jwt import TokenSigner
from authserver.web.pages import create_environment, error_page

log = logging.getLogger("authserver")

GRANT_CLASSES = (AuthorizationCodeGrant, RefreshTokenGrant, ClientCredentialsGrant)


def create_encryptor(settings: Settings) -> Encryptor:
    security = settings.security
    if security.encryption_keys:
        return Encryptor(dict(security.encryption_keys), security.active_encryption_key)
    keys, active = load_or_create_key_file(security.key_file)
    return Encryptor(keys, active)


def build_services(settings: Settings, *, clock: Clock | None = None, passwords: Passwords | None = None) -> Services:
    clock = clock or SystemClock()
    engine = create_engine(settings.database)
    sessions = create_sessionmaker(engine)
    encryptor = create_encryptor(settings)
    metrics = Metrics()
    keys = KeyStore(sessions, clock, encryptor, algs=tuple(dict.fromkeys((settings.tokens.signing_alg, "ES256", "RS256"))))
    return Services(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        cache=create_cache(settings.cache.url, key_prefix=settings.cache.key_prefix, timeout=settings.cache.timeout),
        encryptor=encryptor,
        clients=SqlClientStore(sessions, clock),
        accounts=SqlAccountStore(sessions, clock),
        tokens=SqlTokenStore(sessions, clock),
        browser_sessions=SqlSessionStore(
            sessions, clock, ttl=settings.login.session_ttl, idle_ttl=settings.login.session_idle_ttl
        ),
        consents=SqlConsentStore(sessions, clock),
        keys=keys,
        signer=TokenSigner(keys, issuer=settings.server.issuer, clock=clock, default_alg=settings.tokens.signing_alg),
        passwords=passwords or Passwords(),
        events=SecurityEvents(sessions, clock, metrics=metrics),
        metrics=metrics,
    )


def create_app(settings: Settings, *, clock: Clock | None = None, passwords: Passwords | None = None) -> Starlette:
    services = build_services(settings, clock=clock, passwords=passwords)
    grants: dict[str, TokenGrant] = {cls.GRANT_TYPE: cls(services) for cls in GRANT_CLASSES}
    metadata = metadata_endpoint(build_metadata(settings, list(grants)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.keys.ensure_active_keys()
        restore_signals = install_drain_on_sigterm(app.state, settings.observability.shutdown_drain_seconds)
        try:
            yield
        finally:
            restore_signals()
            mark_worker_dead()
            await services.cache.close()
            await services.engine.dispose()

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/static/") or "text/html" not in request.headers.get("accept", ""):
            return Response("Not Found", status_code=404, media_type="text/plain")
        return error_page(request, "error.not_found", status_code=404)

    tracing = []
    if settings.observability.tracing:
        from authserver.tracing import tracing_middleware

        tracing = [Middleware(tracing_middleware())]
    app = Starlette(
        routes=build_routes(metadata),
        middleware=[
            *tracing,
            Middleware(MetricsMiddleware, metrics=services.metrics),
            Middleware(RequestIdMiddleware),
            Middleware(SecurityHeadersMiddleware, hsts=settings.server.issuer.startswith("https://")),
            Middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes),
        ],
        exception_handlers={404: not_found},
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.draining = False
    app.state.grants = grants
    app.state.admin = AdminService(services)
    app.state.interactions = InteractionStore(services.cache, ttl=settings.login.interaction_ttl)
    app.state.templates = create_environment()
    return app
