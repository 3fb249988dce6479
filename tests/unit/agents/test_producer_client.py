"""The third-party client API: validated publishing, nothing sent for an invalid record."""

from __future__ import annotations

import orjson
import pytest
from kafka_fake import FakeKafka

from agents.client import DeliveryError, UsagePublisher
from agents.producer import BufferedProducer
from schemas.errors import ContractError
from schemas.models import WorkloadUsage
from schemas.settings import Settings

NODE = {
    "schema_version": 1, "node_id": "tp-node-1", "sampled_at": 1_750_000_000.0, "interval_seconds": 10,
    "cpu_ratio": 0.42, "mem_used_bytes": 2**30, "mem_total_bytes": 2**33,
    "disk_read_bytes_per_second": 0, "disk_write_bytes_per_second": 1e6,
    "net_rx_bytes_per_second": 5e5, "net_tx_bytes_per_second": 1e5,
    "capacity": {"cpu_cores": 4, "mem_bytes": 2**33, "io_bytes_per_second": 1e9},
    "fingerprint": {"arch": "x86_64", "cpu_model": "Xeon", "flags_digest": "0123456789abcdef", "cores": 4,
                    "memory_class": "8Gi", "drivers": {}, "labels": {}, "pool": "third-party", "zone": "z1"},
    "workloads": ["vm-1"], "executor_endpoint": None,
}  # fmt: skip


def publisher():
    fake = FakeKafka()
    producer = BufferedProducer(client=fake, topic_roles={})
    return UsagePublisher(Settings(topic_prefix="tp."), producer=producer), fake, producer


def test_valid_records_are_published_with_their_key():
    pub, fake, _ = publisher()
    assert pub.publish_node_usage(NODE) == "tp-node-1"
    model = WorkloadUsage(workload_id="vm-1", node_id="tp-node-1", kind="vm", driver="qemu", sampled_at=1.75e9,
                          interval_seconds=10, cpu_cores_used=1.5, cpu_ratio=0.375, mem_used_bytes=2**30,
                          io_bytes_per_second=0.0)  # fmt: skip
    assert pub.publish_workload_usage(model) == "vm-1"
    assert pub.flush(1.0) == 0
    (n, w) = fake.log
    assert (n.topic, n.key, orjson.loads(n.value)) == ("tp.node-usage.v1", b"tp-node-1", NODE)
    assert (w.topic, w.key, orjson.loads(w.value)["kind"]) == ("tp.workload-usage.v1", b"vm-1", "vm")
    pub.confirm(1.0)


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"cpu_ratio": 1.5}, "$.cpu_ratio", "1.5 is greater than the maximum of 1"),
        ({"mem_used_bytes": 2**34}, "$.mem_used_bytes", "exceeds mem_total_bytes"),
        ({"colour": "red"}, "$.colour", "unknown field"),
        ({"node_id": "has space"}, "$.node_id", "does not match pattern"),
        ({"sampled_at": 1.75e12}, "$.sampled_at", ""),
    ],
)
def test_invalid_record_raises_with_the_path_and_nothing_is_sent(change, path, reason):
    pub, fake, producer = publisher()
    with pytest.raises(ContractError) as info:
        pub.publish_node_usage({**NODE, **change})
    assert info.value.path == path and reason in info.value.reason
    assert fake.produce_calls == 0 and producer.stats().sent == 0


def test_missing_field():
    pub, fake, _ = publisher()
    record = {k: v for k, v in NODE.items() if k != "capacity"}
    with pytest.raises(ContractError, match=r"\$\.capacity: required field is missing"):
        pub.publish_node_usage(record)
    assert fake.produce_calls == 0


def test_confirm_raises_when_the_broker_does_not_acknowledge():
    pub, fake, _ = publisher()
    fake.up = False
    pub.publish_node_usage(NODE)
    with pytest.raises(DeliveryError, match="did not confirm 1 record"):
        pub.confirm(0.0)
