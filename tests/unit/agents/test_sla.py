"""SLA policies: precedence workload > app > user > default > built-in, and policy validation."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import agents.sla
from agents.sla import BUILTIN, UNSET, EffectivePolicy, PolicyError, build_policy, policy_key, resolve_policy
from schemas.models import Policy


def pol(kind: str, subject: str, **fields) -> dict:
    return {"schema_version": 1, "subject_kind": kind, "subject": subject, "updated_at": 1.0, **fields}


TABLE = {
    "default:default": pol("default", "default", priority=10, tier="bronze", max_downtime_seconds=5.0),
    "user:ann": pol("user", "ann", priority=40, migrations_per_day=3, anti_affinity_group="ann-db"),
    "app:shop": pol("app", "shop", priority=80, tier="gold"),
    "workload:web-1": pol("workload", "web-1", max_downtime_seconds=0.5, pin_node="n7"),
}


def test_docstring_examples_run():
    assert doctest.testmod(agents.sla).failed == 0


def test_each_field_comes_from_the_most_specific_level_that_sets_it():
    p = resolve_policy("web-1", "shop", "ann", TABLE)
    assert (p.priority, p.tier, p.max_downtime_seconds) == (80, "gold", 0.5)
    assert (p.migrations_per_day, p.anti_affinity_group, p.pin_node) == (3, "ann-db", "n7")
    assert p.sources == {
        "priority": "app:shop",
        "tier": "app:shop",
        "max_downtime_seconds": "workload:web-1",
        "migratable": "builtin",
        "pin_node": "workload:web-1",
        "anti_affinity_group": "user:ann",
        "migrations_per_day": "user:ann",
    }
    assert p.migratable and not p.can_migrate  # a pin implies not migratable


@pytest.mark.parametrize(
    ("workload", "app", "user", "priority", "source"),
    [
        ("web-1", "shop", "ann", 80, "app:shop"),  # the workload policy has no priority: app's
        ("web-2", "shop", "ann", 80, "app:shop"),
        ("web-2", "other", "ann", 40, "user:ann"),
        ("web-2", None, "bob", 10, "default:default"),
        ("web-2", "", "", 10, "default:default"),
    ],
)
def test_precedence(workload, app, user, priority, source):
    p = resolve_policy(workload, app, user, TABLE)
    assert (p.priority, p.sources["priority"]) == (priority, source)


def test_workload_beats_app_beats_user_beats_default():
    table = {
        "default:default": pol("default", "default", priority=1),
        "user:u": pol("user", "u", priority=2),
        "app:a": pol("app", "a", priority=3),
        "workload:w": pol("workload", "w", priority=4),
    }
    assert resolve_policy("w", "a", "u", table).priority == 4
    del table["workload:w"]
    assert resolve_policy("w", "a", "u", table).priority == 3
    del table["app:a"]
    assert resolve_policy("w", "a", "u", table).priority == 2
    del table["user:u"]
    assert resolve_policy("w", "a", "u", table).priority == 1
    del table["default:default"]
    assert resolve_policy("w", "a", "u", table) == BUILTIN


def test_a_pin_from_a_less_specific_level_applies_and_blocks_migration():
    table = {"user:ann": pol("user", "ann", pin_node="n1"), "workload:w": pol("workload", "w", migratable=True)}
    p = resolve_policy("w", None, "ann", table)
    assert p.pin_node == "n1" and p.migratable and not p.can_migrate
    assert p.sources["pin_node"] == "user:ann"


def test_agents_and_streams_share_one_resolver():
    from schemas import sla as shared

    assert resolve_policy is shared.resolve_policy


def test_tombstoned_keys_and_iterables_and_models_are_accepted():
    p = resolve_policy("w", "a", None, {"app:a": None, "default:default": pol("default", "default", priority=7)})
    assert p.priority == 7
    models = [Policy(subject_kind="app", subject="a", priority=9, updated_at=1.0)]
    assert resolve_policy("w", "a", None, models).priority == 9


def test_base_supplies_what_no_policy_sets():
    assert BUILTIN.priority == 50
    base = EffectivePolicy(priority=7)
    assert resolve_policy("w", None, None, {}, base=base).priority == 7


@given(st.permutations(["workload", "app", "user", "default"]), st.lists(st.booleans(), min_size=4, max_size=4))
def test_precedence_property(order, present):
    prio = {"workload": 4, "app": 3, "user": 2, "default": 1}
    subject = {"workload": "w", "app": "a", "user": "u", "default": "default"}
    records = [pol(k, subject[k], priority=prio[k]) for k, keep in zip(order, present, strict=True) if keep]
    expected = max((prio[r["subject_kind"]] for r in records), default=BUILTIN.priority)
    assert resolve_policy("w", "a", "u", records).priority == expected


# --- building -------------------------------------------------------------------------------------
def test_build_merges_into_existing_and_validates():
    first = build_policy("app", "shop", updated_at=5.0, priority=80, tier="gold")
    second = build_policy("app", "shop", updated_at=6.0, existing=first, max_downtime_seconds=0.2)
    assert second == pol("app", "shop", priority=80, tier="gold", max_downtime_seconds=0.2) | {"updated_at": 6.0}
    third = build_policy("app", "shop", updated_at=7.0, existing=second, tier=UNSET, pin_node="n2")
    assert "tier" not in third and third["pin_node"] == "n2"
    fourth = build_policy("app", "shop", updated_at=8.0, existing=third, pin_node=UNSET, priority=None)
    assert "pin_node" not in fourth and fourth["priority"] == 80
    assert policy_key("app", "shop") == "app:shop"


def test_default_policy_subject():
    assert build_policy("default", None, updated_at=1.0, priority=5)["subject"] == "default"


@pytest.mark.parametrize(
    ("kind", "subject", "changes", "message"),
    [
        ("rack", "r1", {"priority": 1}, "subject kind 'rack'"),
        ("workload", "bad id!", {"priority": 1}, "workload 'bad id!'"),
        ("workload", "", {"priority": 1}, "workload ''"),
        ("default", "x", {"priority": 1}, "the default policy has no subject"),
        ("app", "a", {"priority": -1}, "priority must be an integer in 0..1000000"),
        ("app", "a", {"priority": 2.5}, "priority must be an integer"),
        ("app", "a", {"max_downtime_seconds": -1}, "max downtime must be a number of seconds >= 0"),
        ("app", "a", {"migrations_per_day": -2}, "migrations per day must be an integer in 0..100000"),
        ("app", "a", {"tier": "Gold"}, "tier 'Gold'"),
        ("app", "a", {"pin_node": "no spaces"}, "pin node 'no spaces'"),
        ("app", "a", {"anti_affinity_group": "#"}, "anti-affinity group '#'"),
        ("app", "a", {"colour": "red"}, "unknown policy field 'colour'"),
    ],
)
def test_invalid_policies_are_rejected_with_a_message(kind, subject, changes, message):
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(".", r"\.")):
        build_policy(kind, subject, updated_at=1.0, **changes)
