"""The composition root: settings in, a Starlette application out. Only here are concrete parts chosen."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from authserver.abuse import Emergency, RateLimits
from authserver.accounts.lockout import Lockout
from authserver.accounts.passwords import Passwords
from authserver.admin.service import AdminService
from authserver.chaos import Chaos, FaultyCache, FaultyLimiter
from authserver.clock import Clock, SystemClock
from authserver.cors import CorsPolicy
from authserver.endpoints._http import ADMIN_JSON, HTML, OAUTH_JSON, channel_of, error_response
from authserver.endpoints.discovery import build_metadata, metadata_endpoint
from authserver.errors import AdminError, InvalidRequest, OAuthError
from authserver.events import SecurityEvents, configure_security_log
from authserver.grants.authorization_code import AuthorizationCodeGrant
from authserver.grants.base import TokenGrant
from authserver.grants.client_credentials import ClientCredentialsGrant
from authserver.grants.refresh_token import RefreshTokenGrant
from authserver.interaction.policy import InteractionStore
from authserver.jobs import Scheduler, standard_jobs
from authserver.keys.encryption import Encryptor, load_or_create_key_file
from authserver.keys.keystore import KeyStore
from authserver.keys.rotation import KeyManager, background_rotation, configured_algorithms
from authserver.mail import Mailer
from authserver.metrics import Metrics, mark_worker_dead
from authserver.mfa.service import MfaService
from authserver.middleware.edge import EdgeMiddleware
from authserver.ratelimit import Limiter, MemoryLimiter, RedisLimiter, ResilientLimiter
from authserver.routes import build_routes, direct_routes
from authserver.services import Services
from authserver.settings import Settings
from authserver.shutdown import install_drain_on_sigterm
from authserver.storage.cache import Cache, create_cache
from authserver.storage.sql.account_tokens import SqlAccountTokenStore
from authserver.storage.sql.accounts import SqlAccountStore
from authserver.storage.sql.clients import SqlClientStore
from authserver.storage.sql.engine import create_engine, create_sessionmaker
from authserver.storage.sql.fastpath import create_fast_path
from authserver.storage.sql.invitations import SqlInvitationStore
from authserver.storage.sql.lifecycle import SqlLifecycleStore
from authserver.storage.sql.mfa import SqlMfaStore
from authserver.storage.sql.sessions import SqlConsentStore, SqlSessionStore
from authserver.storage.sql.tokens import SqlTokenStore
from authserver.tokens.dpop import DpopGuard
from authserver.tokens.feed import RevocationFeed
from authserver.tokens.jwt import TokenSigner
from authserver.tokens.revocation import Revocations
from authserver.web.pages import create_environment, error_page

log = logging.getLogger("authserver")

# Allocations (minus frees) of container objects between young-generation collections; CPython's default is 700.
GC_THRESHOLD = 20_000

# Longest wait at shutdown for a background job (the purge) to finish its batch before it is cancelled.
BACKGROUND_STOP_SECONDS = 5.0

GRANT_CLASSES = (AuthorizationCodeGrant, RefreshTokenGrant, ClientCredentialsGrant)


def create_encryptor(settings: Settings) -> Encryptor:
    security = settings.security
    if security.encryption_keys:
        return Encryptor(dict(security.encryption_keys), security.active_encryption_key)
    keys, active = load_or_create_key_file(security.key_file)
    return Encryptor(keys, active)


def build_limits(
    settings: Settings, clock: Clock, sessions: async_sessionmaker[AsyncSession], events: SecurityEvents, metrics: Metrics,
    chaos: Chaos | None = None,
) -> RateLimits:
    """Rate limits in the shared cache's Redis (or in-process with memory://), with the per-instance floor."""
    cache = settings.cache
    primary: Limiter = (
        MemoryLimiter() if cache.url.startswith("memory://")
        else RedisLimiter(cache.url, key_prefix=cache.key_prefix, timeout=cache.timeout)
    )

    if chaos is not None:
        primary = FaultyLimiter(primary, chaos)

    async def degraded(reason: str) -> None:
        await events.record("ratelimit", "degraded", reason=reason)

    limiter = ResilientLimiter(
        primary, fallback_divisor=settings.abuse.fallback_divisor, breaker_seconds=settings.abuse.breaker_seconds,
        on_degraded=degraded, monotonic=clock.monotonic,
    )
    emergency = Emergency(sessions, clock, events, duration=settings.abuse.emergency_duration, metrics=metrics)
    return RateLimits(limiter, settings.abuse, clock, events, emergency)


