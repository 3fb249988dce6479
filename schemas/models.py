"""Typed records: one frozen dataclass per contract type, mirroring ``schemas/json``.

They are light on purpose (they sit on the hot path): no validation of their own — the codec
validates the JSON — and a generic ``to_dict``/``from_dict`` driven by cached field tables.

Conventions:
- lists are tuples and maps are dicts; nested objects are nested records;
- a field whose default is ``None`` is optional in the schema: ``None`` means "absent" and is
  left out of ``to_dict()``. A field that is required but may be null has no default.
- ``from_dict`` expects a validated dict (``Codec.decode`` gives one); on a dict it cannot map
  it raises :class:`~schemas.errors.ContractError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from schemas.errors import SCHEMA_VIOLATION, ContractError

Kind = Literal["vm", "container", "function"]
Resource = Literal["cpu", "memory", "io"]
EventType = Literal["maintenance", "ingestion_peak", "custom"]
Mode = Literal["enforce", "recommend", "shadow"]
Method = Literal["live", "snapshot", "reroute", "simulated"]
MigrationState = Literal[
    "accepted", "preparing", "transferring", "switching", "completed", "failed", "rolled_back", "rejected", "expired"
]
TERMINAL_STATES: frozenset[str] = frozenset({"completed", "failed", "rolled_back", "rejected", "expired"})

R = TypeVar("R", bound="Model")

# Per class: tuple of (field name, converter kind, nested class or None, omit when None).
_PLAIN, _NESTED, _NESTED_SEQ, _SEQ, _MAP = range(5)
_Table = tuple[tuple[str, int, Any, bool], ...]
_TABLES: dict[type, _Table] = {}


class Model:
    """Base of the typed records and of their nested parts."""

    __slots__ = ()
    TYPE: ClassVar[str] = ""  # the contract type name, on top-level records
    NESTED: ClassVar[Mapping[str, type[Model]]] = {}  # field -> class of the nested record(s)

    @classmethod
    def _table(cls) -> _Table:
        table = _TABLES.get(cls)
        if table is None:
            rows = []
            for f in dataclasses.fields(cls):  # type: ignore[arg-type]
                ann = str(f.type)
                nested = cls.NESTED.get(f.name)
                if nested is not None:
                    kind = _NESTED_SEQ if ann.startswith("tuple[") else _NESTED
                elif ann.startswith("tuple["):
                    kind = _SEQ
                elif ann.startswith("dict["):
                    kind = _MAP
                else:
                    kind = _PLAIN
                rows.append((f.name, kind, nested, f.default is None))
            table = _TABLES[cls] = tuple(rows)
        return table

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict of the record (what the codec validates and encodes)."""
        out: dict[str, Any] = {}
        for name, kind, _nested, omit_none in self._table():
            value = getattr(self, name)
            if value is None:
                if not omit_none:
                    out[name] = None
            elif kind == _PLAIN:
                out[name] = value
            elif kind == _NESTED:
                out[name] = value.to_dict()
            elif kind == _NESTED_SEQ:
                out[name] = [item.to_dict() for item in value]
            elif kind == _SEQ:
                out[name] = list(value)
            else:
                out[name] = dict(value)
        return out

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """Build the record from a validated dict (unknown keys are an error)."""
        build = _BUILDERS.get(cls) or _make_builder(cls)
        try:
            return build(data)  # type: ignore[no-any-return]
        except ContractError:
            raise
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ContractError.single(
                cls.__name__, SCHEMA_VIOLATION, "$", f"cannot build {cls.__name__}: {detail}"
            ) from exc


_BUILDERS: dict[type, Callable[[Mapping[str, Any]], Any]] = {}


def _make_builder(cls: type[Model]) -> Callable[[Mapping[str, Any]], Any]:
    """Generate ``cls``'s from_dict body once: one constructor call, no per-field loop (hot path)."""
    namespace: dict[str, Any] = {"_cls": cls, "_KEYS": frozenset(name for name, *_ in cls._table())}
    args = []
    for i, (name, kind, nested, _omit) in enumerate(cls._table()):
        field = next(f for f in dataclasses.fields(cls) if f.name == name)  # type: ignore[arg-type]
        has_default = field.default is not dataclasses.MISSING
        get = f"d.get({name!r}, {field.default!r})" if has_default else f"d[{name!r}]"
        if kind == _PLAIN:
            args.append(f"{name}={get}")
            continue
        namespace[f"_N{i}"] = nested
        convert = {
            _NESTED: f"_N{i}.from_dict(v{i})",
            _NESTED_SEQ: f"tuple([_N{i}.from_dict(x) for x in v{i}])",
            _SEQ: f"tuple(v{i})",
            _MAP: f"dict(v{i})",
        }[kind]
        args.append(f"{name}=(None if (v{i} := {get}) is None else {convert})")
    source = (
        "def build(d):\n"
        "    if not _KEYS.issuperset(d):\n"
        "        raise TypeError(f'unknown field(s) {sorted(set(d) - _KEYS)}')\n"
        f"    return _cls({', '.join(args)})\n"
    )
    exec(compile(source, f"<from_dict of {cls.__name__}>", "exec"), namespace)  # noqa: S102 - generated here
    _BUILDERS[cls] = builder = namespace["build"]
    return builder  # type: ignore[no-any-return]


