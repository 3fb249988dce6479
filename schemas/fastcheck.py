"""A fast yes/no validator generated from our JSON Schemas.

``jsonschema`` is the reference validator of the contracts, but it walks the schema for every
record: 650-4,500 records/s for ours on this hardware (``plba schemas bench``), far from the
20k-200k records/s of the usage topics. This module turns a schema into Python source once, at
build time, in the way ``fastjsonschema`` does, and ``exec``\\ s it: plain ``isinstance`` and
comparison statements, one function per referenced sub-schema. (``fastjsonschema`` itself
implements drafts 4, 6 and 7, not 2020-12 — ``$ref`` beside other keywords, ``$defs`` — and
would be one more runtime dependency for the few keywords we use.)

It answers only "valid or not". When it says "not", the codec asks ``jsonschema`` for the
violations, so every error message comes from the reference. The generated check is written to
agree with ``jsonschema``'s Draft 2020-12 semantics on every JSON document (the tests compare both
on every golden example and on fuzzed records), with one deliberate extra: non-finite floats
(NaN, ±inf), which JSON cannot carry, are refused.

Only the keywords our schemas use are supported; any other assertion keyword makes
:func:`compile_check` raise, so a schema change can never be silently ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from referencing import Registry
from referencing._core import Resolver

from schemas.errors import SchemaDefinitionError

Check = Callable[[Any], bool]

# Keywords without effect on validity (annotations) or handled through the resolver.
_ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples",
        "deprecated", "readOnly", "writeOnly", "contentEncoding", "contentMediaType",
    }
)  # fmt: skip
_NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_STRING = ("minLength", "maxLength", "pattern")
_ARRAY = ("items", "minItems", "maxItems", "uniqueItems")
_OBJECT = ("required", "properties", "additionalProperties", "propertyNames", "minProperties", "maxProperties")
_APPLICATORS = ("$ref", "type", "enum", "const", "allOf", "anyOf", "oneOf", "not", "if", "then", "else")
_SUPPORTED = frozenset(_NUMERIC + _STRING + _ARRAY + _OBJECT + _APPLICATORS) | _ANNOTATIONS

# The type names a keyword group applies to.
_GROUP_TYPES = {
    "numeric": frozenset({"number", "integer"}),
    "string": frozenset({"string"}),
    "array": frozenset({"array"}),
    "object": frozenset({"object"}),
}


# Bounds of the per-pattern memory of strings known to match: a few MiB at most per pattern.
_MEMO_MAX_LEN = 256
_MEMO_MAX_ENTRIES = 65536


def _is_leaf(schema: Any) -> bool:
    """True for a small schema without references or applicators: cheaper inlined than called."""
    if not isinstance(schema, Mapping) or len(schema) > 12:
        return False
    return (
        not any(k in schema for k in ("$ref", "allOf", "anyOf", "oneOf", "not", "if"))
        and all(
            _is_leaf(sub) or sub is True or sub is False
            for key in ("items", "additionalProperties", "propertyNames")
            if (sub := schema.get(key)) is not None
        )
        and all(_is_leaf(sub) for sub in schema.get("properties", {}).values())
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and (not isinstance(v, float) or math.isfinite(v))


def _is_integer(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and v.is_integer())


def _type_cond(name: str, v: str) -> str:
    """A Python expression that is true when ``v`` is a JSON value of type ``name``."""
    # Exact-class tests first: they are what orjson produces, and they are the cheapest.
    return {
        "object": f"isinstance({v}, dict)",
        "array": f"isinstance({v}, list)",
        "string": f"isinstance({v}, str)",
        "boolean": f"({v} is True or {v} is False)",
        "null": f"{v} is None",
        "integer": f"({v}.__class__ is int or _is_integer({v}))",
        "number": f"(({v}.__class__ is float and {v} - {v} == 0.0) or {v}.__class__ is int or _is_number({v}))",
    }[name]


class _Compiler:
    def __init__(self, registry: Registry[Any]) -> None:
        self._registry = registry
        self._lines: list[str] = []
        self._names: dict[int, str] = {}  # id(schema contents) -> generated function name
        self._pending: list[tuple[str, Any, Resolver[Any]]] = []
        self._consts: dict[str, Any] = {"_is_number": _is_number, "_is_integer": _is_integer}
        self._counter = 0

    # -- plumbing -------------------------------------------------------------------------------
    def _fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def _const(self, prefix: str, value: Any) -> str:
        name = self._fresh(prefix)
        self._consts[name] = value
        return name

    def function_for(self, schema: Any, resolver: Resolver[Any]) -> str:
        """Name of the function checking ``schema`` (generated once per schema object)."""
        key = id(schema)
        if key not in self._names:
            self._names[key] = name = self._fresh("_f")
            self._pending.append((name, schema, resolver))
        return self._names[key]

    def build(self, schema: Any, resolver: Resolver[Any]) -> Check:
        entry = self.function_for(schema, resolver)
        while self._pending:
            name, sub, res = self._pending.pop()
            self._lines.append(f"def {name}(x):")
            self._emit(sub, "x", res, 1)
            self._lines.append("    return True")
            self._lines.append("")
        source = "\n".join(self._lines)
        namespace = dict(self._consts)
        exec(compile(source, "<schemas.fastcheck>", "exec"), namespace)  # noqa: S102 - our own generated code
        check: Check = namespace[entry]
        check.__doc__ = source  # kept for debugging: print(check.__doc__)
        return check

    def _w(self, depth: int, line: str) -> None:
        self._lines.append("    " * depth + line)

    def _fail_if(self, depth: int, cond: str) -> None:
        self._w(depth, f"if {cond}:")
        self._w(depth + 1, "return False")

    # -- schema walking -------------------------------------------------------------------------
    def _emit(self, schema: Any, v: str, resolver: Resolver[Any], depth: int) -> None:
        if schema is True:
            return
        if schema is False:
            self._w(depth, "return False")
            return
        if not isinstance(schema, Mapping):
            raise SchemaDefinitionError(f"not a schema: {schema!r}")
        unsupported = set(schema) - _SUPPORTED
        if unsupported:
            raise SchemaDefinitionError(f"fast check does not support keyword(s) {sorted(unsupported)}")

        if "$ref" in schema:
            resolved = resolver.lookup(schema["$ref"])
            if _is_leaf(resolved.contents):
                self._emit(resolved.contents, v, resolved.resolver, depth)  # inline: saves a call per value
            else:
                target = self.function_for(resolved.contents, resolved.resolver)
                self._fail_if(depth, f"not {target}({v})")

        types = schema.get("type")
        if types is not None:
            names = [types] if isinstance(types, str) else list(types)
            self._fail_if(depth, "not (" + " or ".join(_type_cond(t, v) for t in names) + ")")
        else:
            names = None

        if "enum" in schema:
            self._emit_enum(schema["enum"], v, depth)
        if "const" in schema:
            self._emit_const(schema["const"], v, depth)

        self._group(schema, "numeric", _NUMERIC, names, v, depth, self._emit_numeric, resolver)
        self._group(schema, "string", _STRING, names, v, depth, self._emit_string, resolver)
        self._group(schema, "array", _ARRAY, names, v, depth, self._emit_array, resolver)
        self._group(schema, "object", _OBJECT, names, v, depth, self._emit_object, resolver)

        for sub in schema.get("allOf", ()):
            self._emit(sub, v, resolver, depth)
        if "anyOf" in schema:
            calls = [f"{self.function_for(s, resolver)}({v})" for s in schema["anyOf"]]
            self._fail_if(depth, "not (" + " or ".join(calls) + ")")
        if "oneOf" in schema:
            calls = [f"{self.function_for(s, resolver)}({v})" for s in schema["oneOf"]]
            self._fail_if(depth, "(" + " + ".join(calls) + ") != 1")
        if "not" in schema:
            self._fail_if(depth, f"{self.function_for(schema['not'], resolver)}({v})")
        if "if" in schema and ("then" in schema or "else" in schema):
            cond = f"{self.function_for(schema['if'], resolver)}({v})"
            if "then" in schema:
                self._fail_if(depth, f"{cond} and not {self.function_for(schema['then'], resolver)}({v})")
            if "else" in schema:
                self._fail_if(depth, f"not {cond} and not {self.function_for(schema['else'], resolver)}({v})")

    def _group(
        self,
        schema: Mapping[str, Any],
        group: str,
        keywords: tuple[str, ...],
        types: list[str] | None,
        v: str,
        depth: int,
        emit: Callable[[Mapping[str, Any], str, Resolver[Any], int], None],
        resolver: Resolver[Any],
    ) -> None:
        """Emit a keyword group, guarded by a type test unless ``type`` already guarantees it."""
        if not any(k in schema for k in keywords):
            return
        family = _GROUP_TYPES[group]
        if types is not None and set(types) <= family:
            emit(schema, v, resolver, depth)  # the type check above already returned otherwise
            return
        if types is not None and len(set(types) - {"null"} - family) == 0:
            self._w(depth, f"if {v} is not None:")
        else:
            self._w(depth, "if " + " or ".join(_type_cond(t, v) for t in sorted(family)) + ":")
        emit(schema, v, resolver, depth + 1)

    def _emit_enum(self, values: list[Any], v: str, depth: int) -> None:
        strings = [x for x in values if isinstance(x, str)]
        if len(strings) + values.count(None) != len(values):
            raise SchemaDefinitionError("fast check supports enums of strings and null only")
        options = self._const("_E", frozenset(strings))
        cond = f"(isinstance({v}, str) and {v} in {options})"
        if None in values:
            cond = f"({v} is None or {cond})"
        self._fail_if(depth, f"not {cond}")

    def _emit_const(self, value: Any, v: str, depth: int) -> None:
        if value is None or value is True or value is False:
            self._fail_if(depth, f"{v} is not {value!r}")
        elif isinstance(value, str):
            self._fail_if(depth, f"not (isinstance({v}, str) and {v} == {value!r})")
        elif isinstance(value, int | float):
            # jsonschema's equality: 1 == 1.0, but booleans are never numbers.
            self._fail_if(depth, f"not (_is_number({v}) and {v} == {value!r})")
        else:
            raise SchemaDefinitionError(f"fast check does not support const {value!r}")

    def _emit_numeric(self, schema: Mapping[str, Any], v: str, _r: Resolver[Any], depth: int) -> None:
        for keyword, op in (("minimum", "<"), ("maximum", ">"), ("exclusiveMinimum", "<="), ("exclusiveMaximum", ">=")):
            if keyword in schema:
                bound = schema[keyword]
                if not _is_number(bound):
                    raise SchemaDefinitionError(f"{keyword} must be a number, not {bound!r}")
                self._fail_if(depth, f"{v} {op} {bound!r}")

    def _emit_string(self, schema: Mapping[str, Any], v: str, _r: Resolver[Any], depth: int) -> None:
        if "minLength" in schema:
            self._fail_if(depth, f"len({v}) < {int(schema['minLength'])}")
        if "maxLength" in schema:
            self._fail_if(depth, f"len({v}) > {int(schema['maxLength'])}")
        if "pattern" in schema:
            # jsonschema uses re.search with the pattern as written; so do we. Ids and names repeat in
            # every record, so short strings that matched are remembered (a bounded set per pattern).
            regex = self._const("_P", re.compile(schema["pattern"]).search)
            seen = self._const("_S", set())
            self._w(depth, f"if {v} not in {seen}:")
            self._fail_if(depth + 1, f"{regex}({v}) is None")
            self._w(depth + 1, f"if len({v}) <= {_MEMO_MAX_LEN} and len({seen}) < {_MEMO_MAX_ENTRIES}:")
            self._w(depth + 2, f"{seen}.add({v})")

    def _emit_array(self, schema: Mapping[str, Any], v: str, resolver: Resolver[Any], depth: int) -> None:
        if "minItems" in schema:
            self._fail_if(depth, f"len({v}) < {int(schema['minItems'])}")
        if "maxItems" in schema:
            self._fail_if(depth, f"len({v}) > {int(schema['maxItems'])}")
        if "items" in schema:
            item = self._fresh("i")
            self._w(depth, f"for {item} in {v}:")
            before = len(self._lines)
            self._emit(schema["items"], item, resolver, depth + 1)
            if len(self._lines) == before:
                self._w(depth + 1, "pass")
        if schema.get("uniqueItems"):
            if not self._all_strings(schema.get("items"), resolver):
                raise SchemaDefinitionError("fast check supports uniqueItems on arrays of strings only")
            # Items were checked to be strings above, so they hash.
            self._fail_if(depth, f"len(set({v})) != len({v})")

    def _all_strings(self, items: Any, resolver: Resolver[Any]) -> bool:
        while isinstance(items, Mapping):
            if items.get("type") == "string":
                return True
            if "$ref" not in items:
                return False
            resolved = resolver.lookup(items["$ref"])
            items, resolver = resolved.contents, resolved.resolver
        return False

    def _emit_object(self, schema: Mapping[str, Any], v: str, resolver: Resolver[Any], depth: int) -> None:
        required = list(schema.get("required", ()))
        if required:
            self._fail_if(depth, " or ".join(f"{k!r} not in {v}" for k in required))
        if "minProperties" in schema:
            self._fail_if(depth, f"len({v}) < {int(schema['minProperties'])}")
        if "maxProperties" in schema:
            self._fail_if(depth, f"len({v}) > {int(schema['maxProperties'])}")
        properties: Mapping[str, Any] = schema.get("properties", {})
        for key, sub in properties.items():
            value = self._fresh("p")
            if key in required:
                self._w(depth, f"{value} = {v}[{key!r}]")
                self._emit(sub, value, resolver, depth)
            else:
                self._w(depth, f"{value} = {v}.get({key!r}, _MISSING)")
                self._w(depth, f"if {value} is not _MISSING:")
                before = len(self._lines)
                self._emit(sub, value, resolver, depth + 1)
                if len(self._lines) == before:
                    self._w(depth + 1, "pass")
        if "propertyNames" in schema:
            name = self._fresh("k")
            self._w(depth, f"for {name} in {v}:")
            before = len(self._lines)
            self._emit(schema["propertyNames"], name, resolver, depth + 1)
            if len(self._lines) == before:
                self._w(depth + 1, "pass")
        extra = schema.get("additionalProperties", True)
        if extra is True:
            return
        known = self._const("_K", frozenset(properties))
        if extra is False:
            self._fail_if(depth, f"not {known}.issuperset({v})")
            return
        key, value = self._fresh("k"), self._fresh("a")
        self._w(depth, f"for {key}, {value} in {v}.items():")
        self._w(depth + 1, f"if {key} not in {known}:")
        before = len(self._lines)
        self._emit(extra, value, resolver, depth + 2)
        if len(self._lines) == before:
            self._w(depth + 2, "pass")


def compile_check(schema: Mapping[str, Any], registry: Registry[Any]) -> Check:
    """A function ``check(instance) -> bool`` equivalent to validating against ``schema``.

    ``schema`` must be registered in ``registry`` under its ``$id`` (relative ``$ref`` s resolve
    against it). Raises :class:`SchemaDefinitionError` for keywords it cannot check exactly.
    """
    base = str(schema.get("$id", ""))
    compiler = _Compiler(registry)
    compiler._consts["_MISSING"] = object()
    return compiler.build(schema, registry.resolver(base_uri=base))