def build_services(settings: Settings, *, clock: Clock | None = None, passwords: Passwords | None = None) -> Services:
    clock = clock or SystemClock()
    engine = create_engine(settings.database)
    sessions = create_sessionmaker(engine)
    encryptor = create_encryptor(settings)
    cache: Cache = create_cache(
        settings.cache.url, key_prefix=settings.cache.key_prefix, timeout=settings.cache.timeout, clock=clock,
    )
    # Fault injection (authserver/chaos.py): the fixed [chaos] faults and the run-time experiments, never in production.
    chaos: Chaos | None = None
    fast_path = create_fast_path(settings.database)
    if not settings.server.production:
        if settings.chaos.enabled:
            log.warning("fault injection is ON: %s", settings.chaos)
        chaos = Chaos(sessions, clock)
        fast_path = create_fast_path(settings.database, before_statement=chaos.install(engine, settings.chaos))
        cache = FaultyCache(
            cache, latency_ms=settings.chaos.cache_latency_ms, error_rate=settings.chaos.cache_error_rate, chaos=chaos
        )
    tokens = SqlTokenStore(sessions, clock)
    lifecycle = SqlLifecycleStore(sessions, clock)
    accounts = SqlAccountStore(sessions, clock)
    passwords = passwords or Passwords()
    metrics = Metrics()
    events = SecurityEvents(sessions, clock, metrics=metrics, bulk=fast_path.copy_events if fast_path else None)
    keys = KeyStore(sessions, clock, encryptor, algs=configured_algorithms(settings))
    signer = TokenSigner(keys, issuer=settings.server.issuer, clock=clock, default_alg=settings.tokens.signing_alg)
    return Services(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        cache=cache,
        encryptor=encryptor,
        clients=SqlClientStore(
            sessions, clock, secret_lifetime=settings.client_secrets.lifetime,
            usage_flush_delay=settings.client_secrets.usage_flush_interval, encryptor=encryptor,
        ),
        accounts=accounts,
        tokens=tokens,
        browser_sessions=SqlSessionStore(
            sessions, clock, ttl=settings.login.session_ttl, idle_ttl=settings.login.session_idle_ttl
        ),
        consents=SqlConsentStore(sessions, clock),
        keys=keys,
        signer=signer,
        passwords=passwords,
        events=events,
        lifecycle=lifecycle,
        revocations=Revocations(
            store=lifecycle, tokens=tokens, cache=cache, clock=clock, default_access_ttl=settings.tokens.access_token_ttl
        ),
        revocation_feed=RevocationFeed(
            store=lifecycle, signer=signer, clock=clock, lifetime=settings.tokens.revocation_feed_lifetime
        ),
        mfa=MfaService(
            store=SqlMfaStore(sessions, clock), accounts=accounts, encryptor=encryptor, passwords=passwords,
            events=events, clock=clock, settings=settings.mfa,
        ),
        key_manager=KeyManager(sessions, clock, encryptor, keys, settings, events=events),
        limiter=build_limits(settings, clock, sessions, events, metrics, chaos),
        chaos=chaos,
        lockout=Lockout(
            sessions, clock, reset_after=settings.abuse.lock_reset_seconds, view_seconds=settings.abuse.client_lock_view_seconds
        ),
        metrics=metrics,
        account_tokens=SqlAccountTokenStore(sessions, clock),
        mailer=Mailer(settings.mail, create_environment()),
        invitations=SqlInvitationStore(sessions, clock),
        dpop=DpopGuard(settings.dpop, cache=cache, clock=clock, nonce_key=encryptor.derive_key(b"dpop-nonce")),
        fast_path=fast_path,
    )


