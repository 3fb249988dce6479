"""A tiny stand-in for librdkafka's producer: a queue whose outcomes the test decides.

While ``up``, ``poll`` delivers everything queued, in order, into ``log``. While down, messages
wait; ``expire()`` fails the queued ones with ``_MSG_TIMED_OUT`` (what message.timeout.ms does),
``purge()`` fails them with ``_PURGE_QUEUE``. Reports are served on the next ``poll``, like
librdkafka's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError


@dataclass
class FakeMessage:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Any
    cb: Callable[[Any, Any], None] | None


class FakeKafka:
    def __init__(self, capacity: int | None = None) -> None:
        self.queue: list[FakeMessage] = []
        self.reports: list[tuple[FakeMessage, KafkaError | None]] = []
        self.log: list[FakeMessage] = []  # what the "broker" stored, in order
        self.up = True
        self.capacity = capacity
        self.reject: set[bytes] = set()  # values failing permanently (message too large)
        self.produce_calls = 0
        self.purges = 0

    def produce(self, topic: str, *, value=None, key=None, headers=None, on_delivery=None) -> None:  # type: ignore[no-untyped-def]
        self.produce_calls += 1
        if self.capacity is not None and len(self.queue) >= self.capacity:
            raise BufferError("Local: Queue full")
        self.queue.append(FakeMessage(topic, key, value, headers, on_delivery))

    def poll(self, timeout: float = 0.0) -> int:
        if self.up:
            for m in self.queue:
                if m.value in self.reject:
                    self.reports.append((m, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)))
                else:
                    self.log.append(m)
                    self.reports.append((m, None))
            self.queue = []
        served, self.reports = self.reports, []
        for m, err in served:
            if m.cb is not None:
                m.cb(err, m)
        return len(served)

    def expire(self, n: int | None = None) -> None:
        """Time out the ``n`` oldest queued messages (all by default)."""
        n = len(self.queue) if n is None else n
        for m in self.queue[:n]:
            self.reports.append((m, KafkaError(KafkaError._MSG_TIMED_OUT)))
        self.queue = self.queue[n:]

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.purges += 1
        if in_queue:
            for m in self.queue:
                self.reports.append((m, KafkaError(KafkaError._PURGE_QUEUE)))
            self.queue = []

    def flush(self, timeout: float = 0.0) -> int:
        self.poll(0)
        return len(self.queue)

    def __len__(self) -> int:
        return len(self.queue)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
