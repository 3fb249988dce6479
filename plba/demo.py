"""``plba demo``: the whole pipeline on one machine, live.

It starts the local broker (unless one is configured), creates the demo's topics under a prefix
of its own, starts the stream worker and N node processes, places ``sim`` workloads that follow
a shared real trace in compressed time, announces a maintenance window and an ingestion peak,
shows what PLBA predicts and does, and ends with a summary. Every process it starts runs in its
own process group and is stopped on the way out, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from plba import localkafka
from plba.demo_view import DemoState
from plba.topic_admin import create_topics, delete_topics
from schemas.settings import Settings

DEMO_ROLES = ("node_usage", "forecasts", "orders", "migrations", "explanations", "dlq")
# Alibaba machines that are busy for the whole trace (m_1933 and m_1946 idle, m_1932/m_1947 partial).
DEFAULT_SERIES = (
    "m_1934", "m_1935", "m_1936", "m_1937", "m_1938", "m_1939", "m_1940",
    "m_1941", "m_1942", "m_1943", "m_1944", "m_1945",
)  # fmt: skip


class DemoError(RuntimeError):
    """The demo could not start or run; the message says which part and why."""


@dataclass
class DemoConfig:
    nodes: int = 4
    duration_seconds: float = 90.0
    trace: str = "alibaba"
    speed: float = 300.0  # trace seconds per wall second: one 5-minute step per second
    interval_seconds: float = 1.0
    node_cores: float = 2.0
    workloads_per_node: int = 3
    series: tuple[str, ...] = DEFAULT_SERIES
    real: bool = False
    keep_topics: bool = False
    metrics: bool = False  # serve /metrics from the worker and every node (ports reported to on_start)

    def __post_init__(self) -> None:
        if not 2 <= self.nodes <= 32:
            raise DemoError(f"--nodes must be 2..32, not {self.nodes}")
        if self.duration_seconds < 20:
            raise DemoError(f"--duration must be at least 20 s, not {self.duration_seconds:g}")
        if self.speed <= 0:
            raise DemoError("--speed must be positive")


@dataclass
class Placement:
    workload_id: str
    node_index: int
    series: str
    priority: int
    offset_seconds: float
    memory: str = "512M"


def plan(cfg: DemoConfig) -> list[Placement]:
    """Workloads per node, deterministic, mixed priorities.

    Node 0 gets one workload more than the others (it runs hot), the last node only one (the
    spare room a predictive move needs; a full cluster can only be explained, not helped).
    """
    out: list[Placement] = []
    k = 0
    for n in range(cfg.nodes):
        count = 1 if n == cfg.nodes - 1 else cfg.workloads_per_node + (1 if n == 0 else 0)
        for j in range(count):
            series = cfg.series[k % len(cfg.series)]
            priority = (10, 200, 500, 800)[(k * 7 + j) % 4]
            # Copies of a series start at different trace times so that no two workloads move in lockstep.
            offset = float((k // len(cfg.series)) * 37 * 300)
            out.append(Placement(f"wl-{n}-{j}", n, series, priority, offset))
            k += 1
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Processes:
    """Children started by the demo, each in its own process group."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "plba.cli.main", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.procs.append((name, proc))
        return proc

    def dead(self) -> list[str]:
        return [name for name, p in self.procs if p.poll() is not None]

    def stop_all(self, grace: float = 20.0) -> None:
        for _name, p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _name, p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


class Consumer(threading.Thread):
    """Folds every record of the demo's topics into the state, until stopped."""

    def __init__(self, settings: Settings, state: DemoState) -> None:
        super().__init__(daemon=True, name="demo-consumer")
        self.settings, self.state, self.stopped = settings, state, threading.Event()

    def run(self) -> None:
        from confluent_kafka import Consumer as KafkaConsumer

        roles = {self.settings.topic(r): r for r in DEMO_ROLES}
        c = KafkaConsumer({
            **self.settings.confluent_config(), "group.id": f"{self.settings.topic_prefix}view",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })  # fmt: skip
        c.subscribe(list(roles))
        try:
            while not self.stopped.is_set():
                msg = c.poll(0.2)
                if msg is None or msg.error():
                    continue
                topic, value = msg.topic(), msg.value()
                if topic is None or value is None:
                    continue
                try:
                    self.state.fold(roles[topic], orjson.loads(value))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    self.state.fold("dlq", {})
        finally:
            c.close()


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PLBA_KAFKA_BOOTSTRAP": settings.bootstrap, "PLBA_TOPIC_PREFIX": settings.topic_prefix,
        "PLBA_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
    })  # fmt: skip
    env.update(extra)
    return env


