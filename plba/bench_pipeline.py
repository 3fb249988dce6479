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
* **decision latency** — a fresh worker (decision interval ``decision_interval_seconds``) receives
  ``load_rate`` workload samples/s from ``load_rate`` workloads at 1 sample/s on 25-workload nodes
  in 20-node pools, each sample stamped ``sampled_at`` = wall clock at send. After a warm-up that
  the worker has fully consumed, some nodes turn hot at staggered times during ``load_seconds``.
  An order's latency is its broker timestamp (``LogAppendTime`` on our private orders topic) minus
  its ``issued_at``, which is the event time of the newest sample the decision had seen, i.e. how
  long after that sample was sent the order was on the broker. The time from the first hot sample
  of the order's node to the order is reported beside it: it adds the policy's persistence (a node
  must be hot in ``persistence`` consecutive decision cycles) on purpose.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from plba.bench_support import (
    NODES_PER_POOL,
    WORKLOADS_PER_NODE,
    Fleet,
    PipelineBenchError,
    Progress,
    WorkerProcess,
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

__all__ = ["PipelineBenchConfig", "PipelineBenchError", "format_table", "run_pipeline_bench"]

WINDOW = (0.2, 0.9)  # share of the records between which the worker's sustained rate is measured


@dataclass(frozen=True)
class PipelineBenchConfig:
    workloads: int = 2000
    samples_per_workload: int = 30
    interval_seconds: float = 5.0  # sampling interval of the throughput records (agents' default)
    forecast_interval_seconds: float = 30.0  # decoupled: forecasts no more often than decisions are made
    load_rate: float = 5000.0
    load_seconds: float = 20.0
    decision_interval_seconds: float = 1.0
    # 1 s samples with a 60 s horizon give the forecasters the same 6 x 10 steps as 5 s samples
    # with the default 300 s horizon in the throughput phase.
    latency_horizon_seconds: float = 60.0
    warmup_seconds: float = 3.0
    hot_share: float = 0.3  # share of the latency phase's nodes that turn hot
    timeout_seconds: float = 300.0  # per phase
    seed: int = 7

    def __post_init__(self) -> None:
        if self.workloads < 1 or self.samples_per_workload < 2:
            raise ValueError("need at least 1 workload and 2 samples per workload")
        if self.load_rate <= 0 or self.load_seconds <= 0 or self.interval_seconds <= 0:
            raise ValueError("load rate, load seconds and the interval must be positive")
        if self.decision_interval_seconds <= 0 or not 0 < self.hot_share <= 1:
            raise ValueError("decision interval must be positive and hot share in (0, 1]")


# --- records ---------------------------------------------------------------------------------


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


def raw_consume(settings: Settings, role: str, expected: int, timeout: float) -> tuple[float, list[bytes]]:
    """Read ``expected`` records of ``role`` with a plain consumer; (records/s, values).

    The consumer is connected and assigned every partition from the beginning before the clock
    starts (no group join); the clock stops at the last record. ``consume`` takes batches, which is
    how a Python consumer reads fastest.
    """
    topic = settings.topic(role)
    c = Consumer(
        {**settings.confluent_config(), "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    )
    values: list[bytes] = []
    try:
        meta = c.list_topics(topic, timeout=15)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.topics[topic].partitions)])
        deadline = time.monotonic() + timeout
        started = last = time.perf_counter()
        while len(values) < expected:
            if time.monotonic() > deadline:
                raise PipelineBenchError(f"read {len(values)} of {expected} {role} records within {timeout:.0f}s")
            for msg in c.consume(num_messages=5000, timeout=0.5):
                value = msg.value()
                if msg.error() is None and value is not None:
                    values.append(value)
            last = time.perf_counter()
    finally:
        c.close()
    return len(values) / max(last - started, 1e-9), values


@dataclass
class UpdateCost:
    update_us: float  # wall clock per sample, like the worker lives it
    decode_us: float
    samples: int
    update_cpu_us: float  # CPU time of this thread per sample: what a busy machine does not inflate


def measure_update_cost(
    settings: Settings, wl_values: list[bytes], node_values: list[bytes], forecast_interval: float
) -> UpdateCost:
    """Time ``ForecastStage.on_workload_usage`` on the decoded records, configured like the worker."""
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


# --- phase 3: decision latency ---------------------------------------------------------------