# --- node_usage ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity(Model):
    cpu_cores: float
    mem_bytes: int
    io_bytes_per_second: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Fingerprint(Model):
    arch: str
    cpu_model: str
    flags_digest: str
    cores: int
    memory_class: str
    drivers: dict[str, str]
    labels: dict[str, str]
    pool: str
    zone: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeUsage(Model):
    TYPE: ClassVar[str] = "node_usage"
    NESTED: ClassVar[Mapping[str, type[Model]]] = {"capacity": Capacity, "fingerprint": Fingerprint}
    schema_version: int = 1
    node_id: str
    sampled_at: float
    interval_seconds: float
    seq: int | None = None
    cpu_ratio: float
    mem_used_bytes: int
    mem_total_bytes: int
    disk_read_bytes_per_second: float
    disk_write_bytes_per_second: float
    net_rx_bytes_per_second: float
    net_tx_bytes_per_second: float
    capacity: Capacity
    fingerprint: Fingerprint
    workloads: tuple[str, ...]
    executor_endpoint: str | None


# --- workload_usage -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadUsage(Model):
    TYPE: ClassVar[str] = "workload_usage"
    schema_version: int = 1
    workload_id: str
    node_id: str
    kind: Kind
    driver: str
    sampled_at: float
    interval_seconds: float
    seq: int | None = None
    cpu_cores_used: float
    cpu_ratio: float
    mem_used_bytes: int
    io_bytes_per_second: float
    app: str | None = None
    user: str | None = None
    priority: int | None = None
    started_at: float | None = None


# --- event --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Scope(Model):
    nodes: tuple[str, ...] | None = None
    workloads: tuple[str, ...] | None = None
    users: tuple[str, ...] | None = None
    apps: tuple[str, ...] | None = None
    pools: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Deltas(Model):
    cpu_cores: float | None = None
    mem_bytes: int | None = None
    io_bytes_per_second: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Impact(Model):
    NESTED: ClassVar[Mapping[str, type[Model]]] = {"deltas": Deltas}
    factor: float | None = None
    deltas: Deltas | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(Model):
    TYPE: ClassVar[str] = "event"
    NESTED: ClassVar[Mapping[str, type[Model]]] = {"scope": Scope, "impact": Impact}
    schema_version: int = 1
    event_id: str
    event_type: EventType
    name: str | None = None
    reason: str | None = None
    starts_at: float
    ends_at: float
    scope: Scope
    impact: Impact | None = None
    cancelled: bool | None = None
    issued_at: float | None = None
    source: str | None = None
    recurrence_id: str | None = None


# --- policy -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Policy(Model):
    TYPE: ClassVar[str] = "policy"
    schema_version: int = 1
    subject_kind: Literal["workload", "app", "user", "default"]
    subject: str
    priority: int | None = None
    tier: str | None = None
    max_downtime_seconds: float | None = None
    migratable: bool | None = None
    pin_node: str | None = None
    anti_affinity_group: str | None = None
    migrations_per_day: int | None = None
    updated_at: float
    note: str | None = None

    @property
    def key(self) -> str:
        """The Kafka key of the record on the compacted policies topic."""
        return f"{self.subject_kind}:{self.subject}"


# --- forecast -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class EventAdjustment(Model):
    event_id: str
    event_type: EventType
    starts_at: float
    ends_at: float
    declared_factor: float | None = None
    declared_delta: float | None = None
    learned_factor: float | None = None
    learned_observations: int | None = None
    applied_factor: float
    applied_delta: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Forecast(Model):
    TYPE: ClassVar[str] = "forecast"
    NESTED: ClassVar[Mapping[str, type[Model]]] = {"event_adjustments": EventAdjustment}
    schema_version: int = 1
    subject_kind: Literal["node", "workload"]
    subject: str
    node_id: str
    pool: str | None = None
    resource: Resource
    unit: Literal["ratio", "cores", "bytes", "bytes_per_second"]
    issued_at: float
    step_seconds: float
    horizons_seconds: tuple[float, ...]
    mean: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    last_value: float | None = None
    model: str
    reliable: bool
    observations: int | None = None
    recent_mae: float | None
    coverage: float | None
    nominal_coverage: float | None = None
    event_adjustments: tuple[EventAdjustment, ...] | None = None


