"""JWT client authentication (RFC 7523 §2.2, §3; OIDC Core §9): private_key_jwt and client_secret_jwt.

Checked, cheapest first, and every refusal is ``invalid_client``:
- the client registered this method, and the assertion's ``alg`` is in the method's allowlist (never
  ``none``; HMAC only for client_secret_jwt) and equals ``token_endpoint_auth_signing_alg`` when registered;
- the signature, with the key the header's ``kid`` names in the registered ``jwks`` or the ``jwks_uri`` set
  (an unknown kid, or a failed signature without a kid, refetches the URL once, within a budget), or with one of the client's current secrets;
- ``iss`` = ``sub`` = client_id; ``aud`` names the issuer or one of our client-authenticating endpoints
  (token, PAR: RFC 9126 §2; revocation, introspection); ``exp`` present, not past (leeway) and at most
  ``client_auth.assertion_max_lifetime`` ahead; ``iat``/``nbf`` not in the future; a ``jti``;
- last, the ``jti`` is claimed in the shared cache until the assertion expires, so one assertion works
  once across all instances (RFC 7523 §3 item 7).
"""

from __future__ import annotations

import logging
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey, OKPKey, RSAKey

from authserver.errors import InvalidClient
from authserver.keys.client_jwks import ClientKeys, ClientKeysUnavailable
from authserver.keys.encryption import DecryptionError
from authserver.protocol.client_auth import HMAC_ALGS, PresentedCredentials
from authserver.services import Services
from authserver.storage.sql.clients import ClientInfo, secret_aad
from authserver.tokens.opaque import digest

log = logging.getLogger("authserver.client_assertion")

# Asymmetric algorithms for private_key_jwt (FAPI 2.0 asks for PS256, ES256 or EdDSA, which RFC 9864 names
# Ed25519 and joserfc warns about under the old name; RS256 for OIDC).
PRIVATE_KEY_JWT_ALGS = ("PS256", "ES256", "Ed25519", "RS256", "PS384", "PS512", "ES384", "ES512", "RS384", "RS512")
CLIENT_SECRET_JWT_ALGS = tuple(sorted(HMAC_ALGS))
_KEY_TYPES: dict[str, type[Any]] = {"RS": RSAKey, "PS": RSAKey, "ES": ECKey, "Ed": OKPKey}
# Endpoints where clients authenticate: an assertion for any of them (or the issuer) is for us.
AUDIENCE_PATHS = ("", "/token", "/par", "/revoke", "/introspect")
MAX_JTI = 256


def _refuse(description: str, debug: str | None = None) -> InvalidClient:
    return InvalidClient(description, debug=debug)


def _check_alg(client: ClientInfo, presented: PresentedCredentials, allowed: tuple[str, ...]) -> str:
    alg = presented.assertion_header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise _refuse("The client assertion's algorithm is not allowed.", f"alg {str(alg)[:20]!r}")
    if client.token_endpoint_auth_signing_alg is not None and alg != client.token_endpoint_auth_signing_alg:
        raise _refuse("The client assertion's algorithm is not the registered one.")
    return alg


def _decode(presented: PresentedCredentials, key: Any, alg: str) -> dict[str, Any] | None:
    assert presented.assertion is not None
    try:
        return dict(jwt.decode(presented.assertion, key, algorithms=[alg]).claims)
    except (JoseError, ValueError, TypeError):
        return None


def _pick(key_set: KeySet, kid: Any, alg: str) -> Any:
    """The key named by ``kid``; without a kid, the only key of the algorithm's type."""
    key_type = _KEY_TYPES.get(alg[:2])
    candidates = [k for k in key_set.keys if key_type is not None and isinstance(k, key_type)]
    if kid is not None:
        candidates = [k for k in candidates if k.kid == kid]
    elif len(candidates) != 1:
        return None
    for key in candidates:
        if key.get("alg") in (None, alg):
            return key
    return None


