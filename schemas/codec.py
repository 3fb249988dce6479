"""The one validating JSON codec of the contracts, for producers, consumers and Faust alike.

``Codec(type_name).encode(record)`` validates and returns orjson bytes; ``decode(bytes)`` returns a
validated dict (``decode_model`` a typed record). Anything wrong raises
:class:`~schemas.errors.ContractError` with a code and every violation as ``(JSON path, reason)``,
never another exception type — a consumer can route the record to the DLQ and go on.

Validation order, so each failure gets its precise code: size (``too_large``), JSON syntax
(``invalid_json``), top-level object (``not_an_object``), ``schema_version`` (an integer other
than 1 is ``unknown_schema_version``), the JSON Schema (``schema_violation``), then the
cross-field rules of :mod:`schemas.rules` (``rule_violation``). Consumers then call
:func:`check_clock` (``clock_skew``): whether an instant is plausible depends on their clock.

Speed: the generated fast check (:mod:`schemas.fastcheck`) accepts valid records; only a record it
rejects goes through ``jsonschema``, the reference, which lists the violations.

:class:`FaustJsonSchemaCodec` (a ``faust.serializers.codecs.Codec``) is built on first access, so
importing this module never imports Faust (node agents do not have it loaded).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from jsonschema.exceptions import ValidationError

from schemas import registry
from schemas.errors import (
    CLOCK_SKEW,
    EMPTY_VALUE,
    INVALID_JSON,
    NOT_AN_OBJECT,
    NOT_SERIALIZABLE,
    RULE_VIOLATION,
    SCHEMA_VIOLATION,
    TOO_LARGE,
    UNKNOWN_SCHEMA_VERSION,
    ContractError,
    Violation,
)
from schemas.models import MODELS, Model
from schemas.rules import RULES, check_rules

DEFAULT_MAX_BYTES = 1024 * 1024
SCHEMA_VERSION = 1
_REASON_LIMIT = 300
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def json_path(parts: Iterable[str | int]) -> str:
    """``["capacity", "cpu_cores"]`` -> ``$.capacity.cpu_cores``; ``["workloads", 2]`` -> ``$.workloads[2]``."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENT.match(part):
            out.append(f".{part}")
        else:
            escaped = part.replace("\\", "\\\\").replace("'", "\\'")
            out.append(f"['{escaped}']")
    return "".join(out)


