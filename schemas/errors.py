"""Exceptions of the ``schemas`` package.

``SchemaError`` is the one root: catching it catches every error this package raises.
``ContractError`` is the one a consumer meets in practice: a record that breaks its contract.
It carries a machine-readable ``code`` (what kind of failure, also used as the DLQ
``error_code``) and every violation found, each as a JSON path and a reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# ContractError codes. Stable strings: they end up in DLQ records and metrics labels.
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
EMPTY_VALUE = "empty_value"
TOO_LARGE = "too_large"
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
SCHEMA_VIOLATION = "schema_violation"
RULE_VIOLATION = "rule_violation"
NOT_SERIALIZABLE = "not_serializable"
CLOCK_SKEW = "clock_skew"  # a well-formed timestamp far from any plausible clock (see codec.check_clock)

ERROR_CODES = (
    INVALID_JSON,
    NOT_AN_OBJECT,
    EMPTY_VALUE,
    TOO_LARGE,
    UNKNOWN_SCHEMA_VERSION,
    SCHEMA_VIOLATION,
    RULE_VIOLATION,
    NOT_SERIALIZABLE,
    CLOCK_SKEW,
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: where (``$.capacity.cpu_cores``) and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class SchemaError(Exception):
    """Root of every error raised by :mod:`schemas`."""


class SchemaDefinitionError(SchemaError):
    """A schema file itself is broken (unreadable, not valid JSON Schema, unsupported keyword)."""


class UnknownTypeError(SchemaError, LookupError):
    """A record type name that the contracts do not define."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown record type {name!r}; known: {', '.join(self.known)}")

    def __str__(self) -> str:  # LookupError would quote the whole message
        return str(self.args[0])


class ContractError(SchemaError, ValueError):
    """A record breaks its contract.

    ``violations`` lists every problem found (at least one); ``path`` and ``reason`` are the
    first one's, for callers that only show one line. ``code`` is one of :data:`ERROR_CODES`.
    """

    def __init__(self, type_name: str, code: str, violations: Iterable[Violation]) -> None:
        self.type_name = type_name
        self.code = code
        self.violations: tuple[Violation, ...] = tuple(violations) or (Violation("$", code),)
        first = self.violations[0]
        self.path = first.path
        self.reason = first.reason
        super().__init__(self._message())

    @classmethod
    def single(cls, type_name: str, code: str, path: str, reason: str) -> ContractError:
        return cls(type_name, code, (Violation(path, reason),))

    def _message(self) -> str:
        shown = "; ".join(str(v) for v in self.violations[:5])
        more = len(self.violations) - 5
        tail = f"; … and {more} more" if more > 0 else ""
        return f"invalid {self.type_name} record ({self.code}): {shown}{tail}"
