"""Golden examples: every valid one is accepted and every invalid one rejected at the expected path.

Each invalid file is named for the rule it breaks; ``EXPECTED_PATH`` says where the violation must
be reported, so adding an invalid example without saying what it proves fails the suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import registry
from schemas.codec import Codec
from schemas.errors import (
    NOT_AN_OBJECT,
    RULE_VIOLATION,
    SCHEMA_VIOLATION,
    UNKNOWN_SCHEMA_VERSION,
    ContractError,
)

EXAMPLES = registry.EXAMPLES_DIR
VALID = sorted(EXAMPLES.glob("valid/*/*.json"))
INVALID = sorted(EXAMPLES.glob("invalid/*/*.json"))

EXPECTED_PATH: dict[str, str] = {
    # node_usage
    "node_usage/cpu_ratio_above_one": "$.cpu_ratio",
    "node_usage/cpu_ratio_as_string": "$.cpu_ratio",
    "node_usage/missing_node_id": "$.node_id",
    "node_usage/unknown_field": "$.hostname",
    "node_usage/negative_mem_used_bytes": "$.mem_used_bytes",
    "node_usage/mem_total_bytes_fractional": "$.mem_total_bytes",
    "node_usage/mem_used_exceeds_total": "$.mem_used_bytes",
    "node_usage/capacity_cpu_cores_zero": "$.capacity.cpu_cores",
    "node_usage/fingerprint_missing_pool": "$.fingerprint.pool",
    "node_usage/duplicate_workload_ids": "$.workloads",
    "node_usage/workload_id_with_slash": "$.workloads[1]",
    "node_usage/sampled_at_in_milliseconds": "$.sampled_at",
    "node_usage/executor_endpoint_without_port": "$.executor_endpoint",
    "node_usage/schema_version_2": "$.schema_version",
    "node_usage/top_level_array": "$",
    # workload_usage
    "workload_usage/missing_workload_id": "$.workload_id",
    "workload_usage/unknown_kind": "$.kind",
    "workload_usage/cpu_ratio_negative": "$.cpu_ratio",
    "workload_usage/unknown_field": "$.cpu_percent",
    "workload_usage/priority_not_integer": "$.priority",
    "workload_usage/interval_seconds_zero": "$.interval_seconds",
    "workload_usage/node_id_empty": "$.node_id",
    "workload_usage/missing_schema_version": "$.schema_version",
    "workload_usage/schema_version_as_string": "$.schema_version",
    "workload_usage/workload_id_trailing_newline": "$.workload_id",
    # event
    "event/ends_before_starts": "$.ends_at",
    "event/unknown_event_type": "$.event_type",
    "event/empty_scope": "$.scope",
    "event/empty_scope_list": "$.scope.apps",
    "event/unknown_scope_key": "$.scope.racks",
    "event/impact_factor_zero": "$.impact.factor",
    "event/empty_impact": "$.impact",
    "event/missing_starts_at": "$.starts_at",
    "event/cancelled_not_boolean": "$.cancelled",
    "event/unknown_delta_resource": "$.impact.deltas.gpu",
    # policy
    "policy/default_with_other_subject": "$.subject",
    "policy/unknown_subject_kind": "$.subject_kind",
    "policy/priority_negative": "$.priority",
    "policy/max_downtime_negative": "$.max_downtime_seconds",
    "policy/missing_updated_at": "$.updated_at",
    "policy/migratable_as_string": "$.migratable",
    "policy/downtime_in_milliseconds_field": "$.max_downtime_ms",
    "policy/pin_node_null": "$.pin_node",
    # forecast
    "forecast/values_length_mismatch": "$.upper",
    "forecast/lower_above_upper": "$.upper[1]",
    "forecast/ratio_above_one": "$.upper[3]",
    "forecast/horizons_not_increasing": "$.horizons_seconds[2]",
    "forecast/unknown_unit": "$.unit",
    "forecast/missing_model": "$.model",
    "forecast/coverage_above_one": "$.coverage",
    "forecast/node_id_differs_from_subject": "$.node_id",
    "forecast/negative_mean": "$.mean[0]",
    "forecast/empty_horizons": "$.horizons_seconds",
    "forecast/adjustment_missing_applied_factor": "$.event_adjustments[0].applied_factor",
    # order
    "order/same_source_and_target": "$.target_node",
    "order/recommend_not_dry_run": "$.dry_run",
    "order/swap_without_swap_with": "$.swap_with",
    "order/unknown_reason_code": "$.reason.code",
    "order/unknown_method": "$.method",
    "order/deadline_before_issued": "$.deadline_at",
    "order/missing_reason_message": "$.reason.message",
    "order/unknown_mode": "$.mode",
    "order/reason_as_string": "$.reason",
    # migration_status
    "migration_status/unknown_state": "$.state",
    "migration_status/failed_without_error": "$.error",
    "migration_status/completed_without_downtime": "$.downtime_seconds",
    "migration_status/completed_with_null_bytes": "$.transferred_bytes",
    "migration_status/attempt_zero": "$.attempt",
    "migration_status/negative_transferred_bytes": "$.transferred_bytes",
    "migration_status/error_missing_message": "$.error.message",
    "migration_status/error_code_not_snake_case": "$.error.code",
    "migration_status/rolled_back_with_null_error": "$.error",
    # placement
    "placement/missing_endpoint": "$.endpoint",
    "placement/endpoint_with_space": "$.endpoint",
    "placement/unknown_kind": "$.kind",
    "placement/unknown_field": "$.host",
    "placement/updated_at_negative": "$.updated_at",
    "placement/driver_uppercase": "$.driver",
    # explanation
    "explanation/acted_without_orders": "$.order_ids",
    "explanation/no_action_with_orders": "$.order_ids",
    "explanation/unknown_decision": "$.decision",
    "explanation/candidate_missing_excluded_by": "$.candidates[2].excluded_by",
    "explanation/excluded_by_not_a_code": "$.targets[1].excluded_by",
    "explanation/unknown_field_in_candidate": "$.candidates[0].why",
    "explanation/missing_resource": "$.resource",
    "explanation/predicted_peak_ratio_negative": "$.predicted_peak_ratio",
    # dlq
    "dlq/value_not_base64": "$.value_b64",
    "dlq/negative_offset": "$.offset",
    "dlq/missing_error_code": "$.error_code",
    "dlq/source_topic_with_space": "$.source_topic",
    "dlq/partition_as_string": "$.partition",
    "dlq/violation_missing_reason": "$.violations[0].reason",
    "dlq/raw_value_instead_of_base64": "$.value",
    "dlq/missing_key_b64": "$.key_b64",
}

# Rejections that are not plain schema violations.
EXPECTED_CODE: dict[str, str] = {
    "node_usage/mem_used_exceeds_total": RULE_VIOLATION,
    "node_usage/schema_version_2": UNKNOWN_SCHEMA_VERSION,
    "node_usage/top_level_array": NOT_AN_OBJECT,
    "event/ends_before_starts": RULE_VIOLATION,
    "forecast/values_length_mismatch": RULE_VIOLATION,
    "forecast/lower_above_upper": RULE_VIOLATION,
    "forecast/horizons_not_increasing": RULE_VIOLATION,
    "forecast/node_id_differs_from_subject": RULE_VIOLATION,
    "order/same_source_and_target": RULE_VIOLATION,
    "order/deadline_before_issued": RULE_VIOLATION,
    "explanation/no_action_with_orders": RULE_VIOLATION,
}


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def _load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


@pytest.mark.parametrize("type_name", registry.TYPE_NAMES)
def test_every_type_has_enough_golden_examples(type_name: str) -> None:
    assert len(list(EXAMPLES.glob(f"valid/{type_name}/*.json"))) >= 2
    assert len(list(EXAMPLES.glob(f"invalid/{type_name}/*.json"))) >= 3


def test_example_folders_are_known_types() -> None:
    folders = {p.parent.name for p in VALID + INVALID}
    assert folders == set(registry.TYPE_NAMES)


def test_every_invalid_example_declares_what_it_breaks() -> None:
    on_disk = {_name(p) for p in INVALID}
    assert on_disk == set(EXPECTED_PATH), "invalid examples and EXPECTED_PATH disagree"
    assert set(EXPECTED_CODE) <= on_disk


@pytest.mark.parametrize("path", VALID, ids=_name)
def test_valid_example_passes_codec_and_reference(path: Path) -> None:
    type_name = path.parent.name
    record = Codec(type_name).decode(path.read_bytes())
    assert record == _load(path)
    assert list(registry.get(type_name).validator.iter_errors(record)) == []


@pytest.mark.parametrize("path", INVALID, ids=_name)
def test_invalid_example_fails_at_the_expected_path(path: Path) -> None:
    name = _name(path)
    with pytest.raises(ContractError) as caught:
        Codec(path.parent.name).decode(path.read_bytes())
    err = caught.value
    assert err.code == EXPECTED_CODE.get(name, SCHEMA_VIOLATION)
    assert EXPECTED_PATH[name] in [v.path for v in err.violations], [str(v) for v in err.violations]
    assert all(v.reason for v in err.violations)


@pytest.mark.parametrize("path", [p for p in INVALID if EXPECTED_CODE.get(_name(p)) != RULE_VIOLATION], ids=_name)
def test_invalid_schema_examples_fail_the_reference_alone(path: Path) -> None:
    """An example said to break the schema breaks it for any Draft 2020-12 validator, not only ours."""
    validator = registry.get(path.parent.name).validator
    assert not validator.is_valid(_load(path))


@pytest.mark.parametrize("path", [p for p in INVALID if EXPECTED_CODE.get(_name(p)) == RULE_VIOLATION], ids=_name)
def test_rule_examples_are_schema_valid(path: Path) -> None:
    """A rule example must get past the schema, or it would not prove the rule."""
    assert registry.get(path.parent.name).validator.is_valid(_load(path))
