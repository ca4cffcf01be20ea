"""Authorization endpoint (RFC 6749 §4.1.1-4.1.2, RFC 7636 §4.3, RFC 9207, OIDC Core §3.1.2).

Until ``client_id`` and ``redirect_uri`` are validated, every error is an HTML page with no redirect.
After that, errors go back to the client's redirect URI with ``error``, ``state`` and ``iss``.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import NoReturn

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authserver.endpoints._guard import client_ip, too_many_page
from authserver.endpoints._http import query, read_form
from authserver.errors import (
    InvalidRequest,
    LoginRequired,
    OAuthError,
    RequestNotSupported,
    RequestUriNotSupported,
    TooManyRequests,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from authserver.grants.authorization_code import new_code_value
from authserver.grants.base import check_scopes, check_user_audience
from authserver.interaction import pushed as pushed_requests
from authserver.interaction.policy import (
    AuthorizationRequest,
    Interaction,
    InteractionStore,
    contradicts_hint,
    next_prompt,
    prompt_none_error,
)
from authserver.protocol import pkce, redirect_uri
from authserver.services import Services
from authserver.storage.sql.clients import ClientInfo
from authserver.storage.sql.models import AuthorizationCode, BrowserSession
from authserver.tokens.jwt import audience as token_audience
from authserver.tokens.opaque import digest
from authserver.web.pages import (
    PageError,
    browser_id,
    error_page,
    html_page,
    new_browser_id,
    redirect_binding_browser,
    request_locale,
    session_cookie,
)

log = logging.getLogger("authserver.authorize")

PROMPT_VALUES = frozenset({"none", "login", "consent", "select_account"})
# RFC 9449 §10 dpop_jkt: a base64url SHA-256 JWK thumbprint (43 characters).
JKT = re.compile(r"[A-Za-z0-9_-]{43}")


class RedirectError(Exception):
    def __init__(self, error: OAuthError, redirect_to: str, state: str | None) -> None:
        super().__init__(error.error)
        self.error = error
        self.redirect_to = redirect_to
        self.state = state


@html_page
async def authorize(request: Request) -> Response:
    services: Services = request.app.state.services
    if request.method not in ("GET", "POST"):
        return error_page(request, "error.method", status_code=405)
    try:
        ip = client_ip(request)
        try:
            await services.limiter.check("authorize", ip, ip=ip, user_agent=request.headers.get("user-agent"))
        except TooManyRequests as error:
            return too_many_page(request, error, locale=request_locale(request, _ui_locales(request)))
        try:
            params = query(request) if request.method == "GET" else await read_form(request)
        except OAuthError:
            raise PageError("error.invalid_request") from None
        # A request_uri of ours comes from /par (RFC 9126 §4); any other (a request object by reference)
        # is refused by validate_request with request_uri_not_supported.
        pushed = params.get("request_uri", "").startswith(pushed_requests.REQUEST_URI_PREFIX)
        if pushed:
            taken = await pushed_requests.take(services, request_uri=params["request_uri"], client_id=params.get("client_id"))
            if taken is None:
                raise PageError("error.invalid_request_uri")
            params = taken
        client, auth_request = await validate_request(services, params, pushed=pushed)
        session = await services.browser_sessions.get(session_cookie(request))
        return await continue_flow(request, services, client, auth_request, session, interaction=None)
    except PageError as error:
        return error_page(request, error.message_key, locale=request_locale(request, _ui_locales(request)))
    except RedirectError as error:
        return error_redirect(services, error.redirect_to, error.error, error.state)


def _ui_locales(request: Request) -> str | None:
    value = request.query_params.get("ui_locales")
    return value if value and len(value) < 100 else None


async def validate_request(
    services: Services, params: dict[str, str], *, pushed: bool = False
) -> tuple[ClientInfo, AuthorizationRequest]:
    """``pushed``: the parameters came through /par (RFC 9126), which the client or the server may require."""
    client_id = params.get("client_id")
    client = await services.clients.get(client_id) if client_id else None
    if client is None or client.disabled:
        raise PageError("error.invalid_client")
    scope_param = params.get("scope", "")
    openid = "openid" in scope_param.split(" ")
    presented_uri = params.get("redirect_uri")
    if presented_uri is None:
        # RFC 6749 §3.1.2.3: only one registered URI may be implied; OIDC always requires it.
        if openid or len(client.redirect_uris) != 1:
            raise PageError("error.invalid_redirect_uri")
        target = client.redirect_uris[0]
    elif redirect_uri.matches(client.redirect_uris, presented_uri, loopback_any_port=client.is_public):
        target = presented_uri
    else:
        raise PageError("error.invalid_redirect_uri")
    state = params.get("state")

    def fail(error: OAuthError) -> NoReturn:
        raise RedirectError(error, target, state)

    if not pushed and (client.require_pushed_authorization_requests or services.settings.par.required):
        fail(InvalidRequest("This client must push its authorization requests (RFC 9126)."))
    if "request" in params:
        fail(RequestNotSupported("Request objects are not supported."))
    if "request_uri" in params:
        fail(RequestUriNotSupported("Only request_uri values from the pushed authorization request endpoint are supported."))
    response_type = params.get("response_type")
    if response_type is None:
        fail(InvalidRequest("Missing response_type."))
    if response_type != "code":
        fail(UnsupportedResponseType("Only response_type=code is supported."))
    if params.get("response_mode", "query") != "query":
        fail(InvalidRequest("Only response_mode=query is supported."))
    if "authorization_code" not in client.grant_types:
        fail(UnauthorizedClient("This client may not use the authorization code flow."))
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        fail(InvalidRequest("code_challenge is required (PKCE S256)."))
    if method != "S256":
        fail(InvalidRequest("code_challenge_method must be S256."))
    if not pkce.is_valid_s256_challenge(challenge):
        fail(InvalidRequest("Invalid parameter: code_challenge."))
    prompt = params.get("prompt", "").split()
    if not set(prompt) <= PROMPT_VALUES or ("none" in prompt and len(prompt) > 1):
        fail(InvalidRequest("Invalid prompt value."))
    max_age = None
    if "max_age" in params:
        raw = params["max_age"]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
            fail(InvalidRequest("max_age must be a non-negative integer."))
        max_age = int(raw)
    nonce = params.get("nonce")
    if nonce is not None and len(nonce) > 512:
        fail(InvalidRequest("nonce is too long."))
    dpop_jkt = params.get("dpop_jkt")
    if dpop_jkt is not None and not JKT.fullmatch(dpop_jkt):
        # RFC 9449 §10: the base64url SHA-256 JWK thumbprint (RFC 7638) of the client's DPoP key.
        fail(InvalidRequest("Invalid parameter: dpop_jkt."))
    hint_sub = None
    if "id_token_hint" in params:
        # OIDC Core §3.1.2.1: an ID token we issued to this client (expired ones too: it names, it grants nothing).
        claims = services.signer.verify_id_token_hint(params["id_token_hint"])
        if claims is None or client.client_id not in (token_audience(claims) or []):
            fail(InvalidRequest("id_token_hint is not an ID token this server issued to this client."))
        hint_sub = str(claims["sub"])
    try:
        scopes = check_scopes(services, client, scope_param or None, default=[])
        if not scopes:
            fail(InvalidRequest("Missing scope."))
        audience = check_user_audience(services, client, params.get("resource"), scopes)
    except OAuthError as error:
        fail(error)
    return client, AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=target,
        scopes=scopes,
        code_challenge=challenge,
        audience=audience,
        state=state,
        nonce=nonce,
        prompt=prompt,
        max_age=max_age,
        login_hint=params.get("login_hint"),
        ui_locales=params.get("ui_locales"),
        acr_values=params.get("acr_values", "").split(),
        id_token_hint_sub=hint_sub,
        dpop_jkt=dpop_jkt,
    )


async def continue_flow(
    request: Request,
    services: Services,
    client: ClientInfo,
    auth_request: AuthorizationRequest,
    session: BrowserSession | None,
    *,
    interaction: Interaction | None,
) -> Response:
    """Show the next prompt, or issue the code and send the person back to the client."""
    now = services.clock.now()
    if session is not None and interaction is not None and interaction.signed_in and contradicts_hint(auth_request, session):
        # Asked to sign in because of the hint, the person signed in as someone else (OIDC Core §3.1.2.1).
        raise RedirectError(LoginRequired("The signed-in user is not the one id_token_hint names."), auth_request.redirect_uri, auth_request.state)
    consented = await services.consents.granted_scopes(session.account_id, client.client_id) if session else set()
    account = await services.accounts.get(session.account_id) if session else None
    prompt = next_prompt(
        auth_request, client, session, consented_scopes=consented, interaction=interaction, now=now,
        account=account, mfa_roles=services.mfa.required_roles(),
    )
    interactions: InteractionStore = request.app.state.interactions
    if prompt is not None:
        if "none" in auth_request.prompt:
            raise RedirectError(prompt_none_error(prompt), auth_request.redirect_uri, auth_request.state)
        if interaction is None:
            browser = browser_id(request) or new_browser_id()
            interaction = await interactions.start(now, request=auth_request, browser=browser)
            return redirect_binding_browser(request, f"/{prompt.name}?i={interaction.interaction_id}", browser)
        return RedirectResponse(f"/{prompt.name}?i={interaction.interaction_id}", status_code=303)
    assert session is not None
    if interaction is not None:
        await interactions.finish(interaction.interaction_id)
    code_value = new_code_value()
    await services.tokens.create_code(
        AuthorizationCode(
            code_digest=digest(code_value),
            client_id=client.client_id,
            account_id=session.account_id,
            session_digest=session.session_digest,
            redirect_uri=auth_request.redirect_uri,
            scopes=auth_request.scopes,
            audience=auth_request.audience,
            code_challenge=auth_request.code_challenge,
            nonce=auth_request.nonce,
            dpop_jkt=auth_request.dpop_jkt,
            auth_time=session.auth_time,
            amr=list(session.amr),
            acr=session.acr,
            created_at=now,
            expires_at=now + timedelta(seconds=services.settings.tokens.code_ttl),
        )
    )
    params = {"code": code_value}
    if auth_request.state is not None:
        params["state"] = auth_request.state
    params["iss"] = services.settings.server.issuer
    return RedirectResponse(redirect_uri.with_params(auth_request.redirect_uri, params), status_code=303)


def error_redirect(services: Services, target: str, error: OAuthError, state: str | None) -> Response:
    params = error.body()
    if state is not None:
        params["state"] = state
    params["iss"] = services.settings.server.issuer
    return RedirectResponse(redirect_uri.with_params(target, params), status_code=303, headers={"Cache-Control": "no-store"})
