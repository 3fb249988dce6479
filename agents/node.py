"""The node: its drivers, capacity, labels and state directory, shared by the executor and the agent.

One :class:`Node` lives in each ``plba node`` process. The executor's gRPC server starts and
stops workloads through it; the telemetry agent reads from it what it publishes:
``node.node_id``, ``node.endpoint`` (the executor's ``host:port``), ``node.capacity``,
``node.labels``, ``node.drivers``, ``node.list_workloads()`` and ``node.usage_all(now)``.

Capacity (ARCHITECTURE §7): a node may be given a slice of its host (cores, memory, I/O). Such
a node has ``capacity.sliced`` set and reports its utilization as the sum of its workloads'
usage against that capacity; a node without configured capacity has the host's figures.
Admission checks memory only (the sum of the hosted workloads' memory must fit the capacity):
CPU is overcommitted on purpose — predicting and relieving CPU overload is PLBA's job.

:func:`run_node` is the process's main loop: the executor server, background services (the
telemetry agent), clean shutdown on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import psutil

from agents.drivers import create_driver, driver_names
from agents.drivers.base import (
    AlreadyExists,
    Driver,
    DriverContext,
    DriverError,
    DriverUnavailable,
    InsufficientCapacity,
    InvalidSpec,
    UnknownWorkload,
    Usage,
    WorkloadInfo,
    WorkloadSpec,
)
from agents.sizes import format_size

if TYPE_CHECKING:
    from agents.migration import MigrationManager

log = logging.getLogger(__name__)

# Hosts do not advertise a disk+network throughput; a node without a configured I/O capacity
# assumes this much (1 GB/s) so its io ratio has a denominator.
HOST_IO_BYTES_PER_SECOND = 1_000_000_000.0
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,252}$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
ACTIVE_STATES = ("starting", "running", "migrating")
LOCK_FILE = "node.lock"


class WorkloadBusy(DriverError):
    """The workload is being migrated: it cannot be stopped meanwhile."""

    code = "failed_precondition"


class NodeConfigError(DriverError):
    """A node cannot be built as configured (bad id, labels, capacity, drivers, busy state dir)."""

    code = "invalid_argument"


@dataclass(frozen=True, slots=True)
class Capacity:
    """What the node offers to workloads. ``sliced``: configured smaller than the host."""

    cpu_cores: float
    mem_bytes: int
    io_bytes_per_second: float
    sliced: bool = False

    @classmethod
    def host(cls) -> Capacity:
        """The whole host (psutil)."""
        return cls(float(psutil.cpu_count() or 1), int(psutil.virtual_memory().total), HOST_IO_BYTES_PER_SECOND)

    @classmethod
    def configure(
        cls,
        cpu_cores: float | None = None,
        mem_bytes: int | None = None,
        io_bytes_per_second: float | None = None,
        *,
        virtual: bool = False,
    ) -> Capacity:
        """A slice of the host; unset parts are the host's. Raises NodeConfigError when it exceeds the host.

        ``virtual``: the node hosts only simulated workloads (driver ``sim``), which use no host
        CPU or memory, so any positive capacity is allowed (a demo runs 8-core sim nodes on a
        2-core host). Nodes with real drivers keep the host as the upper bound.
        """
        host = cls.host()
        if cpu_cores is not None and not (cpu_cores > 0 and (virtual or cpu_cores <= host.cpu_cores)):
            if virtual:
                raise NodeConfigError(f"capacity cores must be positive, not {cpu_cores:g}")
            raise NodeConfigError(
                f"capacity cores must be in (0, {host.cpu_cores:g}] (the host's), not {cpu_cores:g}; "
                "only a node whose sole driver is sim may claim more (its capacity is virtual)"
            )
        if mem_bytes is not None and virtual and mem_bytes <= 0:
            raise NodeConfigError(f"capacity memory must be positive, not {mem_bytes}")
        if mem_bytes is not None and not virtual and not 0 < mem_bytes <= host.mem_bytes:
            raise NodeConfigError(
                f"capacity memory must be positive and at most the host's {format_size(host.mem_bytes)}, "
                f"not {format_size(mem_bytes) if mem_bytes >= 0 else mem_bytes}"
            )
        if io_bytes_per_second is not None and not io_bytes_per_second > 0:
            raise NodeConfigError(f"capacity io must be positive, not {io_bytes_per_second:g}")
        sliced = any(v is not None for v in (cpu_cores, mem_bytes, io_bytes_per_second))
        return cls(
            cpu_cores if cpu_cores is not None else host.cpu_cores,
            mem_bytes if mem_bytes is not None else host.mem_bytes,
            io_bytes_per_second if io_bytes_per_second is not None else host.io_bytes_per_second,
            sliced,
        )

    def to_dict(self) -> dict[str, float | int]:
        """The node-usage record's ``capacity`` object."""
        return {
            "cpu_cores": self.cpu_cores,
            "mem_bytes": self.mem_bytes,
            "io_bytes_per_second": self.io_bytes_per_second,
        }


