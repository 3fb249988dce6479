"""Bounds for ``plba bench migrate``: what moving a workload costs without PLBA around it.

- :func:`raw_qemu_migration` live-migrates a fresh guest between two QEMUs with plain QMP
  (:mod:`agents.drivers.qmp_raw`): the bound for the ``qemu`` driver.
- :func:`raw_process_copy` copies a state directory chunk by chunk with SHA-256 checksums and
  verifies the copy: the bound for the ``process`` driver's snapshot transfer.
- :func:`driver_qemu_migration` runs the same move through two :class:`QemuDriver` instances
  (two nodes' drivers, no executor or gRPC), to separate driver cost from protocol cost.

Every function returns one :class:`MigrationStats` per run; ``python -m agents.bench_migrate_raw``
prints their percentiles as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agents.drivers.qemu_args import MIB, MigrationStats
from agents.drivers.qmp_raw import (
    DEFAULT_DOWNTIME_LIMIT_MS,
    DEFAULT_MAX_BANDWIDTH_BYTES_PER_SECOND,
    raw_migrate,
)

__all__ = [
    "MigrationStats",
    "driver_qemu_migration",
    "parse_size",
    "percentiles",
    "raw_process_copy",
    "raw_qemu_migration",
    "raw_qemu_migration_async",
]

STATE_FILE_BYTES = 4 * MIB  # the synthetic state directory is split into files of this size
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"256M"`` → 268435456 (binary units; a bare number is bytes)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 64M, 1G, 10485760)")
    unit = match.group(2).upper()
    scale = 1024 ** ("KMGT".index(unit) + 1) if unit else 1
    return int(float(match.group(1)) * scale)


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95)) -> dict[str, float]:
    """Linear-interpolated percentiles, keyed ``p50``, ``p95``…"""
    if not values:
        return {f"p{q:g}": math.nan for q in qs}
    ordered = sorted(values)
    out = {}
    for q in qs:
        pos = (len(ordered) - 1) * q / 100.0
        lo, hi = math.floor(pos), math.ceil(pos)
        out[f"p{q:g}"] = ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
    return out


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    # Short path on purpose: QMP sockets live inside it.
    tmp = Path(tempfile.mkdtemp(prefix="plba-bench-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _random_file(path: Path, size: int) -> Path:
    if path.is_file() and path.stat().st_size == size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        remaining = size
        while remaining:
            n = min(remaining, 4 * MIB)
            fh.write(os.urandom(n))
            remaining -= n
    return path


# ---- qemu ------------------------------------------------------------------------------------


async def raw_qemu_migration_async(
    memory_bytes: int,
    runs: int,
    *,
    ram_fill: str = "zero",
    workdir: Path | None = None,
    downtime_limit_ms: int = DEFAULT_DOWNTIME_LIMIT_MS,
    max_bandwidth_bytes_per_second: int = DEFAULT_MAX_BANDWIDTH_BYTES_PER_SECOND,
) -> list[MigrationStats]:
    """``runs`` raw migrations of a fresh ``memory_bytes`` guest (see :func:`raw_qemu_migration`)."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    results = []
    with _workdir(workdir) as root:
        fill = _random_file(root / "fill.bin", memory_bytes) if ram_fill == "random" else None
        for i in range(runs):
            run_dir = root / f"run{i}"
            try:
                results.append(
                    await raw_migrate(
                        memory_bytes,
                        run_dir,
                        ram_fill=ram_fill,
                        fill_file=fill,
                        downtime_limit_ms=downtime_limit_ms,
                        max_bandwidth_bytes_per_second=max_bandwidth_bytes_per_second,
                    )
                )
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
    return results


def raw_qemu_migration(
    memory_bytes: int,
    runs: int,
    *,
    ram_fill: str = "zero",
    workdir: Path | None = None,
    downtime_limit_ms: int = DEFAULT_DOWNTIME_LIMIT_MS,
    max_bandwidth_bytes_per_second: int = DEFAULT_MAX_BANDWIDTH_BYTES_PER_SECOND,
) -> list[MigrationStats]:
    """Live-migrate a fresh guest of ``memory_bytes`` between two QEMUs with plain QMP, ``runs`` times.

    ``ram_fill="random"`` backs the source's RAM with random bytes so every page really moves
    (``"zero"``: an idle guest whose RAM is almost all zero pages). Same migration parameters
    as the driver's defaults. Returns QEMU's statistics per run, ``wall_seconds`` included.
    """
    return asyncio.run(
        raw_qemu_migration_async(
            memory_bytes,
            runs,
            ram_fill=ram_fill,
            workdir=workdir,
            downtime_limit_ms=downtime_limit_ms,
            max_bandwidth_bytes_per_second=max_bandwidth_bytes_per_second,
        )
    )


async def driver_qemu_migration_async(
    memory_bytes: int, runs: int, *, ram_fill: str = "zero", workdir: Path | None = None
) -> list[MigrationStats]:
    """``runs`` migrations through two :class:`QemuDriver` instances (nodes ``a`` → ``b``)."""
    from agents.drivers.base import DriverContext, WorkloadSpec
    from agents.drivers.qemu import QemuDriver

    results = []
    with _workdir(workdir) as root:
        source = QemuDriver(DriverContext(node_id="bench-a", state_dir=root / "a"))
        target = QemuDriver(DriverContext(node_id="bench-b", state_dir=root / "b"))
        try:
            for i in range(runs):
                spec = WorkloadSpec(
                    f"bench-{i}", "vm", "qemu", memory_bytes=memory_bytes, params={"ram_fill": ram_fill}
                )
                await source.start(spec)
                try:
                    t0 = time.perf_counter()
                    uri = await target.prepare_incoming(spec)
                    stats = await source.migrate_out(spec.workload_id, uri)
                    await target.finish_incoming(spec.workload_id)
                    wall = time.perf_counter() - t0
                    await source.remove_after_migration(spec.workload_id)
                    results.append(dataclasses.replace(stats, wall_seconds=wall))
                finally:
                    for driver in (source, target):
                        for info in driver.list() + driver.list_incoming():
                            await driver.stop(info.spec.workload_id)
        finally:
            await source.close()
            await target.close()
    return results


