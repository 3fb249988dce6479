"""Child ``plba`` processes, each in its own session, stopped with SIGTERM and then SIGKILL.

The demo, the benchmarks, the fault scenarios and the tests start workers, dispatchers and nodes
this one way. The whole process group is signalled, so whatever a child started itself (QEMU, a
burner, a Kafka client thread's helper) goes with it. A run that fails half-way leaves nothing
behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


def start_plba(
    args: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """``plba ARGS`` (this interpreter, this checkout's code) in a new session, output to ``log_path``."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "plba.cli.main", *args], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the child's process group; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 30.0) -> int:
    """SIGTERM the group, wait ``grace`` seconds for the child, then SIGKILL; returns its exit code."""
    if proc.poll() is None:
        signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait(10)
    return int(proc.returncode)


@contextlib.contextmanager
def plba_process(
    args: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None, grace: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`start_plba` for the ``with`` block; :func:`stop_group` on the way out."""
    proc = start_plba(args, env, log_path, cwd)
    try:
        yield proc
    finally:
        stop_group(proc, grace)
