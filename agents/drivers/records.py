"""A workload's record on disk: ``<state-dir>/workloads/<id>/workload.json``.

Drivers whose workloads can outlive the node process (``sim``, ``process``) write one record per
workload when it starts and read them back in ``recover()`` after a node restart. Writes are
atomic (temporary file, fsync, rename), so a crash leaves the old record or the new one, never a
torn one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from agents.drivers.base import DriverContext, InvalidSpec, WorkloadSpec

RECORD_FILE = "workload.json"
log = logging.getLogger(__name__)


def write_record(directory: Path, record: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RECORD_FILE
    tmp = directory / f".{RECORD_FILE}.{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as fh:
        fh.write(json.dumps(record, sort_keys=True).encode())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_records(ctx: DriverContext, driver: str) -> list[tuple[Path, dict[str, Any], WorkloadSpec]]:
    """(directory, record, spec) of every readable record of ``driver`` under the node's state dir."""
    root = ctx.state_dir / "workloads"
    found: list[tuple[Path, dict[str, Any], WorkloadSpec]] = []
    if not root.is_dir():
        return found
    for path in sorted(root.glob(f"*/{RECORD_FILE}")):
        try:
            record = json.loads(path.read_bytes())
            if record.get("spec", {}).get("driver") != driver:
                continue
            spec = WorkloadSpec.from_dict(record["spec"])
        except (OSError, ValueError, KeyError, TypeError, InvalidSpec) as exc:
            log.warning("ignoring unreadable workload record %s: %s", path, exc)
            continue
        found.append((path.parent, record, spec))
    return found


def remove_workload_dir(directory: Path) -> None:
    """Delete a workload's directory (its record, logs and state)."""
    shutil.rmtree(directory, ignore_errors=True)
