"""The node figures an agent publishes through the real broker match psutil over the same intervals."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field

import psutil
import pytest
from agent_kafka_io import read_all

from agents.producer import BufferedProducer
from agents.telemetry import TelemetryAgent, Tick
from schemas.codec import codec

pytestmark = pytest.mark.kafka

MiB = 2**20


@dataclass
class HostNode:
    """A node without a configured capacity: it reports the host's own figures."""

    node_id: str = "it-host-node"
    labels: dict[str, str] = field(default_factory=lambda: {"pool": "it", "zone": "local"})
    capacity: None = None
    drivers: dict = field(default_factory=dict)
    endpoint: str | None = "127.0.0.1:50051"

    def list_workloads(self):
        return []

    def usage_all(self, now):
        return []


@dataclass
class Ref:
    at: float
    cpu_percent: float
    mem_percent: float
    mem_total: int
    disk_read: int
    disk_write: int
    rx: int
    tx: int


def reference() -> Ref:
    vm = psutil.virtual_memory()
    disk = psutil.disk_io_counters()
    nics = {k: v for k, v in psutil.net_io_counters(pernic=True).items() if k != "lo"}
    return Ref(
        time.monotonic(),
        psutil.cpu_percent(interval=None),  # busy % since the previous call: the same window as the agent's
        vm.percent,
        vm.total,
        disk.read_bytes if disk else 0,
        disk.write_bytes if disk else 0,
        sum(n.bytes_recv for n in nics.values()),
        sum(n.bytes_sent for n in nics.values()),
    )


def work(path, chunk: bytes) -> None:
    with open(path, "ab") as f:
        f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    end = time.monotonic() + 0.15
    while time.monotonic() < end:  # some CPU too
        sum(range(10_000))


def test_published_node_figures_match_psutil(kafka_settings, tmp_path):
    node = HostNode()
    producer = BufferedProducer(kafka_settings).start()
    agent = TelemetryAgent(node, kafka_settings, producer, interval=0.5)
    agent.begin()
    refs = [reference()]
    chunk = os.urandom(8 * MiB)
    ticks = 6
    for k in range(1, ticks + 1):
        work(tmp_path / "load.bin", chunk)
        time.sleep(0.3)
        agent.run_tick(Tick(k, 0.0, 0))
        refs.append(reference())
    assert producer.flush(30) == 0
    stats = producer.close()
    assert (stats.delivered, stats.failed, stats.dropped_overflow) == (ticks, 0, 0)

    records = [r.value for r in read_all(kafka_settings, "node_usage") if r.key == node.node_id]
    assert len(records) == ticks
    for rec, ref in zip(records, refs[1:], strict=True):
        codec("node_usage").validate(rec)
        assert rec["mem_total_bytes"] == ref.mem_total
        assert rec["mem_used_bytes"] / rec["mem_total_bytes"] * 100 == pytest.approx(ref.mem_percent, abs=3.0)
        assert rec["capacity"]["cpu_cores"] == psutil.cpu_count()
        assert rec["fingerprint"]["pool"] == "it"
        assert rec["executor_endpoint"] == "127.0.0.1:50051"
    # The agent samples inside run_tick and the test right after it: on a loaded machine the two
    # windows are shifted by a few ms each, so rates are compared over the whole run, where the
    # shifts cancel, rather than tick by tick.
    first, last = refs[0], refs[-1]
    span = last.at - first.at
    published_span = sum(r["interval_seconds"] for r in records)
    assert published_span == pytest.approx(span, rel=0.05, abs=0.1)
    cpu_avg = sum(r["cpu_ratio"] * r["interval_seconds"] for r in records) / published_span
    ref_avg = sum(ref.cpu_percent * (ref.at - prev.at) for prev, ref in itertools.pairwise(refs)) / span / 100.0
    assert cpu_avg == pytest.approx(ref_avg, abs=0.08)
    for fld, cur, prev in (
        ("disk_read_bytes_per_second", last.disk_read, first.disk_read),
        ("disk_write_bytes_per_second", last.disk_write, first.disk_write),
        ("net_rx_bytes_per_second", last.rx, first.rx),
        ("net_tx_bytes_per_second", last.tx, first.tx),
    ):
        published = sum(r[fld] * r["interval_seconds"] for r in records)
        assert published == pytest.approx(cur - prev, rel=0.15, abs=MiB), fld
    # The fsync'ed writes of this test are in the published disk figures.
    written = sum(r["disk_write_bytes_per_second"] * r["interval_seconds"] for r in records)
    assert written >= 0.5 * ticks * len(chunk)
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(seqs[0], seqs[0] + ticks))
