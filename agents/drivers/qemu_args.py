"""Pure pieces of the QEMU driver: spec → command line, version string, QMP replies → figures.

Nothing here spawns a process, reads a clock or touches the file system, so the exact QEMU
command line and the parsing of QEMU's own migration statistics are unit-tested without QEMU.
The driver (:mod:`agents.drivers.qemu`) and the raw benchmark bound
(:mod:`agents.drivers.qmp_raw`) both build their guests here, so the two paths migrate
identical machines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.drivers.base import InvalidSpec, WorkloadSpec

MIB = 1024 * 1024
MIN_MEMORY_BYTES = 32 * MIB
MAX_MEMORY_BYTES = 1024 * 1024 * MIB  # 1 TiB
MAX_VCPUS = 64
# The RAM block id must be equal on both sides of a migration whatever backs it.
RAM_BACKEND_ID = "plba.ram"
QMP_SOCKET_NAME = "qmp.sock"

MACHINES = ("pc", "q35")
CPU_MODELS = ("qemu64", "max", "host")
ACCELS = ("tcg", "kvm")
NETWORKS = ("none", "user")
RAM_FILLS = ("zero", "random")
PARAM_DEFAULTS: Mapping[str, str] = {
    "machine": "pc",
    "cpu": "qemu64",
    "accel": "tcg",
    "network": "none",
    "ram_fill": "zero",
}

_VERSION = re.compile(r"QEMU emulator version (\d+)\.(\d+)(?:\.(\d+))?")
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})$")


@dataclass(frozen=True, slots=True)
class QemuConfig:
    """A validated VM configuration derived from a :class:`WorkloadSpec`."""

    workload_id: str
    memory_bytes: int
    vcpus: int
    machine: str = "pc"
    cpu: str = "qemu64"
    accel: str = "tcg"
    network: str = "none"
    ram_fill: str = "zero"

    @property
    def memory_mib(self) -> int:
        return self.memory_bytes // MIB


def config_from_spec(spec: WorkloadSpec) -> QemuConfig:
    """Validate ``spec`` for the qemu driver; raises :class:`InvalidSpec` with the reason.

    ``spec.params`` may set ``machine`` (pc|q35), ``cpu`` (qemu64|max|host), ``accel``
    (tcg|kvm), ``network`` (none|user) and ``ram_fill`` (zero|random: back the guest RAM with
    random bytes so a migration moves real data). Nothing else: the params arrive over the
    network, so no free-form QEMU argument is ever accepted.
    """
    if spec.driver != "qemu":
        raise InvalidSpec(f"spec is for driver {spec.driver!r}, not 'qemu'")
    if spec.kind != "vm":
        raise InvalidSpec(f"the qemu driver hosts kind 'vm', not {spec.kind!r}")
    if spec.memory_bytes % MIB:
        raise InvalidSpec(f"memory must be a whole number of MiB, not {spec.memory_bytes} bytes")
    if spec.memory_bytes < MIN_MEMORY_BYTES:
        raise InvalidSpec(
            f"memory {spec.memory_bytes // MIB} MiB is too small: a VM needs at least {MIN_MEMORY_BYTES // MIB} MiB"
        )
    if spec.memory_bytes > MAX_MEMORY_BYTES:
        raise InvalidSpec(f"memory {spec.memory_bytes // MIB} MiB exceeds the {MAX_MEMORY_BYTES // MIB} MiB limit")
    vcpus = max(1, math.ceil(spec.cpu_cores))
    if vcpus > MAX_VCPUS:
        raise InvalidSpec(f"{spec.cpu_cores} cpu cores exceed the {MAX_VCPUS} vCPU limit")
    unknown = sorted(set(spec.params) - set(PARAM_DEFAULTS))
    if unknown:
        raise InvalidSpec(f"unknown qemu params {', '.join(unknown)}: allowed are {', '.join(PARAM_DEFAULTS)}")
    params = {**PARAM_DEFAULTS, **spec.params}
    for key, allowed in (
        ("machine", MACHINES),
        ("cpu", CPU_MODELS),
        ("accel", ACCELS),
        ("network", NETWORKS),
        ("ram_fill", RAM_FILLS),
    ):
        if params[key] not in allowed:
            raise InvalidSpec(f"param {key}={params[key]!r}: must be one of {', '.join(allowed)}")
    if params["cpu"] == "host" and params["accel"] != "kvm":
        raise InvalidSpec("param cpu=host needs accel=kvm")
    return QemuConfig(
        workload_id=spec.workload_id,
        memory_bytes=spec.memory_bytes,
        vcpus=vcpus,
        machine=params["machine"],
        cpu=params["cpu"],
        accel=params["accel"],
        network=params["network"],
        ram_fill=params["ram_fill"],
    )


def build_command(
    binary: str,
    config: QemuConfig,
    *,
    pidfile: Path,
    incoming: bool = False,
    fill_file: Path | None = None,
) -> list[str]:
    """The argv of one QEMU process; run it with the VM's directory as working directory.

    The QMP socket is the relative path ``qmp.sock`` so the Unix socket path limit (108
    bytes) never depends on how deep the state directory is. ``incoming`` starts a migration
    target (``-incoming defer``: the listening address is chosen later over QMP). The source of
    a ``ram_fill=random`` VM maps ``fill_file`` privately as its RAM; a target always gets
    anonymous RAM under the same block id, which the migration stream then fills.
    """
    if config.ram_fill == "random" and not incoming and fill_file is None:
        raise ValueError("ram_fill=random needs a fill_file for a VM that is not incoming")
    size = f"{config.memory_mib}M"
    if config.ram_fill == "random" and not incoming:
        backend = f"memory-backend-file,id={RAM_BACKEND_ID},size={size},mem-path={fill_file},share=off"
    else:
        backend = f"memory-backend-ram,id={RAM_BACKEND_ID},size={size}"
    argv = [
        binary,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-name",
        f"guest={config.workload_id}",
        "-machine",
        f"{config.machine},accel={config.accel},memory-backend={RAM_BACKEND_ID}",
        "-cpu",
        config.cpu,
        "-smp",
        str(config.vcpus),
        "-m",
        size,
        "-object",
        backend,
        "-qmp",
        f"unix:{QMP_SOCKET_NAME},server=on,wait=off",
        "-pidfile",
        str(pidfile),
        "-msg",
        "timestamp=on",
    ]
    if config.network == "user":
        # romfile= keeps the NIC usable without the iPXE ROM package.
        argv += ["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile="]
    if incoming:
        argv += ["-incoming", "defer"]
    return argv


def parse_version(text: str) -> str:
    """``"QEMU emulator version 7.2.22 (Debian …)"`` → ``"7.2.22"`` (``x.y`` → ``x.y.0``)."""
    match = _VERSION.search(text)
    if not match:
        raise ValueError(f"not a QEMU version banner: {text.strip()[:120]!r}")
    major, minor, micro = match.group(1), match.group(2), match.group(3) or "0"
    return f"{int(major)}.{int(minor)}.{int(micro)}"


def parse_migration_uri(uri: str) -> tuple[str, str, int]:
    """Check a migration URI and split it: ``tcp:HOST:PORT`` → ``("tcp", HOST, PORT)``.

    Only ``tcp:`` is accepted: URIs arrive from other nodes, and QEMU's ``exec:`` would run a
    shell command, ``fd:``/``file:`` would touch local resources.
    """
    scheme, _, rest = uri.partition(":")
    if scheme != "tcp":
        raise ValueError(f"migration URI {uri!r}: only tcp:HOST:PORT is accepted")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not _HOST.match(host) or not port_text.isdigit():
        raise ValueError(f"migration URI {uri!r}: expected tcp:HOST:PORT")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"migration URI {uri!r}: port out of range")
    return scheme, host, port


def incoming_uri(reply: Mapping[str, Any], advertise_host: str | None = None) -> str:
    """The URI a source must use, from a target's ``query-migrate`` after ``migrate-incoming``."""
    for addr in reply.get("socket-address") or ():
        if addr.get("type") == "inet" and addr.get("port"):
            host = advertise_host or str(addr["host"])
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            return f"tcp:{host}:{int(addr['port'])}"
    raise ValueError(f"the target reports no listening address: {dict(reply)!r}")


