"""The runtime driver interface: one per workload kind (qemu, process, function, sim).

The executor starts, stops and migrates workloads through drivers; the telemetry agent reads
their usage from the same driver objects. Migration hooks (``migrate_in_*`` on the target,
``migrate_out_*`` on the source) are described on :class:`Driver`; the executor's migration
coordinator (:mod:`agents.migration`) calls them in a fixed order and journals every phase.
Drivers are asyncio-friendly: anything that can block
(spawning a process, talking QMP) is ``async``; ``usage`` is synchronous and cheap because the
agent calls it for every workload on every sample.

A node builds its drivers with ``DriverClass.create(ctx)`` (see :class:`DriverContext`); the
default passes the context to ``__init__``. Errors are :class:`DriverError` subclasses whose
``code`` names the gRPC status the executor answers with (``invalid_argument`` →
``INVALID_ARGUMENT``, …).
"""

from __future__ import annotations

import abc
import math
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

KINDS = ("vm", "container", "function")
STATES = ("starting", "running", "migrating", "stopped", "failed")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Ids of apps and users: the contracts' id (schemas/json/common.schema.json).
_OWNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,252}$")
_DRIVER_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_PARAM_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_PARAMS = 64
MAX_PARAM_VALUE = 4096


class DriverError(Exception):
    """Root of driver (and node) errors. ``code`` maps to a gRPC status in the executor."""

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


class StartFailed(DriverError):
    """The runtime accepted the spec but the workload did not come up (exited, never got ready)."""

    code = "failed_precondition"


class MigrationUnsupported(DriverError):
    """The driver cannot move this workload (no migration method, or not in a movable state)."""

    code = "failed_precondition"


class MoveFailed(DriverError):
    """A migration step failed in the runtime (a transfer broke, the target did not come up)."""

    code = "aborted"


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
        if not isinstance(self.workload_id, str) or not _ID.match(self.workload_id):
            raise InvalidSpec(f"workload id {self.workload_id!r}: use 1-128 of [A-Za-z0-9._-], starting alphanumeric")
        if self.kind not in KINDS:
            raise InvalidSpec(f"kind {self.kind!r}: must be one of {', '.join(KINDS)}")
        if not isinstance(self.driver, str) or not _DRIVER_NAME.match(self.driver):
            raise InvalidSpec(f"driver {self.driver!r}: a lower-case name such as sim, process, function or qemu")
        if isinstance(self.memory_bytes, bool) or not isinstance(self.memory_bytes, int) or self.memory_bytes <= 0:
            raise InvalidSpec(f"memory must be a positive number of bytes, not {self.memory_bytes!r}")
        if not isinstance(self.cpu_cores, int | float) or not math.isfinite(self.cpu_cores) or self.cpu_cores <= 0:
            raise InvalidSpec(f"cpu cores must be positive, not {self.cpu_cores}")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int) or not 0 <= self.priority <= 1000:
            raise InvalidSpec(f"priority must be in 0..1000, not {self.priority}")
        for name in ("app", "user"):
            value = getattr(self, name)
            if value and not _OWNER_ID.match(value):
                raise InvalidSpec(f"{name} {value!r}: use letters, digits and . _ : @ + - (no spaces), max 253")
        if len(self.params) > MAX_PARAMS:
            raise InvalidSpec(f"too many params: {len(self.params)} (at most {MAX_PARAMS})")
        for key, value in self.params.items():
            if not isinstance(key, str) or not _PARAM_KEY.match(key):
                raise InvalidSpec(f"param name {key!r}: use 1-64 of [A-Za-z0-9_.-], starting with a letter or _")
            if not isinstance(value, str) or len(value) > MAX_PARAM_VALUE:
                raise InvalidSpec(f"param {key}: the value must be text of at most {MAX_PARAM_VALUE} characters")

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
    """One usage reading. cpu in cores (1.0 = one full core), memory in bytes, io in bytes/s.

    ``extra`` holds driver-specific figures with base units in their names (a function's
    ``invocations_total`` and ``invocations_per_second``); the core fields stay comparable
    across drivers.
    """

    workload_id: str
    at: float
    cpu_cores_used: float
    mem_used_bytes: int
    io_bytes_per_second: float
    extra: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What a node gives its drivers.

    ``state_dir`` is the node's own state directory; a driver keeps each workload's files under
    :meth:`workload_dir` so that two nodes on one host never share a workload's files.
    """

    node_id: str
    state_dir: Path
    traces_dir: Path = Path("")
    # Address the node's local endpoints (function URLs, process ports) bind to.
    bind_host: str = "127.0.0.1"

    def workload_dir(self, workload_id: str) -> Path:
        return self.state_dir / "workloads" / workload_id


@dataclass(frozen=True, slots=True)
class IncomingPlan:
    """What a target's driver prepared for an incoming workload.

    ``incoming_uri``: where the source's runtime streams to (QEMU ``tcp:host:port``), empty when
    the executor's own Transfer carries the state or nothing moves. ``params``: details for the
    source (e.g. a function's warm ``endpoint``).
    """

    incoming_uri: str = ""
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MoveFigures:
    """What a source driver measured while moving a workload out.

    ``downtime_seconds``: the runtime's own figure (QEMU's statistics), a modelled one (sim) or
    0 (functions); None lets the executor measure it from quiesce to the target being ready.
    """

    transferred_bytes: int = 0
    downtime_seconds: float | None = None
    message: str = ""


class OutgoingMove(Protocol):
    """What the executor gives a source driver's ``migrate_out_*`` hooks for one order."""

    order_id: str
    incoming: IncomingPlan
    deadline_at: float

    async def send_files(self, root: Path, *, changed_only: bool = False) -> int:
        """Stream the files under ``root`` to the target (checksummed chunks); bytes sent.

        ``changed_only``: only files that changed (or appeared) since the previous call; files
        gone since then are dropped on the target.
        """
        ...

    async def progress(self, ratio: float, transferred_bytes: int, message: str = "") -> None:
        """Report progress (0..1) of the transfer."""
        ...

    def checkpoint(self, point: str) -> None:
        """A named point of the move (the crash-injection test hook fires here)."""
        ...


