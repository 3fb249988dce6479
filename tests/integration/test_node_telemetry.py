"""The node process end to end: workloads started over gRPC show up in Kafka telemetry with their usage.

A real node (sim and process drivers) runs its executor and the telemetry agent through
``run_node``, exactly as ``plba node`` does, and publishes to the real broker.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer

from agents.executor_client import ExecutorClient
from agents.node import Node, run_node
from agents.producer import BufferedProducer
from agents.telemetry import TelemetryAgent
from schemas import executor_pb2 as pb

pytestmark = pytest.mark.kafka

BUSY = f"{sys.executable} -c \"exec('while True: pass')\""


class Records:
    """Every record of some topics from the beginning, as they arrive."""

    def __init__(self, settings: Any, *roles: str) -> None:
        self.topics = {settings.topic(role): role for role in roles}
        self.by_role: dict[str, list[dict[str, Any]]] = {role: [] for role in roles}
        self._consumer = Consumer(
            {
                **settings.confluent_config(),
                "group.id": f"test-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self._consumer.subscribe(list(self.topics))

    def poll(self, timeout: float = 0.2) -> None:
        for msg in self._consumer.consume(500, timeout):
            if msg.error() is None and msg.value():
                self.by_role[self.topics[msg.topic()]].append(orjson.loads(msg.value()))

    def close(self) -> None:
        self._consumer.close()


@pytest.fixture
def records(kafka_settings: Any) -> Iterator[Records]:
    rec = Records(kafka_settings, "workload_usage", "node_usage")
    yield rec
    rec.close()


def test_workloads_started_over_grpc_appear_in_telemetry(tmp_path, kafka_settings, records):
    settings = kafka_settings.replace(node_interval_seconds=0.5)
    trace = tmp_path / "t.csv"
    trace.write_text("step,a\n0,50\n")

    async def scenario() -> str:
        node = await Node.open("tn1", ["sim", "process"], tmp_path / "tn1", labels={"pool": "p1", "zone": "z1"})
        producer = BufferedProducer(settings).start()
        agent = TelemetryAgent(node, settings, producer)
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            run_node(node, "127.0.0.1:0", services=[agent.run], stop=stop, on_ready=ready.set_result)
        )
        endpoint = await asyncio.wait_for(ready, 60)
        try:
            async with ExecutorClient(endpoint, timeout_seconds=30) as client:
                params = {"trace": str(trace), "series": "a"}
                await client.start_workload_proto(
                    pb.WorkloadSpec(workload_id="sim-1", driver="sim", cpu_cores=2, params=params)
                )
                await client.start_workload_proto(
                    pb.WorkloadSpec(workload_id="busy-1", driver="process", params={"command": BUSY, "port": "none"})
                )
                for _ in range(300):  # until the agent has published samples of both with usage
                    await asyncio.to_thread(records.poll)
                    samples = records.by_role["workload_usage"]
                    busy = [s for s in samples if s["workload_id"] == "busy-1" and s["cpu_cores_used"] > 0]
                    sim = [s for s in samples if s["workload_id"] == "sim-1"]
                    if busy and sim:
                        break
                assert sim and busy, "no usage of both workloads in Kafka"
                assert all(s["cpu_cores_used"] == 1.0 and s["node_id"] == "tn1" for s in sim)
                assert busy[0]["kind"] == "container" and busy[0]["driver"] == "process"
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
            await asyncio.to_thread(producer.close)
        return endpoint

    endpoint = asyncio.run(scenario())
    records.poll(1.0)
    nodes = records.by_role["node_usage"]
    assert nodes and all(n["node_id"] == "tn1" and n["executor_endpoint"] == endpoint for n in nodes)
    assert any({"sim-1", "busy-1"} <= set(n["workloads"]) for n in nodes)
    assert nodes[-1]["fingerprint"]["pool"] == "p1" and set(nodes[-1]["fingerprint"]["drivers"]) == {"sim", "process"}
