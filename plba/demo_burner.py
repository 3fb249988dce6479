"""A process workload that burns CPU along a real trace (``python -m plba.demo_burner``), for ``plba demo --real``.

The real demo needs load that comes from somewhere real: this program makes its own measured
CPU use follow one series of a shared trace in compressed time, exactly like a ``sim``
workload's figures (trace time ``offset + (now - anchor) * speed``, ``pct / 100 * cores``), but
by actually running on a core. The node meters it with psutil like any other process, so the
node's utilization, the forecasts and the orders all start from real CPU seconds.

Control: every ``PERIOD`` it compares the CPU time it was owed since the last period
(target cores x wall time) with the CPU time it used (``time.process_time``) and spins until
the two meet, then sleeps for the rest of the period. A debt left by a busy host is not paid
back later in a burst (it is capped at ``DEBT_CAP``): the series is the shape, not a quota.

State (``PLBA_STATE_DIR``, set by the process driver): ``burner.json`` with the CPU seconds
burned so far, written every second and on SIGTERM, so a snapshot transfer visibly carries it
on: the target continues counting where the source stopped. Standby (``PLBA_READY_FD`` /
``PLBA_GO_FD``, see ``agents/drivers/process.py``): the trace is loaded before it says ready,
so the move's downtime holds no start-up. Reading those variables here is the process driver's
contract with its workloads (as in ``agents/drivers/counter_app.py``), not configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from agents.drivers.trace_series import TraceSeries, load_series

STATE_FILE = "burner.json"
PERIOD = 0.1  # seconds: short enough that a 1 s telemetry sample sees the target ratio
# CPU seconds: a short starvation is made up in the next period or two, a long one is dropped
# (a burst would read as load the trace does not have).
DEBT_CAP = 0.15


def target_cores(series: TraceSeries, now: float, *, anchor: float, offset: float, speed: float, cores: float) -> float:
    """Cores this workload should use at wall instant ``now`` (the ``sim`` driver's formula)."""
    pct = series.value_at(offset + (now - anchor) * speed)
    return cores * min(max(pct, 0.0), 100.0) / 100.0


def _read_state(path: Path) -> float:
    try:
        return float(json.loads(path.read_text())["cpu_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _write_state(path: Path, cpu_seconds: float) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"cpu_seconds": round(cpu_seconds, 3), "updated_at": time.time()}))
    os.replace(tmp, path)


def _standby() -> bool:
    """Say ready, then wait for the go byte; False when the move was called off (EOF)."""
    if os.environ.get("PLBA_READY_FD"):
        fd = int(os.environ["PLBA_READY_FD"])
        os.write(fd, b"r")
        os.close(fd)
    if os.environ.get("PLBA_GO_FD"):
        fd = int(os.environ["PLBA_GO_FD"])
        try:
            return os.read(fd, 1) != b""
        finally:
            os.close(fd)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plba.demo_burner", description=__doc__.split("\n")[0])
    parser.add_argument("--trace", required=True)
    parser.add_argument("--series", required=True)
    parser.add_argument("--traces-dir", default="")
    parser.add_argument("--speed", type=float, default=300.0, help="trace seconds per wall second")
    parser.add_argument("--offset-seconds", type=float, default=0.0, help="trace time at --anchor-at")
    parser.add_argument("--anchor-at", type=float, default=0.0, help="wall instant (epoch s); 0: now")
    parser.add_argument("--cores", type=float, default=0.5, help="cores used at 100 %% of the series (<= 1)")
    args = parser.parse_args(argv)
    if not 0 < args.cores <= 1:
        parser.error("--cores must be in (0, 1]: the burner is one thread")

    series = load_series(args.trace, args.series, traces_dir=args.traces_dir)
    anchor = args.anchor_at or time.time()
    if not _standby():
        return 0
    state_dir = Path(os.environ.get("PLBA_STATE_DIR", "."))
    state_dir.mkdir(parents=True, exist_ok=True)
    state = state_dir / STATE_FILE
    burned_before = _read_state(state)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"demo_burner {args.series}: {burned_before:.1f} CPU s carried over", file=sys.stderr, flush=True)

    cpu0 = time.process_time()
    last_save = last = time.time()
    owed = 0.0  # CPU seconds owed but not yet used, at most DEBT_CAP
    while not stop.is_set():
        now = time.time()
        owed = min(owed + target_cores(series, now, anchor=anchor, offset=args.offset_seconds,
                                       speed=args.speed, cores=args.cores) * (now - last), DEBT_CAP)  # fmt: skip
        last = now
        start_cpu = time.process_time()
        deadline = now + PERIOD
        while time.process_time() - start_cpu < owed and time.time() < deadline and not stop.is_set():
            pass  # the work: spinning is what makes the node's measured CPU follow the trace
        owed -= time.process_time() - start_cpu
        if now - last_save >= 1.0:
            _write_state(state, burned_before + time.process_time() - cpu0)
            last_save = now
        stop.wait(max(0.0, deadline - time.time()))
    # Flush and leave at once: a SIGTERM is the quiesce of a migration, its exit is downtime.
    _write_state(state, burned_before + time.process_time() - cpu0)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
