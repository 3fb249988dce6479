"""The decision-latency phase of ``plba bench pipeline``, through the real broker.

A fresh worker (decision interval ``decision_interval_seconds``) receives ``load_rate`` workload
samples/s from ``load_rate`` workloads at 1 sample/s on 25-workload nodes in 20-node pools, each
sample stamped ``sampled_at`` = wall clock at send. After a warm-up that the worker has fully
consumed, some nodes turn hot at staggered times during ``load_seconds``. An order's latency is
its broker timestamp (``LogAppendTime`` on our private orders topic) minus its ``issued_at``, the
event time of the newest sample the decision had seen: how long after that sample was sent the
order was on the broker. The time from the first hot sample of the order's node to its first
order is reported beside it; it adds the policy's persistence (a node must be hot in
``persistence`` consecutive decision cycles) on purpose.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException

from plba.bench_support import (
    NODES_PER_POOL,
    WORKLOADS_PER_NODE,
    Fleet,
    PipelineBenchConfig,
    PipelineBenchError,
    Progress,
    WorkerProcess,
    private_topics,
    producer,
    send,
    wait_consumed,
    worker_process,
)
from schemas.settings import Settings

__all__ = ["Latency", "latency_json", "latency_phase", "run_latency_bench"]


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

    admin = AdminClient({**settings.confluent_config(), "log_level": 4})
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


def wait_orders(reader: OrderReader, hot: set[str], since: float, quiet: float, progress: Progress | None) -> None:
    """Wait until every hot node has had an order, or no new order came for ``quiet`` seconds.

    The worker's usage offsets say the forecasters have caught up, not the decisions: those run
    behind the forecasts and (sharded by pool) one more hop through the broker.
    """
    time.sleep(2.0)  # at least the last cycle's orders
    count, deadline, last_report = -1, time.monotonic() + quiet, 0.0
    while True:
        mine = [o for _seen, _ts, o in list(reader.orders) if o["issued_at"] >= since]
        if hot <= {o["source_node"] for o in mine}:
            return
        now = time.monotonic()
        if len(mine) != count:
            count, deadline = len(mine), now + quiet
        elif now > deadline:
            return  # measured on the orders that came; how many is in the JSON
        if progress is not None and now - last_report >= 5.0:
            last_report = now
            got = len(hot & {o["source_node"] for o in mine})
            progress(f"  waiting for the decisions: orders for {got} of {len(hot)} hot nodes")
        time.sleep(0.5)


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
            # Decisions run every second: 30 s without a new order means no more are coming (the
            # policy's limits hold further ones back while no dispatcher completes the first).
            quiet = min(cfg.timeout_seconds, 30.0)
            wait_orders(reader, {f"node-{n:05d}" for n in hot_at}, load.started_at, quiet, progress)
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


def latency_phase(
    settings: Settings, cfg: PipelineBenchConfig, workdir: Path, progress: Progress | None, prefixes: list[str]
) -> Latency:
    """The decision-latency measurement alone, on topics of its own (their prefix goes to ``prefixes``)."""
    with private_topics(settings, "lat") as s:
        prefixes.append(s.topic_prefix)
        return measure_latency(s, cfg, workdir, progress)


def latency_json(lat: Latency, cfg: PipelineBenchConfig) -> dict[str, Any]:
    """The latency keys of the benchmark's JSON."""
    load = lat.load
    return {
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
        "load_samples_per_second": round(load.workload_samples / load.seconds, 1),
        "load_target_per_second": cfg.load_rate,
        "load_seconds": round(load.seconds, 1),
        "load_node_samples_per_second": round(load.node_samples / load.seconds, 1),
        "latency_fleet": {
            "nodes": lat.nodes,
            "workloads": lat.workloads,
            "hot_nodes": lat.hot_nodes,
            "pools": math.ceil(lat.nodes / NODES_PER_POOL),
        },
    }


def run_latency_bench(settings: Settings, cfg: PipelineBenchConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Only the decision-latency phase (e.g. again at a load the worker sustains); its JSON keys."""
    prefixes: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="plba-bench-latency-"))
    try:
        lat = latency_phase(settings, cfg, work, progress, prefixes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**latency_json(lat, cfg), "topic_prefixes": prefixes}