def parse_labels(text: str | Iterable[str]) -> dict[str, str]:
    """``zone=a,pool=p1`` (or a list of ``k=v``) → a dict; NodeConfigError on a malformed item."""
    items = [i for i in (text.split(",") if isinstance(text, str) else text) if i.strip()]
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _LABEL_KEY.match(key):
            raise NodeConfigError(f"label {item.strip()!r}: write key=value, key of [A-Za-z0-9._/-] (max 63)")
        if len(value) > 256:
            raise NodeConfigError(f"label {key}: value longer than 256 characters")
        if key in labels:
            raise NodeConfigError(f"label {key} given twice")
        labels[key] = value
    if len(labels) > 64:
        raise NodeConfigError(f"at most 64 labels, not {len(labels)}")
    return labels


def virtual_capacity(drivers: Iterable[str]) -> bool:
    """Whether a node with these drivers has a virtual capacity: only ``sim`` (no host resources used)."""
    return set(drivers) == {"sim"}


def parse_driver_list(text: str | Iterable[str]) -> list[str]:
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise NodeConfigError(f"no drivers given; known: {', '.join(driver_names())}")
    unknown = [n for n in names if n not in driver_names()]
    if unknown:
        raise NodeConfigError(f"unknown driver {unknown[0]!r}; known: {', '.join(driver_names())}")
    return list(dict.fromkeys(names))


