"""Helpers of the node-side integration tests: read a whole topic up to its end offsets."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from schemas.settings import Settings


@dataclass
class Rec:
    key: str | None
    value: dict | None
    partition: int
    offset: int
    headers: list


def read_all(settings: Settings, role: str, timeout: float = 60.0) -> list[Rec]:
    """Every record of the topic, from the beginning to the end offsets at call time, in order per partition."""
    topic = settings.topic(role)
    c = Consumer(
        {
            **settings.confluent_config(),
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        meta = c.list_topics(topic, timeout=30)
        parts = list(meta.topics[topic].partitions)
        ends = {}
        for p in parts:
            for attempt in range(100):
                try:
                    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                    break
                except KafkaException as exc:  # no leader yet just after the topic was created
                    if exc.args[0].code() != KafkaError.NOT_LEADER_FOR_PARTITION or attempt == 99:
                        raise
                    time.sleep(0.2)
            if high > low:
                ends[p] = high
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out: list[Rec] = []
        todo = set(ends)
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    todo.discard(m.partition())
                    continue
                raise RuntimeError(m.error().str())
            if m.offset() >= ends[m.partition()]:
                continue
            if m.offset() + 1 >= ends[m.partition()]:
                todo.discard(m.partition())
            value = m.value()
            out.append(
                Rec(
                    m.key().decode() if m.key() else None,
                    orjson.loads(value) if value else None,
                    m.partition(),
                    m.offset(),
                    list(m.headers() or []),
                )
            )
        assert not todo, f"did not reach the end of {topic} within {timeout} s"
        return out
    finally:
        c.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
