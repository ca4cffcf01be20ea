"""The rotation schedule as a pure function: publish ahead, activate, retire, remove (OIDC Core §10.1.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authserver.keys.rotation import KeyRow, RotationNotReady, RotationPolicy, plan_rotation

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = RotationPolicy(
    algorithms=("ES256",),
    rotation_interval=timedelta(hours=24),
    publish_ahead=timedelta(hours=1),
    retain_after_retire=timedelta(hours=2),
)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_an_algorithm_without_a_successor_gets_a_published_next_key() -> None:
    rows = [KeyRow("a", "ES256", "active", at(0), activated_at=at(0))]
    plan = plan_rotation(rows, at(1), POLICY)
    assert plan.create == [("ES256", "next")] and not plan.activate


def test_nothing_is_due_before_the_rotation_interval() -> None:
    rows = [KeyRow("a", "ES256", "active", at(0), activated_at=at(0)), KeyRow("b", "ES256", "next", at(0))]
    assert not plan_rotation(rows, at(23.9), POLICY)


def test_at_the_interval_next_activates_current_retires_and_a_new_next_is_created() -> None:
    rows = [KeyRow("a", "ES256", "active", at(0), activated_at=at(0)), KeyRow("b", "ES256", "next", at(0))]
    plan = plan_rotation(rows, at(24), POLICY)
    assert plan.activate == ["b"]
    assert plan.retire == [("a", at(26))]
    assert plan.create == [("ES256", "next")]


def test_a_next_key_never_activates_before_it_was_published_for_publish_ahead() -> None:
    rows = [KeyRow("a", "ES256", "active", at(0), activated_at=at(0)), KeyRow("b", "ES256", "next", at(23.5))]
    assert not plan_rotation(rows, at(24), POLICY).activate
    assert plan_rotation(rows, at(24.5), POLICY).activate == ["b"]


def test_operator_rotation_refuses_a_next_key_too_young_unless_forced() -> None:
    rows = [KeyRow("a", "ES256", "active", at(0), activated_at=at(0)), KeyRow("b", "ES256", "next", at(2))]
    with pytest.raises(RotationNotReady) as raised:
        plan_rotation(rows, at(2.5), POLICY, rotate_now=["ES256"])
    assert raised.value.ready_at == at(3)
    assert plan_rotation(rows, at(3), POLICY, rotate_now=["ES256"]).activate == ["b"]
    assert plan_rotation(rows, at(2.5), POLICY, rotate_now=["ES256"], force=True).activate == ["b"]


def test_retired_keys_are_removed_only_once_their_tokens_have_expired() -> None:
    rows = [
        KeyRow("a", "ES256", "active", at(24), activated_at=at(24)),
        KeyRow("b", "ES256", "next", at(24)),
        KeyRow("old", "ES256", "retired", at(0), activated_at=at(0), retired_at=at(24), expires_at=at(26)),
    ]
    assert not plan_rotation(rows, at(25.9), POLICY)
    assert plan_rotation(rows, at(26), POLICY).remove == ["old"]


def test_an_algorithm_removed_from_the_configuration_stops_signing_and_its_next_key_goes() -> None:
    rows = [KeyRow("r", "RS256", "active", at(0), activated_at=at(0)), KeyRow("n", "RS256", "next", at(0))]
    rows += [KeyRow("a", "ES256", "active", at(0), activated_at=at(0)), KeyRow("b", "ES256", "next", at(0))]
    plan = plan_rotation(rows, at(1), POLICY)
    assert plan.retire == [("r", at(3))] and plan.remove == ["n"] and not plan.create


def test_two_active_keys_keep_only_the_newest_signing() -> None:
    rows = [
        KeyRow("a", "ES256", "active", at(0), activated_at=at(0)),
        KeyRow("b", "ES256", "active", at(1), activated_at=at(1)),
        KeyRow("n", "ES256", "next", at(1)),
    ]
    assert plan_rotation(rows, at(2), POLICY).retire == [("a", at(4))]


def test_the_plan_is_idempotent_once_applied() -> None:
    rows = [KeyRow("a", "ES256", "active", at(0), activated_at=at(0)), KeyRow("b", "ES256", "next", at(0))]
    plan = plan_rotation(rows, at(24), POLICY)
    applied = [
        KeyRow("a", "ES256", "retired", at(0), activated_at=at(0), retired_at=at(24), expires_at=plan.retire[0][1]),
        KeyRow("b", "ES256", "active", at(0), activated_at=at(24)),
        KeyRow("c", "ES256", "next", at(24)),
    ]
    assert not plan_rotation(applied, at(24), POLICY)
