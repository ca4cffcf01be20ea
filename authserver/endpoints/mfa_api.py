"""JSON API for a person's own second factor (RFC 6238 TOTP enrolment for mobile apps).

Authenticated through the bearer-token gate (endpoints/bearer.py): a person's access token for the
issuer (``aud``) carrying the ``mfa:manage`` scope:

    GET    /api/me/mfa                          status: enabled, backup codes remaining
    POST   /api/me/mfa/totp                     start: secret, otpauth:// URI, QR code (PNG data URI and SVG)
    POST   /api/me/mfa/totp/confirm             {"code"} → enabled, backup codes (shown once)
    DELETE /api/me/mfa/totp                     {"password", "code" | "backup_code"} → disabled
    POST   /api/me/mfa/backup-codes/regenerate  {"code" | "backup_code"} → new backup codes

Errors are ``{"error", "error_description"}`` with ``Cache-Control: no-store``; a locked second step is
429 ``mfa_locked`` with ``Retry-After``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from authserver.accounts.lifecycle import sign_out_other_sessions
from authserver.accounts.notices import notify
from authserver.endpoints._guard import client_ip, user_agent
from authserver.endpoints._http import json_response, method_not_allowed, oauth_json
from authserver.endpoints.bearer import Bearer, Protection, gate, protected
from authserver.errors import InvalidRequest, OAuthError, TemporarilyUnavailable
from authserver.mfa import qr
from authserver.mfa.service import (
    AlreadyEnabled,
    Context,
    Method,
    NoPendingEnrolment,
    NotEnabled,
    Outcome,
    SecretUnavailable,
)
from authserver.services import Services
from authserver.web.pages import request_locale

SCOPE = "mfa:manage"
PROTECTION = Protection(scope=SCOPE)
MAX_BODY = 4096


class InvalidCode(OAuthError):
    error = "invalid_code"
    default_description = "The code is not valid."


class InvalidCredentials(OAuthError):
    error = "invalid_credentials"
    default_description = "The password is not correct."


class MfaLocked(OAuthError):
    error = "mfa_locked"
    status_code = 429
    default_description = "Too many wrong codes. The second step is locked for a while."


class MfaConflict(OAuthError):
    status_code = 409

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


async def _identity(request: Request) -> tuple[Services, Bearer]:
    services: Services = request.app.state.services
    return services, await gate(request, services, PROTECTION)


def _context(request: Request, identity: Bearer) -> Context:
    return Context(ip=client_ip(request), user_agent=user_agent(request), client_id=identity.client_id, extra={"channel": "api"})


async def _end_other_sessions(request: Request, services: Services, identity: Bearer, reason: str) -> None:
    """A factor changed (ASVS 5 7.4.3): every browser session and every other token family of the person
    ends; the calling app's own family stays."""
    gid = identity.claims.get("gid")
    await sign_out_other_sessions(
        services, identity.person.account_id, keep_grant=gid if isinstance(gid, str) else None, reason=reason, ip=client_ip(request)
    )
    _notify(request, services, identity, "mfa_enabled" if reason == "mfa_enrolled" else "mfa_disabled")


def _notify(request: Request, services: Services, identity: Bearer, what: str) -> None:
    """The security notice mail (accounts/notices.py), in the account's language, else the request's."""
    notify(services, identity.person, what, locale=request_locale(request))


