"""The validating codec and the typed models: round trips, limits, versions, error shapes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import models, registry
from schemas.codec import DEFAULT_MAX_BYTES, Codec, codec, json_path
from schemas.errors import (
    EMPTY_VALUE,
    INVALID_JSON,
    NOT_AN_OBJECT,
    NOT_SERIALIZABLE,
    RULE_VIOLATION,
    SCHEMA_VIOLATION,
    TOO_LARGE,
    UNKNOWN_SCHEMA_VERSION,
    ContractError,
    SchemaError,
    UnknownTypeError,
)

VALID = sorted(registry.EXAMPLES_DIR.glob("valid/*/*.json"))


def _example(type_name: str, name: str | None = None) -> dict[str, Any]:
    paths = sorted(registry.EXAMPLES_DIR.glob(f"valid/{type_name}/*.json"))
    path = next(p for p in paths if name in (None, p.stem))
    return orjson.loads(path.read_bytes())  # type: ignore[no-any-return]


def _ids(p: Path) -> str:
    return f"{p.parent.name}/{p.stem}"


@pytest.mark.parametrize("path", VALID, ids=_ids)
def test_dict_round_trip(path: Path) -> None:
    c = Codec(path.parent.name)
    original = orjson.loads(path.read_bytes())
    assert c.decode(c.encode(original)) == original


@pytest.mark.parametrize("path", VALID, ids=_ids)
def test_model_round_trip(path: Path) -> None:
    type_name = path.parent.name
    c = Codec(type_name)
    original = orjson.loads(path.read_bytes())
    record = c.decode_model(path.read_bytes())
    assert type(record) is models.MODELS[type_name]
    assert type_name == record.TYPE
    assert record.to_dict() == original
    assert c.decode_model(c.encode(record)) == record


def test_models_are_frozen_and_slotted() -> None:
    usage = Codec("workload_usage").decode_model(orjson.dumps(_example("workload_usage", "qemu_vm")))
    assert isinstance(usage, models.WorkloadUsage)
    assert usage.cpu_cores_used == 1.75 and usage.app == "webshop"
    with pytest.raises(dataclasses.FrozenInstanceError):
        usage.cpu_ratio = 0.5  # type: ignore[misc]
    assert not hasattr(usage, "__dict__")


def test_nested_models_are_typed() -> None:
    node = models.NodeUsage.from_dict(_example("node_usage", "qemu_host"))
    assert isinstance(node.capacity, models.Capacity) and node.capacity.cpu_cores == 16
    assert node.fingerprint.drivers["qemu"] == "8.2.2"
    assert node.workloads[0] == "vm-web-01" and isinstance(node.workloads, tuple)
    explanation = models.Explanation.from_dict(_example("explanation", "acted"))
    assert isinstance(explanation.candidates[0], models.CandidateOption)
    assert explanation.candidates[2].excluded_by is None


def test_model_built_in_code_encodes() -> None:
    order = models.Order(
        order_id="o-1",
        workload_id="w-1",
        kind="vm",
        source_node="a",
        target_node="b",
        method="live",
        reason=models.OrderReason(code="predicted_overload", resource="cpu", message="hot"),
        issued_at=100.0,
        deadline_at=160.0,
        dry_run=False,
        mode="enforce",
        pool="p",
    )
    data = Codec("order").encode(order)
    decoded = orjson.loads(data)
    assert decoded["schema_version"] == 1
    assert decoded["reason"] == {"code": "predicted_overload", "resource": "cpu", "message": "hot"}
    assert "swap_with" not in decoded  # optional and unset: left out, not null


def test_required_nullable_fields_are_written_as_null() -> None:
    placement = models.Placement(
        workload_id="w", node_id="n", endpoint=None, kind="container", driver="process", updated_at=1.0
    )
    assert orjson.loads(Codec("placement").encode(placement))["endpoint"] is None


def test_policy_key_matches_registry_key() -> None:
    policy = models.Policy.from_dict(_example("policy", "app_pinned"))
    assert policy.key == registry.get("policy").key(policy.to_dict()) == "app:license-server"


def test_from_dict_of_a_bad_dict_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="cannot build Placement"):
        models.Placement.from_dict({"workload_id": "w"})
    with pytest.raises(ContractError, match="unknown field"):
        models.Placement.from_dict({**_example("placement"), "extra": 1})


def test_encode_refuses_an_invalid_record_with_every_violation() -> None:
    record = _example("node_usage", "qemu_host")
    record["cpu_ratio"] = 2
    record["capacity"]["cpu_cores"] = -1
    del record["node_id"]
    with pytest.raises(ContractError) as caught:
        Codec("node_usage").encode(record)
    err = caught.value
    assert err.code == SCHEMA_VIOLATION
    assert [v.path for v in err.violations] == ["$.capacity.cpu_cores", "$.cpu_ratio", "$.node_id"]
    assert err.path == "$.capacity.cpu_cores"
    assert "less than or equal to the minimum of 0" in err.reason
    assert "invalid node_usage record (schema_violation)" in str(err)
    assert isinstance(err, SchemaError) and isinstance(err, ValueError)


def test_encode_checks_cross_field_rules() -> None:
    event = _example("event", "maintenance_window")
    event["ends_at"] = event["starts_at"]
    with pytest.raises(ContractError) as caught:
        Codec("event").encode(event)
    assert caught.value.code == RULE_VIOLATION
    assert caught.value.path == "$.ends_at"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_encode_refuses_non_finite_numbers(bad: float) -> None:
    usage = _example("workload_usage", "qemu_vm")
    usage["cpu_cores_used"] = bad
    with pytest.raises(ContractError) as caught:
        Codec("workload_usage").encode(usage)
    assert caught.value.code in (NOT_SERIALIZABLE, SCHEMA_VIOLATION)
    assert caught.value.path == "$.cpu_cores_used"


def test_encode_refuses_what_json_cannot_carry() -> None:
    event = _example("event", "maintenance_window")
    event["scope"]["nodes"] = ("node-a1",)  # a tuple is not a JSON array for the schema
    with pytest.raises(ContractError) as caught:
        Codec("event").encode(event)
    assert caught.value.path == "$.scope.nodes"
    with pytest.raises(ContractError) as caught:
        Codec("event").encode(["not", "a", "mapping"])  # type: ignore[arg-type]
    assert caught.value.code == NOT_AN_OBJECT


def test_encode_of_an_integer_beyond_64_bits_is_a_contract_error() -> None:
    usage = _example("workload_usage", "qemu_vm")
    usage["mem_used_bytes"] = 2**70
    with pytest.raises(ContractError) as caught:
        Codec("workload_usage").encode(usage)
    assert caught.value.code == NOT_SERIALIZABLE


def test_size_limit_on_decode_and_encode() -> None:
    node = _example("node_usage", "qemu_host")
    data = orjson.dumps(node)
    small = Codec("node_usage", max_bytes=len(data) - 1)
    with pytest.raises(ContractError) as caught:
        small.decode(data)
    assert caught.value.code == TOO_LARGE
    assert f"record is {len(data)} bytes, over the limit of {len(data) - 1} bytes" in caught.value.reason
    with pytest.raises(ContractError) as caught:
        small.encode(node)
    assert caught.value.code == TOO_LARGE
    assert Codec("node_usage", max_bytes=len(data)).decode(data) == node


def test_default_limit_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_BYTES == 1024 * 1024
    huge = b'{"schema_version": 1, "pad": "' + b"x" * DEFAULT_MAX_BYTES + b'"}'
    with pytest.raises(ContractError) as caught:
        Codec("placement").decode(huge)
    assert caught.value.code == TOO_LARGE
    with pytest.raises(ValueError):
        Codec("placement", max_bytes=0)


def test_unknown_schema_version_has_its_own_code() -> None:
    record = _example("placement")
    record["schema_version"] = 2
    record["field_only_v2_knows"] = "x"
    with pytest.raises(ContractError) as caught:
        Codec("placement").decode(orjson.dumps(record))
    err = caught.value
    assert err.code == UNKNOWN_SCHEMA_VERSION
    assert err.path == "$.schema_version"
    assert "unknown schema_version 2" in err.reason
    assert len(err.violations) == 1  # the rest of a v2 record is not judged by v1 rules


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", EMPTY_VALUE),
        (None, EMPTY_VALUE),
        (b"{", INVALID_JSON),
        (b"\xff\xfe", INVALID_JSON),
        (b"NaN", INVALID_JSON),
        (b"[1, 2]", NOT_AN_OBJECT),
        (b'"a string"', NOT_AN_OBJECT),
        (b"null", NOT_AN_OBJECT),
        (b"{}", SCHEMA_VIOLATION),
    ],
)
def test_decode_failures_have_precise_codes(data: bytes | None, code: str) -> None:
    with pytest.raises(ContractError) as caught:
        Codec("order").decode(data)
    assert caught.value.code == code
    assert caught.value.violations


def test_decode_accepts_str_bytearray_and_memoryview() -> None:
    record = _example("policy", "default")
    data = orjson.dumps(record)
    c = Codec("policy")
    assert c.decode(data.decode()) == c.decode(bytearray(data)) == c.decode(memoryview(data)) == record


def test_long_values_are_shortened_in_reasons() -> None:
    record = _example("placement")
    record["node_id"] = "bad id " + "x" * 10_000
    with pytest.raises(ContractError) as caught:
        Codec("placement").decode(orjson.dumps(record))
    assert caught.value.path == "$.node_id"
    assert len(caught.value.reason) < 400


def test_unknown_type_name() -> None:
    with pytest.raises(UnknownTypeError):
        Codec("nodes")


def test_shared_codecs_are_cached() -> None:
    assert codec("order") is codec("order")
    assert codec("order") is not codec("order", max_bytes=10)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([], "$"),
        (["capacity", "cpu_cores"], "$.capacity.cpu_cores"),
        (["workloads", 2], "$.workloads[2]"),
        (["labels", "example.com/tier"], "$.labels['example.com/tier']"),
        (["labels", "it's"], "$.labels['it\\'s']"),
    ],
)
def test_json_path(parts: list[str | int], expected: str) -> None:
    assert json_path(parts) == expected


def test_importing_the_codec_does_not_import_faust() -> None:
    code = "import sys, schemas.codec, schemas.models; assert 'faust' not in sys.modules, 'faust imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])
