"""The contract types: name -> JSON Schema, validators, topic, key.

Every schema in ``schemas/json`` is loaded and checked against the Draft 2020-12 meta-schema
when this module is imported, and the fast check of each is generated then too: a broken schema
fails at import, not on the first record. Nothing here reads the network: ``$ref`` s resolve
only among our own files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema import exceptions as jsonschema_exceptions
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from schemas.errors import SchemaDefinitionError, UnknownTypeError
from schemas.fastcheck import Check, compile_check
from schemas.topics import DEFAULT_PREFIX, TOPICS, TopicSpec

SCHEMA_DIR = Path(__file__).resolve().parent / "json"
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
COMMON = "common"

# The record types, in the order of ARCHITECTURE §4.
TYPE_NAMES: tuple[str, ...] = (
    "node_usage",
    "workload_usage",
    "event",
    "policy",
    "forecast",
    "order",
    "migration_status",
    "placement",
    "explanation",
    "dlq",
)

# Which field(s) make the Kafka key of each type.
_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "node_usage": ("node_id",),
    "workload_usage": ("workload_id",),
    "event": ("event_id",),
    "policy": ("subject_kind", "subject"),
    "forecast": ("subject",),
    "order": ("workload_id",),
    "migration_status": ("order_id",),
    "placement": ("workload_id",),
    "explanation": ("node_id",),
    "dlq": ("source_topic",),
}


@dataclass(frozen=True)
class ContractType:
    """One record type: its schema, validators and topic."""

    name: str
    schema: Mapping[str, Any]
    topic: TopicSpec
    key_fields: tuple[str, ...]
    validator: Draft202012Validator  # the reference: full error lists
    check: Check  # the fast yes/no check generated from the same schema

    @property
    def compacted(self) -> bool:
        """True for compacted topics, where a null value (tombstone) deletes the key."""
        return self.topic.cleanup == "compact"

    def topic_name(self, prefix: str = DEFAULT_PREFIX) -> str:
        return self.topic.name(prefix)

    def key(self, record: Mapping[str, Any]) -> str:
        """The Kafka key of ``record`` (``subject_kind:subject`` for policies)."""
        return ":".join(str(record[f]) for f in self.key_fields)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise SchemaDefinitionError(f"cannot read schema {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SchemaDefinitionError(f"schema {path} is not a JSON object")
    try:
        Draft202012Validator.check_schema(data)
    except jsonschema_exceptions.SchemaError as exc:
        raise SchemaDefinitionError(f"schema {path} is not valid Draft 2020-12: {exc.message}") from exc
    if "$id" not in data:
        raise SchemaDefinitionError(f"schema {path} has no $id")
    return data


def _topic_of(type_name: str) -> TopicSpec:
    for spec in TOPICS.values():
        if spec.record_type == type_name:
            return spec
    raise SchemaDefinitionError(f"no topic in schemas.topics.TOPICS carries {type_name!r} records")


def _build() -> tuple[Registry[Any], dict[str, ContractType]]:
    documents = {name: _read(SCHEMA_DIR / f"{name}.schema.json") for name in (COMMON, *TYPE_NAMES)}
    registry: Registry[Any] = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012)) for doc in documents.values()
    )
    types = {}
    for name in TYPE_NAMES:
        schema = documents[name]
        validator = Draft202012Validator(schema, registry=registry)
        try:
            check = compile_check(schema, registry)
        except Exception as exc:  # an unresolvable $ref surfaces here, at import
            if isinstance(exc, SchemaDefinitionError):
                raise
            raise SchemaDefinitionError(f"schema {name}: {exc}") from exc
        types[name] = ContractType(name, schema, _topic_of(name), _KEY_FIELDS[name], validator, check)
    return registry, types


REGISTRY, _TYPES = _build()


def get(type_name: str) -> ContractType:
    """The contract type called ``type_name``; :class:`UnknownTypeError` if there is none."""
    try:
        return _TYPES[type_name]
    except KeyError:
        raise UnknownTypeError(type_name, TYPE_NAMES) from None


def schema(type_name: str) -> Mapping[str, Any]:
    """The JSON Schema of ``type_name`` (shared pieces live in ``common.schema.json``)."""
    return get(type_name).schema


def topic(type_name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Full name of the topic that carries ``type_name`` records."""
    return get(type_name).topic_name(prefix)


def type_for_topic_role(role: str) -> str | None:
    """The record type carried by the topic role (``"orders"`` -> ``"order"``)."""
    spec = TOPICS.get(role)
    return spec.record_type if spec is not None else None


def schema_path(type_name: str) -> Path:
    get(type_name)
    return SCHEMA_DIR / f"{type_name}.schema.json"