class Node:
    """A node's drivers, capacity and workloads. Build it with :meth:`open`."""

    def __init__(
        self,
        node_id: str,
        drivers: Mapping[str, Driver],
        *,
        state_dir: Path,
        capacity: Capacity | None = None,
        labels: Mapping[str, str] | None = None,
        metrics: Any = None,
    ) -> None:
        if not _NODE_ID.match(node_id):
            raise NodeConfigError(f"node id {node_id!r}: use letters, digits and . _ : @ + - (no spaces), max 253")
        self.node_id = node_id
        self.drivers: dict[str, Driver] = dict(drivers)
        self.state_dir = Path(state_dir)
        self.capacity = capacity or Capacity.host()
        self.labels: dict[str, str] = dict(labels or {})
        self.endpoint: str | None = None  # host:port of the executor, once it serves
        # Optional agents.metrics.NodeMetrics: driver operations are counted and timed there.
        self.metrics = metrics
        self._pending: dict[str, WorkloadSpec] = {}
        self._reserved: dict[str, WorkloadSpec] = {}  # order_id -> incoming workload (migrations)
        self._lock_file: IO[str] | None = None
        # gRPC mTLS folder, also for this node's calls to other executors (migrations).
        self.tls_dir: Path | None = None
        self.fault_crash_at = ""  # test hook: see agents.migration.faults
        self._migrations: MigrationManager | None = None

    @classmethod
    async def open(
        cls,
        node_id: str,
        drivers: Sequence[str],
        state_dir: Path | str,
        *,
        capacity: Capacity | None = None,
        labels: Mapping[str, str] | None = None,
        traces_dir: Path | str = "",
        bind_host: str = "127.0.0.1",
        metrics: Any = None,
        tls_dir: Path | str | None = None,
        fault_crash_at: str = "",
    ) -> Node:
        """Lock the state directory, build the drivers, adopt the workloads they find there and
        read the migration journal (``run_node`` recovers its in-flight migrations once serving).

        ``tls_dir``: the node's mTLS folder, used for its calls to other executors too.
        ``fault_crash_at``: the crash-injection test hook (:mod:`agents.migration.faults`).
        """
        state = Path(state_dir).expanduser()
        lock = _lock_state_dir(state, node_id)
        ctx = DriverContext(node_id=node_id, state_dir=state, traces_dir=Path(traces_dir), bind_host=bind_host)
        built: dict[str, Driver] = {}
        try:
            for name in parse_driver_list(drivers):
                built[name] = create_driver(name, ctx)
            node = cls(node_id, built, state_dir=state, capacity=capacity, labels=labels, metrics=metrics)
            node._lock_file = lock
            node.tls_dir = Path(tls_dir) if tls_dir is not None and str(tls_dir) not in ("", ".") else None
            node.fault_crash_at = fault_crash_at
            for driver in built.values():
                for info in await driver.recover():
                    log.info("adopted %s workload %s (%s)", driver.name, info.spec.workload_id, info.state)
            in_flight = node.migrations.journal.in_flight()
            if in_flight:
                log.info("journal: %d migration(s) in flight, recovered once the executor serves", len(in_flight))
        except BaseException:
            for driver in built.values():
                with contextlib.suppress(Exception):
                    await driver.close()
            lock.close()
            raise
        return node

    # ---- drivers ---------------------------------------------------------------------------

    def driver(self, name: str) -> Driver:
        """An enabled driver; InvalidSpec for an unknown name, DriverUnavailable if not enabled here."""
        if name in self.drivers:
            return self.drivers[name]
        enabled = ", ".join(self.drivers) or "none"
        if name not in driver_names():
            raise InvalidSpec(f"unknown driver {name!r}; known: {', '.join(driver_names())}")
        raise DriverUnavailable(f"driver {name!r} is not enabled on node {self.node_id} (enabled: {enabled})")

    def driver_versions(self) -> dict[str, str]:
        versions = {}
        for name, driver in self.drivers.items():
            try:
                versions[name] = driver.version()
            except DriverError as exc:
                log.warning("driver %s has no version: %s", name, exc)
                versions[name] = "unknown"
        return versions

    @property
    def migrations(self) -> MigrationManager:
        """The node's migrations (journal, outgoing and incoming orders), built on first use."""
        if self._migrations is None:
            from agents.migration import MigrationManager

            self._migrations = MigrationManager(self, tls_dir=self.tls_dir, crash_at=self.fault_crash_at)
        return self._migrations

    # ---- capacity ------------------------------------------------------------------------

    def _committed_bytes(self) -> int:
        """Memory promised: hosted workloads, starts under way and reservations of incoming moves."""
        return (
            sum(s.memory_bytes for s in self._pending.values())
            + sum(s.memory_bytes for s in self._reserved.values())
            + sum(i.spec.memory_bytes for i in self.list_workloads() if i.state in ACTIVE_STATES)
        )

    def _admit(self, spec: WorkloadSpec) -> None:
        reserved = self._committed_bytes()
        if reserved + spec.memory_bytes > self.capacity.mem_bytes:
            free = max(self.capacity.mem_bytes - reserved, 0)
            raise InsufficientCapacity(
                f"node {self.node_id} has {format_size(free)} of {format_size(self.capacity.mem_bytes)} memory free; "
                f"workload {spec.workload_id!r} needs {format_size(spec.memory_bytes)}"
            )

    def reserve(self, order_id: str, spec: WorkloadSpec) -> None:
        """Hold capacity for an incoming migration; InsufficientCapacity if it does not fit."""
        if order_id in self._reserved:
            return
        self._admit(spec)
        self._reserved[order_id] = spec

    def release(self, order_id: str) -> None:
        """Give back an incoming migration's reservation (done, aborted or now a running workload)."""
        self._reserved.pop(order_id, None)

    # ---- workloads -------------------------------------------------------------------------

    async def start_workload(self, spec: WorkloadSpec) -> WorkloadInfo:
        driver = self.driver(spec.driver)
        if not driver.accepts(spec.kind):
            accepted = ", ".join(driver.kinds or (driver.kind,))
            raise InvalidSpec(f"driver {driver.name} hosts kind {accepted}, not {spec.kind}")
        wid = spec.workload_id
        if wid in self._pending or self._find(wid) is not None:
            raise AlreadyExists(f"workload {wid!r} already runs on node {self.node_id}")
        if self._migrations is not None and self._migrations.busy(wid):
            raise AlreadyExists(f"workload {wid!r} is arriving on node {self.node_id} by migration")
        self._admit(spec)
        self._pending[wid] = spec  # reserved until the driver answers, so concurrent starts see it
        try:
            with self._measured(driver.name, "start"):
                return await driver.start(spec)
        finally:
            self._pending.pop(wid, None)

    async def stop_workload(self, workload_id: str) -> None:
        found = self._find(workload_id)
        if found is None:
            raise UnknownWorkload(f"no workload {workload_id!r} on node {self.node_id}")
        order = self._migrations.busy(workload_id) if self._migrations is not None else None
        if order is not None:
            raise WorkloadBusy(f"workload {workload_id!r} is being migrated (order {order}); stop it afterwards")
        with self._measured(found[0].name, "stop"):
            await found[0].stop(workload_id)

    def _measured(self, driver: str, operation: str) -> contextlib.AbstractContextManager[None]:
        if self.metrics is None:
            return contextlib.nullcontext()
        return self.metrics.driver_operation(driver, operation)  # type: ignore[no-any-return]

    def list_workloads(self, driver: str | None = None) -> list[WorkloadInfo]:
        drivers = [self.driver(driver)] if driver else list(self.drivers.values())
        return [info for d in drivers for info in d.list()]

    def workload(self, workload_id: str) -> WorkloadInfo:
        found = self._find(workload_id)
        if found is None:
            raise UnknownWorkload(f"no workload {workload_id!r} on node {self.node_id}")
        return found[1]

    def usage(self, workload_id: str, now: float) -> Usage:
        found = self._find(workload_id)
        if found is None:
            raise UnknownWorkload(f"no workload {workload_id!r} on node {self.node_id}")
        return found[0].usage(workload_id, now)

    def usage_all(self, now: float) -> list[Usage]:
        """Usage of every active workload; one failing reading is logged and skipped."""
        out: list[Usage] = []
        for driver in self.drivers.values():
            for info in driver.list():
                if info.state not in ACTIVE_STATES:
                    continue
                try:
                    out.append(driver.usage(info.spec.workload_id, now))
                except (DriverError, psutil.Error, OSError) as exc:
                    log.debug("no usage for %s: %s", info.spec.workload_id, exc)
        return out

    def _find(self, workload_id: str) -> tuple[Driver, WorkloadInfo] | None:
        for driver in self.drivers.values():
            for info in driver.list():
                if info.spec.workload_id == workload_id:
                    return driver, info
        return None

    # ---- shutdown --------------------------------------------------------------------------

    async def close(self, *, stop_workloads: bool = True) -> None:
        """Stop the migrations' tasks and the workloads (unless told to keep them), close the
        drivers, release the state dir. A migration in flight resumes at the next start."""
        if self._migrations is not None:
            await self._migrations.close()
        if stop_workloads:
            for info in self.list_workloads():
                try:
                    with self._measured(info.spec.driver, "stop"):
                        await self.driver(info.spec.driver).stop(info.spec.workload_id)
                except DriverError as exc:
                    log.warning("could not stop %s: %s", info.spec.workload_id, exc)
        for driver in self.drivers.values():
            try:
                await driver.close()
            except Exception:
                log.exception("driver %s did not close cleanly", driver.name)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def _lock_state_dir(state: Path, node_id: str) -> IO[str]:
    """Hold an exclusive lock on the node's state directory for the life of the process."""
    try:
        state.mkdir(parents=True, exist_ok=True)
        handle = open(state / LOCK_FILE, "a+")  # noqa: SIM115 - held open until Node.close
    except OSError as exc:
        raise NodeConfigError(f"state directory {state}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise NodeConfigError(
            f"state directory {state} is in use by {holder}: give each node its own state directory"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"node {node_id} (pid {os.getpid()})\n")
    handle.flush()
    return handle


