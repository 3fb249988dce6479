"""A whole pipeline for the fault scenarios: stream worker, node processes with telemetry, sim workloads.

Like ``plba demo`` (whose layout it follows: node 0 runs hot, the last node is the spare room), but
every part can be stopped, killed or restarted on its own, and it counts what the scenarios assert:

- :meth:`PipelineRig.telemetry` — samples each node handed to its producer (the ``sent`` figure
  its producer logs on close) against the distinct samples of that node on the usage topics;
- :meth:`PipelineRig.executions` — migrations each executor committed (its own counter) against
  the distinct orders completed in the executors' journals, and on how many nodes each workload
  runs (from the executors' listings).

Every child runs in its own process group and is stopped (SIGTERM, then SIGKILL) on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from plba.faults.topic_read import FaultRunError, metric, read_to_end, scrape
from plba.procs import signal_group, start_plba, stop_group
from schemas.settings import Settings, env_var

REPO = Path(__file__).resolve().parents[2]
# Alibaba machines busy for the whole trace (the demo's choice).
SERIES = ("m_1934", "m_1935", "m_1936", "m_1937", "m_1938", "m_1939", "m_1940", "m_1941", "m_1942", "m_1943")
_STATS = re.compile(r"telemetry producer closed: ProducerStats\(sent=(\d+), delivered=(\d+), failed=(\d+), "
                    r"dropped_overflow=(\d+), dropped_expired=(\d+), dropped_overtaken=(\d+)")  # fmt: skip
_LOST_AT_CLOSE = re.compile(r"lost_at_close=(\d+)")
_KAFKA_FIELDS = (
    "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password",
    "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RigConfig:
    nodes: int = 4
    workloads_per_node: int = 3
    interval_seconds: float = 1.0
    speed: float = 300.0  # trace seconds per wall second
    node_cores: float = 2.0
    trace: str = "alibaba"
    snapshot_seconds: float = 5.0  # the worker's forecaster snapshots: what a kill -9 may lose


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        signal_group(self.proc, sig)

    def stop(self, grace: float = 30.0) -> int:
        return stop_group(self.proc, grace)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(10)


@dataclass
class Node:
    node_id: str
    endpoint: str
    metrics_port: int
    child: Child


@dataclass
class PipelineRig:
    settings: Settings
    workdir: Path
    cfg: RigConfig = field(default_factory=RigConfig)
    children: list[Child] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    workloads: list[str] = field(default_factory=list)
    worker: Child | None = None
    maintained: set[str] = field(default_factory=set)

    # --- processes ------------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update({env_var(f): str(getattr(s, f)) for f in _KAFKA_FIELDS})
        env.update(
            {
                "PLBA_KAFKA_BOOTSTRAP": s.bootstrap,
                "PLBA_TOPIC_PREFIX": s.topic_prefix,
                "PLBA_WORKER_ID": f"{s.topic_prefix}worker",
                env_var("traces_dir"): str(s.traces_dir),
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            }
        )
        env.update(extra)
        return env

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        n = sum(1 for c in self.children if c.name == name)
        log = self.workdir / f"{name}-{n + 1}.log"
        child = Child(name, start_plba(args, env, log, cwd=self.workdir), log)
        self.children.append(child)
        return child

    def start_worker(self, dispatch: bool = True) -> Child:
        horizon = 20 * self.cfg.interval_seconds
        self.worker = self._start("worker", ["worker"], self.env(
            PLBA_WORKER_DISPATCH="true" if dispatch else "false", PLBA_DECISION_INTERVAL_SECONDS="2",
            PLBA_HORIZON_SECONDS=f"{horizon:g}", PLBA_FORECAST_INTERVAL_SECONDS=f"{self.cfg.interval_seconds:g}",
            PLBA_FORECAST_SNAPSHOT_SECONDS=f"{self.cfg.snapshot_seconds:g}", PLBA_METRICS_PORT="0",
            PLBA_LOG_LEVEL="WARNING",
        ))  # fmt: skip
        return self.worker

    def start_nodes(self) -> None:
        for i in range(self.cfg.nodes):
            self.start_node(f"node-{i}")

    def start_node(self, nid: str) -> Node:
        port, mport = free_port(), free_port()
        child = self._start(nid, [
            "node", "--node-id", nid, "--listen", f"127.0.0.1:{port}", "--interval", f"{self.cfg.interval_seconds:g}",
            "--labels", "pool=faults,zone=z1", "--drivers", "sim", "--capacity-cores", f"{self.cfg.node_cores:g}",
            "--capacity-memory", "8G", "--state-dir", str(self.workdir / "nodes"), "--metrics-port", str(mport),
        ], self.env(PLBA_LOG_LEVEL="INFO"))  # fmt: skip
        node = Node(nid, f"127.0.0.1:{port}", mport, child)
        self.nodes.append(node)
        return node

    def add_node(self) -> Node:
        """One more empty node in the pool, serving: room the policy can move work to."""
        node = self.start_node(f"node-{len(self.nodes)}")
        asyncio.run(self._healthy([node]))
        return node

    def place_workloads(self) -> None:
        asyncio.run(self._place(time.time()))

    async def _healthy(self, nodes: list[Node]) -> None:
        from agents.executor_client import ExecutorClient

        for node in nodes:
            async with ExecutorClient(node.endpoint, timeout_seconds=5.0) as client:
                deadline = time.monotonic() + 120
                while True:
                    if not node.child.alive():
                        raise FaultRunError(f"{node.node_id} exited; see {node.child.log}")
                    with contextlib.suppress(Exception):  # still starting
                        if await client.check_health() == "SERVING":
                            break
                    if time.monotonic() > deadline:
                        raise FaultRunError(f"{node.node_id} did not become healthy; see {node.child.log}")
                    await asyncio.sleep(0.2)

    async def _place(self, anchor: float) -> None:
        from agents.drivers.base import WorkloadSpec
        from agents.executor_client import ExecutorClient

        await self._healthy(self.nodes)
        k = 0
        last = len(self.nodes) - 1
        for n, node in enumerate(self.nodes):
            count = 1 if n == last else self.cfg.workloads_per_node + (1 if n == 0 else 0)
            for j in range(count):
                wid = f"wl-{n}-{j}"
                prio = (10, 200, 500, 800)[(k * 7 + j) % 4]
                offset = float((k // len(SERIES)) * 37 * 300)
                spec = WorkloadSpec(
                    workload_id=wid, kind="vm", driver="sim", memory_bytes=512 * 2**20, cpu_cores=1.0,
                    priority=prio, app=f"app-{prio}",
                    params={"trace": self.cfg.trace, "series": SERIES[k % len(SERIES)], "speed": str(self.cfg.speed),
                            "offset_seconds": str(offset), "anchor_at": f"{anchor:.3f}"},
                )  # fmt: skip
                async with ExecutorClient(node.endpoint, timeout_seconds=30.0) as client:
                    await client.start_workload(spec)
                self.workloads.append(wid)
                k += 1

    def check_alive(self) -> None:
        dead = [c.name for c in self.children if not c.alive() and c in self._current()]
        if dead:
            raise FaultRunError(f"{', '.join(dead)} exited early; logs in {self.workdir}")

    def _current(self) -> list[Child]:
        out = [n.child for n in self.nodes]
        if self.worker is not None:
            out.append(self.worker)
        return out

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.alive():
                child.signal(signal.SIGTERM)
        for child in self.children:
            child.stop(grace=30.0)

    def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.check_alive()
            time.sleep(0.5)

    def run_until(self, done: Callable[[], bool], min_seconds: float, max_seconds: float) -> bool:
        """Run at least ``min_seconds``, then until ``done()`` (checked every 2 s) or ``max_seconds``."""
        self.run_for(min_seconds)
        end = time.monotonic() + max(0.0, max_seconds - min_seconds)
        while not done():
            if time.monotonic() > end:
                return False
            self.run_for(2.0)
        return True

    def announce_maintenance(self, starts_in: float = 6.0, lasts: float = 120.0) -> str | None:
        """Declare a maintenance window soon on a node hosting workloads (the fewest, so the others
        have room): the policy evacuates it, so migrations follow whatever the traces do.
        Returns the node, or None when no node hosts anything."""
        from agents.client import RecordPublisher
        from agents.triggers import build_event, publish_event

        hosted = asyncio.run(self._hosted())
        busy = [(n, nid) for nid, n in hosted.items() if n > 0 and nid not in self.maintained]
        if not busy:
            return None
        target = min(busy)[1]
        self.maintained.add(target)
        now = time.time()
        event = build_event(
            "maintenance", starts_at=now + starts_in, ends_at=now + starts_in + lasts, scope={"nodes": [target]},
            now=now, reason="fault scenario: evacuate after the fault", source="faults",
        )  # fmt: skip
        with RecordPublisher(self.settings) as pub:
            publish_event(pub, event)
        return target

    async def _hosted(self) -> dict[str, int]:
        from agents.executor_client import ExecutorClient

        out = {}
        for node in self.nodes:
            async with ExecutorClient(node.endpoint, timeout_seconds=30.0) as client:
                out[node.node_id] = sum(1 for w in await client.list_workloads() if w.state == "running")
        return out

    def completed_orders(self) -> set[str]:
        """Orders whose source executor journaled ``completed``."""
        return {
            str(r.get("order_id"))
            for recs in self.journals().values()
            for r in recs
            if r.get("role") == "source" and r.get("phase") == "completed"
        }

    # --- counts ---------------------------------------------------------------------------------
    def journals(self) -> dict[str, list[dict[str, Any]]]:
        """Every executor's journal records, by node id."""
        out: dict[str, list[dict[str, Any]]] = {}
        for node in self.nodes:
            recs = []
            for path in sorted((self.workdir / "nodes" / node.node_id / "migrations").glob("*.json")):
                with contextlib.suppress(OSError, ValueError):
                    recs.append(json.loads(path.read_bytes()))
            out[node.node_id] = recs
        return out

    def settle(self, timeout: float = 180.0) -> int:
        """Wait until no journal has a migration in flight; returns how many are still in flight."""
        deadline = time.monotonic() + timeout
        while True:
            open_ = sum(
                1
                for recs in self.journals().values()
                for r in recs
                if r.get("phase") not in ("completed", "rolled_back", "failed", "rejected", "expired", "committed",
                                          "aborted")
            )  # fmt: skip
            if open_ == 0 or time.monotonic() > deadline:
                return open_
            time.sleep(1.0)

    def executions(self) -> dict[str, int]:
        """Migrations committed per the executors' own counters vs distinct completed orders; instances.

        Call while the nodes run (their /metrics and listings), after :meth:`settle`.
        """
        commits = 0
        for node in self.nodes:
            samples = scrape(node.metrics_port)
            commits += int(metric(samples, "plba_executor_migration_phases_total", phase="commit", outcome="ok"))
        completed: Counter[str] = Counter()
        for recs in self.journals().values():
            for r in recs:
                if r.get("role") == "source" and r.get("phase") == "completed":
                    completed[str(r.get("order_id"))] += 1
        where = asyncio.run(self._instances())
        return {
            "migrations_committed": commits,
            "orders_completed": len(completed),
            "duplicate_migrations": max(0, commits - len(completed)) + sum(n - 1 for n in completed.values()),
            "instances_not_exactly_one": sum(1 for w in self.workloads if where.get(w, 0) != 1),
        }

    async def _instances(self) -> Counter[str]:
        from agents.executor_client import ExecutorClient

        where: Counter[str] = Counter()
        for node in self.nodes:
            async with ExecutorClient(node.endpoint, timeout_seconds=30.0) as client:
                for info in await client.list_workloads():
                    if info.state in ("running", "starting"):
                        where[info.spec.workload_id] += 1
        return where

    def telemetry(self) -> dict[str, int]:
        """After the nodes stopped: samples they sent vs distinct samples of theirs on the usage topics."""
        sent: dict[str, int] = {}
        producer_losses = 0
        for node in self.nodes:
            text = "\n".join(c.log.read_text(errors="replace") for c in self.children if c.name == node.node_id)
            stats = _STATS.findall(text)
            if not stats:
                raise FaultRunError(f"{node.node_id} did not report its producer's figures; see {node.child.log}")
            sent[node.node_id] = sum(int(s[0]) for s in stats)
            producer_losses += sum(int(x) for s in stats for x in s[2:])
            producer_losses += sum(int(x) for x in _LOST_AT_CLOSE.findall(text))
        seen: set[tuple[str, str, int]] = set()
        records = 0
        for role, key_field in (("node_usage", "node_id"), ("workload_usage", "workload_id")):
            for rec in read_to_end(self.settings, role):
                if rec.value is None:
                    continue
                v = orjson.loads(rec.value)
                records += 1
                seen.add((role, f"{v['node_id']}/{v[key_field]}", int(v.get("seq", -1))))
        reached = Counter(k.split("/", 1)[0] for (_r, k, _s) in seen)
        lost = sum(max(0, sent[n] - reached.get(n, 0)) for n in sent)
        return {
            "samples_sent": sum(sent.values()),
            "samples_on_topics": len(seen),
            "samples_lost": lost,
            "samples_duplicated": records - len(seen),
            "producer_reported_losses": producer_losses,
        }
