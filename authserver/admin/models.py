"""The admin API's request and response bodies, declared once (pydantic v2).

Validation (``read``) and the OpenAPI document (``admin/openapi.py``, ``schemas()``) both come from these
classes. Requests are strict: unknown fields, wrong JSON types, out-of-range values and control
characters are refused, every problem at once, as ``{"field": "scopes[1]", "message": ...}``.

Adding a client field is one line in ``ClientSettings`` (a constrained type below, ``None`` default):
    require_pushed_authorization_requests: bool = FIELD
or, when ``null`` is a meaningful value (reset to the server default), ``T | None = None``. PATCH accepts it
at once; POST too (add it to ``ClientCreate`` only if it is required there); the document follows. Then
give the store column (storage/sql/clients.py) the same name; ``AdminService`` passes present fields on.
Fields only known at run time (configured scopes and roles) are checked against ``Context``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo
from pydantic.json_schema import models_json_schema

from authserver.admin.validation import has_control_characters, invalid
from authserver.protocol.jwks import jwks_problem, jwks_uri_problem
from authserver.protocol.redirect_uri import REGISTRATION_RULE, is_acceptable_registration
from authserver.protocol.scopes import is_scope_token
from authserver.secret_rotation import webhook_problem

SIGNING_ALGS = ("ES256", "RS256", "EdDSA")
MAX_GRACE = 30 * 24 * 3600
# Explicit None default for a field that may be left out but not sent as null (FIELD keeps mypy quiet).
FIELD: Any = Field(default=None)


@dataclass(frozen=True)
class Context:
    """What validation needs from the settings."""

    scopes: frozenset[str] = frozenset()
    roles: tuple[str, ...] = ()
    # server.production: jwks_uri and notification_webhook must be https (no loopback http).
    production: bool = True


def _context(info: ValidationInfo) -> Context:
    return info.context if isinstance(info.context, Context) else Context()


def _printable(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    if has_control_characters(value):
        raise ValueError("must not contain control characters")
    return value


T = TypeVar("T")


def _unique(values: list[T]) -> list[T]:
    """A repeated item counts once, first occurrence kept."""
    seen: list[T] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _check(problem: Callable[[str], str | None]) -> AfterValidator:
    def validate(value: str) -> str:
        message = problem(value)
        if message:
            raise ValueError(message)
        return value

    return AfterValidator(validate)


def _redirect_problem(uri: str) -> str | None:
    return None if is_acceptable_registration(uri) else f"must be {REGISTRATION_RULE}"


def _audience_problem(uri: str) -> str | None:
    return None if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+", uri) else "must be an absolute URI"


def _known_scope(scope: str, info: ValidationInfo) -> str:
    if scope in _context(info).scopes:
        return scope
    if not is_scope_token(scope):
        raise ValueError("is not a scope token (RFC 6749 §3.3: printable ASCII, no space, quote or backslash)")
    raise ValueError("unknown scope (add it to tokens.scopes first)")


def _known_role(role: str, info: ValidationInfo) -> str:
    known = _context(info).roles
    if role not in known:
        raise ValueError(f"unknown role (one of {', '.join(known)})")
    return role


def _email(value: str) -> str:
    if "@" not in value:
        raise ValueError("must be an e-mail address")
    return value


def _jwks(value: dict[str, Any]) -> dict[str, Any]:
    problem = jwks_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _jwks_uri(value: str, info: ValidationInfo) -> str:
    problem = jwks_uri_problem(value, https_only=_context(info).production)
    if problem:
        raise ValueError(problem)
    return value


def _webhook(value: str, info: ValidationInfo) -> str:
    problem = webhook_problem(value, production=_context(info).production)
    if problem:
        raise ValueError(problem)
    return value


def optional(description: str) -> Any:
    """A field that may be left out (not sent as null), with its description in the document."""
    return Field(default=None, description=description)


Text200 = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
Text300 = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_printable)]
Uri = Annotated[str, Field(min_length=1, max_length=2000)]
RedirectUri = Annotated[Uri, _check(_redirect_problem)]
RedirectUris = Annotated[list[RedirectUri], Field(max_length=20), AfterValidator(_unique)]
AudienceUri = Annotated[Uri, _check(_audience_problem)]
AudienceUris = Annotated[list[AudienceUri], Field(max_length=10), AfterValidator(_unique)]
Scope = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_known_scope)]
Scopes = Annotated[list[Scope], Field(max_length=50), AfterValidator(_unique)]
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
GrantTypes = Annotated[list[GrantType], Field(max_length=3), AfterValidator(_unique)]
AuthMethod = Literal[
    "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "tls_client_auth",
    "self_signed_tls_client_auth", "none",
]
# admin/client_keys.ALL_SIGNING_ALGS (private_key_jwt's, then client_secret_jwt's).
AuthSigningAlg = Literal["PS256", "ES256", "Ed25519", "RS256", "PS384", "PS512", "ES384", "ES512", "RS384", "RS512", "HS256", "HS384", "HS512"]
OwnerEmail = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")]
Webhook = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_webhook)]
MtlsName = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_printable)]
Jwks = Annotated[dict[str, Any], AfterValidator(_jwks), Field(description=(
    "Public JWK Set (RSA/EC/OKP, each key with a distinct kid, at most 10 keys, 16 KiB); private_key_jwt and "
    "self_signed_tls_client_auth."
))]
JwksUri = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_jwks_uri)]
SecretLabel = Annotated[str, Field(pattern=r"^[A-Za-z0-9._~-]{1,64}$")]
SigningAlg = Literal["ES256", "RS256", "EdDSA"]
AccessTtl = Annotated[int, Field(ge=60, le=24 * 3600)]
RefreshTtl = Annotated[int, Field(ge=60, le=400 * 24 * 3600)]
RateLimit = Annotated[int, Field(ge=1, le=1_000_000)]
ClientId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{3,64}$")]
Username = Annotated[str, Field(min_length=1, max_length=150, pattern=r"^[^\s\x00-\x1f\x7f]{1,150}$")]
Email = Annotated[str, Field(min_length=1, max_length=320), AfterValidator(_printable), AfterValidator(_email)]
Role_ = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_known_role)]
Roles = Annotated[list[Role_], Field(max_length=10), AfterValidator(_unique)]
Locale = Literal["es", "en"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Response(BaseModel):
    """Response bodies: documented, not validated at run time."""


# -- clients --------------------------------------------------------------------------------------------


class ClientSettings(Strict):
    """A client's writable settings: the PATCH body, and with ``ClientCreate``'s additions the POST body."""

    name: Text200 = FIELD
    token_endpoint_auth_method: AuthMethod = FIELD
    redirect_uris: RedirectUris = FIELD
    post_logout_redirect_uris: RedirectUris = FIELD
    grant_types: GrantTypes = FIELD
    scopes: Scopes = FIELD
    audience: AudienceUris = FIELD
    first_party: bool = optional("Skip the consent page.")
    require_mfa: bool = FIELD
    can_introspect: bool = FIELD
    signing_alg: SigningAlg | None = None
    access_token_ttl: AccessTtl | None = None
    refresh_token_idle_ttl: RefreshTtl | None = None
    refresh_token_absolute_ttl: RefreshTtl | None = None
    rate_limit_per_minute: RateLimit | None = None
    dpop_bound_access_tokens: bool = optional("Require a DPoP proof (RFC 9449) at every token request.")
    owner_email: OwnerEmail | None = optional("Told when a secret rotates by itself (never sent a secret).")
    notification_webhook: Webhook | None = optional(
        "https URL that receives a rotated secret in a signed POST; setting it answers a new notification_webhook_secret once."
    )
    # RFC 8705: tls_client_auth needs exactly one name; self_signed_tls_client_auth the certificate's key in jwks.
    tls_client_auth_subject_dn: MtlsName | None = None
    tls_client_auth_san_dns: MtlsName | None = None
    tls_client_auth_san_uri: MtlsName | None = None
    tls_client_auth_san_ip: MtlsName | None = None
    tls_client_auth_san_email: MtlsName | None = None
    tls_client_certificate_bound_access_tokens: bool = FIELD
    # JWT client authentication and PAR (docs/client-authentication.md, admin/client_keys.py).
    jwks: Jwks | None = None
    jwks_uri: JwksUri | None = optional("https URL of the client's JWK Set; not with jwks.")
    token_endpoint_auth_signing_alg: AuthSigningAlg | None = None
    require_pushed_authorization_requests: bool = optional("Authorization requests must come through /par (RFC 9126).")


class ClientUpdate(ClientSettings):
    """PATCH /admin/api/clients/{client_id}: only the fields given change."""


class ClientCreate(ClientSettings):
    """POST /admin/api/clients."""

    client_id: ClientId = optional("Default: random.")
    client_type: Literal["confidential", "public"]
    name: Text200
    grant_types: GrantTypes


class Client(Response):
    client_id: str
    client_type: str
    disabled: bool
    name: str
    token_endpoint_auth_method: str | None = None
    redirect_uris: list[str] = []
    post_logout_redirect_uris: list[str] = []
    grant_types: list[str]
    scopes: list[str]
    audience: list[str] = []
    first_party: bool | None = None
    require_mfa: bool | None = None
    can_introspect: bool | None = None
    signing_alg: str | None = None
    access_token_ttl: int | None = None
    refresh_token_idle_ttl: int | None = None
    refresh_token_absolute_ttl: int | None = None
    rate_limit_per_minute: int | None = None
    client_secret_expires_at: int | None = optional(
        "Confidential clients: when the last valid secret expires (seconds since the epoch; 0: never; RFC 7591 §3.2.1)."
    )
    dpop_bound_access_tokens: bool | None = None
    owner_email: str | None = None
    notification_webhook: str | None = None
    tls_client_auth_subject_dn: str | None = None
    tls_client_auth_san_dns: str | None = None
    tls_client_auth_san_uri: str | None = None
    tls_client_auth_san_ip: str | None = None
    tls_client_auth_san_email: str | None = None
    tls_client_certificate_bound_access_tokens: bool | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    token_endpoint_auth_signing_alg: str | None = None
    require_pushed_authorization_requests: bool | None = None


class ClientWithSecret(Client):
    client_secret: str | None = optional("Confidential clients only; shown only now.")
    notification_webhook_secret: str | None = optional("When the request set a webhook; shown only now.")


class Rotation(Strict):
    grace_seconds: Annotated[int, Field(ge=0, le=MAX_GRACE)] = optional(
        "How long the previous secrets keep working (default admin.secret_rotation_grace, 24 h; 0 ends them now)."
    )
    label: SecretLabel = optional(
        "Replace only this label's secrets (a new label adds a secret). Without it every secret is replaced."
    )


class RotatedSecret(Response):
    client_id: str
    client_secret: str
    previous_secrets_expire_at: str = Field(json_schema_extra={"format": "date-time"})
    grace_seconds: int
    id: int | None = None
    label: str | None = None
    expires_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class RevealedSecret(Response):
    client_id: str
    id: int
    label: str
    client_secret: str
    expires_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    previous_secret_expires_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class Secret(Response):
    id: int
    label: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    expires_at: str | None = Field(json_schema_extra={"format": "date-time"})
    valid: bool
    revoked_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    rotated_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    replaces: int | None = None
    pending_delivery: bool | None = None
    last_used_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    use_count: int | None = None


class SecretList(Response):
    items: list[Secret]


# -- users ---------------------------------------------------------------------------------------------


class UserSettings(Strict):
    email: Email | None = None
    email_verified: bool = FIELD
    name: Text200 | None = None
    locale: Locale | None = None
    roles: Roles = FIELD


class UserCreate(UserSettings):
    username: Username
    password: Annotated[str, Field(min_length=1, max_length=1024)] = optional("Optional initial password.")


class UserUpdate(UserSettings):
    disabled: bool = FIELD


class User(Response):
    account_id: str
    username: str
    email: str | None = None
    email_verified: bool | None = None
    name: str | None = None
    locale: str | None = None
    roles: list[str]
    mfa_enabled: bool
    disabled: bool
    disabled_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class Role(Response):
    name: str
    description: str | None = None


class RoleList(Response):
    items: list[Role]


class Event(Response):
    id: int
    occurred_at: str = Field(json_schema_extra={"format": "date-time"})
    event: str
    outcome: str
    client_id: str | None = None
    account_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = {}


# -- invitations (admin/invitations.py) -----------------------------------------------------------------


class InvitationCreate(Strict):
    max_uses: Annotated[int, Field(ge=1, le=10_000)] = optional("Default 1.")
    ttl_seconds: Annotated[int, Field(ge=60, le=365 * 24 * 3600)] = optional("Default self_service.invitation_ttl (7 days).")
    note: Text200 | None = None


class Invitation(Response):
    invitation_id: str
    state: Literal["active", "used", "expired", "revoked"]
    max_uses: int
    uses: int
    note: str | None = None
    created_by: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
    revoked_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class NewInvitation(Invitation):
    code: str = Field(description="The invitation code, shown only now.")


# -- operations ----------------------------------------------------------------------------------------


class EmergencySwitch(Strict):
    on: bool
    reason: Text300 = optional("Required when switching on.")
    duration_seconds: Annotated[int, Field(ge=60, le=604800)] = FIELD


class Emergency(Response):
    on: bool
    since: str | None = Field(json_schema_extra={"format": "date-time"})
    until: str | None = Field(json_schema_extra={"format": "date-time"})
    by: str | None
    reason: str | None
    automatic: bool


class ChaosStart(Strict):
    experiment: Literal["latency", "error_rate", "dependency_down", "edge_5xx"]
    target: Literal["database", "cache"] = optional("Required except for edge_5xx.")
    min_ms: Annotated[int, Field(ge=0, le=10000)] = FIELD
    max_ms: Annotated[int, Field(ge=1, le=10000)] = FIELD
    rate: Annotated[float, Field(gt=0, le=1)] = FIELD
    duration_seconds: Annotated[int, Field(ge=1, le=3600)] = FIELD


class Chaos(Response):
    experiments: list[dict[str, Any]]
    available: list[str]


class FieldProblem(Response):
    field: str
    message: str


class Error(Response):
    error: str
    error_description: str | None = None
    errors: list[FieldProblem] | None = None


REQUESTS: tuple[type[BaseModel], ...] = (
    ClientCreate, ClientUpdate, Rotation, UserCreate, UserUpdate, InvitationCreate, EmergencySwitch, ChaosStart,
)
RESPONSES: tuple[type[BaseModel], ...] = (Client, ClientWithSecret, RotatedSecret, RevealedSecret, Secret, SecretList, Invitation, NewInvitation, User, RoleList, Event, Emergency, Chaos, Error)


# -- validation ----------------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def read(model: type[M], data: Any, *, context: Context | None = None) -> tuple[M, dict[str, Any]]:
    """Validate a JSON body; the model and the fields the body gave (explicit nulls included).
    Raises ``AdminError`` 400 with every problem by field."""
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.")
    try:
        parsed = model.model_validate(data, context=context or Context())
    except ValidationError as error:
        raise invalid("The request has invalid fields.", problems(error)) from None
    return parsed, {name: getattr(parsed, name) for name in parsed.model_fields_set}


def problems(error: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors in the admin API's words: unknown fields first, then each field in order."""
    found: list[dict[str, str]] = []
    for item in error.errors(include_url=False):
        loc = [part for part in item["loc"] if not (isinstance(part, str) and ("[" in part or part.startswith("function-")))]
        field = "".join(f"[{part}]" if isinstance(part, int) else (f".{part}" if i else str(part)) for i, part in enumerate(loc))
        entry = {"field": field or "body", "message": _message(item)}
        if entry not in found:
            found.append(entry)
    found.sort(key=lambda e: e["message"] != "unknown field")
    return found


