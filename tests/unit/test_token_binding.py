"""TokenBinding: the cnf claim and token_type of sender-constrained access tokens (RFC 9449 §6, RFC 8705 §3.1)."""

from authserver.grants.base import TokenBinding, bound_claims, token_response


def test_a_dpop_key_binds_with_jkt_and_makes_a_dpop_token() -> None:
    binding = TokenBinding(jkt="0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    assert bound_claims(binding) == {"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}
    assert binding.token_type == "DPoP"


def test_a_certificate_binds_with_x5t_s256_and_stays_a_bearer_token() -> None:
    binding = TokenBinding(x5t_s256="bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2")
    assert bound_claims(binding) == {"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}
    assert binding.token_type == "Bearer"


def test_no_binding_adds_no_claim() -> None:
    assert bound_claims(None) == {}
    assert bound_claims(TokenBinding()) == {}
    assert token_response("at", 300, ["read"])["token_type"] == "Bearer"
    assert token_response("at", 300, ["read"], token_type="DPoP")["token_type"] == "DPoP"
