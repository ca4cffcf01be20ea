"""The authorization request, the pending interaction, and the prompts it must pass: login, mfa, consent.

Like node-oidc-provider's interaction policy, each prompt is a list of named checks; the first prompt
with a failing check is what the person is shown next (or, with ``prompt=none``, the error returned).
Nothing here knows about HTTP.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from authserver.errors import ConsentRequired, InteractionRequired, LoginRequired, OAuthError
from authserver.mfa.service import MFA_ACR_VALUES, is_enrolled
from authserver.storage.cache import Cache
from authserver.storage.sql.clients import ClientInfo
from authserver.storage.sql.models import Account, BrowserSession


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1)."""

    client_id: str
    redirect_uri: str
    scopes: list[str]
    code_challenge: str
    audience: list[str]
    state: str | None = None
    nonce: str | None = None
    prompt: list[str] = field(default_factory=list)
    max_age: int | None = None
    login_hint: str | None = None
    ui_locales: str | None = None
    acr_values: list[str] = field(default_factory=list)
    # ``sub`` of a verified id_token_hint (OIDC Core §3.1.2.1): the person the client expects to be signed in.
    id_token_hint_sub: str | None = None
    # RFC 9449 §10: the DPoP key (JWK SHA-256 thumbprint) the code is bound to.
    dpop_jkt: str | None = None


@dataclass
class Interaction:
    """A person's trip through our pages, kept in the shared cache so any instance can continue it."""

    interaction_id: str
    created_at: float
    request: AuthorizationRequest | None = None
    # Where to go after sign-in when there is no authorization request (the account pages).
    return_to: str | None = None
    consent_given: bool = False
    # Password verified for this account, second factor not yet: no session exists until it is.
    pending_account_id: str | None = None
    # The person signed in during this interaction (satisfies prompt=login and max_age).
    signed_in: bool = False
    # The browser that started it (web.pages.browser_id); its forms are refused from any other.
    browser: str = ""
    # Unused since forms carry pages.interaction_form_token; kept (empty) so the previous release can read
    # records written by this one during a rolling deploy.
    csrf: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Interaction:
        data: dict[str, Any] = json.loads(text)
        request = data.pop("request", None)
        # Ignore fields a newer instance added, so a flow survives a rolling deploy (SPEC R-24).
        known = {f.name for f in fields(cls)}
        request_known = {f.name for f in fields(AuthorizationRequest)}
        return cls(
            request=AuthorizationRequest(**{k: v for k, v in request.items() if k in request_known}) if request else None,
            **{k: v for k, v in data.items() if k in known},
        )


class InteractionStore:
    def __init__(self, cache: Cache, *, ttl: int) -> None:
        self._cache = cache
        self._ttl = ttl

    async def start(
        self, now: datetime, *, request: AuthorizationRequest | None = None, return_to: str | None = None, browser: str = ""
    ) -> Interaction:
        interaction = Interaction(
            interaction_id=secrets.token_urlsafe(24),
            created_at=now.timestamp(),
            request=request,
            return_to=return_to,
            browser=browser,
        )
        await self.save(interaction)
        return interaction

    async def get(self, interaction_id: str | None) -> Interaction | None:
        if not interaction_id or len(interaction_id) > 64:
            return None
        text = await self._cache.get(f"interaction:{interaction_id}")
        return Interaction.from_json(text) if text else None

    async def save(self, interaction: Interaction) -> None:
        await self._cache.set(f"interaction:{interaction.interaction_id}", interaction.to_json(), self._ttl)

    async def finish(self, interaction_id: str) -> Interaction | None:
        """Take the interaction out of the cache (once): a finished flow cannot be replayed."""
        text = await self._cache.pop(f"interaction:{interaction_id}")
        return Interaction.from_json(text) if text else None


@dataclass(frozen=True)
class Prompt:
    name: str  # "login", "mfa" or "consent"
    reasons: list[str]


def next_prompt(
    request: AuthorizationRequest,
    client: ClientInfo,
    session: BrowserSession | None,
    *,
    consented_scopes: set[str],
    interaction: Interaction | None,
    now: datetime,
    account: Account | None = None,
    mfa_roles: frozenset[str] = frozenset(),
) -> Prompt | None:
    """The first prompt the request still needs, or None when a code can be issued."""
    reasons = _login_reasons(request, session, interaction, now)
    if reasons:
        return Prompt("login", reasons)
    reasons = _mfa_reasons(request, client, session, account, mfa_roles)
    if reasons:
        return Prompt("mfa", reasons)
    reasons = _consent_reasons(request, client, consented_scopes, interaction)
    if reasons:
        return Prompt("consent", reasons)
    return None


def _login_reasons(
    request: AuthorizationRequest, session: BrowserSession | None, interaction: Interaction | None, now: datetime
) -> list[str]:
    if session is None:
        return ["no_session"]
    if interaction is not None and interaction.signed_in:
        # A sign-in inside this very interaction: not a clock comparison, so it cannot be skipped
        # by resuming quickly, and clock resolution does not matter. (Who signed in: see contradicts_hint.)
        return []
    reasons = []
    if contradicts_hint(request, session):
        reasons.append("id_token_hint")
    if "login" in request.prompt:
        reasons.append("prompt_login")
    # OIDC Core §3.1.2.1: re-authenticate when more than max_age seconds passed; max_age=0 always.
    if request.max_age is not None and (request.max_age == 0 or session.auth_time + timedelta(seconds=request.max_age) < now):
        reasons.append("max_age")
    return reasons


def _mfa_reasons(
    request: AuthorizationRequest,
    client: ClientInfo,
    session: BrowserSession | None,
    account: Account | None,
    mfa_roles: frozenset[str],
) -> list[str]:
    """Why the session still needs a second factor; ``not_enrolled`` last when enrolment must come first."""
    if session is None or account is None or "mfa" in session.amr:
        return []
    enrolled = is_enrolled(account)
    reasons = []
    if enrolled:
        reasons.append("enrolled")  # whoever has enrolled always signs in with it
    if client.require_mfa:
        reasons.append("client_requires_mfa")
    if set(account.roles) & mfa_roles:
        reasons.append("role_requires_mfa")
    if set(request.acr_values) & MFA_ACR_VALUES:
        reasons.append("acr_values")
    if reasons and not enrolled:
        reasons.append("not_enrolled")
    return reasons


def _consent_reasons(
    request: AuthorizationRequest, client: ClientInfo, consented_scopes: set[str], interaction: Interaction | None
) -> list[str]:
    if interaction is not None and interaction.consent_given:
        return []
    if client.first_party:
        return []
    reasons = []
    if "consent" in request.prompt:
        reasons.append("prompt_consent")
    if not set(request.scopes) <= consented_scopes:
        reasons.append("scopes_missing")
    return reasons


def contradicts_hint(request: AuthorizationRequest, session: BrowserSession) -> bool:
    """The request's id_token_hint names someone other than the person signed in."""
    return request.id_token_hint_sub is not None and session.account_id != request.id_token_hint_sub


def prompt_none_error(prompt: Prompt) -> OAuthError:
    if prompt.name == "login":
        return LoginRequired("The user is not signed in.")
    if prompt.name == "mfa":
        return InteractionRequired("A second authentication factor is required.")
    return ConsentRequired("The user has not consented to this client.")
