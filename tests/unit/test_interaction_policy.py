"""The interaction record (kept in the shared cache) and the prompt policy (OIDC Core §3.1.2.1)."""

from __future__ import annotations

import json

from authserver.interaction.policy import AuthorizationRequest, Interaction


def test_interaction_round_trips_and_tolerates_fields_from_newer_versions() -> None:
    request = AuthorizationRequest(client_id="c", redirect_uri="https://a/cb", scopes=["openid"], code_challenge="x" * 43, audience=["a"])
    interaction = Interaction(interaction_id="i", created_at=1.5, request=request, signed_in=True)
    assert Interaction.from_json(interaction.to_json()) == interaction
    data = json.loads(interaction.to_json())
    data["added_later"] = 1
    data["request"]["also_added_later"] = "x"
    assert Interaction.from_json(json.dumps(data)) == interaction


def test_the_id_token_hint_subject_survives_the_cache_and_older_records_have_none() -> None:
    request = AuthorizationRequest(
        client_id="c", redirect_uri="https://a/cb", scopes=["openid"], code_challenge="x" * 43, audience=["a"], id_token_hint_sub="ana"
    )
    interaction = Interaction(interaction_id="i", created_at=1.5, request=request)
    assert Interaction.from_json(interaction.to_json()).request == request
    data = json.loads(interaction.to_json())
    del data["request"]["id_token_hint_sub"]  # written by an instance from before the field existed
    loaded = Interaction.from_json(json.dumps(data)).request
    assert loaded is not None and loaded.id_token_hint_sub is None
