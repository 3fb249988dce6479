"""The capability fingerprint of a node (ARCHITECTURE §2 "similar configuration").

A target must be *compatible* with a workload (architecture, CPU flags, runtime kinds) and is
preferred when *similar* to the source (CPU model, memory class, driver versions, pool, zone).
The fingerprint carries exactly those facts, in the ``fingerprint`` object of node-usage
records (``schemas/json/node_usage.schema.json``).

Host facts are read once (:func:`read_host`); :func:`build_fingerprint` is pure.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "KINDS_LABEL",
    "FingerprintError",
    "HostInfo",
    "build_fingerprint",
    "flags_digest",
    "memory_class",
    "read_host",
]

# Label carrying the workload kinds the node's drivers host (the schema has no field for it).
KINDS_LABEL = "plba.io/kinds"
DEFAULT_POOL = "default"
DEFAULT_ZONE = "default"

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,252}\Z")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}\Z")
_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}\Z")
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class FingerprintError(ValueError):
    """A label or driver name that cannot go into a fingerprint; the message names it."""


@dataclass(frozen=True, slots=True)
class HostInfo:
    arch: str
    cpu_model: str
    flags: frozenset[str]
    logical_cores: int
    mem_total_bytes: int


class DriverLike(Protocol):
    kind: str

    def version(self) -> str: ...


def _cpuinfo_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key and key not in fields:  # the first processor's block is enough
            fields[key] = value.strip()
    return fields


def read_host(cpuinfo: Path = Path("/proc/cpuinfo")) -> HostInfo:
    """Facts of this host: architecture, CPU model and flags, logical cores, memory."""
    import psutil

    try:
        fields = _cpuinfo_fields(cpuinfo.read_text(errors="replace"))
    except OSError:
        fields = {}
    machine = platform.machine().lower() or "unknown"
    arch = re.sub(r"[^a-z0-9_]", "_", _ARCH_ALIASES.get(machine, machine))[:32]
    model = (
        fields.get("model name")
        or fields.get("cpu model")
        or (f"{fields.get('cpu implementer', '')}:{fields.get('cpu part', '')}" if "cpu part" in fields else "")
        or platform.processor()
        or arch
    )
    flags = frozenset((fields.get("flags") or fields.get("features") or "").split())
    cores = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    return HostInfo(arch, " ".join(model.split())[:256], flags, int(cores), int(psutil.virtual_memory().total))


def flags_digest(flags: Iterable[str]) -> str:
    """First 16 hex digits of SHA-256 over the sorted, space-joined flag set (order-independent)."""
    return hashlib.sha256(" ".join(sorted(set(flags))).encode()).hexdigest()[:16]


def memory_class(mem_bytes: int) -> str:
    """The power-of-two size class of a memory size: ``15.6 GiB -> 16Gi``, ``8 GiB -> 8Gi``.

    Rounds up, tolerating 3 % above a power of two (kernels reserve a little of the physical
    memory, firmware maps add a little), so machines of the same size share a class.
    """
    if mem_bytes <= 0:
        raise FingerprintError(f"memory must be positive, not {mem_bytes}")
    exp = max(20, math.ceil(math.log2(mem_bytes / 1.03)))
    if exp < 30:
        return f"{2 ** (exp - 20)}Mi"
    if exp < 40:
        return f"{2 ** (exp - 30)}Gi"
    return f"{2 ** (exp - 40)}Ti"


def _check_id(what: str, value: str) -> str:
    if not _ID.match(value):
        raise FingerprintError(f"{what} {value!r}: use letters, digits and . _ : @ + - (starting alphanumeric)")
    return value


def build_fingerprint(
    host: HostInfo,
    *,
    cores: float,
    mem_bytes: int,
    drivers: Mapping[str, DriverLike],
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """The ``fingerprint`` object of a node offering ``cores``/``mem_bytes`` (its capacity).

    ``pool`` and ``zone`` come from the labels of the same name (default ``default``); the
    kinds the drivers host are added as the label :data:`KINDS_LABEL` (sorted, comma-separated).
    """
    clean: dict[str, str] = {}
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise FingerprintError(f"label name {key!r}: use 1-63 of [A-Za-z0-9._/-], starting alphanumeric")
        if len(value) > 256:
            raise FingerprintError(f"label {key}: the value is longer than 256 characters")
        clean[key] = value
    versions: dict[str, str] = {}
    kinds: set[str] = set()
    for name, driver in sorted(drivers.items()):
        if not _NAME.match(name):
            raise FingerprintError(f"driver name {name!r}: use lower-case letters, digits and _ . -")
        try:
            version = str(driver.version()).strip() or "unknown"
        except Exception:  # noqa: BLE001 - a runtime that cannot say its version is still a runtime
            version = "unknown"
        versions[name] = version[:64]
        kinds.update(getattr(driver, "kinds", ()) or (driver.kind,))
    if kinds:
        clean[KINDS_LABEL] = ",".join(sorted(kinds))
    return {
        "arch": host.arch,
        "cpu_model": host.cpu_model or host.arch,
        "flags_digest": flags_digest(host.flags),
        "cores": max(1, math.ceil(cores - 1e-9)),
        "memory_class": memory_class(mem_bytes),
        "drivers": versions,
        "labels": clean,
        "pool": _check_id("pool", labels.get("pool", DEFAULT_POOL)),
        "zone": _check_id("zone", labels.get("zone", DEFAULT_ZONE)),
    }
