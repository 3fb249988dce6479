"""Support of the pipeline benchmark: its configuration, a synthetic fleet's usage records, private topics,
a worker process.

Kept apart from :mod:`plba.bench_pipeline` (the measurements) so each reads in one sitting.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from plba.procs import start_plba, stop_group
from plba.topic_admin import TopicAdminError, create_topics
from schemas.codec import codec
from schemas.settings import Settings, env_var
from schemas.topics import TOPICS

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

WORKLOADS_PER_NODE = 25
NODES_PER_POOL = 20
GiB = 1024**3
_KAFKA_FIELDS = (
    "kafka_bootstrap",
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
    "max_record_bytes",
)


class PipelineBenchError(RuntimeError):
    """The pipeline benchmark could not complete (no broker, a worker died, a phase timed out)."""


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
    timeout_seconds: float = 300.0  # give up when the worker makes no progress for this long
    seed: int = 7

    def __post_init__(self) -> None:
        if self.workloads < 1 or self.samples_per_workload < 2:
            raise ValueError("need at least 1 workload and 2 samples per workload")
        if self.load_rate <= 0 or self.load_seconds <= 0 or self.interval_seconds <= 0:
            raise ValueError("load rate, load seconds and the interval must be positive")
        if self.decision_interval_seconds <= 0 or not 0 < self.hot_share <= 1:
            raise ValueError("decision interval must be positive and hot share in (0, 1]")


# --- records ---------------------------------------------------------------------------------


@dataclass
class Fleet:
    """``workloads`` on nodes of 25: per node one high-priority workload that spikes when the node
    turns hot, two large low-priority ones (what the policy should move off) and small ones."""

    workloads: int
    workloads_per_node: int = WORKLOADS_PER_NODE
    seed: int = 7
    base: list[float] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.base = [self._base_cores(i % self.workloads_per_node, rng) for i in range(self.workloads)]

    @property
    def nodes(self) -> int:
        return math.ceil(self.workloads / self.workloads_per_node)

    @staticmethod
    def _base_cores(slot: int, rng: random.Random) -> float:
        if slot == 0:
            return 0.5
        if slot in (1, 2):
            return 2.0
        return 0.06 + 0.08 * rng.random()

    @staticmethod
    def priority(slot: int) -> int:
        return 900 if slot == 0 else 10 if slot in (1, 2) else (100, 200, 300, 500)[slot % 4]

    def cores(self, w: int, at: float, hot: bool) -> float:
        slot = w % self.workloads_per_node
        if slot == 0 and hot:
            return 9.5
        daily = 1.0 + 0.25 * math.sin(2 * math.pi * (at / 86400.0) + w)
        noise = 1.0 + 0.1 * math.sin(at * 0.37 + w * 1.7)
        return self.base[w] * daily * noise

    def workload(self, w: int, at: float, interval: float, hot: bool = False) -> dict[str, Any]:
        slot, node = w % self.workloads_per_node, w // self.workloads_per_node
        cores = self.cores(w, at, hot)
        return {
            "schema_version": 1,
            "workload_id": f"wl-{w:06d}",
            "node_id": f"node-{node:05d}",
            "kind": ("vm", "container", "function")[w % 3],
            "driver": "sim",
            "sampled_at": at,
            "interval_seconds": interval,
            "cpu_cores_used": cores,
            "cpu_ratio": min(1.0, cores / 16.0),
            "mem_used_bytes": int((1.0 if slot in (1, 2) else 0.25) * GiB * (1.0 + 0.02 * math.sin(at / 600 + w))),
            "io_bytes_per_second": 2e5 * (1.0 + math.sin(at / 97.0 + w)),
            "app": f"app-{w % 50}",
            "user": f"user-{w % 20}",
            "priority": self.priority(slot),
            "started_at": 1_700_000_000.0 + 3600.0 * w,
        }

    def node(self, n: int, at: float, interval: float, hot: bool = False) -> dict[str, Any]:
        first = n * self.workloads_per_node
        hosted = range(first, min(first + self.workloads_per_node, self.workloads))
        cores = 0.3 + sum(self.cores(w, at, hot and w == first) for w in hosted)
        return {
            "schema_version": 1,
            "node_id": f"node-{n:05d}",
            "sampled_at": at,
            "interval_seconds": interval,
            "cpu_ratio": min(1.0, cores / 16.0),
            "mem_used_bytes": 14 * GiB,
            "mem_total_bytes": 64 * GiB,
            "disk_read_bytes_per_second": 1e6,
            "disk_write_bytes_per_second": 2e6,
            "net_rx_bytes_per_second": 3e6,
            "net_tx_bytes_per_second": 1e6,
            "capacity": {"cpu_cores": 16, "mem_bytes": 64 * GiB, "io_bytes_per_second": 1e9},
            "fingerprint": {
                "arch": "x86_64",
                "cpu_model": "bench",
                "flags_digest": "0123abcd",
                "cores": 16,
                "memory_class": "64Gi",
                "drivers": {"sim": "1"},
                "labels": {},
                "pool": f"pool-{n // NODES_PER_POOL:03d}",
                "zone": "z1",
            },
            "workloads": [f"wl-{w:06d}" for w in hosted],
            "executor_endpoint": f"127.0.0.1:{20000 + n}",
        }


def check_contracts(fleet: Fleet) -> None:
    """The generated records are valid contract records (encoded once through the validating codec)."""
    codec("workload_usage").encode(fleet.workload(0, 1_800_000_000.0, 1.0, hot=True))
    codec("node_usage").encode(fleet.node(0, 1_800_000_000.0, 1.0, hot=True))


# --- Kafka plumbing --------------------------------------------------------------------------


@contextmanager
def private_topics(settings: Settings, tag: str) -> Iterator[Settings]:
    """Every contract topic under a fresh prefix; on exit (also on Ctrl-C) every topic under that prefix
    is deleted, the workers' internal ones (Faust changelogs, named after the worker id) included."""
    prefix = f"bench-{tag}-{uuid.uuid4().hex[:8]}."
    s = settings.replace(topic_prefix=prefix)
    try:
        create_topics(s)
        yield s
    finally:
        try:
            delete_prefixed(s)
        except (KafkaException, TopicAdminError) as exc:  # a dead broker must not hide the benchmark's own error
            log.warning("could not delete the benchmark topics %s*: %s", prefix, exc)


