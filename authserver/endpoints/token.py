"""Token endpoint (RFC 6749 §3.2, §5): authenticate the client, run its grant, answer JSON with no-store."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authserver.endpoints._guard import authenticate_client_guarded, client_ip
from authserver.endpoints._http import json_response, method_not_allowed, oauth_json, read_form
from authserver.endpoints._mtls import client_certificate
from authserver.errors import (
    InvalidDpopProof,
    InvalidRequest,
    TemporarilyUnavailable,
    UnsupportedGrantType,
)
from authserver.grants import mtls
from authserver.grants.base import TokenBinding, TokenGrant
from authserver.protocol import client_auth
from authserver.services import Services
from authserver.storage.sql.clients import ClientInfo


@oauth_json
async def token(request: Request) -> Response:
    if request.method != "POST":
        return method_not_allowed("POST")
    services = request.app.state.services
    grants: dict[str, TokenGrant] = request.app.state.grants
    params = await read_form(request, max_bytes=services.settings.server.max_body_bytes)
    presented = client_auth.extract(request.headers.get("authorization"), params)
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("Missing grant_type.")
    ip = client_ip(request)
    client = await authenticate_client_guarded(request, services, presented)
    # Counted per authenticated client, so nobody can spend a service's budget without its secret.
    await services.limiter.check(
        "token", client.client_id, limit=client.rate_limit_per_minute, ip=ip, client_id=client.client_id,
        user_agent=request.headers.get("user-agent"),
    )
    grant = grants.get(grant_type)
    if grant is None:
        raise UnsupportedGrantType(f"Supported grant types: {', '.join(sorted(grants))}.")
    if not services.keys.can_sign(client.signing_alg or services.signer.default_alg):
        # Checked before the grant consumes anything: a key for a newly added algorithm is still being published.
        raise TemporarilyUnavailable("No signing key is active yet for this client's algorithm.")
    relevant = {name: value for name, value in params.items() if name in grant.PARAMETERS}
    # The key the tokens are bound to (DPoP proof, client certificate); None issues bearer tokens.
    binding: TokenBinding | None = await dpop_binding(request, services, client)
    x5t_s256 = mtls.binding(client, client_certificate(request))
    if x5t_s256:
        binding = TokenBinding(jkt=binding.jkt if binding is not None else None, x5t_s256=x5t_s256)
    body = await grant.create_token_response(client, relevant, ip=ip, binding=binding)
    if grant_type != "client_credentials" or services.settings.observability.store_machine_token_events:
        await services.events.record(
            "token", "issued", client_id=client.client_id, ip=ip, user_agent=request.headers.get("user-agent"),
            grant_type=grant_type, scope=body.get("scope"), refresh="refresh_token" in body,
        )
    services.metrics.token_issued(grant_type, client.client_id)
    return json_response(body, headers=services.dpop.nonce_headers() if binding is not None and binding.jkt else None)


async def dpop_binding(request: Request, services: Services, client: ClientInfo) -> TokenBinding | None:
    """RFC 9449 §5: a valid DPoP proof binds the tokens to its key; a client registered with
    ``dpop_bound_access_tokens`` must send one. Errors are ``invalid_dpop_proof`` / ``use_dpop_nonce`` (400)."""
    url = services.settings.server.issuer + request.url.path
    proof = await services.dpop.check(request.headers.getlist("dpop"), method=request.method, url=url)
    if proof is None:
        if client.dpop_bound_access_tokens:
            raise InvalidDpopProof("This client must send a DPoP proof.")
        return None
    return TokenBinding(jkt=proof.jkt)
