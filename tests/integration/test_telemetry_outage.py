"""A broker stopped for 30 s while the agent runs: afterwards every sample arrives exactly once, in order.

Runs its own private broker (other ports, a temporary data directory) so that stopping it
disturbs no one else; the broker restarts on the same data directory.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from dataclasses import dataclass, field

import pytest
from agent_kafka_io import free_port, read_all

from agents.drivers.base import Usage, WorkloadInfo, WorkloadSpec
from agents.producer import BufferedProducer, BufferLimits
from agents.telemetry import TelemetryAgent
from plba import localkafka
from plba.topic_admin import create_topics
from schemas.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

OUTAGE_SECONDS = 30.0
INTERVAL = 0.5


@dataclass
class SmallNode:
    node_id: str = "outage-node"
    labels: dict[str, str] = field(default_factory=lambda: {"pool": "it"})
    capacity: None = None
    drivers: dict = field(default_factory=dict)
    endpoint: str | None = None
    workloads: list[WorkloadInfo] = field(default_factory=list)

    def __post_init__(self) -> None:
        for wid in ("w-a", "w-b"):
            spec = WorkloadSpec(workload_id=wid, kind="container", driver="sim")
            self.workloads.append(WorkloadInfo(spec, "running", time.time()))

    def list_workloads(self):
        return list(self.workloads)

    def usage_all(self, now):
        return [Usage(w.spec.workload_id, now, 0.25, 64 * 2**20, 1000.0) for w in self.workloads]


@pytest.fixture
def private_broker(tmp_path):
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    base = Settings.from_env()
    s = base.replace(
        kafka_bootstrap="",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        data_dir=tmp_path / "kafka",
        topic_prefix="outage.",
    )
    if not localkafka.paths(s).libs.is_dir():
        pytest.skip("Kafka jars are not cached (plba kafka up fetches them)")
    localkafka.up(s, log=lambda _m: None)
    try:
        create_topics(s)
        yield s
    finally:
        localkafka.down(s, log=lambda _m: None)


@pytest.mark.parametrize(
    "limits",
    [
        pytest.param(BufferLimits(), id="librdkafka-holds"),
        # librdkafka gives up on its records during the outage: they come back and are re-sent in order.
        pytest.param(BufferLimits(stall_seconds=2.0, delivery_timeout_seconds=8.0), id="requeued-after-timeout"),
    ],
)
def test_outage_of_30s_loses_nothing_and_duplicates_nothing(private_broker, limits):
    s = private_broker
    node = SmallNode()
    producer = BufferedProducer(s, limits=limits).start()
    agent = TelemetryAgent(node, s, producer, interval=INTERVAL)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    runner = threading.Thread(target=lambda: loop.run_until_complete(agent.run(stop)), name="agent")
    runner.start()
    try:
        time.sleep(3.0)
        assert producer.stats().delivered > 0
        localkafka.down(s, log=lambda _m: None)
        during = agent.samples
        time.sleep(OUTAGE_SECONDS)
        sampled_in_outage = agent.samples - during
        mid = producer.stats()
        assert mid.buffered + mid.inflight >= sampled_in_outage  # held, not lost
        localkafka.up(s, log=lambda _m: None)
        time.sleep(5.0)
    finally:
        loop.call_soon_threadsafe(stop.set)
        runner.join(timeout=10)
        loop.close()
    left = producer.flush(90)
    stats = producer.close(timeout=5)
    assert left == 0, stats
    lost = (stats.failed, stats.dropped_overflow, stats.dropped_expired, stats.dropped_overtaken, stats.lost_at_close)
    assert lost == (0, 0, 0, 0, 0)
    if limits.delivery_timeout_seconds < OUTAGE_SECONDS:
        assert stats.requeued > 0  # the path under test was taken
    assert agent.schedule is not None and agent.schedule.skipped_total == 0
    assert sampled_in_outage >= OUTAGE_SECONDS / INTERVAL * 0.9

    records = read_all(s, "node_usage")
    seqs = [r.value["seq"] for r in records if r.key == node.node_id]
    assert len(seqs) == agent.samples
    # Exactly once and in order: consecutive tick numbers, no gap, no repeat.
    assert seqs == list(range(seqs[0], seqs[0] + agent.samples))
    workloads = read_all(s, "workload_usage")
    for wid in ("w-a", "w-b"):
        wseqs = [r.value["seq"] for r in workloads if r.key == wid]
        assert wseqs == seqs, wid