def delete_prefixed(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Delete every topic whose name starts with ``settings.topic_prefix`` (never the default prefix)."""
    prefix = settings.topic_prefix
    if not prefix.startswith("bench-"):
        raise TopicAdminError(f"refusing to delete topics under {prefix!r}: not a benchmark prefix")
    admin = AdminClient({**settings.confluent_config(), "log_level": 4})
    doomed = [t for t in admin.list_topics(timeout=timeout).topics if t.startswith(prefix)]
    if doomed:
        for fut in admin.delete_topics(doomed, request_timeout=timeout).values():
            try:
                fut.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
    return doomed


def producer(settings: Settings) -> Producer:
    """An idempotent ``acks=all`` producer that batches (and may buffer a million records)."""
    return Producer(
        {
            **settings.confluent_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 1_000_000,
        }
    )


def send(p: Producer, topic: str, key: bytes, value: bytes) -> None:
    """Produce, waiting for room in the local queue rather than failing."""
    while True:
        try:
            p.produce(topic, key=key, value=value)
            return
        except BufferError:
            p.poll(0.05)


def committed(settings: Settings, group: str, role: str, attempts: int = 20) -> int:
    """Sum of ``group``'s committed offsets on the topic of ``role`` (records it has processed).

    Retries retriable broker answers: while the worker's group forms, or the group coordinator
    moves, the broker says NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS for a moment.
    """
    tps = [TopicPartition(settings.topic(role), p) for p in range(TOPICS[role].partitions)]
    c = Consumer({**settings.confluent_config(), "group.id": group, "enable.auto.commit": False})
    try:
        for attempt in range(attempts):
            try:
                return sum(max(0, tp.offset) for tp in c.committed(tps, timeout=10))
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                retriable = isinstance(err, KafkaError) and (err.retriable() or err.code() in _COORDINATOR_MOVING)
                if not retriable or attempt == attempts - 1:
                    raise
                time.sleep(min(0.1 * 2**attempt, 2.0))
        raise AssertionError("unreachable")
    finally:
        c.close()


# Answers that mean "ask again shortly": librdkafka does not always flag them retriable here.
_COORDINATOR_MOVING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TRANSPORT,
    }
)


class WorkerProcess:
    """``plba worker`` in its own session, cwd and log; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, settings: Settings, workdir: Path, name: str, **env: str) -> None:
        self.group = f"{settings.topic_prefix}worker"
        self.log_path = workdir / f"{name}.log"
        root = str(Path(__file__).resolve().parents[1])  # run the same code as this process
        full = dict(os.environ)
        full.update({env_var(f): str(getattr(settings, f)) for f in _KAFKA_FIELDS})
        full.update(
            {
                "PLBA_KAFKA_BOOTSTRAP": settings.bootstrap,
                "PLBA_TOPIC_PREFIX": settings.topic_prefix,
                "PLBA_WORKER_ID": self.group,
                "PLBA_WORKER_DISPATCH": "false",
                "PLBA_METRICS_PORT": "0",
                "PLBA_LOG_LEVEL": "WARNING",
                "PYTHONPATH": os.pathsep.join(filter(None, [root, full.get("PYTHONPATH")])),
            }
        )
        full.update(env)
        self.env = {k: v for k, v in env.items()}
        self.proc = start_plba(["worker"], full, self.log_path, cwd=workdir)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the worker has used so far (0 once it is gone)."""
        try:
            times = psutil.Process(self.proc.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise PipelineBenchError(f"the worker exited with {self.proc.returncode}; its log ends:\n{tail}")

    def stop(self) -> None:
        stop_group(self.proc, grace=20.0)


@contextmanager
def worker_process(settings: Settings, workdir: Path, name: str, **env: str) -> Iterator[WorkerProcess]:
    w = WorkerProcess(settings, workdir, name, **env)
    try:
        yield w
    finally:
        w.stop()


def wait_consumed(
    settings: Settings,
    worker: WorkerProcess,
    targets: dict[str, int],
    timeout: float,
    progress: Progress | None = None,
    on_poll: Callable[[float, int], None] | None = None,
) -> None:
    """Poll the worker's committed offsets until they reach ``targets`` (role -> records).

    Gives up when they have not advanced for ``timeout`` seconds: a slow worker on a busy machine
    may take long, a stuck one is reported.
    """
    deadline = time.monotonic() + timeout
    last_report = 0.0
    seen: dict[str, int] = {}
    while True:
        worker.check()
        done = {role: committed(settings, worker.group, role) for role in targets}
        now = time.monotonic()
        if on_poll is not None:
            on_poll(time.perf_counter(), done.get("workload_usage", 0))
        if all(done[r] >= n for r, n in targets.items()):
            return
        if done != seen:
            seen, deadline = done, now + timeout
        elif now > deadline:
            raise PipelineBenchError(f"the worker processed {done} of {targets} and nothing more for {timeout:.0f}s")
        if progress is not None and now - last_report >= 5.0:
            last_report = now
            progress("  worker committed " + ", ".join(f"{r} {done[r]}/{n}" for r, n in targets.items()))
        time.sleep(0.25)


def machine() -> dict[str, Any]:
    import platform

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info