async def _start_workloads(cfg: DemoConfig, endpoints: list[str], placements: list[Placement], anchor: float) -> None:
    from agents.drivers.base import WorkloadSpec
    from agents.executor_client import ExecutorClient

    for ep in endpoints:
        async with ExecutorClient(ep, timeout_seconds=5.0) as client:
            for _ in range(100):
                with contextlib.suppress(Exception):  # still starting
                    if await client.check_health() == "SERVING":
                        break
                await asyncio.sleep(0.2)
            else:
                raise DemoError(f"node at {ep} did not become healthy")
    for p in placements:
        spec = WorkloadSpec(
            workload_id=p.workload_id, kind="vm", driver="sim", memory_bytes=512 * 2**20, cpu_cores=1.0,
            priority=p.priority, app=f"app-{p.priority}",
            params={"trace": cfg.trace, "series": p.series, "speed": str(cfg.speed),
                    "offset_seconds": str(p.offset_seconds), "anchor_at": f"{anchor:.3f}"},
        )  # fmt: skip
        async with ExecutorClient(endpoints[p.node_index], timeout_seconds=10.0) as client:
            await client.start_workload(spec)


def _announce(
    settings: Settings, cfg: DemoConfig, t0: float, node_ids: list[str], placements: list[Placement]
) -> list[str]:
    """Publish the demo's maintenance window and ingestion peak; returns lines for the view."""
    from agents.client import RecordPublisher
    from agents.triggers import build_event, publish_event

    d = cfg.duration_seconds
    now = time.time()
    target = node_ids[1]
    maint = build_event("maintenance", starts_at=t0 + 0.55 * d, ends_at=t0 + 0.85 * d, scope={"nodes": [target]},
                        now=now, reason="demo: firmware upgrade", source="demo")  # fmt: skip
    peak_wls = [p.workload_id for p in placements if p.node_index == 2 % cfg.nodes][:2]
    peak = build_event("peak", starts_at=t0 + 0.45 * d, ends_at=t0 + 0.7 * d, scope={"workloads": peak_wls},
                       now=now, factor=1.6, reason="demo: nightly ingestion", source="demo")  # fmt: skip
    with RecordPublisher(settings) as pub:
        publish_event(pub, maint)
        publish_event(pub, peak)
    return [
        f"maintenance announced on {target}: +{0.55 * d:.0f}s … +{0.85 * d:.0f}s (evacuate ahead)",
        f"ingestion peak x1.6 declared for {', '.join(peak_wls)}: +{0.45 * d:.0f}s … +{0.7 * d:.0f}s",
    ]