def _message(item: Any) -> str:
    kind, ctx = item["type"], item.get("ctx") or {}
    simple = {
        "extra_forbidden": "unknown field",
        "missing": "required",
        "string_type": "must be a string",
        "bool_type": "must be true or false",
        "int_type": "must be an integer",
        "float_type": "must be a number",
        "list_type": "must be a list",
        "dict_type": "must be an object",
        "string_pattern_mismatch": "has characters that are not allowed",
    }
    if kind in simple:
        return simple[kind]
    if kind == "string_too_short" or kind == "string_too_long":
        return f"must have {'at least' if kind == 'string_too_short' else 'at most'} {ctx.get('min_length', ctx.get('max_length'))} characters"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = ctx.get("ge", ctx.get("gt", ctx.get("le", ctx.get("lt"))))
        words = {"greater_than_equal": "at least", "greater_than": "more than", "less_than_equal": "at most", "less_than": "less than"}
        return f"must be {words[kind]} {bound}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}".replace("'", "")
    if kind == "value_error":
        return str(item["msg"]).removeprefix("Value error, ")
    return str(item["msg"])


# -- the document's schemas ------------------------------------------------------------------------------


def schemas() -> dict[str, Any]:
    """components.schemas of the OpenAPI 3.1 document (JSON Schema 2020-12, as pydantic writes it)."""
    _, document = models_json_schema(
        [(model, "validation" if model in REQUESTS else "serialization") for model in (*REQUESTS, *RESPONSES)],
        ref_template="#/components/schemas/{model}",
    )
    found: dict[str, Any] = document.get("$defs", {})
    return {name: _tidy(schema) for name, schema in found.items()}


def _tidy(schema: Any) -> Any:
    """Drop pydantic's titles and the ``None`` defaults of fields that may only be left out."""
    if isinstance(schema, dict):
        return {k: _tidy(v) for k, v in schema.items() if k != "title" and not (k == "default" and v is None)}
    if isinstance(schema, list):
        return [_tidy(v) for v in schema]
    return schema