class OrderReader(threading.Thread):
    """Reads the orders topic in the background: (seen wall time, broker timestamp s, order)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True, name="bench-orders")
        self.settings = settings
        self.orders: list[tuple[float, float, dict[str, Any]]] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        c = Consumer(
            {
                **self.settings.confluent_config(),
                "group.id": f"bench-orders-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        try:
            c.subscribe([self.settings.topic("orders")])
            while not self.stopping.is_set():
                msg = c.poll(0.1)
                value = None if msg is None or msg.error() is not None else msg.value()
                if msg is None or value is None:
                    continue
                seen = time.time()
                _kind, ts_ms = msg.timestamp()
                self.orders.append((seen, ts_ms / 1000.0, orjson.loads(value)))
        except Exception as exc:  # noqa: BLE001 - handed to the main thread, which reports it
            self.error = exc
        finally:
            c.close()


def use_log_append_time(settings: Settings) -> bool:
    """Make the private orders topic stamp records when the broker appends them (True if it could)."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    admin = AdminClient(settings.confluent_config())
    entry = ConfigEntry("message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET)
    res = ConfigResource(ConfigResource.Type.TOPIC, settings.topic("orders"), incremental_configs=[entry])
    try:
        for fut in admin.incremental_alter_configs([res]).values():
            fut.result(timeout=15)
    except (KafkaException, TypeError, ValueError):
        return False
    return True


@dataclass
class Load:
    workload_samples: int = 0
    node_samples: int = 0
    seconds: float = 0.0
    started_at: float = 0.0


def paced_load(
    settings: Settings, fleet: Fleet, rate: float, seconds: float, hot_at: dict[int, float], worker: WorkerProcess
) -> Load:
    """Send every workload's sample once a second (and every node's), spread evenly, stamped now."""
    p = producer(settings)
    wl_topic, node_topic = settings.topic("workload_usage"), settings.topic("node_usage")
    n_wl, n_nodes = fleet.workloads, fleet.nodes
    per_node = fleet.workloads_per_node
    node_rate = rate * n_nodes / n_wl
    load = Load(started_at=time.time())
    t0 = time.perf_counter()
    sent_w = sent_n = 0
    inf = math.inf
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
        due_w, due_n = int(elapsed * rate), int(elapsed * node_rate)
        while sent_w < due_w:
            w = sent_w % n_wl
            now = time.time()
            rec = fleet.workload(w, now, 1.0, hot=now >= hot_at.get(w // per_node, inf))
            send(p, wl_topic, rec["workload_id"].encode(), orjson.dumps(rec))
            sent_w += 1
        while sent_n < due_n:
            n = sent_n % n_nodes
            now = time.time()
            rec = fleet.node(n, now, 1.0, hot=now >= hot_at.get(n, inf))
            send(p, node_topic, rec["node_id"].encode(), orjson.dumps(rec))
            sent_n += 1
        p.poll(0)
        if sent_w % 1000 < 50:
            worker.check()
        time.sleep(0.002)
    load.seconds = time.perf_counter() - t0
    if p.flush(60) != 0:
        raise PipelineBenchError("could not deliver the load records")
    load.workload_samples, load.node_samples = sent_w, sent_n
    return load


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[k]


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    orders: int
    seen_p50_ms: float
    seen_p99_ms: float
    hot_to_order_p50_ms: float
    hot_to_order_p99_ms: float
    clock: str
    load: Load
    nodes: int
    workloads: int
    hot_nodes: int


def measure_latency(settings: Settings, cfg: PipelineBenchConfig, workdir: Path, progress: Progress | None) -> Latency:
    fleet = Fleet(max(2 * WORKLOADS_PER_NODE, round(cfg.load_rate)), seed=cfg.seed)
    nodes = fleet.nodes
    rate = float(fleet.workloads)  # one sample a second from every workload
    log_append = use_log_append_time(settings)
    env = {
        "PLBA_DECISION_INTERVAL_SECONDS": str(cfg.decision_interval_seconds),
        "PLBA_FORECAST_INTERVAL_SECONDS": str(cfg.forecast_interval_seconds),
        "PLBA_HORIZON_SECONDS": str(cfg.latency_horizon_seconds),
    }
    with worker_process(settings, workdir, "latency-worker", **env) as worker:
        if progress:
            progress(f"latency: warming up {fleet.workloads} workloads on {nodes} nodes for {cfg.warmup_seconds:.0f}s")
        warm = paced_load(settings, fleet, rate, cfg.warmup_seconds, {}, worker)
        wait_consumed(
            settings,
            worker,
            {"workload_usage": warm.workload_samples, "node_usage": warm.node_samples},
            cfg.timeout_seconds,
            progress,
        )
        reader = OrderReader(settings)
        reader.start()
        try:
            # Hot nodes spread over the pools, turning hot one after another over 70 % of the load.
            hot = max(1, round(cfg.hot_share * nodes))
            start = time.time() + 0.5
            span = 0.7 * cfg.load_seconds
            chosen = [(i * nodes) // hot for i in range(hot)]
            order = sorted(chosen, key=lambda n: (n % NODES_PER_POOL, n))
            hot_at = {n: start + span * k / hot for k, n in enumerate(order)}
            if progress:
                progress(f"latency: {rate:.0f} samples/s for {cfg.load_seconds:.0f}s, {hot} nodes turning hot")
            load = paced_load(settings, fleet, rate, cfg.load_seconds, hot_at, worker)
            if progress:
                progress(
                    f"latency: sent {load.workload_samples} samples in {load.seconds:.1f}s; waiting for the worker"
                )
            wait_consumed(
                settings,
                worker,
                {
                    "workload_usage": warm.workload_samples + load.workload_samples,
                    "node_usage": warm.node_samples + load.node_samples,
                },
                cfg.timeout_seconds,
                progress,
            )
            time.sleep(2.0)  # the last cycle's orders
        finally:
            reader.stopping.set()
            reader.join(10)
    if reader.error is not None:
        raise PipelineBenchError(f"reading orders failed: {reader.error}") from reader.error
    mine = [(seen, ts, o) for seen, ts, o in reader.orders if o["issued_at"] >= load.started_at]
    if not mine:
        raise PipelineBenchError("no order was issued during the load; see the worker log in " + str(workdir))
    broker = [(ts if log_append else seen) - o["issued_at"] for seen, ts, o in mine]
    seen = [s - o["issued_at"] for s, _ts, o in mine]
    first_by_node: dict[str, float] = {}
    for s, ts, o in sorted(mine, key=lambda x: x[1]):
        first_by_node.setdefault(o["source_node"], ts if log_append else s)
    hot_delays = [
        t - hot_at[int(nid.split("-")[1])] for nid, t in first_by_node.items() if int(nid.split("-")[1]) in hot_at
    ]
    ms = 1000.0
    return Latency(
        p50_ms=percentile(broker, 50) * ms,
        p99_ms=percentile(broker, 99) * ms,
        orders=len(mine),
        seen_p50_ms=percentile(seen, 50) * ms,
        seen_p99_ms=percentile(seen, 99) * ms,
        hot_to_order_p50_ms=percentile(hot_delays, 50) * ms if hot_delays else 0.0,
        hot_to_order_p99_ms=percentile(hot_delays, 99) * ms if hot_delays else 0.0,
        clock="log_append_time" if log_append else "consumer_receive",
        load=load,
        nodes=nodes,
        workloads=fleet.workloads,
        hot_nodes=hot,
    )


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
            _rate, node_values = raw_consume(s, "node_usage", tp.node_records, cfg.timeout_seconds)
        if progress:
            progress(f"raw consume: {raw_rate:.0f} records/s; timing the model update in-process")
        cost = measure_update_cost(s, wl_values, node_values, cfg.forecast_interval_seconds)
        del wl_values, node_values
        with private_topics(settings, "lat") as s2:
            prefixes.append(s2.topic_prefix)
            lat = measure_latency(s2, cfg, work, progress)
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
        "decision_latency_ms": {
            "p50": round(lat.p50_ms, 1),
            "p99": round(lat.p99_ms, 1),
            "orders": lat.orders,
            "clock": lat.clock,
            "from": "issued_at (event time of the newest sample the decision saw)",
            "seen_p50": round(lat.seen_p50_ms, 1),
            "seen_p99": round(lat.seen_p99_ms, 1),
        },
        "hot_to_order_ms": {"p50": round(lat.hot_to_order_p50_ms, 1), "p99": round(lat.hot_to_order_p99_ms, 1)},
        "load_samples_per_second": round(lat.load.workload_samples / lat.load.seconds, 1),
        "load_target_per_second": cfg.load_rate,
        "load_seconds": round(lat.load.seconds, 1),
        "load_node_samples_per_second": round(lat.load.node_samples / lat.load.seconds, 1),
        "latency_fleet": {
            "nodes": lat.nodes,
            "workloads": lat.workloads,
            "hot_nodes": lat.hot_nodes,
            "pools": math.ceil(lat.nodes / NODES_PER_POOL),
        },
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
            f"{result['samples_per_cpu_second'] or 0:,.0f} samples per CPU second",
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