@dataclass(frozen=True, slots=True)
class MigrationProgress:
    """One poll of ``query-migrate`` on the source while a migration runs."""

    at: float
    status: str
    elapsed_seconds: float
    transferred_bytes: int
    remaining_bytes: int
    total_bytes: int
    dirty_rate_bytes_per_second: float
    throughput_bytes_per_second: float
    iteration: int
    expected_downtime_seconds: float | None

    @property
    def done_ratio(self) -> float:
        return 1.0 - self.remaining_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass(frozen=True, slots=True)
class MigrationStats:
    """QEMU's own statistics of one finished migration (or a raw copy's, for the bound).

    ``wall_seconds`` is the caller's wall-clock measure of the whole move (0 if not measured):
    benchmarks set it from preparing the target to the target verified running.
    """

    status: str
    downtime_seconds: float
    total_seconds: float
    setup_seconds: float
    transferred_bytes: int
    total_bytes: int
    downtime_bytes: int = 0
    iterations: int = 0
    throughput_bytes_per_second: float = 0.0
    wall_seconds: float = 0.0

    @property
    def downtime_ms(self) -> float:
        return self.downtime_seconds * 1000.0

    @property
    def total_ms(self) -> float:
        return self.total_seconds * 1000.0

    @property
    def setup_ms(self) -> float:
        return self.setup_seconds * 1000.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "downtime_seconds": self.downtime_seconds,
            "total_seconds": self.total_seconds,
            "setup_seconds": self.setup_seconds,
            "transferred_bytes": self.transferred_bytes,
            "total_bytes": self.total_bytes,
            "downtime_bytes": self.downtime_bytes,
            "iterations": self.iterations,
            "throughput_bytes_per_second": self.throughput_bytes_per_second,
            "wall_seconds": self.wall_seconds,
        }


