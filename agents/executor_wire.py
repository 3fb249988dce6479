"""Conversions between the executor's protobuf messages and the driver types, with validation.

Shared by the server (:mod:`agents.executor`) and the client (:mod:`agents.executor_client`).
Request checks raise :class:`~agents.drivers.base.InvalidSpec` whose message starts with the
offending field's path (``spec.memory_bytes: …``), which the server answers as
``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import grpc

from agents.drivers.base import _ID, KINDS, DriverError, InvalidSpec, Usage, WorkloadInfo, WorkloadSpec
from schemas import executor_pb2 as pb

MAX_IDS_PER_REQUEST = 10_000

# DriverError.code -> gRPC status. Codes not listed (and plain "internal") answer INTERNAL.
STATUS_BY_CODE: dict[str, grpc.StatusCode] = {
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "already_exists": grpc.StatusCode.ALREADY_EXISTS,
    "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "resource_exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "aborted": grpc.StatusCode.ABORTED,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "deadline_exceeded": grpc.StatusCode.DEADLINE_EXCEEDED,
    "data_loss": grpc.StatusCode.DATA_LOSS,
    "out_of_range": grpc.StatusCode.OUT_OF_RANGE,
    "unimplemented": grpc.StatusCode.UNIMPLEMENTED,
    "permission_denied": grpc.StatusCode.PERMISSION_DENIED,
    "internal": grpc.StatusCode.INTERNAL,
}


def status_of(exc: DriverError) -> grpc.StatusCode:
    """The gRPC status a domain error is answered with."""
    return STATUS_BY_CODE.get(exc.code, grpc.StatusCode.INTERNAL)


# ---- requests → domain ------------------------------------------------------------------------


def spec_from_proto(
    msg: pb.WorkloadSpec | None, default_kind: Callable[[str], str] | None = None, *, field: str = "spec"
) -> WorkloadSpec:
    """A checked :class:`WorkloadSpec`; ``default_kind(driver)`` fills an empty kind."""
    if msg is None:
        raise InvalidSpec(f"{field}: required")
    if not msg.workload_id:
        raise InvalidSpec(f"{field}.workload_id: required")
    if not msg.driver:
        raise InvalidSpec(f"{field}.driver: required (sim, process, function or qemu)")
    if not _ID.match(msg.workload_id):
        raise InvalidSpec(f"{field}.workload_id: {msg.workload_id!r}: use 1-128 of [A-Za-z0-9._-], alphanumeric first")
    kind = msg.kind or (default_kind(msg.driver) if default_kind else "")
    if kind not in KINDS:
        raise InvalidSpec(f"{field}.kind: {kind!r}: must be one of {', '.join(KINDS)}")
    values: dict[str, object] = {}
    if msg.HasField("memory_bytes"):
        if msg.memory_bytes <= 0:
            raise InvalidSpec(f"{field}.memory_bytes: must be positive, not {msg.memory_bytes}")
        values["memory_bytes"] = int(msg.memory_bytes)
    if msg.HasField("cpu_cores"):
        if not (math.isfinite(msg.cpu_cores) and msg.cpu_cores > 0):
            raise InvalidSpec(f"{field}.cpu_cores: must be positive, not {msg.cpu_cores:g}")
        values["cpu_cores"] = float(msg.cpu_cores)
    if msg.HasField("priority"):
        if not 0 <= msg.priority <= 1000:
            raise InvalidSpec(f"{field}.priority: must be in 0..1000, not {msg.priority}")
        values["priority"] = int(msg.priority)
    try:
        return WorkloadSpec(
            workload_id=msg.workload_id,
            kind=kind,
            driver=msg.driver,
            app=msg.app,
            user=msg.user,
            params=dict(msg.params),
            **values,  # type: ignore[arg-type]
        )
    except InvalidSpec as exc:
        raise InvalidSpec(f"{field}: {exc}") from exc


def ids_from_proto(ids: list[str] | tuple[str, ...], field: str = "workload_ids") -> list[str]:
    if len(ids) > MAX_IDS_PER_REQUEST:
        raise InvalidSpec(f"{field}: at most {MAX_IDS_PER_REQUEST} ids, not {len(ids)}")
    for i, wid in enumerate(ids):
        if not wid:
            raise InvalidSpec(f"{field}[{i}]: empty id")
    return list(dict.fromkeys(ids))


# ---- domain → messages --------------------------------------------------------------------------


def spec_to_proto(spec: WorkloadSpec) -> pb.WorkloadSpec:
    return pb.WorkloadSpec(
        workload_id=spec.workload_id,
        kind=spec.kind,
        driver=spec.driver,
        memory_bytes=spec.memory_bytes,
        cpu_cores=spec.cpu_cores,
        priority=spec.priority,
        app=spec.app,
        user=spec.user,
        params=spec.params,
    )


def workload_to_proto(info: WorkloadInfo) -> pb.Workload:
    return pb.Workload(
        spec=spec_to_proto(info.spec),
        state=info.state,
        started_at=info.started_at,
        endpoint=info.endpoint,
        pid=info.pid or 0,
    )


def usage_to_proto(usage: Usage) -> pb.Usage:
    return pb.Usage(
        workload_id=usage.workload_id,
        at=usage.at,
        cpu_cores_used=max(usage.cpu_cores_used, 0.0),
        mem_used_bytes=max(int(usage.mem_used_bytes), 0),
        io_bytes_per_second=max(usage.io_bytes_per_second, 0.0),
        extra=dict(usage.extra),
    )


# ---- responses → domain (client side) ---------------------------------------------------------


def workload_from_proto(msg: pb.Workload) -> WorkloadInfo:
    spec = spec_from_proto(msg.spec, field="workload.spec")
    return WorkloadInfo(spec, msg.state, msg.started_at, msg.endpoint, msg.pid or None)


def usage_from_proto(msg: pb.Usage) -> Usage:
    return Usage(
        workload_id=msg.workload_id,
        at=msg.at,
        cpu_cores_used=msg.cpu_cores_used,
        mem_used_bytes=msg.mem_used_bytes,
        io_bytes_per_second=msg.io_bytes_per_second,
        extra=dict(msg.extra),
    )