# --- order --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class OrderReason(Model):
    code: Literal["predicted_overload", "declared_peak", "maintenance_evacuation", "swap", "current_overload"]
    resource: Resource | None = None
    predicted_breach_at: float | None = None
    predicted_peak_ratio: float | None = None
    threshold_ratio: float | None = None
    current_ratio: float | None = None
    lead_time_seconds: float | None = None
    event_id: str | None = None
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SwapRef(Model):
    order_id: str
    workload_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Order(Model):
    TYPE: ClassVar[str] = "order"
    NESTED: ClassVar[Mapping[str, type[Model]]] = {"reason": OrderReason, "swap_with": SwapRef}
    schema_version: int = 1
    order_id: str
    workload_id: str
    kind: Kind
    source_node: str
    target_node: str
    method: Method
    reason: OrderReason
    issued_at: float
    deadline_at: float
    dry_run: bool
    mode: Mode
    pool: str
    policy: str | None = None
    priority: int | None = None
    mem_bytes: int | None = None
    expected_seconds: float | None = None
    expected_downtime_seconds: float | None = None
    swap_with: SwapRef | None = None


# --- migration_status ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationError(Model):
    code: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationStatus(Model):
    TYPE: ClassVar[str] = "migration_status"
    NESTED: ClassVar[Mapping[str, type[Model]]] = {"error": MigrationError}
    schema_version: int = 1
    order_id: str
    workload_id: str
    state: MigrationState
    at: float
    source_node: str
    target_node: str
    driver: str | None = None
    method: Method | None = None
    attempt: int
    dry_run: bool | None = None
    progress_ratio: float | None = None
    downtime_seconds: float | None = None
    transferred_bytes: int | None = None
    total_seconds: float | None = None
    error: MigrationError | None = None
    message: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


# --- placement ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Placement(Model):
    TYPE: ClassVar[str] = "placement"
    schema_version: int = 1
    workload_id: str
    node_id: str
    endpoint: str | None
    kind: Kind
    driver: str
    updated_at: float
    order_id: str | None = None


# --- explanation --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateOption(Model):
    workload_id: str
    excluded_by: str | None
    detail: str | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetOption(Model):
    node_id: str
    excluded_by: str | None
    detail: str | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation(Model):
    TYPE: ClassVar[str] = "explanation"
    NESTED: ClassVar[Mapping[str, type[Model]]] = {"candidates": CandidateOption, "targets": TargetOption}
    schema_version: int = 1
    node_id: str
    pool: str | None = None
    at: float
    decision: Literal["acted", "no_action"]
    reason: str
    message: str | None = None
    resource: Resource | None
    policy: str | None = None
    mode: Mode | None = None
    predicted_breach_at: float | None = None
    predicted_peak_ratio: float | None = None
    threshold_ratio: float | None = None
    order_ids: tuple[str, ...] | None = None
    candidates: tuple[CandidateOption, ...]
    targets: tuple[TargetOption, ...]


# --- dlq ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class DlqHeader(Model):
    key: str
    value_b64: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DlqViolation(Model):
    path: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter(Model):
    TYPE: ClassVar[str] = "dlq"
    NESTED: ClassVar[Mapping[str, type[Model]]] = {"headers": DlqHeader, "violations": DlqViolation}
    schema_version: int = 1
    source_topic: str
    partition: int | None
    offset: int | None
    key_b64: str | None
    value_b64: str | None
    value_size_bytes: int | None = None
    value_truncated: bool | None = None
    headers: tuple[DlqHeader, ...] | None = None
    error: str
    error_code: str
    violations: tuple[DlqViolation, ...] | None = None
    failed_at: float
    processor: str
    attempts: int | None = None


Record = (
    NodeUsage
    | WorkloadUsage
    | Event
    | Policy
    | Forecast
    | Order
    | MigrationStatus
    | Placement
    | Explanation
    | DeadLetter
)

MODELS: dict[str, type[Model]] = {
    cls.TYPE: cls
    for cls in (
        NodeUsage, WorkloadUsage, Event, Policy, Forecast, Order, MigrationStatus, Placement, Explanation, DeadLetter
    )
}  # fmt: skip