def run_demo(
    settings: Settings, cfg: DemoConfig, *, on_tick: Callable[[DemoState, float, list[str]], None] | None = None,
    on_start: Callable[[dict[str, list[str]], Settings], None] | None = None, log: Callable[[str], None] = print,
) -> dict[str, Any]:  # fmt: skip
    """Run the demo; returns the summary (the --json output).

    ``on_start`` receives the /metrics targets (``{"plba-worker": [...], "plba-node": [...]}``,
    with ``cfg.metrics``) and the demo's settings (its topic prefix) once everything runs, e.g. to
    point a Prometheus at them or to inject more events.
    """
    if cfg.real:
        raise DemoError("--real (QEMU and process workloads with real live migrations) is not available yet")
    started_broker = False
    if not settings.kafka_bootstrap:
        if not localkafka.running_pid(settings):
            started_broker = True
        localkafka.up(settings, log=log)
    run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:4]}"
    settings = settings.replace(topic_prefix=f"demo-{run_id}.")
    create_topics(settings)
    workdir = Path(tempfile.mkdtemp(prefix="plba-demo-"))
    procs = Processes()
    state = DemoState()
    consumer = Consumer(settings, state)
    notes: list[str] = [f"topics: {settings.topic_prefix}*   logs: {workdir}"]
    placements = plan(cfg)
    node_ids = [f"node-{i}" for i in range(cfg.nodes)]
    interrupted = False

    def _sigterm(_signo: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGTERM stops the demo like Ctrl-C (only the main thread may install handlers).
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm) if in_main else None
    try:
        horizon = 20 * cfg.interval_seconds
        targets: dict[str, list[str]] = {"plba-worker": [], "plba-node": []}
        worker_metrics = _free_port() if cfg.metrics else 0
        if worker_metrics:
            targets["plba-worker"].append(f"127.0.0.1:{worker_metrics}")
        procs.start("worker", ["worker"], _env(
            settings, PLBA_WORKER_ID=f"{settings.topic_prefix}worker", PLBA_DECISION_INTERVAL_SECONDS="2",
            PLBA_HORIZON_SECONDS=f"{horizon:g}", PLBA_FORECAST_INTERVAL_SECONDS=f"{cfg.interval_seconds:g}",
            PLBA_METRICS_PORT=str(worker_metrics),
        ), workdir / "worker.log")  # fmt: skip
        endpoints = []
        for nid in node_ids:
            ep = f"127.0.0.1:{_free_port()}"
            endpoints.append(ep)
            node_metrics = _free_port() if cfg.metrics else 0
            if node_metrics:
                targets["plba-node"].append(f"127.0.0.1:{node_metrics}")
            procs.start(nid, [
                "node", "--node-id", nid, "--listen", ep, "--interval", f"{cfg.interval_seconds:g}",
                "--labels", "pool=demo,zone=z1", "--drivers", "sim", "--capacity-cores", f"{cfg.node_cores:g}",
                "--capacity-memory", "8G", "--state-dir", str(workdir / "nodes"), "--metrics-port", str(node_metrics),
            ], _env(settings), workdir / f"{nid}.log")  # fmt: skip
        t0 = time.time()
        asyncio.run(_start_workloads(cfg, endpoints, placements, anchor=t0))
        consumer.start()
        if on_start is not None:
            on_start(targets, settings)
        notes.append(f"{len(placements)} sim workloads following {cfg.trace} at x{cfg.speed:g} on {cfg.nodes} nodes")
        announced = False
        while (elapsed := time.time() - t0) < cfg.duration_seconds:
            if not announced and elapsed >= 0.25 * cfg.duration_seconds:
                notes.extend(_announce(settings, cfg, t0, node_ids, placements))
                announced = True
            dead = procs.dead()
            if dead:
                raise DemoError(f"{', '.join(dead)} exited early; see the logs in {workdir}")
            if on_tick is not None:
                on_tick(state, elapsed, notes)
            time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        procs.stop_all()
        time.sleep(1.0)  # let the last records arrive before the view stops reading
        consumer.stopped.set()
        if consumer.is_alive():
            consumer.join(10)
        if not cfg.keep_topics:
            with contextlib.suppress(Exception):
                delete_topics(settings)
        if started_broker:
            localkafka.down(settings, log=log)
    return {**summary(state, cfg, interrupted, workdir), "topic_prefix": settings.topic_prefix}


def summary(state: DemoState, cfg: DemoConfig, interrupted: bool, workdir: Path) -> dict[str, Any]:
    counts = state.counts()
    with state.lock:
        over = sum(r.over_seconds for r in state.nodes.values())
        hot = sum(r.hot_seconds for r in state.nodes.values())
    mae = state.forecast_mae()
    return {
        "nodes": cfg.nodes,
        "duration_seconds": cfg.duration_seconds,
        "trace": cfg.trace,
        "workloads": len(plan(cfg)),
        "orders": counts["orders"],
        "migrations_completed": counts["migrations_completed"],
        "migrations_failed": counts["migrations_failed"],
        "migrations_in_flight_at_end": counts["migrations_in_flight"],
        "total_downtime_seconds": round(state.downtime_seconds(), 6),
        "overload_node_seconds": round(over, 3),
        "hot_node_seconds": round(hot, 3),
        "forecast_mae": None if mae is None else round(mae, 4),
        "explanations": state.explanations,
        "dlq_records": state.dlq,
        "interrupted": interrupted,
        "logs": str(workdir),
    }