def tune_garbage_collector() -> None:
    """For a server process, once its start-up objects exist: move them out of the collector's sight
    (``gc.freeze``: modules, settings, keys, templates are never garbage) and collect the young generation
    less often (requests free nearly everything by reference counting). A few per cent of a token
    request's CPU (docs/performance.md); not done in tests, where many apps share one process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


def create_app(
    settings: Settings, *, clock: Clock | None = None, passwords: Passwords | None = None, server_process: bool = False
) -> Starlette:
    """The application; ``server_process`` (``authserver serve``) also tunes the garbage collector at start."""
    services = build_services(settings, clock=clock, passwords=passwords)
    configure_security_log()
    grants: dict[str, TokenGrant] = {cls.GRANT_TYPE: cls(services) for cls in GRANT_CLASSES}
    metadata = metadata_endpoint(build_metadata(settings, list(grants)))
    cors = CorsPolicy(settings.cors, services.clients)
    # Periodic jobs (the purge), each run by one instance of the fleet at a time (authserver.jobs).
    scheduler = Scheduler(services.sessions, services.clock, standard_jobs(services))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.keys.ensure_active_keys()
        if settings.keys.auto_rotate:
            await services.key_manager.run_scheduled()
        await services.keys.load()
        await cors.reload()
        if server_process:
            tune_garbage_collector()
        stop_background = asyncio.Event()
        background = [asyncio.create_task(scheduler.run_forever(stop_background))] if scheduler.jobs else []
        if services.chaos is not None:
            background.append(asyncio.create_task(services.chaos.run_forever(stop_background)))
        restore_signals = install_drain_on_sigterm(app.state, settings.observability.shutdown_drain_seconds)
        try:
            # Every instance reruns the schedule and reloads its keys each keys.reload_interval.
            async with background_rotation(services.key_manager):
                yield
        finally:
            stop_background.set()
            _, unfinished = await asyncio.wait(background, timeout=BACKGROUND_STOP_SECONDS) if background else ((), ())
            for task in unfinished:  # a job still running after the bound: cancelled
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if cors.pending is not None:
                cors.pending.cancel()
            restore_signals()
            mark_worker_dead()
            await services.close()

    async def router_error(request: Request, exc: Exception) -> Response:
        """The router's own refusals (no such path, a method the route does not take), answered in the
        channel of the route that matched (``_http.channel_of``); unknown paths keep their plain 404."""
        status = getattr(exc, "status_code", 404)
        channel = channel_of(request.scope.get("endpoint"))
        if channel is None and request.url.path.startswith("/admin/api/"):
            channel = ADMIN_JSON
        if channel in (OAUTH_JSON, ADMIN_JSON):
            error: OAuthError = (
                AdminError(404, "not_found", "No such resource.") if status == 404 else InvalidRequest("This method is not allowed here.")
            )
            response = error_response(error)
            response.status_code = status
        elif channel == HTML or (status == 404 and "text/html" in request.headers.get("accept", "") and not request.url.path.startswith("/static/")):
            response = error_page(request, "error.not_found" if status == 404 else "error.method", status_code=status)
        else:
            response = Response("Not Found" if status == 404 else "Method Not Allowed", status_code=status, media_type="text/plain")
        response.headers.update(getattr(exc, "headers", None) or {})
        return response

    tracing = []
    if settings.observability.tracing:
        from authserver.tracing import tracing_middleware

        tracing = [Middleware(tracing_middleware())]
    routes = build_routes(metadata)
    app = Starlette(
        routes=routes,
        middleware=[
            *tracing,
            Middleware(
                EdgeMiddleware, metrics=services.metrics, hsts=settings.server.issuer.startswith("https://"),
                max_headers=settings.abuse.max_headers, max_header_bytes=settings.abuse.max_header_bytes,
                max_body_bytes=settings.server.max_body_bytes, direct=direct_routes(routes), cors=cors,
                chaos=services.chaos,
            ),
        ],
        exception_handlers={404: router_error, 405: router_error},
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.draining = False
    app.state.grants = grants
    app.state.cors = cors
    app.state.admin = AdminService(services)
    app.state.scheduler = scheduler
    app.state.interactions = InteractionStore(services.cache, ttl=settings.login.interaction_ttl)
    app.state.templates = create_environment()
    app.state.templates.globals["mail_enabled"] = services.mailer.enabled
    app.state.templates.globals["signup_enabled"] = settings.self_service.signup
    return app