async def _json_body(request: Request) -> dict[str, str]:
    """A small JSON object of strings (application/json), or invalid_request."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise InvalidRequest("The request body must be application/json.")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise InvalidRequest("The request body is too large.")
    except ClientDisconnect:
        raise InvalidRequest("The request body was not received.") from None
    try:
        data: Any = json.loads(bytes(body) or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InvalidRequest("The request body must be a JSON object of strings.")
    return {str(k): v for k, v in data.items()}


def _presented(body: dict[str, str]) -> tuple[str, Method]:
    if body.get("backup_code"):
        return body["backup_code"][:64], "backup_code"
    if body.get("code"):
        return body["code"][:32], "totp"
    raise InvalidRequest("Send code (from the authenticator app) or backup_code.")


def _raise_failure(outcome: Outcome, services: Services) -> None:
    if outcome.reason == "locked":
        error: OAuthError = MfaLocked()
        if outcome.locked_until is not None:
            seconds = max(1, int((outcome.locked_until - services.clock.now()).total_seconds()))
            error.headers["Retry-After"] = str(seconds)
        raise error
    if outcome.reason == "bad_password":
        raise InvalidCredentials()
    if outcome.reason == "replay":
        raise InvalidCode("The code was already used. Wait for the next one.")
    raise InvalidCode()


def _translate_domain_errors(error: Exception) -> OAuthError:
    if isinstance(error, AlreadyEnabled):
        return MfaConflict("mfa_already_enabled", "MFA is already enabled. Turn it off first to enrol again.")
    if isinstance(error, NotEnabled):
        return MfaConflict("mfa_not_enabled", "MFA is not enabled for this account.")
    if isinstance(error, NoPendingEnrolment):
        return MfaConflict("no_pending_enrolment", "Start the enrolment first.")
    return TemporarilyUnavailable()


@protected(PROTECTION)
@oauth_json
async def mfa_status(request: Request) -> Response:
    if request.method != "GET":
        return method_not_allowed("GET")
    services, identity = await _identity(request)
    status = await services.mfa.status(identity.person)
    return json_response(
        {
            "totp_enabled": status.enabled,
            "backup_codes_remaining": status.backup_codes_remaining,
            "backup_codes_low": status.backup_codes_low,
        }
    )


@protected(PROTECTION)
@oauth_json
async def totp(request: Request) -> Response:
    if request.method not in ("POST", "DELETE"):
        return method_not_allowed("POST, DELETE")
    services, identity = await _identity(request)
    context = _context(request, identity)
    try:
        if request.method == "POST":
            enrolment = await services.mfa.start_enrolment(identity.person, context)
            return json_response(
                {
                    "secret": enrolment.secret,
                    "otpauth_uri": enrolment.otpauth_uri,
                    "qr_png": qr.png_data_uri(enrolment.otpauth_uri),
                    "qr_svg": qr.svg(enrolment.otpauth_uri),
                    "issuer": services.settings.mfa.issuer,
                    "digits": 6,
                    "period": 30,
                    "algorithm": "SHA1",
                }
            )
        body = await _json_body(request)
        code, method = _presented(body)
        outcome = await services.mfa.disable(
            identity.person.account_id, password=body.get("password", "")[:256], code=code, method=method,
            context=context,
        )
        if not outcome.ok:
            _raise_failure(outcome, services)
        await _end_other_sessions(request, services, identity, "mfa_disabled")
        return json_response({"totp_enabled": False})
    except (AlreadyEnabled, NotEnabled, NoPendingEnrolment, SecretUnavailable) as error:
        raise _translate_domain_errors(error) from None


@protected(PROTECTION)
@oauth_json
async def totp_confirm(request: Request) -> Response:
    if request.method != "POST":
        return method_not_allowed("POST")
    services, identity = await _identity(request)
    body = await _json_body(request)
    code = body.get("code", "")[:32]
    if not code:
        raise InvalidRequest("Send the code shown by the authenticator app.")
    try:
        codes = await services.mfa.confirm_enrolment(identity.person.account_id, code, _context(request, identity))
    except (AlreadyEnabled, NotEnabled, NoPendingEnrolment, SecretUnavailable) as error:
        raise _translate_domain_errors(error) from None
    if codes is None:
        raise InvalidCode()
    await _end_other_sessions(request, services, identity, "mfa_enrolled")
    return json_response({"totp_enabled": True, "backup_codes": codes})


@protected(PROTECTION)
@oauth_json
async def regenerate_backup_codes(request: Request) -> Response:
    if request.method != "POST":
        return method_not_allowed("POST")
    services, identity = await _identity(request)
    code, method = _presented(await _json_body(request))
    try:
        outcome, codes = await services.mfa.regenerate_backup_codes(
            identity.person.account_id, code=code, method=method, context=_context(request, identity)
        )
    except (AlreadyEnabled, NotEnabled, NoPendingEnrolment, SecretUnavailable) as error:
        raise _translate_domain_errors(error) from None
    if not outcome.ok:
        _raise_failure(outcome, services)
    _notify(request, services, identity, "backup_codes_regenerated")
    return json_response({"backup_codes": codes})