def advertised_endpoint(host: str, port: int) -> str:
    """``host:port`` others reach the executor at: a wildcard bind advertises the host name."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


# A background service of the node process (the telemetry agent's ``run``): runs until the
# event is set, then returns.
Service = Callable[[asyncio.Event], Awaitable[None]]


async def run_node(
    node: Node,
    listen: str,
    *,
    tls_dir: Path | None = None,
    services: Sequence[Service] = (),
    stop: asyncio.Event | None = None,
    keep_workloads: bool = False,
    grace_seconds: float = 5.0,
    interceptors: Sequence[Any] = (),
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the executor and run ``services`` until SIGTERM/SIGINT (or ``stop``), then shut down.

    Services start once the executor serves (so ``node.endpoint`` is set) and get the stop
    event. Shutdown order: the health service says NOT_SERVING and the server finishes
    in-flight calls within ``grace_seconds``; the services return (cancelled if they take longer
    than the grace); the node stops its workloads unless ``keep_workloads``; the drivers close.
    """
    from agents.executor import build_server, stop_server  # the executor imports this module

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    tasks: list[asyncio.Task[None]] = []
    server = None
    try:
        if tls_dir is not None and str(tls_dir) not in ("", ".") and node.tls_dir is None:
            node.tls_dir = Path(tls_dir)
        server, port = await build_server(node, listen, tls_dir=tls_dir, interceptors=interceptors)
        await server.start()
        node.endpoint = advertised_endpoint(listen.rpartition(":")[0], port)
        await node.migrations.start()  # recover in-flight migrations: peers can reach us now
        log.info("node %s: executor serving on %s (drivers: %s)", node.node_id, node.endpoint, ", ".join(node.drivers))
        if on_ready is not None:
            on_ready(node.endpoint)
        tasks = [asyncio.create_task(_supervised(s, stop), name=f"service-{i}") for i, s in enumerate(services)]
        await stop.wait()
        log.info("node %s: shutting down", node.node_id)
    finally:
        stop.set()
        if server is not None:
            await stop_server(server, grace_seconds)
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await node.close(stop_workloads=not keep_workloads)
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _supervised(service: Service, stop: asyncio.Event) -> None:
    try:
        await service(stop)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("a node service stopped with an error; the executor keeps serving")
