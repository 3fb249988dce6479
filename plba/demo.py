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
from plba.demo_real import node_args as real_node_args
from plba.demo_real import real_node_cores, sweep, tidy
from plba.demo_view import DemoState
from plba.procs import signal_group, start_plba
from plba.topic_admin import create_topics, delete_topics
from schemas.settings import Settings

DEMO_ROLES = ("node_usage", "workload_usage", "forecasts", "orders", "migrations", "explanations", "dlq")
DECISION_INTERVAL_SECONDS = 2.0
# How long a node process may take to serve its executor (imports and drivers; slow when loaded).
NODE_START_SECONDS = 60.0
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
        if self.real:
            from plba.demo_real import REAL_NODES

            if self.trace != "alibaba":
                raise DemoError("--real follows the alibaba trace: its plan is built on a climb of two of its machines")
            self.nodes = REAL_NODES  # the real demo's plan is made for three nodes

    @property
    def horizon_seconds(self) -> float:
        return 20 * self.interval_seconds


@dataclass
class Placement:
    workload_id: str
    node_index: int
    series: str
    priority: int
    offset_seconds: float
    memory: str = "512M"
    driver: str = "sim"  # sim; with --real: process (a CPU burner) or qemu (a VM)
    cores: float = 1.0  # cores at 100 % of the series


def plan(cfg: DemoConfig) -> list[Placement]:
    """Workloads per node, deterministic, mixed priorities (``--real``: :func:`plba.demo_real.plan_real`).

    Node 0 gets one workload more than the others (it runs hot), the last node only one (the
    spare room a predictive move needs; a full cluster can only be explained, not helped).
    """
    if cfg.real:
        from plba.demo_real import plan_real

        return plan_real(cfg)
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
        proc = start_plba(args, env, log)
        self.procs.append((name, proc))
        return proc

    def dead(self) -> list[str]:
        return [name for name, p in self.procs if p.poll() is not None]

    def stop_all(self, grace: float = 20.0) -> None:
        # All at once (one grace period for the lot), not one after the other.
        for _name, p in reversed(self.procs):
            if p.poll() is None:
                signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _name, p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(p, signal.SIGKILL)
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


def _spec(cfg: DemoConfig, p: Placement, anchor: float, settings: Settings) -> Any:
    from agents.drivers.base import WorkloadSpec

    if p.driver != "sim":
        from plba.demo_real import real_spec

        return real_spec(cfg, p, anchor, settings.traces_dir)
    return WorkloadSpec(
        workload_id=p.workload_id, kind="vm", driver="sim", memory_bytes=_memory_bytes(p), cpu_cores=1.0,
        priority=p.priority, app=f"app-{p.priority}",
        params={"trace": cfg.trace, "series": p.series, "speed": str(cfg.speed),
                "offset_seconds": str(p.offset_seconds), "anchor_at": f"{anchor:.3f}"},
    )  # fmt: skip


