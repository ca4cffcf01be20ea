"""The whole HTTP surface in one table: path, endpoint, methods, name."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from authserver.endpoints import (
    admin,
    health,
    introspection,
    jwks,
    metrics,
    mfa_api,
    par,
    registration,
    revocation,
    revocation_feed,
    token,
    userinfo,
)
from authserver.endpoints.authorize import authorize
from authserver.web import logout, mfa_views, self_service, signup, views

# Endpoints that answer a wrong method themselves, with the error their channel expects.
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Machine endpoints at fixed paths: the edge middleware calls them directly (middleware/edge.py).
DIRECT = frozenset({"token", "introspection", "jwks", "openid_configuration", "oauth_metadata", "userinfo", "revocation", "revocation_feed"})


def direct_routes(routes: list[Route | Mount]) -> dict[str, Route]:
    return {route.path: route for route in routes if isinstance(route, Route) and route.name in DIRECT}


def build_routes(metadata: ASGIApp) -> list[Route | Mount]:
    # Starlette tries routes in order: the machine endpoints, which carry nearly all the traffic, come first.
    return [
        Route("/token", token.token, methods=ANY_METHOD, name="token"),
        Route("/introspect", introspection.introspect, methods=ANY_METHOD, name="introspection"),
        Route("/jwks", jwks.jwks, methods=["GET"], name="jwks"),
        Route("/revocations", revocation_feed.revocations, methods=["GET"], name="revocation_feed"),
        Route("/.well-known/openid-configuration", metadata, methods=["GET"], name="openid_configuration"),
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"], name="oauth_metadata"),
        Route("/userinfo", userinfo.userinfo, methods=ANY_METHOD, name="userinfo"),
        Route("/revoke", revocation.revoke, methods=ANY_METHOD, name="revocation"),
        Route("/authorize", authorize, methods=ANY_METHOD, name="authorize"),
        Route("/par", par.par, methods=ANY_METHOD, name="par"),
        Route("/authorize/resume", views.resume, methods=["GET"], name="authorize_resume"),
        Route("/login", views.login, methods=ANY_METHOD, name="login"),
        Route("/consent", views.consent, methods=ANY_METHOD, name="consent"),
        Route("/logout", logout.logout, methods=ANY_METHOD, name="end_session"),
        Route("/account/sessions", logout.account_sessions, methods=ANY_METHOD, name="account_sessions"),
        Route("/account", views.account, methods=["GET"], name="account"),
        Route("/account/password", self_service.account_password, methods=ANY_METHOD, name="account_password"),
        Route("/account/apps", self_service.account_apps, methods=ANY_METHOD, name="account_apps"),
        Route("/password/forgot", self_service.password_forgot, methods=ANY_METHOD, name="password_forgot"),
        Route("/password/reset", self_service.password_reset, methods=ANY_METHOD, name="password_reset"),
        Route("/signup", signup.signup, methods=ANY_METHOD, name="signup"),
        Route("/email/verify", signup.email_verify, methods=ANY_METHOD, name="email_verify"),
        Route("/account/profile", signup.account_profile, methods=ANY_METHOD, name="account_profile"),
        Route("/mfa", mfa_views.mfa_prompt, methods=ANY_METHOD, name="mfa"),
        Route("/mfa/enrol", mfa_views.mfa_enrol, methods=ANY_METHOD, name="mfa_enrol"),
        Route("/account/mfa", mfa_views.account_mfa, methods=["GET"], name="account_mfa"),
        Route("/account/mfa/enrol", mfa_views.account_mfa_enrol, methods=ANY_METHOD, name="account_mfa_enrol"),
        Route("/account/mfa/backup-codes", mfa_views.account_mfa_backup_codes, methods=ANY_METHOD, name="account_mfa_backup_codes"),
        Route("/account/mfa/disable", mfa_views.account_mfa_disable, methods=ANY_METHOD, name="account_mfa_disable"),
        Route("/account/mfa/recover", mfa_views.account_mfa_recover, methods=ANY_METHOD, name="account_mfa_recover"),
        Route("/api/me/mfa", mfa_api.mfa_status, methods=ANY_METHOD, name="api_mfa_status"),
        Route("/api/me/mfa/totp", mfa_api.totp, methods=ANY_METHOD, name="api_mfa_totp"),
        Route("/api/me/mfa/totp/confirm", mfa_api.totp_confirm, methods=ANY_METHOD, name="api_mfa_totp_confirm"),
        Route("/api/me/mfa/backup-codes/regenerate", mfa_api.regenerate_backup_codes, methods=ANY_METHOD, name="api_mfa_backup_codes"),
        Route("/healthz", health.healthz, methods=["GET"], name="healthz"),
        Route("/readyz", health.readyz, methods=["GET"], name="readyz"),
        Route("/metrics", metrics.metrics, methods=["GET"], name="metrics"),
        Route("/register", registration.register, methods=ANY_METHOD, name="register"),
        *admin_routes(),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "web" / "static"), name="static"),
    ]


def admin_routes() -> list[Route]:
    """The admin API (/admin/api, described by its OpenAPI document)."""
    base = "/admin/api"
    return [
        Route(f"{base}/openapi.json", admin.openapi, methods=["GET"], name="admin_openapi"),
        Route(f"{base}/clients", admin.clients, methods=["GET", "POST"], name="admin_clients"),
        Route(f"{base}/clients/{{client_id}}", admin.client, methods=["GET", "PATCH", "DELETE"], name="admin_client"),
        Route(f"{base}/clients/{{client_id}}/disable", admin.client_disable, methods=["POST"], name="admin_client_disable"),
        Route(f"{base}/clients/{{client_id}}/enable", admin.client_enable, methods=["POST"], name="admin_client_enable"),
        Route(f"{base}/clients/{{client_id}}/secrets", admin.client_secrets, methods=["GET", "POST"], name="admin_client_secrets"),
        Route(
            f"{base}/clients/{{client_id}}/secrets/{{secret_id}}", admin.client_secret, methods=["DELETE"], name="admin_client_secret"
        ),
        Route(
            f"{base}/clients/{{client_id}}/secrets/{{secret_id}}/reveal", admin.client_secret_reveal, methods=["POST"],
            name="admin_client_secret_reveal",
        ),
        Route(f"{base}/users", admin.users, methods=["GET", "POST"], name="admin_users"),
        Route(f"{base}/users/{{account_id}}", admin.user, methods=["GET", "PATCH", "DELETE"], name="admin_user"),
        *(
            Route(f"{base}/users/{{account_id}}/{action}", admin.user_action, methods=["POST"], name=f"admin_user_{action}")
            for action in ("disable", "enable", "unlock", "reset-mfa")
        ),
        Route(f"{base}/invitations", admin.invitations, methods=["GET", "POST"], name="admin_invitations"),
        Route(f"{base}/invitations/{{invitation_id}}", admin.invitation, methods=["GET", "DELETE"], name="admin_invitation"),
        Route(f"{base}/roles", admin.roles, methods=["GET"], name="admin_roles"),
        Route(f"{base}/events", admin.events, methods=["GET"], name="admin_events"),
        Route(f"{base}/emergency", admin.emergency, methods=["GET", "POST"], name="admin_emergency"),
        Route(f"{base}/chaos", admin.chaos, methods=["GET", "POST", "DELETE"], name="admin_chaos"),
    ]
