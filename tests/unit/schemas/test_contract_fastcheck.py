"""The generated fast check agrees with jsonschema, the reference, and the decoder only ever raises ContractError."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import registry
from schemas.codec import Codec
from schemas.errors import ContractError

EXAMPLES = sorted(registry.EXAMPLES_DIR.glob("*/*/*.json"))
VALID = [(p.parent.name, orjson.loads(p.read_bytes())) for p in sorted(registry.EXAMPLES_DIR.glob("valid/*/*.json"))]


def _agree(type_name: str, obj: Any) -> None:
    contract = registry.get(type_name)
    assert contract.check(obj) == contract.validator.is_valid(obj), orjson.dumps(obj)[:500]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: "/".join(p.parts[-3:]))
def test_fast_check_agrees_with_reference_on_every_example(path: Path) -> None:
    _agree(path.parent.name, orjson.loads(path.read_bytes()))


@pytest.mark.parametrize("type_name", registry.TYPE_NAMES)
def test_fast_check_agrees_on_edge_values(type_name: str) -> None:
    base = next(obj for t, obj in VALID if t == type_name)
    edges: list[Any] = [
        None,
        True,
        False,
        0,
        1,
        -1,
        1.0,
        0.5,
        1.5,
        1e11,
        -0.0,
        2**63 - 1,
        "",
        "x",
        "1",
        [],
        {},
        ["a"],
        {"a": 1},
    ]
    for key in base:
        for edge in edges:
            mutated = {**base, key: edge}
            _agree(type_name, mutated)
        _agree(type_name, {k: v for k, v in base.items() if k != key})
    tops: list[Any] = [[], "x", 1, None, True, {}]
    for top in tops:
        _agree(type_name, top)


# --- hypothesis -------------------------------------------------------------------------------
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, 1, -1, 0.5, 1.5, 2, 1e11, 1e-9, 100000000000.0])
    | st.text(max_size=12)
    | st.sampled_from(["", "vm", "cpu", "node-a1", "a b", "x\n", "default", "swap", "completed", "ratio", "QEMU"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def _locations(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _locations(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _locations(value, (*path, i))
    return found


@st.composite
def mutated_records(draw: st.DrawFn) -> tuple[str, Any]:
    type_name, base = draw(st.sampled_from(VALID))
    record = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.sampled_from(_locations(record)))
        action = draw(st.sampled_from(["replace", "delete", "add", "copy_number", "duplicate"]))
        if not where:
            if action == "replace":
                record = draw(json_values)
            continue
        parent = record
        for step in where[:-1]:
            parent = parent[step]
        last = where[-1]
        if action == "replace":
            parent[last] = draw(json_values)
        elif action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(json_values)
        elif action == "copy_number" and isinstance(parent[last], int | float) and not isinstance(parent[last], bool):
            parent[last] = draw(st.sampled_from([parent[last] * -1, parent[last] + 0.5, float(parent[last]), 2**62]))
        elif action == "duplicate" and isinstance(parent[last], list) and parent[last]:
            parent[last].append(copy.deepcopy(parent[last][0]))
        if not isinstance(record, dict | list):
            break
    return type_name, record


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_records())
def test_mutated_records_fast_check_agrees_and_decoder_raises_only_contract_errors(case: tuple[str, Any]) -> None:
    type_name, record = case
    _agree(type_name, record)
    data = orjson.dumps(record)
    c = Codec(type_name)
    try:
        decoded = c.decode(data)
    except ContractError as exc:
        assert exc.violations and all(v.path.startswith("$") and v.reason for v in exc.violations)
    else:
        assert registry.get(type_name).validator.is_valid(decoded)


@settings(max_examples=300, deadline=None)
@given(type_name=st.sampled_from(registry.TYPE_NAMES), data=st.binary(max_size=200))
def test_random_bytes_raise_only_contract_errors(type_name: str, data: bytes) -> None:
    try:
        Codec(type_name, max_bytes=150).decode(data)
    except ContractError:
        pass


@settings(max_examples=200, deadline=None)
@given(type_name=st.sampled_from(registry.TYPE_NAMES), value=json_values)
def test_random_json_raises_only_contract_errors(type_name: str, value: Any) -> None:
    _agree(type_name, value)
    try:
        Codec(type_name).decode(orjson.dumps(value))
    except ContractError:
        pass