async def _start_workloads(
    cfg: DemoConfig, endpoints: list[str], placements: list[Placement], anchor: float, settings: Settings
) -> None:
    from agents.executor_client import ExecutorClient

    for ep in endpoints:
        async with ExecutorClient(ep, timeout_seconds=5.0) as client:
            deadline = time.monotonic() + NODE_START_SECONDS
            while True:
                with contextlib.suppress(Exception):  # still starting
                    if await client.check_health() == "SERVING":
                        break
                if time.monotonic() > deadline:
                    raise DemoError(f"node at {ep} did not become healthy in {NODE_START_SECONDS:.0f} s")
                await asyncio.sleep(0.2)
    for p in placements:
        # A VM's start writes its random RAM file first and QEMU is TCG on a busy host: be patient.
        async with ExecutorClient(endpoints[p.node_index], timeout_seconds=60.0 if cfg.real else 10.0) as client:
            await client.start_workload(_spec(cfg, p, anchor, settings))


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
        from plba.demo_real import qemu_binary

        if qemu_binary() is None:
            raise DemoError("--real needs QEMU: qemu-system-x86_64 is not on PATH (apt-get install qemu-system-x86)")
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
    state = DemoState(threshold=_policy_threshold())
    consumer = Consumer(settings, state)
    notes: list[str] = [f"topics: {settings.topic_prefix}*   logs: {workdir}"]
    placements = plan(cfg)
    node_ids = [f"node-{i}" for i in range(cfg.nodes)]
    interrupted = False
    t0 = t_end = time.time()
    stray: list[str] = []

    def _sigterm(_signo: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGTERM stops the demo like Ctrl-C (only the main thread may install handlers).
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm) if in_main else None
    try:
        horizon = cfg.horizon_seconds
        targets: dict[str, list[str]] = {"plba-worker": [], "plba-node": []}
        worker_metrics = _free_port() if cfg.metrics else 0
        if worker_metrics:
            targets["plba-worker"].append(f"127.0.0.1:{worker_metrics}")
        procs.start("worker", ["worker"], _env(
            settings, PLBA_WORKER_ID=f"{settings.topic_prefix}worker",
            PLBA_DECISION_INTERVAL_SECONDS=str(DECISION_INTERVAL_SECONDS),
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
            resources = (
                real_node_args(cfg) if cfg.real
                else ["--drivers", "sim", "--capacity-cores", f"{cfg.node_cores:g}", "--capacity-memory", "8G"]
            )  # fmt: skip
            procs.start(nid, [
                "node", "--node-id", nid, "--listen", ep, "--interval", f"{cfg.interval_seconds:g}",
                "--labels", "pool=demo,zone=z1", *resources, "--state-dir", str(workdir / "nodes"),
                "--metrics-port", str(node_metrics),
            ], _env(settings), workdir / f"{nid}.log")  # fmt: skip
        t0 = state.since = time.time()
        asyncio.run(_start_workloads(cfg, endpoints, placements, anchor=t0, settings=settings))
        consumer.start()
        if on_start is not None:
            on_start(targets, settings)
        notes.append(_describe(cfg, placements))
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
        t_end = state.until = time.time()
        # A second Ctrl-C must not cut the clean-up short (it would leave VMs running).
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            procs.stop_all()
            stray = sweep(settings.topic_prefix, workdir)
            tidy(workdir)
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous)
                signal.signal(signal.SIGINT, previous_int)
        time.sleep(1.0)  # let the last records arrive before the view stops reading
        consumer.stopped.set()
        if consumer.is_alive():
            consumer.join(10)
        if not cfg.keep_topics:
            with contextlib.suppress(Exception):
                delete_topics(settings)
        if started_broker:
            localkafka.down(settings, log=log)
    replayed = _replay(state, cfg, placements, t0, t_end, log)
    return {
        **summary(state, cfg, placements, interrupted, workdir, replayed),
        "stray_processes_stopped": stray,
        "topic_prefix": settings.topic_prefix,
    }


def _memory_bytes(p: Placement) -> int:
    from plba.demo_real import PROCESS_MEMORY_BYTES, VM_MEMORY_BYTES

    return {"qemu": VM_MEMORY_BYTES, "process": PROCESS_MEMORY_BYTES}.get(p.driver, 512 * 2**20)


def _policy_threshold() -> float:
    from streams.decisions import PolicyConfig

    return PolicyConfig().trigger_ratio  # what the worker's policy triggers on (its defaults)


def _describe(cfg: DemoConfig, placements: list[Placement]) -> str:
    if not cfg.real:
        return f"{len(placements)} sim workloads following {cfg.trace} at x{cfg.speed:g} on {cfg.nodes} nodes"
    vms = sum(p.driver == "qemu" for p in placements)
    return (
        f"{len(placements) - vms} CPU-burning processes following {cfg.trace} at x{cfg.speed:g} and {vms} QEMU VMs "
        f"on {cfg.nodes} nodes of {real_node_cores():g} cores"
    )


def _replay(
    state: DemoState, cfg: DemoConfig, placements: list[Placement], t0: float, t_end: float, log: Callable[[str], None]
) -> dict[str, dict[str, Any]] | None:
    """The run's recorded load through the none / reactive / predictive replays (None if too short)."""
    from plba.demo_replay import ReplayInput, replay

    if t_end - t0 < 5 * cfg.interval_seconds:
        return None
    with state.lock:
        samples = {k: list(v) for k, v in state.workload_cpu.items()}
    mem = {p.workload_id: _memory_bytes(p) for p in placements}
    inp = ReplayInput(
        workload_ids=[p.workload_id for p in placements], node_index=[p.node_index for p in placements],
        priorities=[p.priority for p in placements], memory_bytes=[mem[p.workload_id] for p in placements],
        n_nodes=cfg.nodes, capacity_cores=real_node_cores() if cfg.real else cfg.node_cores,
        step_seconds=cfg.interval_seconds, start_at=t0, end_at=t_end,
        horizons_seconds=tuple(cfg.horizon_seconds / 6 * k for k in range(1, 7)),
        decision_interval_seconds=DECISION_INTERVAL_SECONDS,
    )  # fmt: skip
    try:
        return replay(inp, samples)
    except Exception as exc:  # noqa: BLE001 - the live run's summary must survive a replay failure
        log(f"the reactive replay failed: {exc!r}")
        return None


def summary(
    state: DemoState, cfg: DemoConfig, placements: list[Placement], interrupted: bool, workdir: Path,
    replayed: dict[str, dict[str, Any]] | None,
) -> dict[str, Any]:  # fmt: skip
    """The --json output. Overload figures are node-seconds above the policy's trigger ratio:
    measured live (``overload_node_seconds``), and replayed on the same recorded load."""
    from plba.demo_real import migration_kinds

    counts = state.counts()
    over, saturated = state.overload_seconds()
    with state.lock:
        migrations = migration_kinds(dict(state.migrations), list(state.orders), state.since)
        by_node = {r.node_id: round(r.over_seconds, 3) for r in sorted(state.nodes.values(), key=lambda r: r.node_id)}
    mae = state.forecast_mae()

    def replay_over(policy: str) -> float | None:
        return None if replayed is None else float(replayed[policy]["overload_node_seconds"])

    reactive = replay_over("reactive")
    return {
        "nodes": cfg.nodes,
        "duration_seconds": cfg.duration_seconds,
        "trace": cfg.trace,
        "real": cfg.real,
        "workloads": len(placements),
        "orders": counts["orders"],
        "migrations_completed": counts["migrations_completed"],
        "migrations_failed": counts["migrations_failed"],
        "migrations_in_flight_at_end": counts["migrations_in_flight"],
        "total_downtime_seconds": round(state.downtime_seconds(), 6),
        "overload_threshold_ratio": state.threshold,
        "overload_node_seconds": round(over, 3),
        "overload_node_seconds_by_node": by_node,
        "saturated_node_seconds": round(saturated, 3),
        "reactive_overload_node_seconds": reactive,
        "overload_seconds_avoided": None if reactive is None else round(reactive - over, 3),
        "predictive_replay_overload_node_seconds": replay_over("predictive"),
        "no_action_overload_node_seconds": replay_over("none"),
        "reactive_replay_migrations": None if replayed is None else replayed["reactive"]["migrations"],
        "forecast_mae": None if mae is None else round(mae, 4),
        "explanations": state.explanations,
        "explanations_by_reason": dict(sorted(state.explained.items())),
        "last_explanations": dict(sorted(state.last_explanation.items())),
        "dlq_records": state.dlq,
        "migrations": migrations,
        "interrupted": interrupted,
        "logs": str(workdir),
    }