def driver_qemu_migration(
    memory_bytes: int, runs: int, *, ram_fill: str = "zero", workdir: Path | None = None
) -> list[MigrationStats]:
    """Synchronous :func:`driver_qemu_migration_async`."""
    return asyncio.run(driver_qemu_migration_async(memory_bytes, runs, ram_fill=ram_fill, workdir=workdir))


# ---- process ---------------------------------------------------------------------------------


def _make_state(root: Path, state_bytes: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    remaining, i = state_bytes, 0
    while remaining > 0 or not files:
        size = min(remaining, STATE_FILE_BYTES)
        files.append(_random_file(root / f"state-{i:04d}.bin", size))
        remaining -= size
        i += 1
    return files


def _sha256(path: Path, chunk_bytes: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _copy_verified(files: Sequence[Path], dest: Path, chunk_bytes: int) -> int:
    dest.mkdir(parents=True)
    moved = 0
    for src in files:
        digest = hashlib.sha256()
        with open(src, "rb") as fin, open(dest / src.name, "wb") as fout:
            while block := fin.read(chunk_bytes):
                digest.update(block)  # the sender's checksum, as a chunked stream carries it
                fout.write(block)
                moved += len(block)
        if _sha256(dest / src.name, chunk_bytes) != digest.hexdigest():
            raise OSError(f"checksum mismatch copying {src.name}")
    return moved


def raw_process_copy(
    state_bytes: int, runs: int, *, workdir: Path | None = None, chunk_bytes: int = MIB
) -> list[MigrationStats]:
    """Copy a ``state_bytes`` state directory ``runs`` times, checksummed and verified.

    The bound of the ``process`` driver's snapshot transfer: the workload is quiesced for the
    whole copy, so downtime equals total time. No fsync (neither side of the comparison needs
    the data on disk to restart the process).
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    if state_bytes < 0:
        raise ValueError("state size cannot be negative")
    results = []
    with _workdir(workdir) as root:
        files = _make_state(root / "source", state_bytes)
        for i in range(runs):
            dest = root / f"target{i}"
            try:
                t0 = time.perf_counter()
                moved = _copy_verified(files, dest, chunk_bytes)
                elapsed = time.perf_counter() - t0
            finally:
                shutil.rmtree(dest, ignore_errors=True)
            results.append(
                MigrationStats(
                    status="completed",
                    downtime_seconds=elapsed,
                    total_seconds=elapsed,
                    setup_seconds=0.0,
                    transferred_bytes=moved,
                    total_bytes=state_bytes,
                    downtime_bytes=moved,
                    iterations=1,
                    throughput_bytes_per_second=moved / elapsed if elapsed > 0 else 0.0,
                    wall_seconds=elapsed,
                )
            )
    return results


# ---- command line ----------------------------------------------------------------------------


def summarize(stats: Sequence[MigrationStats]) -> dict[str, Any]:
    """Percentiles of the figures a migration benchmark reports."""
    return {
        "downtime_ms": percentiles([s.downtime_ms for s in stats]),
        "total_ms": percentiles([s.total_ms for s in stats]),
        "setup_ms": percentiles([s.setup_ms for s in stats]),
        "wall_ms": percentiles([s.wall_seconds * 1000.0 for s in stats]),
        "transferred_bytes": percentiles([float(s.transferred_bytes) for s in stats]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agents.bench_migrate_raw", description="Raw migration bounds as JSON (median = p50)."
    )
    parser.add_argument("--driver", choices=("qemu", "process"), default="qemu")
    parser.add_argument("--memory", default="64M", help="guest memory for qemu (default 64M)")
    parser.add_argument("--state", default="10M", help="state size for process (default 10M)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ram-fill", choices=("zero", "random"), default="zero")
    parser.add_argument("--with-driver", action="store_true", help="also migrate through two QemuDrivers")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"driver": args.driver, "runs": args.runs}
    if args.driver == "process":
        out["state_bytes"] = parse_size(args.state)
        out["raw"] = summarize(raw_process_copy(out["state_bytes"], args.runs))
    else:
        memory = parse_size(args.memory)
        out.update(memory_bytes=memory, ram_fill=args.ram_fill)
        raw: list[MigrationStats] = []
        driver: list[MigrationStats] = []
        with _workdir(None) as root:
            # Interleaved runs in alternating order, so load from elsewhere on the host weighs on
            # both paths alike; the work directories persist so fill files are made once.
            for i in range(args.runs):
                if args.with_driver and i % 2:
                    driver += driver_qemu_migration(memory, 1, ram_fill=args.ram_fill, workdir=root / "driver")
                raw += raw_qemu_migration(memory, 1, ram_fill=args.ram_fill, workdir=root / "raw")
                if args.with_driver and not i % 2:
                    driver += driver_qemu_migration(memory, 1, ram_fill=args.ram_fill, workdir=root / "driver")
        out["raw"] = summarize(raw)
        if args.with_driver:
            out["driver_path"] = summarize(driver)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
