"""Precedence of SLA policies: workload > app > user > default, field by field."""

from __future__ import annotations

from schemas.sla import EffectivePolicy, resolve_policy

POLICIES = {
    ("default", "default"): {"priority": 10, "tier": "bronze", "max_downtime_seconds": 30, "migratable": True},
    ("user", "alice"): {"priority": 40, "max_downtime_seconds": 5},
    ("app", "shop"): {"priority": 60, "tier": "gold"},
    ("workload", "w1"): {"priority": 900, "migratable": False},
}


def test_no_policy_gives_the_built_in_default():
    assert resolve_policy({}, "w", "", "") == EffectivePolicy()


def test_default_policy_applies_to_everyone():
    eff = resolve_policy(POLICIES, "w9", "", "bob")
    assert (eff.priority, eff.tier, eff.max_downtime_seconds) == (10, "bronze", 30)


def test_user_beats_default_app_beats_user_workload_beats_app():
    assert resolve_policy(POLICIES, "w9", "", "alice").priority == 40
    assert resolve_policy(POLICIES, "w9", "shop", "alice").priority == 60
    eff = resolve_policy(POLICIES, "w1", "shop", "alice")
    assert eff.priority == 900 and eff.migratable is False


def test_fields_combine_from_the_most_specific_layer_that_sets_them():
    eff = resolve_policy(POLICIES, "w1", "shop", "alice")
    assert eff.tier == "gold"  # from the app
    assert eff.max_downtime_seconds == 5  # from the user
