"""Bad input into a running worker: every bad record in the DLQ with its reason, every valid one processed.

A smaller run than ``plba bench faults`` (which injects 10,000 per topic): 300 bad records of every
kind (empty and null values, random bytes, truncated JSON, not an object, field deleted, wrong
type, out of range, oversized, unknown schema version, clock skew ahead and behind, broken
cross-field rules) per input topic, 100 valid ones interleaved, counted by their coordinates.
"""

from __future__ import annotations

import pytest

from plba.faults.bad_records import INPUT_ROLES
from plba.faults.injection import run_bad_input
from schemas.errors import (
    CLOCK_SKEW,
    EMPTY_VALUE,
    INVALID_JSON,
    NOT_AN_OBJECT,
    RULE_VIOLATION,
    SCHEMA_VIOLATION,
    TOO_LARGE,
    UNKNOWN_SCHEMA_VERSION,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BAD, VALID = 300, 100


def test_bad_records_land_in_the_dlq_with_their_reason_and_valid_ones_flow(base_settings, kafka_bootstrap, tmp_path):
    s = base_settings.replace(kafka_bootstrap=kafka_bootstrap)
    r = run_bad_input(s, tmp_path, BAD, valid_per_topic=VALID, timeout=300)
    assert r["worker_crashes"] == 0, r["worker_crash_reasons"]
    assert r["bad_records_injected"] == BAD * len(INPUT_ROLES)
    assert r["bad_records_in_dlq"] == r["bad_records_injected"], r
    assert r["bad_records_wrong_code"] == 0 and r["bad_records_missing_from_dlq"] == 0, r
    assert r["dlq_by_reason"] == r["injected_by_reason"]
    assert set(r["injected_by_reason"]) == {
        CLOCK_SKEW, EMPTY_VALUE, INVALID_JSON, NOT_AN_OBJECT, RULE_VIOLATION, SCHEMA_VIOLATION, TOO_LARGE,
        UNKNOWN_SCHEMA_VERSION,
    }  # fmt: skip
    assert r["injected_by_topic"] == dict.fromkeys(INPUT_ROLES, BAD)
    # Each topic's dead letters come from the one processor that owns them: orders from the
    # dispatcher (their consumer), policies from the decisions, usage and events from forecasting.
    assert {role: set(writers) for role, writers in r["dlq_writers"].items()} == {
        "workload_usage": {"forecasting"}, "node_usage": {"forecasting"}, "events": {"forecasting"},
        "policies": {"decisions"}, "orders": {"dispatcher"},
    }  # fmt: skip
    # One warm-up record per topic, then the interleaved ones.
    assert r["valid_records_injected"] == (VALID + 1) * len(INPUT_ROLES)
    assert r["valid_records_in_dlq"] == 0
    # At least once: a rebalance may hand a record to the worker twice, never zero times.
    assert r["valid_records_processed"] >= r["valid_records_injected"]
    assert r["valid_orders_answered"] == VALID + 1  # each valid (expired) order got its status
