"""Precedence of SLA policies: workload > app > user > default > built-in, field by field."""

from __future__ import annotations

from schemas.sla import BUILTIN, resolve_policy

POLICIES = {
    "default:default": {"subject_kind": "default", "subject": "default", "priority": 10, "tier": "bronze",
                        "max_downtime_seconds": 30, "migratable": True},
    "user:alice": {"subject_kind": "user", "subject": "alice", "priority": 40, "max_downtime_seconds": 5},
    "app:shop": {"subject_kind": "app", "subject": "shop", "priority": 60, "tier": "gold"},
    "workload:w1": {"subject_kind": "workload", "subject": "w1", "priority": 900, "migratable": False},
}  # fmt: skip


def test_no_policy_gives_the_built_in_default():
    assert resolve_policy("w", "", "", {}) == BUILTIN


def test_default_policy_applies_to_everyone():
    eff = resolve_policy("w9", "", "bob", POLICIES)
    assert (eff.priority, eff.tier, eff.max_downtime_seconds) == (10, "bronze", 30)


def test_user_beats_default_app_beats_user_workload_beats_app():
    assert resolve_policy("w9", "", "alice", POLICIES).priority == 40
    assert resolve_policy("w9", "shop", "alice", POLICIES).priority == 60
    eff = resolve_policy("w1", "shop", "alice", POLICIES)
    assert eff.priority == 900 and eff.migratable is False and not eff.can_migrate


def test_fields_combine_from_the_most_specific_layer_that_sets_them():
    eff = resolve_policy("w1", "shop", "alice", POLICIES)
    assert (eff.tier, eff.sources["tier"]) == ("gold", "app:shop")
    assert (eff.max_downtime_seconds, eff.sources["max_downtime_seconds"]) == (5, "user:alice")