async def private_key_jwt(services: Services, client: ClientInfo, presented: PresentedCredentials) -> ClientInfo:
    if presented.method != "private_key_jwt":
        raise _refuse("The client did not use its registered authentication method.")
    alg = _check_alg(client, presented, PRIVATE_KEY_JWT_ALGS)
    kid = presented.assertion_header.get("kid")
    keys: ClientKeys = client_keys(services)
    try:
        if client.jwks is not None:
            key_set = keys.inline(client.client_id, client.jwks)
        elif client.jwks_uri is not None:
            key_set = await keys.remote(client.jwks_uri)
        else:
            raise _refuse("The client has no registered keys.")
        key = _pick(key_set, kid, alg)
        claims = _decode(presented, key, alg) if key is not None else None
        if claims is None and client.jwks_uri is not None and (key is None or kid is None):
            # The client may have rotated its keys: look again, once, within the refetch budget.
            fresh = await keys.remote(client.jwks_uri, refresh=True)
            if fresh is not key_set:
                key = _pick(fresh, kid, alg)
                claims = _decode(presented, key, alg) if key is not None else None
    except ClientKeysUnavailable as error:
        log.warning("client %s: %s", client.client_id, error)
        raise _refuse("The client's keys could not be read.", str(error)) from None
    if key is None:
        raise _refuse("No registered key matches the client assertion.", f"kid {str(kid)[:40]!r}")
    if claims is None:
        raise _refuse("The client assertion's signature is not valid.")
    await _check_claims(services, client, claims)
    return client


async def client_secret_jwt(services: Services, client: ClientInfo, presented: PresentedCredentials) -> ClientInfo:
    if presented.method != "client_secret_jwt":
        raise _refuse("The client did not use its registered authentication method.")
    alg = _check_alg(client, presented, CLIENT_SECRET_JWT_ALGS)
    claims = _verify_hmac(services, client, presented, alg)
    if claims is None:
        # The secret may have been rotated on another instance moments ago: look past the cache once.
        fresh = await services.clients.refresh(client.client_id)
        claims = _verify_hmac(services, fresh, presented, alg) if fresh is not None and not fresh.disabled else None
        if claims is None or fresh is None:
            raise _refuse("The client assertion's signature is not valid.")
        client = fresh
    await _check_claims(services, client, claims)
    return client


def _verify_hmac(services: Services, client: ClientInfo, presented: PresentedCredentials, alg: str) -> dict[str, Any] | None:
    now = services.clock.now()
    for info in client.secrets:
        if info.secret_encrypted is None or (info.expires_at is not None and info.expires_at <= now):
            continue
        try:
            secret = services.encryptor.decrypt(info.secret_encrypted, aad=secret_aad(client.client_id))
        except DecryptionError:
            log.warning("client %s: a client_secret_jwt secret does not decrypt", client.client_id)
            continue
        claims = _decode(presented, OctKey.import_key(secret), alg)
        if claims is not None:
            return claims
    return None


async def _check_claims(services: Services, client: ClientInfo, claims: dict[str, Any]) -> None:
    settings = services.settings
    leeway = settings.client_auth.assertion_leeway
    now = int(services.clock.now().timestamp())
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise _refuse("The client assertion's iss and sub must be the client_id.")
    issuer = settings.server.issuer
    accepted = {issuer + path for path in AUDIENCE_PATHS}
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(a, str) and a in accepted for a in audiences):
        raise _refuse("The client assertion's audience is not this server.")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise _refuse("The client assertion needs an exp.")
    if exp + leeway <= now:
        raise _refuse("The client assertion has expired.")
    if exp - now > settings.client_auth.assertion_max_lifetime + leeway:
        raise _refuse("The client assertion lives too long.")
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value > now + leeway):
            raise _refuse(f"The client assertion's {name} is in the future or malformed.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI:
        raise _refuse("The client assertion needs a jti.")
    # One use across every instance until it expires (the cache is shared through Redis).
    key = f"assertion-jti:{digest(client.client_id + ' ' + jti)}"
    if not await services.cache.add(key, "1", ttl=max(exp - now + leeway, 1)):
        raise _refuse("The client assertion was used before.")


def client_keys(services: Services) -> ClientKeys:
    """The instance's client key fetcher (made on first use, closed with the services)."""
    keys = services.client_keys
    if keys is None:
        settings = services.settings
        keys = ClientKeys(
            services.clock,
            timeout=settings.client_auth.jwks_uri_timeout,
            max_bytes=settings.client_auth.jwks_uri_max_bytes,
            cache_ttl=settings.client_auth.jwks_uri_cache_ttl,
            refetch_interval=settings.client_auth.jwks_uri_refetch_interval,
            https_only=settings.server.production,
        )
        services.client_keys = keys
    return keys
