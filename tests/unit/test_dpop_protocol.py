"""RFC 9449 pieces without a server: htu normalisation, the one-header rule, hostile proof keys, the stateless
nonce (rotation, shared by instances with the same encryption key) and the dpop settings."""

from __future__ import annotations

import base64
import json
import time

import pytest

from authserver.clock import FrozenClock
from authserver.errors import InvalidDpopProof, UseDpopNonce
from authserver.keys.encryption import Encryptor, generate_key
from authserver.protocol.dpop import ProofError, check_proof, normalise_url, single_header
from authserver.settings import DpopSettings, SettingsError, load_settings
from authserver.storage.cache.memory import MemoryCache
from authserver.tokens.dpop import NONCE_HEADER, DpopGuard
from tests.support.dpop import Prover

URL = "https://auth.example/token"


@pytest.mark.parametrize(("given", "normal"), [
    ("HTTPS://Auth.Example:443/token?x=1#f", "https://auth.example/token"),
    ("http://auth.example:80/token", "http://auth.example/token"),
    ("http://auth.example:8080/token", "http://auth.example:8080/token"),
    ("https://auth.example", "https://auth.example/"),
    ("ftp://auth.example/token", None),
    ("/token", None),
    ("https://auth.example:99999/token", None),
])
def test_htu_normalisation(given: str, normal: str | None) -> None:
    assert normalise_url(given) == normal


def test_exactly_one_header() -> None:
    assert single_header([]) is None
    assert single_header(["a"]) == "a"
    with pytest.raises(ProofError):
        single_header(["a", "b"])


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


HOSTILE_KEYS: list[object] = [
    {"kty": "EC", "crv": "P-521", "x": "AAAA", "y": "AAAA"}, {"kty": "EC", "crv": "P-256", "x": 123, "y": []},
    {"kty": "EC"}, {"kty": "RSA", "n": "AQAB", "e": "AQAB"}, {"kty": "OKP", "crv": "X25519", "x": "AAAA"},
    {"kty": "oct", "k": "AAAA"}, "a string", None, [1, 2],
]


@pytest.mark.parametrize("jwk", HOSTILE_KEYS)
@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA", "HS256", "none", 5])
def test_hostile_proof_keys_are_proof_errors(jwk: object, alg: object) -> None:
    claims = _b64({"jti": "a", "htm": "POST", "htu": URL, "iat": int(time.time())})
    proof = f"{_b64({'typ': 'dpop+jwt', 'alg': alg, 'jwk': jwk})}.{claims}.AAAA"
    with pytest.raises(ProofError):
        check_proof(proof, method="POST", url=URL, algorithms=["ES256", "RS256", "EdDSA"], now=time.time(),
                    max_age=60, leeway=5, max_bytes=8192)


def test_a_good_proof_gives_the_rfc7638_thumbprint() -> None:
    prover = Prover()
    proof = check_proof(prover.proof("POST", URL, nonce="n1"), method="POST", url=URL, algorithms=["ES256"],
                        now=time.time(), max_age=60, leeway=5, max_bytes=8192)
    assert proof.jkt == prover.jkt and proof.nonce == "n1"
    with pytest.raises(ProofError, match="algorithm"):
        check_proof(prover.proof("POST", URL), method="POST", url=URL, algorithms=["RS256"], now=time.time(),
                    max_age=60, leeway=5, max_bytes=8192)


def _guard(key: str, clock: FrozenClock, **settings: object) -> DpopGuard:
    nonce_key = Encryptor({"k1": key}, "k1").derive_key(b"dpop-nonce")
    return DpopGuard(DpopSettings(require_nonce=True, nonce_lifetime=60, **settings), cache=MemoryCache(clock=clock), clock=clock, nonce_key=nonce_key)  # type: ignore[arg-type]


async def test_the_nonce_is_shared_by_instances_with_the_same_key_and_rotates() -> None:
    clock = FrozenClock()
    key = generate_key()
    one, two, other = _guard(key, clock), _guard(key, clock), _guard(generate_key(), clock)
    nonce = one.nonce()
    assert two.nonce_valid(nonce) and not other.nonce_valid(nonce)
    assert one.nonce_headers() == {NONCE_HEADER: nonce}
    clock.advance(60)
    assert one.nonce_valid(nonce) and one.nonce() != nonce  # the previous bucket's nonce still works
    clock.advance(60)
    assert not one.nonce_valid(nonce) and not one.nonce_valid(None)


async def test_the_guard_asks_for_a_nonce_then_spends_the_jti_once() -> None:
    clock = FrozenClock()
    guard = _guard(generate_key(), clock)
    prover = Prover(clock=lambda: clock.now().timestamp())
    first = prover.proof("POST", URL, jti="j1")
    with pytest.raises(UseDpopNonce) as asked:
        await guard.check([first], method="POST", url=URL)
    nonce = asked.value.headers[NONCE_HEADER]
    # Asking for the nonce did not spend the jti: the same id with the nonce works, once.
    retry = prover.proof("POST", URL, jti="j1", nonce=nonce)
    assert (await guard.check([retry], method="POST", url=URL)) is not None
    with pytest.raises(InvalidDpopProof, match="already used"):
        await guard.check([retry], method="POST", url=URL)
    assert await guard.check([], method="POST", url=URL) is None


@pytest.mark.parametrize("environ", [
    {"AUTHSERVER_DPOP__SIGNING_ALGS": "[]"}, {"AUTHSERVER_DPOP__SIGNING_ALGS": '["HS256"]'},
    {"AUTHSERVER_DPOP__SIGNING_ALGS": '["none"]'}, {"AUTHSERVER_DPOP__MAX_AGE": "0"}, {"AUTHSERVER_DPOP__LEEWAY": "301"},
    {"AUTHSERVER_DPOP__MAX_PROOF_BYTES": "100"}, {"AUTHSERVER_DPOP__NONCE_LIFETIME": "5"},
])
def test_bad_dpop_settings_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=r"dpop\."):
        load_settings(environ)
    assert load_settings({"AUTHSERVER_DPOP__REQUIRE_NONCE": "true"}).dpop.require_nonce is True