def _mbps_to_bytes(mbps: Any) -> float:
    return float(mbps or 0.0) * 1e6 / 8.0


def progress_from_query_migrate(reply: Mapping[str, Any], at: float) -> MigrationProgress:
    """Progress figures from a source's ``query-migrate`` reply (fields absent early on are 0)."""
    ram = reply.get("ram") or {}
    page = int(ram.get("page-size") or 4096)
    expected = reply.get("expected-downtime")
    return MigrationProgress(
        at=at,
        status=str(reply.get("status", "none")),
        elapsed_seconds=int(reply.get("total-time") or 0) / 1000.0,
        transferred_bytes=int(ram.get("transferred") or 0),
        remaining_bytes=int(ram.get("remaining") or 0),
        total_bytes=int(ram.get("total") or 0),
        dirty_rate_bytes_per_second=float(ram.get("dirty-pages-rate") or 0) * page,
        throughput_bytes_per_second=_mbps_to_bytes(ram.get("mbps")),
        iteration=int(ram.get("dirty-sync-count") or 0),
        expected_downtime_seconds=None if expected is None else int(expected) / 1000.0,
    )


def stats_from_query_migrate(reply: Mapping[str, Any]) -> MigrationStats:
    """Final statistics from a source's ``query-migrate`` once the migration has completed.

    Read it only after the source reached runstate ``postmigrate``: QEMU 7.2 shows status
    ``completed`` a moment before it computes ``downtime`` and ``total-time``.
    """
    status = str(reply.get("status", "none"))
    if status != "completed":
        raise ValueError(f"migration status is {status!r}, not 'completed'")
    ram = reply.get("ram") or {}
    return MigrationStats(
        status=status,
        downtime_seconds=int(reply.get("downtime") or 0) / 1000.0,
        total_seconds=int(reply.get("total-time") or 0) / 1000.0,
        setup_seconds=int(reply.get("setup-time") or 0) / 1000.0,
        transferred_bytes=int(ram.get("transferred") or 0),
        total_bytes=int(ram.get("total") or 0),
        downtime_bytes=int(ram.get("downtime-bytes") or 0),
        iterations=int(ram.get("dirty-sync-count") or 0),
        throughput_bytes_per_second=_mbps_to_bytes(ram.get("mbps")),
    )
