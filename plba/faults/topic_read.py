"""Read what the fault scenarios count: whole topics up to their end offsets, and a worker's /metrics.

Both retry what a busy or restarting broker answers for a moment (no leader yet, coordinator
moving, a timed-out request), so a count is never short because the broker was slow.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from schemas.settings import Settings
from schemas.topics import TOPICS


class FaultRunError(RuntimeError):
    """A fault scenario could not complete (a process died early, a phase made no progress)."""


@dataclass(frozen=True, slots=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def end_offsets(settings: Settings, role: str, attempts: int = 60) -> dict[int, int]:
    """High watermark of each partition of the topic of ``role``."""
    topic = settings.topic(role)
    c = Consumer({**settings.confluent_config(), "group.id": f"faults-{uuid.uuid4().hex[:8]}"})
    try:
        out = {}
        for p in range(TOPICS[role].partitions):
            for attempt in range(attempts):
                try:
                    out[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    break
                except KafkaException:  # no leader yet, broker restarting: ask again
                    if attempt == attempts - 1:
                        raise
                    time.sleep(0.5)
        return out
    finally:
        c.close()


def read_to_end(settings: Settings, role: str, timeout: float = 120.0) -> list[Rec]:
    """Every record of the topic of ``role`` from the beginning to its end offsets at call time."""
    topic = settings.topic(role)
    ends = {p: high for p, high in end_offsets(settings, role).items() if high > 0}
    c = Consumer(
        {
            **settings.confluent_config(),
            "group.id": f"faults-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.message.max.bytes": 4 * 1024 * 1024,
        }
    )
    out: list[Rec] = []
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        todo = dict(ends)
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise FaultRunError(f"could not read {topic} to its end within {timeout:.0f} s (left: {todo})")
            for m in c.consume(1000, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF or err.retriable():
                        continue
                    raise FaultRunError(f"reading {topic}: {err.str()}")
                p, off = m.partition(), m.offset()
                if p is None or off is None or p not in todo or off >= ends[p]:
                    continue
                out.append(Rec(p, off, m.key(), m.value()))
                if off + 1 >= ends[p]:
                    del todo[p]
        return out
    finally:
        c.close()


def scrape(port: int, timeout: float = 10.0) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A /metrics page on 127.0.0.1 as ``{(sample name, sorted labels): value}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def scrape_when_up(port: int, timeout: float = 120.0) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return scrape(port)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def metric(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= set(lbl))
