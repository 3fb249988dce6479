"""``plba bench pipeline``: the stream worker's throughput, its bound and decision latency, through Kafka.

Three measurements in one run, each on topics of its own private prefix (deleted afterwards):

* **throughput** — ``workloads x samples_per_workload`` workload-usage records (plus the usage of
  their nodes, 25 workloads a node) are produced first; then one ``plba worker`` process (its own
  consumer group, dispatch off) is started and the rate at which its committed offsets on the
  workload-usage topic advance is measured between ``WINDOW[0]`` and ``WINDOW[1]`` of the records,
  which leaves out the worker's start-up (Faust, the River import, new series) and the tail.
* **bound** — the same records read by a plain confluent-kafka consumer (batch ``consume``), and
  ``ForecastStage.on_workload_usage`` timed in this process on the same decoded records, with the
  worker's configuration, over the same window. A worker process can do no better than
  ``bound = 1 / (1 / raw_consume_rate + update_seconds)``: reading each record plus learning it.
* **decision latency** — a fresh worker under a stated load: rules in :mod:`plba.bench_latency`.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from plba.bench_latency import latency_json, latency_phase, run_latency_bench
from plba.bench_support import (
    Fleet,
    PipelineBenchConfig,
    PipelineBenchError,
    Progress,
    check_contracts,
    machine,
    private_topics,
    producer,
    send,
    wait_consumed,
    worker_process,
)
from schemas.codec import codec
from schemas.settings import Settings

__all__ = ["PipelineBenchConfig", "PipelineBenchError", "format_table", "run_latency_bench", "run_pipeline_bench"]

WINDOW = (0.2, 0.9)  # share of the records between which the worker's sustained rate is measured


# --- phase 1: throughput ---------------------------------------------------------------------


@dataclass
class Throughput:
    samples_per_second: float
    records: int
    node_records: int
    window_seconds: float
    wall_seconds: float
    cpu_utilization: float  # worker CPU seconds per second over the window (1.0 = one busy core)


def produce_history(settings: Settings, fleet: Fleet, cfg: PipelineBenchConfig) -> tuple[int, int]:
    """Pre-produce ``samples_per_workload`` rounds (ending now) of workload and node usage."""
    wl_enc, node_enc = codec("workload_usage"), codec("node_usage")
    p = producer(settings)
    wl_topic, node_topic = settings.topic("workload_usage"), settings.topic("node_usage")
    step = cfg.interval_seconds
    start = time.time() - cfg.samples_per_workload * step
    n_wl = n_node = 0
    for k in range(cfg.samples_per_workload):
        at = start + k * step
        for w in range(cfg.workloads):
            phase = ((w * 0.618034) % 1.0) * 0.5 * step  # agents are not synchronised
            send(p, wl_topic, f"wl-{w:06d}".encode(), wl_enc.encode(fleet.workload(w, at + phase, step)))
            n_wl += 1
        for n in range(fleet.nodes):
            send(p, node_topic, f"node-{n:05d}".encode(), node_enc.encode(fleet.node(n, at, step)))
            n_node += 1
        p.poll(0)
    if p.flush(60) != 0:
        raise PipelineBenchError("could not deliver the benchmark records")
    return n_wl, n_node


def sustained_window(
    points: list[tuple[float, int, float]], total: int, window: tuple[float, float] = WINDOW
) -> tuple[tuple[float, int, float], tuple[float, int, float]]:
    """The first observations at or past ``window[0]`` and ``window[1]`` of ``total`` records.

    ``points`` are (time, committed, worker CPU seconds) polls; only the first poll that sees a new
    committed value counts, so both ends are commit instants seen the same way.
    """
    firsts: list[tuple[float, int, float]] = []
    for p in points:
        if not firsts or p[1] != firsts[-1][1]:
            firsts.append(p)
    lo = next((p for p in firsts if p[1] >= window[0] * total), None)
    hi = next((p for p in firsts if p[1] >= window[1] * total), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        if len(firsts) < 2 or firsts[-1][0] <= firsts[0][0]:
            raise PipelineBenchError("too few progress observations to measure a rate; use more records")
        lo, hi = firsts[0], firsts[-1]
    return lo, hi


def measure_throughput(
    settings: Settings, fleet: Fleet, cfg: PipelineBenchConfig, workdir: Path, progress: Progress | None
) -> Throughput:
    n_wl, n_node = produce_history(settings, fleet, cfg)
    if progress:
        progress(f"produced {n_wl} workload and {n_node} node usage records; starting the worker")
    points: list[tuple[float, int, float]] = []
    started = time.perf_counter()
    with worker_process(
        settings, workdir, "throughput-worker", PLBA_FORECAST_INTERVAL_SECONDS=str(cfg.forecast_interval_seconds)
    ) as worker:
        wait_consumed(
            settings,
            worker,
            {"workload_usage": n_wl, "node_usage": n_node},
            cfg.timeout_seconds,
            progress,
            on_poll=lambda t, c: points.append((t, c, worker.cpu_seconds())),
        )
    lo, hi = sustained_window(points, n_wl)
    seconds = hi[0] - lo[0]
    return Throughput(
        samples_per_second=(hi[1] - lo[1]) / seconds,
        records=n_wl,
        node_records=n_node,
        window_seconds=seconds,
        wall_seconds=time.perf_counter() - started,
        cpu_utilization=(hi[2] - lo[2]) / seconds,
    )


# --- phase 2: the bound ----------------------------------------------------------------------


def raw_consume(
    settings: Settings, role: str, expected: int, timeout: float, min_seconds: float = 2.0
) -> tuple[float, list[bytes]]:
    """Read the ``expected`` records of ``role`` with a plain consumer; (records/s, values).

    The sustained rate of a consumer whose records are flowing: each pass assigns every partition
    from the beginning (no group join) and is timed from its first batch to its last record,
    counting the records after that first batch, so neither the connection nor the first fetch
    round trip is counted. Passes repeat until ``min_seconds`` of reading are timed, so a small
    topic is measured as well as a big one. ``consume`` takes batches, which is how a Python
    consumer reads fastest. The first pass also keeps the values.
    """
    topic = settings.topic(role)
    c = Consumer(
        {**settings.confluent_config(), "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    )
    deadline = time.monotonic() + timeout

    def one_pass(keep: list[bytes] | None) -> tuple[int, float]:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        read = counted = 0
        first = last = 0.0
        while read < expected:
            if time.monotonic() > deadline:
                raise PipelineBenchError(f"read {read} of {expected} {role} records within {timeout:.0f}s")
            batch = c.consume(num_messages=1000, timeout=0.5)
            if not batch:
                continue
            n = 0
            for msg in batch:
                value = msg.value()
                if msg.error() is None and value is not None:
                    n += 1
                    if keep is not None:
                        keep.append(value)
            if read == 0:
                first = time.perf_counter()
            else:
                counted += n
            read += n
            last = time.perf_counter()
        c.unassign()
        return counted, last - first

    values: list[bytes] = []
    counted, seconds, passes = 0, 0.0, 0
    try:
        partitions = sorted(c.list_topics(topic, timeout=15).topics[topic].partitions)
        n, dt = one_pass(values)
        counted, seconds, passes = n, dt, 1
        while seconds < min_seconds and passes < 100:
            n, dt = one_pass(None)
            counted, seconds, passes = counted + n, seconds + dt, passes + 1
    finally:
        c.close()
    if counted == 0 or seconds <= 0:
        if min_seconds > 0:
            raise PipelineBenchError(f"too few {role} records to time a raw read; use more records")
        return 0.0, values  # only the values were wanted
    return counted / seconds, values


@dataclass
class UpdateCost:
    update_us: float  # wall clock per sample, like the worker lives it
    decode_us: float
    samples: int
    update_cpu_us: float  # CPU time of this thread per sample: what a busy machine does not inflate


def measure_update_cost(
    settings: Settings, wl_values: list[bytes], node_values: list[bytes], forecast_interval: float
) -> UpdateCost:
    """Time ``ForecastStage.on_workload_usage`` on the decoded records, configured like the worker
    (its forecast cadence and its collector thresholds, :func:`streams.app.tuned_gc`)."""
    from streams.app import tuned_gc

    with tuned_gc():
        return _time_updates(settings, wl_values, node_values, forecast_interval)


def _time_updates(
    settings: Settings, wl_values: list[bytes], node_values: list[bytes], forecast_interval: float
) -> UpdateCost:
    from streams.live.forecast_stage import ForecastStage
    from streams.worker import horizons

    wl_codec, node_codec = codec("workload_usage"), codec("node_usage")
    stage = ForecastStage(horizons(settings), forecast_interval_seconds=forecast_interval)
    for raw in node_values:  # capacities and pools, as the worker learns them (not timed)
        stage.on_node_usage(node_codec.decode(raw))
    t = time.perf_counter()
    records = [wl_codec.decode(raw) for raw in wl_values]
    decode = (time.perf_counter() - t) / max(1, len(records))
    lo, hi = int(WINDOW[0] * len(records)), int(WINDOW[1] * len(records))
    timed = cpu_lo = cpu_hi = 0.0
    clock = time.perf_counter
    for i, rec in enumerate(records):
        if i == lo:
            cpu_lo = time.thread_time()
        elif i == hi:
            cpu_hi = time.thread_time()
        t = clock()
        stage.on_workload_usage(rec)
        if lo <= i < hi:
            timed += clock() - t
    if hi >= len(records):
        cpu_hi = time.thread_time()
    n = max(1, hi - lo)
    return UpdateCost(timed / n * 1e6, decode * 1e6, hi - lo, (cpu_hi - cpu_lo) / n * 1e6)


# --- the whole run ---------------------------------------------------------------------------


def run_pipeline_bench(
    settings: Settings,
    cfg: PipelineBenchConfig | None = None,
    progress: Progress | None = None,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Run the three phases and return the JSON result (see the module docstring for the rules)."""
    from plba.localkafka import broker_ready

    cfg = cfg or PipelineBenchConfig()
    if not broker_ready(settings.bootstrap, timeout=5.0):
        raise PipelineBenchError(f"no Kafka broker answers at {settings.bootstrap} (run `plba kafka up`)")
    own_dir = workdir is None
    prefixes: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="plba-bench-pipeline-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    try:
        fleet = Fleet(cfg.workloads, seed=cfg.seed)
        check_contracts(fleet)
        with private_topics(settings, "tp") as s:
            prefixes.append(s.topic_prefix)
            tp = measure_throughput(s, fleet, cfg, work, progress)
            if progress:
                progress(f"worker: {tp.samples_per_second:.0f} samples/s; reading the same records raw")
            raw_rate, wl_values = raw_consume(s, "workload_usage", tp.records, cfg.timeout_seconds)
            _rate, node_values = raw_consume(s, "node_usage", tp.node_records, cfg.timeout_seconds, min_seconds=0.0)
        if progress:
            progress(f"raw consume: {raw_rate:.0f} records/s; timing the model update in-process")
        cost = measure_update_cost(s, wl_values, node_values, cfg.forecast_interval_seconds)
        del wl_values, node_values
        lat = latency_phase(settings, cfg, work, progress, prefixes)
    finally:
        if own_dir:
            _remove_tree(work)
    bound = 1.0 / (1.0 / raw_rate + cost.update_us / 1e6)
    result: dict[str, Any] = {
        "samples_per_second": round(tp.samples_per_second, 1),
        "bound_samples_per_second": round(bound, 1),
        "ratio_to_bound": round(tp.samples_per_second / bound, 3),
        "raw_consume_per_second": round(raw_rate, 1),
        "model_update_us": round(cost.update_us, 1),
        "model_update_cpu_us": round(cost.update_cpu_us, 1),
        "decode_us": round(cost.decode_us, 1),
        "worker_cpu_utilization": round(tp.cpu_utilization, 2),
        "samples_per_cpu_second": round(tp.samples_per_second / tp.cpu_utilization, 1) if tp.cpu_utilization else None,
        # Where a sample's CPU goes: the worker's CPU per sample, of which the model update is
        # model_update_cpu_us; the rest is Faust, decoding, the decision side and publishing.
        "worker_cpu_us_per_sample": round(tp.cpu_utilization / tp.samples_per_second * 1e6, 1)
        if tp.samples_per_second
        else None,
        **latency_json(lat, cfg),
        "throughput_records": tp.records,
        "throughput_node_records": tp.node_records,
        "throughput_window_seconds": round(tp.window_seconds, 1),
        "throughput_wall_seconds": round(tp.wall_seconds, 1),
        "bound_formula": "1 / (1/raw_consume_per_second + model_update_us * 1e-6)",
        "config": asdict(cfg),
        "worker_settings": {
            "forecast_interval_seconds": cfg.forecast_interval_seconds,
            "worker_dispatch": False,
            "throughput_horizon_seconds": settings.horizon_seconds,
            "latency_horizon_seconds": cfg.latency_horizon_seconds,
            "decision_interval_seconds": cfg.decision_interval_seconds,
        },
        "machine": machine(),
        "topic_prefixes": prefixes,
    }
    if not own_dir:
        result["workdir"] = str(work)
    return result


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def format_table(result: dict[str, Any]) -> str:
    lat = result["decision_latency_ms"]
    rows = [
        ("worker throughput", f"{result['samples_per_second']:,.0f} samples/s", "target ≥ 20,000"),
        ("bound", f"{result['bound_samples_per_second']:,.0f} samples/s", result["bound_formula"]),
        ("ratio to bound", f"{result['ratio_to_bound']:.0%}", "target ≥ 50 %"),
        (
            "worker CPU",
            f"{result['worker_cpu_utilization']:.2f} cores",
            f"{result['samples_per_cpu_second'] or 0:,.0f} samples per CPU second, "
            f"{result['worker_cpu_us_per_sample'] or 0:,.0f} µs CPU per sample",
        ),
        ("raw consume", f"{result['raw_consume_per_second']:,.0f} records/s", "plain confluent-kafka consumer"),
        (
            "model update",
            f"{result['model_update_us']:,.1f} µs/sample",
            f"ForecastStage.on_workload_usage ({result['model_update_cpu_us']:,.1f} µs CPU)",
        ),
        ("decode", f"{result['decode_us']:,.1f} µs/sample", "validating codec"),
        ("decision latency p50", f"{lat['p50']:,.0f} ms", f"{lat['orders']} orders, {lat['clock']}"),
        ("decision latency p99", f"{lat['p99']:,.0f} ms", "target ≤ 250 ms"),
        (
            "hot sample → order p50/p99",
            f"{result['hot_to_order_ms']['p50']:,.0f} / {result['hot_to_order_ms']['p99']:,.0f} ms",
            "includes the policy's persistence",
        ),
        (
            "load",
            f"{result['load_samples_per_second']:,.0f} samples/s",
            f"target {result['load_target_per_second']:,.0f} for {result['load_seconds']:.0f}s",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:>{vwidth}}  {c}" for a, b, c in rows)
