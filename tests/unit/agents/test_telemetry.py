"""The telemetry agent with a tiny fake node and injected counters and clocks."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

import orjson
import pytest
from kafka_fake import FakeKafka

from agents.drivers.base import Usage, WorkloadInfo, WorkloadSpec
from agents.fingerprint import KINDS_LABEL, HostInfo
from agents.producer import BufferedProducer
from agents.telemetry import Counters, TelemetryAgent, Tick, TickSchedule
from schemas.codec import codec
from schemas.settings import Settings

GiB = 2**30
HOST = HostInfo("x86_64", "Test CPU @ 2.0GHz", frozenset({"sse4_2", "avx2"}), 8, 32 * GiB)


# --- schedule -------------------------------------------------------------------------------------
def test_schedule_keeps_the_grid_when_a_tick_is_late():
    s = TickSchedule(start=100.0, interval=1.0)
    assert s.take(100.9) is None
    assert s.wait_seconds(100.9) == pytest.approx(0.1)
    t = s.take(101.4)  # 0.4 s late
    assert (t.index, t.due, t.skipped) == (1, 101.0, 0)
    assert s.wait_seconds(101.45) == pytest.approx(0.55)  # next is due at 102.0, not 102.4
    t = s.take(102.0)
    assert (t.index, t.skipped) == (2, 0)


def test_schedule_skips_missed_ticks_without_bunching_and_counts_them():
    s = TickSchedule(start=0.0, interval=2.0)
    assert s.take(2.0).index == 1
    t = s.take(9.5)  # ticks 2, 3 (due 4, 6) missed; 4 (due 8) is the latest due
    assert (t.index, t.due, t.skipped) == (4, 8.0, 2)
    assert s.take(9.6) is None  # no burst of catch-up ticks
    assert s.wait_seconds(9.6) == pytest.approx(0.4)
    assert s.skipped_total == 2


def test_schedule_has_no_drift_over_many_ticks():
    s = TickSchedule(start=1000.0, interval=0.1)
    now = 1000.0
    taken = []
    for _ in range(10_000):
        now += s.wait_seconds(now) + 0.013  # every wake-up is 13 ms late
        t = s.take(now)
        taken.append(t)
    assert [t.index for t in taken] == list(range(1, 10_001))
    assert taken[-1].due == pytest.approx(1000.0 + 10_000 * 0.1)
    assert s.skipped_total == 0


def test_schedule_rejects_bad_interval():
    with pytest.raises(ValueError, match="interval must be a positive"):
        TickSchedule(0.0, 0.0)


# --- fakes ----------------------------------------------------------------------------------------
@dataclass
class Cap:
    cpu_cores: float
    mem_bytes: int
    io_bytes_per_second: float | None = None


class FakeDriver:
    def __init__(self, name: str, kind: str, version: str = "1.0") -> None:
        self.name, self.kind, self._v = name, kind, version

    def version(self) -> str:
        return self._v


@dataclass
class FakeNode:
    node_id: str = "node-1"
    labels: dict[str, str] = field(default_factory=lambda: {"pool": "blue", "zone": "z1"})
    capacity: Cap | None = None
    drivers: dict[str, FakeDriver] = field(default_factory=lambda: {"sim": FakeDriver("sim", "container")})
    endpoint: str | None = "127.0.0.1:50051"
    workloads: list[WorkloadInfo] = field(default_factory=list)
    usage: dict[str, tuple[float, int, float]] = field(default_factory=dict)
    fail: bool = False

    def add(self, wid: str, cpu: float, mem: int, io: float = 0.0, **spec: object) -> None:
        s = WorkloadSpec(workload_id=wid, kind="container", driver="sim", **spec)  # type: ignore[arg-type]
        self.workloads.append(WorkloadInfo(s, "running", 500.0))
        self.usage[wid] = (cpu, mem, io)

    def list_workloads(self) -> list[WorkloadInfo]:
        return list(self.workloads)

    def usage_all(self, now: float) -> dict[str, Usage]:
        if self.fail:
            raise RuntimeError("driver exploded")
        return {w: Usage(w, now, c, m, i) for w, (c, m, i) in self.usage.items()}


class FakeSampler:
    """Counters advancing by fixed amounts per read (1 s apart on the monotonic clock)."""

    def __init__(self) -> None:
        self.c = Counters(
            at=0.0, cpu_busy_seconds=0.0, cpu_total_seconds=0.0, mem_total_bytes=32 * GiB,
            mem_used_bytes=10 * GiB, disk_read_bytes=0, disk_write_bytes=0, net_rx_bytes=0, net_tx_bytes=0,
            proc_cpu_seconds=0.0, proc_rss_bytes=100 * 2**20, proc_read_bytes=0, proc_write_bytes=0,
        )  # fmt: skip
        self.step = dict(
            at=1.0, cpu_busy_seconds=2.0, cpu_total_seconds=8.0, disk_read_bytes=1000, disk_write_bytes=3000,
            net_rx_bytes=500, net_tx_bytes=700, proc_cpu_seconds=0.05, proc_read_bytes=0, proc_write_bytes=4000,
        )  # fmt: skip
        self.reads = 0

    def read(self) -> Counters:
        if self.reads:
            self.c = dataclasses.replace(self.c, **{k: getattr(self.c, k) + v for k, v in self.step.items()})
        self.reads += 1
        return self.c


def make_agent(node: FakeNode, **kw):
    fake = FakeKafka()
    producer = BufferedProducer(client=fake, topic_roles={})
    settings = Settings(topic_prefix="t.")
    agent = TelemetryAgent(
        node, settings, producer, interval=1.0, sampler=FakeSampler(), host=HOST, clock=lambda: 1_750_000_000.0, **kw
    )
    agent.begin()
    return agent, producer, fake


def published(producer: BufferedProducer, fake: FakeKafka) -> dict[str, list[dict]]:
    producer.pump()
    out: dict[str, list[dict]] = {}
    for m in fake.log:
        out.setdefault(m.topic, []).append(orjson.loads(m.value))
    return out


# --- host mode ------------------------------------------------------------------------------------
def test_host_node_reports_host_figures_and_workloads():
    node = FakeNode()
    node.add("w1", 0.5, 256 * 2**20, 1e6, app="shop", user="ann", priority=70)
    node.add("w2", 1.5, 512 * 2**20)
    agent, producer, fake = make_agent(node)
    assert agent.run_tick(Tick(1, 1.0, 0)) == 3
    out = published(producer, fake)
    (n,) = out["t.node-usage.v1"]
    codec("node_usage").validate(n)
    assert n["cpu_ratio"] == pytest.approx(2.0 / 8.0)
    assert (n["mem_used_bytes"], n["mem_total_bytes"]) == (10 * GiB, 32 * GiB)
    assert n["disk_read_bytes_per_second"] == 1000 and n["disk_write_bytes_per_second"] == 3000
    assert n["net_rx_bytes_per_second"] == 500 and n["net_tx_bytes_per_second"] == 700
    assert n["capacity"] == {"cpu_cores": 8.0, "mem_bytes": 32 * GiB, "io_bytes_per_second": 1e9}
    assert n["workloads"] == ["w1", "w2"]
    assert n["executor_endpoint"] == "127.0.0.1:50051"
    fp = n["fingerprint"]
    assert (fp["pool"], fp["zone"], fp["cores"], fp["memory_class"]) == ("blue", "z1", 8, "32Gi")
    assert fp["drivers"] == {"sim": "1.0"} and fp["labels"][KINDS_LABEL] == "container"
    w1, w2 = out["t.workload-usage.v1"]
    codec("workload_usage").validate(w1)
    assert (w1["workload_id"], w1["app"], w1["user"], w1["priority"]) == ("w1", "shop", "ann", 70)
    assert w1["cpu_ratio"] == pytest.approx(0.5 / 8) and w1["io_bytes_per_second"] == 1e6
    assert "app" not in w2 and w2["cpu_cores_used"] == 1.5
    assert n["seq"] == w1["seq"] == agent.seq_base + 1


def test_capacity_at_least_the_host_means_host_figures():
    node = FakeNode(capacity=Cap(16, 64 * GiB, 5e8))
    agent, producer, fake = make_agent(node)
    agent.run_tick(Tick(1, 1.0, 0))
    (n,) = published(producer, fake)["t.node-usage.v1"]
    assert n["cpu_ratio"] == pytest.approx(0.25)
    assert n["capacity"] == {"cpu_cores": 8.0, "mem_bytes": 32 * GiB, "io_bytes_per_second": 5e8}


# --- sliced mode ----------------------------------------------------------------------------------
def test_sliced_node_reports_its_workloads_plus_overhead_against_its_capacity():
    node = FakeNode(capacity=Cap(2.0, 4 * GiB, 1e8))
    node.add("w1", 0.5, GiB, 2e6)
    node.add("w2", 0.25, GiB // 2, 1e6)
    agent, producer, fake = make_agent(node)
    agent.run_tick(Tick(1, 1.0, 0))
    out = published(producer, fake)
    (n,) = out["t.node-usage.v1"]
    # (0.5 + 0.25 workloads + 0.05 own CPU) / 2 cores; not the host's 2/8 busy figure.
    assert n["cpu_ratio"] == pytest.approx(0.8 / 2.0)
    assert n["mem_used_bytes"] == GiB + GiB // 2 + 100 * 2**20
    assert n["mem_total_bytes"] == 4 * GiB
    total_io = sum(n[k] for k in ("disk_read_bytes_per_second", "disk_write_bytes_per_second",
                                  "net_rx_bytes_per_second", "net_tx_bytes_per_second"))  # fmt: skip
    assert total_io == pytest.approx(3e6 + 4000)  # workloads + own disk writes, no host traffic
    assert n["capacity"] == {"cpu_cores": 2.0, "mem_bytes": 4 * GiB, "io_bytes_per_second": 1e8}
    assert n["fingerprint"]["cores"] == 2 and n["fingerprint"]["memory_class"] == "4Gi"
    w1 = out["t.workload-usage.v1"][0]
    assert w1["cpu_ratio"] == pytest.approx(0.25)


def test_sliced_node_clamps_to_its_capacity():
    node = FakeNode(capacity=Cap(1.0, GiB))
    node.add("w1", 3.0, 2 * GiB)
    agent, producer, fake = make_agent(node)
    agent.run_tick(Tick(1, 1.0, 0))
    out = published(producer, fake)
    (n,) = out["t.node-usage.v1"]
    assert n["cpu_ratio"] == 1.0 and n["mem_used_bytes"] == GiB
    assert out["t.workload-usage.v1"][0]["cpu_ratio"] == 1.0


# --- robustness -----------------------------------------------------------------------------------
def test_seq_follows_tick_index_so_skipped_ticks_leave_gaps():
    node = FakeNode()
    agent, producer, fake = make_agent(node)
    for tick in (Tick(1, 1.0, 0), Tick(2, 2.0, 0), Tick(5, 5.0, 2)):
        agent.run_tick(tick)
    seqs = [r["seq"] - agent.seq_base for r in published(producer, fake)["t.node-usage.v1"]]
    assert seqs == [1, 2, 5]


def test_invalid_workload_figures_are_not_published_and_the_rest_is():
    node = FakeNode()
    node.add("good", 0.5, GiB)
    node.add("bad", float("nan"), GiB)
    agent, producer, fake = make_agent(node)
    assert agent.run_tick(Tick(1, 1.0, 0)) == 2
    out = published(producer, fake)
    assert [w["workload_id"] for w in out["t.workload-usage.v1"]] == ["good"]
    assert agent.invalid == 1
    assert len(out["t.node-usage.v1"]) == 1


def test_a_failing_driver_does_not_stop_node_telemetry():
    node = FakeNode(fail=True)
    node.add("w1", 0.5, GiB)
    agent, producer, fake = make_agent(node)
    agent.run_tick(Tick(1, 1.0, 0))
    out = published(producer, fake)
    assert "t.workload-usage.v1" not in out
    assert out["t.node-usage.v1"][0]["workloads"] == ["w1"]


def test_stopped_workloads_are_not_reported_as_hosted():
    node = FakeNode()
    node.add("w1", 0.5, GiB)
    node.add("w2", 0.5, GiB)
    node.workloads[1].state = "stopped"
    agent, producer, fake = make_agent(node)
    agent.run_tick(Tick(1, 1.0, 0))
    out = published(producer, fake)
    assert out["t.node-usage.v1"][0]["workloads"] == ["w1"]
    assert [w["workload_id"] for w in out["t.workload-usage.v1"]] == ["w1"]


def test_sampling_with_the_broker_down_buffers_instead_of_failing():
    node = FakeNode()
    node.add("w1", 0.5, GiB)
    agent, producer, fake = make_agent(node)
    fake.up = False
    for k in range(1, 6):
        agent.run_tick(Tick(k, float(k), 0))
    s = producer.stats()
    assert s.sent == 10 and s.delivered == 0 and s.dropped_overflow == 0
    fake.up = True
    producer.pump()
    producer.pump()
    assert producer.stats().delivered == 10


def test_run_samples_until_stopped():
    node = FakeNode()
    fake = FakeKafka()
    producer = BufferedProducer(client=fake, topic_roles={})
    agent = TelemetryAgent(node, Settings(topic_prefix="t."), producer, interval=0.05, host=HOST)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        while agent.samples < 2:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(main())
    out = published(producer, fake)
    assert len(out["t.node-usage.v1"]) >= 2
    codec("node_usage").validate(out["t.node-usage.v1"][0])


def test_bad_capacity_is_rejected_with_the_node_named():
    node = FakeNode(capacity=Cap(0.0, GiB))
    agent, _, _ = make_agent(node)
    with pytest.raises(ValueError, match="node node-1: capacity must be positive"):
        agent.run_tick(Tick(1, 1.0, 0))
