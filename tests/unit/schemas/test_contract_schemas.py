"""The schema files themselves: well-formed, closed, versioned, and mapped to their topics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from schemas import registry
from schemas.errors import SchemaDefinitionError, SchemaError, UnknownTypeError
from schemas.fastcheck import compile_check
from schemas.topics import TOPICS

FILES = sorted(registry.SCHEMA_DIR.glob("*.schema.json"))


def _subschemas(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            if key in ("enum", "const", "required", "examples", "default"):
                continue
            yield from _subschemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _subschemas(value, f"{where}/{i}")


def test_schema_files_are_exactly_common_and_the_types() -> None:
    assert {p.name.removesuffix(".schema.json") for p in FILES} == {registry.COMMON, *registry.TYPE_NAMES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_schema_is_valid_draft_2020_12_with_its_own_id(path: Any) -> None:
    schema = orjson.loads(path.read_bytes())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + path.name)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_record_object_is_closed(path: Any) -> None:
    """Objects with named fields reject unknown fields; maps (labels, drivers) constrain their values."""
    for where, node in _subschemas(orjson.loads(path.read_bytes())):
        if any(f"/{k}/" in where + "/" for k in ("if", "then", "else")):
            continue  # conditions refine the record's own (closed) definition
        if "properties" in node and node.get("type") in ("object", ["object", "null"]):
            assert node.get("additionalProperties") is False, where
        if node.get("type") == "object" and "properties" not in node:
            assert isinstance(node.get("additionalProperties"), dict), where


@pytest.mark.parametrize("type_name", registry.TYPE_NAMES)
def test_every_type_requires_schema_version_1(type_name: str) -> None:
    schema = registry.schema(type_name)
    assert schema["type"] == "object"
    assert "schema_version" in schema["required"]
    assert schema["properties"]["schema_version"] == {"$ref": "common.schema.json#/$defs/schema_version"}
    validator = registry.get(type_name).validator
    assert not validator.is_valid({"schema_version": 2})
    assert list(validator.iter_errors({"schema_version": 1}))  # other required fields still missing


@pytest.mark.parametrize("type_name", registry.TYPE_NAMES)
def test_type_maps_to_its_topic(type_name: str) -> None:
    contract = registry.get(type_name)
    assert TOPICS[contract.topic.role].record_type == type_name
    assert registry.topic(type_name) == f"plba.{contract.topic.suffix}"
    assert registry.topic(type_name, prefix="test-x.").startswith("test-x.")
    assert registry.type_for_topic_role(contract.topic.role) == type_name
    assert contract.compacted == (contract.topic.cleanup == "compact")


def test_compacted_topics_are_events_policies_placements() -> None:
    assert {t for t in registry.TYPE_NAMES if registry.get(t).compacted} == {"event", "policy", "placement"}


def test_keys() -> None:
    assert registry.get("policy").key({"subject_kind": "app", "subject": "etl"}) == "app:etl"
    assert registry.get("node_usage").key({"node_id": "n1"}) == "n1"
    assert registry.get("migration_status").key({"order_id": "o-1"}) == "o-1"


def test_unknown_type_is_a_lookup_error_under_the_package_root() -> None:
    with pytest.raises(UnknownTypeError) as caught:
        registry.get("orders")
    assert isinstance(caught.value, SchemaError)
    assert isinstance(caught.value, LookupError)
    assert "unknown record type 'orders'" in str(caught.value)
    assert "order" in caught.value.known


def _registry_with(schema: dict[str, Any]) -> Registry[Any]:
    return Registry().with_resource(schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012))


def test_fast_check_refuses_keywords_it_cannot_check_exactly() -> None:
    schema = {"$id": "urn:test:multiple", "type": "number", "multipleOf": 0.5}
    with pytest.raises(SchemaDefinitionError, match="multipleOf"):
        compile_check(schema, _registry_with(schema))
    schema = {"$id": "urn:test:fmt", "type": "string", "format": "date-time"}
    with pytest.raises(SchemaDefinitionError, match="format"):
        compile_check(schema, _registry_with(schema))


def test_fast_check_handles_awkward_property_names() -> None:
    schema = {
        "$id": "urn:test:names",
        "type": "object",
        "properties": {'it\'s "quoted"\n': {"type": "integer"}},
        "required": ['it\'s "quoted"\n'],
        "additionalProperties": False,
    }
    check = compile_check(schema, _registry_with(schema))
    assert check({'it\'s "quoted"\n': 3})
    assert not check({'it\'s "quoted"\n': "3"})
    assert not check({'it\'s "quoted"\n': 3, "x": 1})
