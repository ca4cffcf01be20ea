"""Claim rules of the verifier (RFC 7519 §4.1, RFC 9068 §4) with tokens we sign locally for odd cases."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from cmipro_verify import InvalidToken, JWKSCache, Verifier

ISSUER, AUDIENCE = "https://issuer.example", "https://api.example"
KEY = ECKey.generate_key("P-256", private=True, parameters={"kid": "k1"})
NOW = 1_800_000_000.0


def jwks_transport(keys: list[dict[str, Any]]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, json={"keys": keys}, headers={"Cache-Control": "max-age=300"}))


def make_verifier(keys: list[dict[str, Any]] | None = None) -> Verifier:
    public = {**KEY.as_dict(private=False), "kid": "k1", "alg": "ES256", "use": "sig"}
    client = httpx.Client(transport=jwks_transport(keys if keys is not None else [public]))
    cache = JWKSCache(f"{ISSUER}/jwks", algorithms={"ES256"}, clock=lambda: NOW, http_client=client)
    # Claim rules only: the revocation feed has its own tests (test_revocation_feed.py).
    return Verifier(issuer=ISSUER, audience=AUDIENCE, algorithms=["ES256"], clock=lambda: NOW, jwks=cache, revocation_check=False)


def sign(claims: dict[str, Any], **header: Any) -> str:
    protected = {"alg": "ES256", "typ": "at+jwt", "kid": "k1", **header}
    # json.dumps writes NaN/Infinity literals, which Python's json.loads (and so a naive verifier) accepts.
    return jws.serialize_compact(protected, json.dumps(claims).encode(), KEY, algorithms=["ES256"])


def base(**changes: Any) -> dict[str, Any]:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "s", "exp": NOW + 300, "iat": NOW}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_a_well_formed_token_verifies() -> None:
    assert make_verifier().verify(sign(base())).subject == "s"
    assert make_verifier().verify(sign(base(aud=["https://x.example", AUDIENCE]))).subject == "s"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (base(exp=float("nan")), "expired"),
        (base(exp=float("inf")), "expired"),
        (base(exp=True), "expired"),
        (base(exp="9999999999"), "expired"),
        (base(exp=None), "expired"),
        (base(iat=None), "future"),
        (base(iat=NOW + 61), "future"),
        (base(nbf=NOW + 61), "not yet valid"),
        (base(aud=None), "audience"),
        (base(aud=[]), "audience"),
        (base(aud=[["https://api.example"]]), "audience"),
        (base(iss=ISSUER + "/"), "issuer"),
    ],
)
def test_claims_that_must_be_refused(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        make_verifier().verify(sign(claims))


def test_critical_headers_and_missing_kid_are_refused() -> None:
    _, payload, signature = sign(base()).split(".")
    header = base64.urlsafe_b64encode(json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": "k1", "crit": ["x"], "x": 1}).encode())
    with pytest.raises(InvalidToken, match="critical"):
        make_verifier().verify(f"{header.decode().rstrip('=')}.{payload}.{signature}")
    token = jws.serialize_compact({"alg": "ES256", "typ": "at+jwt"}, json.dumps(base()).encode(), KEY, algorithms=["ES256"])
    with pytest.raises(InvalidToken, match="key id"):
        make_verifier().verify(token)


def test_jwks_entries_that_do_not_fit_their_algorithm_are_ignored() -> None:
    public = {k: v for k, v in KEY.as_dict(private=False).items() if k != "kid"}
    odd = [
        {**public, "kid": "k1", "alg": "RS256"},            # EC key claiming RSA
        {**public, "kid": "k1", "alg": "ES256", "use": "enc"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "k1", "alg": "HS256"},
        {**public, "alg": "ES256"},                           # no kid
        {**ECKey.generate_key("P-256", private=True).as_dict(private=False), "kid": "other", "alg": "ES256"},
    ]
    with pytest.raises(InvalidToken, match="unknown key id"):
        make_verifier(odd).verify(sign(base()))



def test_an_empty_or_broken_jwks_never_replaces_a_working_one() -> None:
    public = {**KEY.as_dict(private=False), "kid": "k1", "alg": "ES256", "use": "sig"}
    answers = [httpx.Response(200, json={"keys": [public]}, headers={"Cache-Control": "max-age=10"})]
    answers += [httpx.Response(200, json={"keys": []}), httpx.Response(200, text="<html>proxy error</html>")]
    clock = [NOW]
    client = httpx.Client(transport=httpx.MockTransport(lambda request: answers.pop(0) if len(answers) > 1 else answers[0]))
    cache = JWKSCache(f"{ISSUER}/jwks", algorithms={"ES256"}, clock=lambda: clock[0], http_client=client, retry_after_error=0)
    verifier = Verifier(issuer=ISSUER, audience=AUDIENCE, algorithms=["ES256"], clock=lambda: clock[0], jwks=cache, revocation_check=False)
    token = sign(base(exp=NOW + 3600))
    assert verifier.verify(token)
    for _ in range(2):
        clock[0] += 11
        assert verifier.verify(token)  # the stale but working set keeps serving
    assert cache.fetches == 3
