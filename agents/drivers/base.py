"""The runtime driver interface: one per workload kind (qemu, process, function, sim).

The executor starts, stops and migrates workloads through drivers; the telemetry agent reads
their usage from the same driver objects. Drivers are asyncio-friendly: anything that can block
(spawning a process, talking QMP) is ``async``; ``usage`` is synchronous and cheap because the
agent calls it for every workload on every sample.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from typing import Any

KINDS = ("vm", "container", "function")
STATES = ("starting", "running", "migrating", "stopped", "failed")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class DriverError(Exception):
    """Root of driver errors. ``code`` maps to a gRPC status in the executor."""

    code = "internal"


class InvalidSpec(DriverError):
    code = "invalid_argument"


class UnknownWorkload(DriverError):
    code = "not_found"


class AlreadyExists(DriverError):
    code = "already_exists"


class InsufficientCapacity(DriverError):
    code = "resource_exhausted"


class DriverUnavailable(DriverError):
    """The runtime behind the driver is missing (e.g. no qemu-system-x86_64 on PATH)."""

    code = "failed_precondition"


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """What to run. ``params`` carries driver-specific settings (command, trace, series, speed…)."""

    workload_id: str
    kind: str
    driver: str
    memory_bytes: int = 256 * 1024 * 1024
    cpu_cores: float = 1.0
    priority: int = 50
    app: str = ""
    user: str = ""
    params: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ID.match(self.workload_id):
            raise InvalidSpec(f"workload id {self.workload_id!r}: use 1-128 of [A-Za-z0-9._-], starting alphanumeric")
        if self.kind not in KINDS:
            raise InvalidSpec(f"kind {self.kind!r}: must be one of {', '.join(KINDS)}")
        if self.memory_bytes <= 0:
            raise InvalidSpec(f"memory must be positive, not {self.memory_bytes}")
        if self.cpu_cores <= 0:
            raise InvalidSpec(f"cpu cores must be positive, not {self.cpu_cores}")
        if not 0 <= self.priority <= 1000:
            raise InvalidSpec(f"priority must be in 0..1000, not {self.priority}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload_id": self.workload_id,
            "kind": self.kind,
            "driver": self.driver,
            "memory_bytes": self.memory_bytes,
            "cpu_cores": self.cpu_cores,
            "priority": self.priority,
            "app": self.app,
            "user": self.user,
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkloadSpec:
        return cls(**{**d, "params": dict(d.get("params") or {})})


@dataclass(slots=True)
class WorkloadInfo:
    spec: WorkloadSpec
    state: str
    started_at: float
    endpoint: str = ""  # where clients reach it (function URL, QMP socket, process port…)
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """One usage reading. cpu in cores (1.0 = one full core), memory in bytes, io in bytes/s."""

    workload_id: str
    at: float
    cpu_cores_used: float
    mem_used_bytes: int
    io_bytes_per_second: float


class Driver(abc.ABC):
    """A runtime. Subclasses set ``name`` (driver name) and ``kind`` (workload kind they host)."""

    name: str
    kind: str

    @abc.abstractmethod
    def version(self) -> str:
        """Version of the runtime (e.g. QEMU's), reported in the node fingerprint."""

    @abc.abstractmethod
    async def start(self, spec: WorkloadSpec) -> WorkloadInfo:
        """Start a workload; raises AlreadyExists, InvalidSpec, InsufficientCapacity…"""

    @abc.abstractmethod
    async def stop(self, workload_id: str) -> None:
        """Stop and remove a workload; raises UnknownWorkload."""

    @abc.abstractmethod
    def list(self) -> list[WorkloadInfo]:
        """The workloads this driver hosts now."""

    @abc.abstractmethod
    def usage(self, workload_id: str, now: float) -> Usage:
        """Current usage of one workload (cheap; called every sample)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release driver resources at node shutdown (workloads keep running unless stated)."""
