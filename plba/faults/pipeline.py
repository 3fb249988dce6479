"""Pipeline-side fault scenarios: a broker restart and a worker ``kill -9`` while the whole pipeline runs.

Each runs :class:`~plba.faults.rig.PipelineRig` (worker with the dispatcher, node processes with
telemetry and ``sim`` workloads that migrate), injects its fault ``trials`` times, lets the
pipeline settle and returns what it measured:

- telemetry: samples the nodes sent vs the distinct samples on the usage topics (``samples_lost``),
  and whether the worker processed every record that reached them (``samples_unprocessed``);
- migrations: commits counted by the executors vs distinct completed orders
  (``duplicate_migrations``), and workloads not running on exactly one node;
- worker kill only: per forecast series, the sample count (``observations``) of the last forecast
  before the kill and of the first one after the restart — a restored forecaster continues, a cold
  one starts from one again (``forecast_series_cold``).

The broker restart uses a private broker (own ports, own data directory) so that stopping it
disturbs no one; the worker kill runs on the configured broker under a private topic prefix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from plba import localkafka
from plba.bench_support import committed, delete_prefixed
from plba.faults.injection import crash_reasons, worker_crashes
from plba.faults.rig import PipelineRig, RigConfig, free_port
from plba.faults.topic_read import FaultRunError, end_offsets, read_to_end
from plba.topic_admin import create_topics
from schemas.settings import Settings

Progress = Callable[[str], None]
# After a fault the pipeline gets this long (beyond the phase) to complete a migration again.
MAX_WAIT_SECONDS = 240.0
WARM_OBSERVATIONS = 12


def _quiet(_msg: str) -> None:
    pass


def _finish(rig: PipelineRig, say: Progress, timeout: float = 300.0) -> dict[str, Any]:
    """Settle the migrations, count them, stop the nodes, let the worker drain, count telemetry."""
    open_ = rig.settle()
    counts: dict[str, Any] = {}
    for _attempt in range(5):  # a new order may start between settling and listing: settle again
        counts = rig.executions()
        if counts["instances_not_exactly_one"] == 0:
            break
        time.sleep(2.0)
        open_ = rig.settle()
    counts["migrations_in_flight_at_end"] = open_
    say(f"  migrations: {counts['migrations_committed']} committed by executors, {counts['orders_completed']} orders")
    for node in rig.nodes:
        node.child.stop()
    # The worker processes everything the nodes published before it is stopped.
    assert rig.worker is not None
    s = rig.settings
    targets = {role: sum(end_offsets(s, role).values()) for role in ("node_usage", "workload_usage")}
    done = _wait_committed(rig, targets, timeout)
    counts["samples_unprocessed"] = sum(max(0, targets[r] - done[r]) for r in targets)
    counts["worker_crashes"] = worker_crashes(rig.worker.log, not rig.worker.alive())
    counts["worker_crash_reasons"] = crash_reasons(rig.worker.log)
    rig.worker.stop()
    counts.update(rig.telemetry())
    return counts


def _wait_committed(rig: PipelineRig, targets: dict[str, int], timeout: float) -> dict[str, int]:
    assert rig.worker is not None
    group = f"{rig.settings.topic_prefix}worker"
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while True:
        done = {r: committed(rig.settings, group, r) for r in targets}
        if all(done[r] >= n for r, n in targets.items()) or not rig.worker.alive():
            return done
        if done != seen:
            seen, deadline = done, time.monotonic() + timeout
        elif time.monotonic() > deadline:
            return done
        time.sleep(0.5)


def run_broker_restart(
    settings: Settings,
    workdir: Path,
    trials: int = 1,
    progress: Progress | None = None,
    *,
    cfg: RigConfig | None = None,
    phase_seconds: float = 25.0,
    outage_seconds: float = 10.0,
) -> dict[str, Any]:
    """Restart a private broker ``trials`` times while the full pipeline runs; returns the counts."""
    say = progress or _quiet
    s = settings.replace(
        kafka_bootstrap="", kafka_port=free_port(), kafka_controller_port=free_port(),
        data_dir=workdir / "kafka", topic_prefix="faults.",
    )  # fmt: skip
    if not localkafka.paths(s).libs.is_dir():
        raise FaultRunError("the Kafka jars are not cached (run `plba kafka up` once)")
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"broker restart: private broker on 127.0.0.1:{s.kafka_port}")
    localkafka.up(s, log=_quiet)
    rig = PipelineRig(s, workdir, cfg or RigConfig())
    try:
        create_topics(s)
        rig.start_worker()
        rig.start_nodes()
        rig.place_workloads()
        say(f"broker restart: {len(rig.workloads)} sim workloads on {len(rig.nodes)} nodes; running")
        after = 0
        rig.run_for(phase_seconds)
        for trial in range(trials):
            say(f"broker restart {trial + 1}/{trials}: broker down for {outage_seconds:g} s")
            localkafka.down(s, log=_quiet)
            rig.run_for(outage_seconds)
            localkafka.up(s, log=_quiet)
            say(f"broker restart {trial + 1}/{trials}: broker up again")
            after += _until_a_migration(rig, phase_seconds)
        counts = _finish(rig, say)
    finally:
        rig.stop_all()
        localkafka.down(s, log=_quiet)
    counts["broker_restarts"] = trials
    counts["migrations_after_faults"] = after
    return counts


def _until_a_migration(rig: PipelineRig, phase_seconds: float, also: Callable[[], bool] | None = None) -> int:
    """Add a node and announce a maintenance window (orders follow), run at least ``phase_seconds``, then until one
    more order completed (and ``also()``) or a generous cap; returns how many orders completed
    meanwhile: the pipeline works after the fault."""
    before = rig.completed_orders()
    # The traces may have filled every node by now (hot nodes with nowhere to go): add room, and
    # declare a maintenance so that a move is due even if nothing runs hot.
    rig.add_node()
    rig.announce_maintenance()
    rig.run_until(
        lambda: bool(rig.completed_orders() - before) and (also is None or also()),
        phase_seconds, phase_seconds + MAX_WAIT_SECONDS,
    )  # fmt: skip
    return len(rig.completed_orders() - before)


def _warm(settings: Settings, cut: dict[int, int]) -> bool:
    return max(_forecasts_since(settings, cut).values(), default=0) >= WARM_OBSERVATIONS


def _forecasting(settings: Settings, cut: dict[int, int]) -> bool:
    return bool(_forecasts_since(settings, cut))


def _forecasts_since(settings: Settings, cut: dict[int, int]) -> dict[tuple[str, str], int]:
    """Highest ``observations`` per cpu series among forecasts past ``cut`` (partition -> offset)."""
    out: dict[tuple[str, str], int] = {}
    for r in read_to_end(settings, "forecasts"):
        if r.value is None or r.offset < cut.get(r.partition, 0):
            continue
        v = orjson.loads(r.value)
        if v.get("resource") == "cpu":
            series = (v["subject_kind"], v["subject"])
            out[series] = max(out.get(series, 0), int(v.get("observations", 0)))
    return out


def run_worker_kill(
    settings: Settings,
    workdir: Path,
    trials: int = 1,
    progress: Progress | None = None,
    *,
    cfg: RigConfig | None = None,
    phase_seconds: float = 25.0,
) -> dict[str, Any]:
    """``kill -9`` the worker ``trials`` times mid-stream and restart it; returns the counts."""
    import uuid

    say = progress or _quiet
    s = settings.replace(topic_prefix=f"bench-wkill-{uuid.uuid4().hex[:8]}.")
    workdir.mkdir(parents=True, exist_ok=True)
    rig = PipelineRig(s, workdir, cfg or RigConfig())
    cuts: list[dict[int, int]] = []
    try:
        create_topics(s)
        rig.start_worker()
        rig.start_nodes()
        rig.place_workloads()
        say(f"worker kill: {len(rig.workloads)} sim workloads on {len(rig.nodes)} nodes; running")
        after = 0
        cut: dict[int, int] = {}
        for trial in range(trials):
            # Kill a worker that has learnt something: a series with a dozen samples (and so snapshots).
            rig.run_until(
                partial(_warm, s, cut),
                phase_seconds if trial == 0 else 0.0, phase_seconds + MAX_WAIT_SECONDS,
            )  # fmt: skip
            assert rig.worker is not None
            rig.worker.kill9()
            # Nothing more comes from the killed worker: forecasts past these offsets are the next one's.
            cut = end_offsets(s, "forecasts")
            cuts.append(cut)
            say(f"worker kill {trial + 1}/{trials}: killed with SIGKILL, restarting")
            rig.start_worker()
            after += _until_a_migration(rig, phase_seconds, also=partial(_forecasting, s, cut))
        counts = _finish(rig, say)
        counts.update(forecast_continuity(s, cuts))
    finally:
        rig.stop_all()
        try:
            delete_prefixed(s)
        except Exception as exc:  # noqa: BLE001 (a cleanup failure must not hide the result)
            say(f"worker kill: could not delete topics {s.topic_prefix}*: {exc}")
    counts["worker_kills"] = trials
    counts["migrations_after_faults"] = after
    return counts


def forecast_continuity(settings: Settings, cuts: list[dict[int, int]]) -> dict[str, int]:
    """Per kill and cpu series: observations of the last forecast before it vs the first one after.

    A series "continues" when the first forecast after the restart counts at least half the samples
    of the last one before (a forecaster restored from its snapshot); a cold one starts from one.
    """
    recs = read_to_end(settings, "forecasts")
    compared = cold = lost_max = 0
    for k, cut in enumerate(cuts):
        nxt = cuts[k + 1] if k + 1 < len(cuts) else None
        before: dict[tuple[str, str], int] = {}
        after: dict[tuple[str, str], tuple[int, int]] = {}
        for r in recs:
            if r.value is None:
                continue
            v: dict[str, Any] = orjson.loads(r.value)
            if v.get("resource") != "cpu":
                continue
            series = (v["subject_kind"], v["subject"])
            obs = int(v.get("observations", 0))
            if r.offset < cut.get(r.partition, 0):
                before[series] = max(before.get(series, 0), obs)
            elif nxt is None or r.offset < nxt.get(r.partition, 0):
                first = after.get(series)
                if first is None or r.offset < first[0]:
                    after[series] = (r.offset, obs)
        for series, last in before.items():
            if series not in after or last < 4:
                continue
            compared += 1
            first_obs = after[series][1]
            cold += first_obs * 2 < last
            lost_max = max(lost_max, last - first_obs)
    return {
        "forecast_series_compared": compared,
        "forecast_series_cold": cold,
        "forecast_observations_lost_max": lost_max,
    }