def _short(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _translate(error: ValidationError) -> list[Violation]:
    """Violations from one jsonschema error, with the path pointing at the offending field."""
    parts = list(error.absolute_path)
    keyword = error.validator
    instance = error.instance
    if keyword == "required" and isinstance(instance, dict):
        missing = [k for k in error.validator_value if k not in instance]
        return [Violation(json_path([*parts, k]), "required field is missing") for k in missing]
    if keyword == "additionalProperties" and error.validator_value is False and isinstance(instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        return [Violation(json_path([*parts, k]), "unknown field") for k in instance if k not in known]
    if keyword == "type":
        expected = error.validator_value
        names = " or ".join(expected) if isinstance(expected, list) else expected
        reason = f"expected {names}, got {_json_type(instance)}"
    elif keyword == "const":
        reason = f"must be {_short(error.validator_value)}, got {_short(instance)}"
    elif keyword == "enum":
        options = ", ".join(_short(v) for v in error.validator_value)
        reason = f"must be one of {options}; got {_short(instance)}"
    elif keyword == "pattern":
        reason = f"{_short(instance)} does not match pattern {error.validator_value}"
    elif keyword == "uniqueItems":
        reason = "items must be unique"
    else:
        reason = error.message
    if len(reason) > _REASON_LIMIT:
        reason = reason[: _REASON_LIMIT - 3] + "..."
    return [Violation(json_path(parts), reason)]


def _non_json(value: Any, parts: list[str | int]) -> Violation | None:
    """The first value JSON cannot carry (NaN, infinity, a set, a non-string key…), if any."""
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else Violation(json_path(parts), f"{value} is not a JSON number")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _non_json(item, [*parts, i])
            if found:
                return found
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return Violation(json_path(parts), f"object key {key!r} is not a string")
            found = _non_json(item, [*parts, key])
            if found:
                return found
        return None
    return Violation(json_path(parts), f"a {type(value).__name__} is not a JSON value")


class Codec:
    """Validating orjson codec for one record type (see the module docstring)."""

    __slots__ = ("_check", "_contract", "_has_rules", "_model", "max_bytes", "type_name")

    def __init__(self, type_name: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self._contract = registry.get(type_name)  # UnknownTypeError for a bad name
        self.type_name = type_name
        self.max_bytes = max_bytes
        self._check = self._contract.check
        self._model = MODELS[type_name]
        self._has_rules = type_name in RULES

    def __repr__(self) -> str:
        return f"Codec({self.type_name!r}, max_bytes={self.max_bytes})"

    # -- validation -----------------------------------------------------------------------------
    def violations(self, obj: Any) -> tuple[str, list[Violation]]:
        """``(code, violations)`` of a decoded object; ``violations`` is empty when it is valid.

        Uses the reference validator (slow, complete); :meth:`validate` is the fast entry point.
        """
        if not isinstance(obj, dict):
            return NOT_AN_OBJECT, [Violation("$", f"expected a JSON object, got {_json_type(obj)}")]
        version = obj.get("schema_version")
        if isinstance(version, int | float) and not isinstance(version, bool) and version != SCHEMA_VERSION:
            reason = f"unknown schema_version {_short(version)}: this build reads version {SCHEMA_VERSION}"
            return UNKNOWN_SCHEMA_VERSION, [Violation("$.schema_version", reason)]
        found: dict[Violation, None] = {}  # ordered and without duplicates
        for error in self._contract.validator.iter_errors(obj):
            for violation in _translate(error):
                found[violation] = None
        if found:
            return SCHEMA_VIOLATION, sorted(found, key=lambda v: v.path)
        if not self._check(obj):
            # Valid for jsonschema but not for the fast check: only values JSON cannot carry.
            bad = _non_json(obj, [])
            return NOT_SERIALIZABLE, [bad or Violation("$", "record rejected by the fast check")]
        rule_violations = check_rules(self.type_name, obj)
        if rule_violations:
            return RULE_VIOLATION, rule_violations
        return "", []

    def validate(self, obj: Any) -> None:
        """Raise :class:`ContractError` unless ``obj`` (a decoded dict) is a valid record."""
        if self._check(obj) and (not self._has_rules or not check_rules(self.type_name, obj)):
            return
        code, found = self.violations(obj)
        if found:
            raise ContractError(self.type_name, code, found)

    # -- bytes ----------------------------------------------------------------------------------
    def encode(self, record: Model | Mapping[str, Any]) -> bytes:
        """Validate ``record`` (a typed record or a dict) and return its JSON bytes."""
        if isinstance(record, Model):
            obj: Any = record.to_dict()
        elif isinstance(record, dict):
            obj = record
        elif isinstance(record, Mapping):
            obj = dict(record)
        else:
            raise ContractError.single(
                self.type_name, NOT_AN_OBJECT, "$", f"expected a record or a mapping, got {type(record).__name__}"
            )
        self.validate(obj)
        try:
            data = orjson.dumps(obj)
        except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits
            bad = _non_json(obj, [])
            raise ContractError.single(
                self.type_name, NOT_SERIALIZABLE, bad.path if bad else "$", bad.reason if bad else str(exc)
            ) from exc
        if len(data) > self.max_bytes:
            raise ContractError.single(self.type_name, TOO_LARGE, "$", self._too_large(len(data)))
        return data

    def decode(self, data: bytes | bytearray | memoryview | str | None) -> dict[str, Any]:
        """Parse and validate one record; :class:`ContractError` if it breaks the contract."""
        if not data:
            raise ContractError.single(
                self.type_name, EMPTY_VALUE, "$", "empty value (tombstones are for the caller to handle, not decoded)"
            )
        size = len(data.encode() if isinstance(data, str) else data)
        if size > self.max_bytes:
            raise ContractError.single(self.type_name, TOO_LARGE, "$", self._too_large(size))
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ContractError.single(self.type_name, INVALID_JSON, "$", f"not valid JSON: {exc}") from exc
        if self._check(obj) and (not self._has_rules or not check_rules(self.type_name, obj)):
            return obj  # type: ignore[no-any-return]
        code, found = self.violations(obj)
        if not found:  # cannot happen: the fast check and the reference agree on JSON input
            found = [Violation("$", "rejected by the fast check")]
            code = SCHEMA_VIOLATION
        raise ContractError(self.type_name, code, found)

    def decode_model(self, data: bytes | bytearray | memoryview | str | None) -> Model:
        """Like :meth:`decode`, but returns the typed record (e.g. a ``NodeUsage``)."""
        return self._model.from_dict(self.decode(data))

    def _too_large(self, size: int) -> str:
        return f"record is {size} bytes, over the limit of {self.max_bytes} bytes"


# --- clock skew ----------------------------------------------------------------------------------
# Instants a consumer checks against its own clock: the record's sampling/issue time and, for
# events, the window. A schema-valid timestamp may still be absurd (a node whose clock fell back
# to 1970, a typo a decade ahead); such a record would poison forecasters and decisions, so
# consumers refuse it with its own code. The bounds are wide on purpose: synthetic benchmarks run
# weeks ahead in event time, and trace replays keep their original 2011+ timestamps.
CLOCK_FIELDS: dict[str, tuple[str, ...]] = {
    "workload_usage": ("sampled_at",),
    "node_usage": ("sampled_at",),
    "event": ("starts_at", "ends_at", "issued_at"),
    "policy": ("updated_at",),
    "order": ("issued_at",),
}
EARLIEST_PLAUSIBLE_AT = 946_684_800.0  # 2000-01-01T00:00:00Z
MAX_FUTURE_SECONDS = 366 * 86400.0


def check_clock(type_name: str, record: Mapping[str, Any], now: float) -> None:
    """Raise :class:`ContractError` (``clock_skew``) if an instant of a valid record is far off ``now``.

    Runs after :meth:`Codec.decode` (the fields have their types) on the consumer side only: what
    is plausible depends on the consumer's clock, not on the contract.
    """
    found = []
    for name in CLOCK_FIELDS.get(type_name, ()):
        at = record.get(name)
        if not isinstance(at, int | float) or isinstance(at, bool):
            continue
        if at < EARLIEST_PLAUSIBLE_AT:
            found.append(Violation(f"$.{name}", f"{at} is before 2000-01-01 (a reset or unset clock?)"))
        elif at > now + MAX_FUTURE_SECONDS:
            days = (at - now) / 86400.0
            found.append(Violation(f"$.{name}", f"{at} is {days:.0f} days ahead of this consumer's clock"))
    if found:
        raise ContractError(type_name, CLOCK_SKEW, found)


_codecs: dict[tuple[str, int], Codec] = {}


def codec(type_name: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Codec:
    """A shared :class:`Codec` per (type, limit): codecs are stateless, build them once."""
    key = (type_name, max_bytes)
    found = _codecs.get(key)
    if found is None:
        found = _codecs[key] = Codec(type_name, max_bytes=max_bytes)
    return found


# --- Faust ---------------------------------------------------------------------------------------
FAUST_CODEC_PREFIX = "plba-json-"
_faust_class: Any = None


def _build_faust_codec_class() -> Any:
    from faust.serializers import codecs as faust_codecs  # deferred: agents never load Faust

    class FaustJsonSchemaCodec(faust_codecs.Codec):  # type: ignore[misc]
        """Faust codec validating one contract type, e.g. ``value_serializer=FaustJsonSchemaCodec("order")``.

        Decoding gives a dict, or a typed record with ``as_model=True``. Errors are
        :class:`ContractError` (Faust wraps them in its ``ValueDecodeError``).
        """

        def __init__(
            self,
            type_name: str,
            *,
            as_model: bool = False,
            max_bytes: int = DEFAULT_MAX_BYTES,
            children: tuple[Any, ...] | None = None,
            **kwargs: Any,
        ) -> None:
            self._codec = codec(type_name, max_bytes=max_bytes)
            self._as_model = as_model
            # kwargs are what Faust's clone() passes back to __init__.
            super().__init__(children, type_name=type_name, as_model=as_model, max_bytes=max_bytes, **kwargs)

        def _dumps(self, obj: Any) -> bytes:
            return self._codec.encode(obj)

        def _loads(self, s: bytes) -> Any:
            return self._codec.decode_model(s) if self._as_model else self._codec.decode(s)

    return FaustJsonSchemaCodec


def register_faust_codecs() -> dict[str, Any]:
    """Register ``plba-json-<type>`` for every type in Faust's codec registry (idempotent).

    Then ``app.topic(name, value_serializer="plba-json-order")`` works. Returns name -> codec.
    """
    from faust.serializers import codecs as faust_codecs

    cls = __getattr__("FaustJsonSchemaCodec")
    made = {f"{FAUST_CODEC_PREFIX}{name}": cls(name) for name in registry.TYPE_NAMES}
    for name, instance in made.items():
        faust_codecs.register(name, instance)
    return made


def __getattr__(name: str) -> Any:
    global _faust_class
    if name == "FaustJsonSchemaCodec":
        if _faust_class is None:
            _faust_class = _build_faust_codec_class()
        return _faust_class
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