class Driver(abc.ABC):
    """A runtime. Subclasses set ``name`` (driver name) and ``kind`` (workload kind they host).

    ``kinds`` lists every kind the driver accepts when it hosts more than one (``sim``
    simulates any); by default it is just ``kind``.

    Migration. ``migration_method`` names how the driver moves workloads (``live``,
    ``snapshot``, ``reroute``, ``simulated``; empty: it cannot). The executor drives a move as:

    target: ``migrate_in_prepare`` (reserve, start an incoming instance or get ready to receive)
    source: ``migrate_out_transfer`` (while the workload serves), ``migrate_out_quiesce``
    target: ``migrate_in_switch`` (the workload runs here now)
    source: ``migrate_out_switched`` (route to the target), then after the commit point
            ``migrate_out_remove``; target: ``migrate_in_commit``.

    Before the commit point either side may be told to undo: ``migrate_out_rollback`` (the
    source serves again) and ``migrate_in_abort`` (the target discards its instance). Every
    hook must be idempotent: after a crash the executor calls it again.
    """

    name: str
    kind: str
    kinds: tuple[str, ...] = ()
    migration_method: str = ""

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    @classmethod
    def create(cls, ctx: DriverContext) -> Driver:
        """Build the driver for a node; raises DriverUnavailable when the runtime is missing."""
        return cls(ctx)

    def accepts(self, kind: str) -> bool:
        return kind in (self.kinds or (self.kind,))

    @abc.abstractmethod
    def version(self) -> str:
        """Version of the runtime (e.g. QEMU's), reported in the node fingerprint."""

    @abc.abstractmethod
    async def start(self, spec: WorkloadSpec) -> WorkloadInfo:
        """Start a workload; raises AlreadyExists, InvalidSpec, InsufficientCapacity…"""

    @abc.abstractmethod
    async def stop(self, workload_id: str) -> None:
        """Stop and remove a workload; raises UnknownWorkload."""

    async def recover(self) -> list[WorkloadInfo]:
        """Adopt the workloads a previous node process left in the state directory (default: none).

        The node calls it once before serving. Workloads found but no longer alive come back with
        state ``failed`` (their files kept until ``stop`` removes them).
        """
        return []

    @abc.abstractmethod
    def list(self) -> list[WorkloadInfo]:
        """The workloads this driver hosts now."""

    @abc.abstractmethod
    def usage(self, workload_id: str, now: float) -> Usage:
        """Current usage of one workload (cheap; called every sample)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release driver resources at node shutdown (workloads keep running unless stated)."""

    # ---- migration: target side --------------------------------------------------------------

    def migrate_in_staging(self, workload_id: str, order_id: str) -> Path:
        """Where a snapshot transfer for ``order_id`` lands on this node (created by the executor)."""
        return self.ctx.state_dir / "incoming" / order_id

    async def migrate_in_prepare(self, spec: WorkloadSpec, staging: Path) -> IncomingPlan:
        """Check ``spec`` runs here and get ready to receive it; raises InvalidSpec if it cannot."""
        raise MigrationUnsupported(f"driver {self.name} cannot receive migrations")

    async def migrate_in_received(self, workload_id: str, staging: Path) -> None:  # noqa: B027 - optional
        """The first copy of the state arrived (the source still serves): get ready to switch fast."""

    async def migrate_in_switch(self, spec: WorkloadSpec, staging: Path) -> WorkloadInfo:
        """Make the workload run here (from the transferred state in ``staging``); it must serve."""
        raise MigrationUnsupported(f"driver {self.name} cannot receive migrations")

    async def migrate_in_commit(self, workload_id: str, staging: Path) -> None:
        """The move is final: drop what only an abort would have needed (default: the staging files)."""
        shutil.rmtree(staging, ignore_errors=True)

    async def migrate_in_abort(self, workload_id: str, staging: Path) -> None:
        """Discard the incoming instance (also once switched), its files and state; idempotent."""
        shutil.rmtree(staging, ignore_errors=True)

    # ---- migration: source side --------------------------------------------------------------

    def migrate_out_spec(self, workload_id: str) -> WorkloadSpec:
        """The spec the target starts the workload from (default: the running spec)."""
        return self._running_spec(workload_id)

    def _running_spec(self, workload_id: str) -> WorkloadSpec:
        for info in self.list():
            if info.spec.workload_id == workload_id:
                return info.spec
        raise UnknownWorkload(f"no {self.name} workload {workload_id!r} on this node")

    async def migrate_out_transfer(self, workload_id: str, move: OutgoingMove) -> MoveFigures:
        """Copy the workload to the target while it serves (QEMU also switches over here)."""
        raise MigrationUnsupported(f"driver {self.name} cannot migrate workloads out")

    async def migrate_out_quiesce(self, workload_id: str, move: OutgoingMove) -> float | None:
        """Stop serving here and send what changed; returns when it stopped (None: nothing to stop)."""
        return None

    async def migrate_out_switched(self, workload_id: str, endpoint: str) -> None:  # noqa: B027 - optional
        """The target serves at ``endpoint``: route clients there (functions forward)."""

    async def migrate_out_remove(self, workload_id: str) -> None:
        """After the commit point: remove the source instance (it must not run afterwards)."""
        await self.stop(workload_id)

    async def migrate_out_rollback(self, workload_id: str, spec: WorkloadSpec) -> None:  # noqa: B027 - optional
        """Before the commit point: serve here again (resume what the move stopped; ``spec`` is the
        workload as the order journaled it, for runtimes whose instance died with the node)."""

    async def migrate_out_handed_over(self, workload_id: str) -> bool:
        """Whether the runtime may already run the workload on the target without a Switch (QEMU
        completes a live migration on its own): then only an acknowledged abort of the target
        makes a rollback safe."""
        return False
