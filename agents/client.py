"""Python client API: publish PLBA records from any program, and read the compacted tables back.

Third parties that want PLBA to see their nodes and workloads publish usage samples in our
schema::

    from agents.client import UsagePublisher
    from schemas.settings import Settings

    with UsagePublisher(Settings(kafka_bootstrap="kafka:9092")) as pub:
        pub.publish_node_usage({...})          # a dict or a schemas.models.NodeUsage
        pub.publish_workload_usage({...})
        pub.flush()

Every record is validated by the contract codec before anything is sent: an invalid record
raises :class:`~schemas.errors.ContractError` naming the JSON path and the reason, and nothing
is sent. Delivery is asynchronous and buffered (:class:`~agents.producer.BufferedProducer`):
``publish_*`` never blocks; ``flush`` waits for the broker's acknowledgements.

:func:`read_table` reads a compacted topic (events, policies) from the beginning to the end
offsets it had when the call started: the current table, tombstones applied.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError

from agents.producer import BufferedProducer, BufferLimits, LibrdkafkaLog, ProducerStats
from schemas import registry
from schemas.codec import codec
from schemas.errors import ContractError
from schemas.models import Model
from schemas.settings import Settings

__all__ = [
    "DeliveryError",
    "RecordPublisher",
    "Table",
    "TableReadError",
    "UsagePublisher",
    "read_table",
]

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


class DeliveryError(RuntimeError):
    """Kafka did not confirm records within the time given (broker down, topic missing…)."""


class TableReadError(RuntimeError):
    """A compacted topic could not be read (broker unreachable, topic missing)."""


class RecordPublisher:
    """Validating publisher for any contract type (``node_usage``, ``event``, ``policy``…).

    Uses ``producer`` when given (the node process shares one), else builds its own started
    :class:`BufferedProducer` from ``settings``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        producer: BufferedProducer | None = None,
        limits: BufferLimits | None = None,
        name: str = "plba-client",
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self._own = producer is None
        self.producer = producer or BufferedProducer(self.settings, limits=limits, name=name).start()

    def encode(self, type_name: str, record: Model | Mapping[str, Any]) -> tuple[str, str, bytes]:
        """(topic, key, value) of a record; :class:`ContractError` if it breaks the contract."""
        value = codec(type_name, max_bytes=self.settings.max_record_bytes).encode(record)
        obj = record.to_dict() if isinstance(record, Model) else record
        contract = registry.get(type_name)
        return contract.topic_name(self.settings.topic_prefix), contract.key(obj), value

    def publish(
        self, type_name: str, record: Model | Mapping[str, Any], headers: Iterable[tuple[str, bytes]] = ()
    ) -> str:
        """Validate and queue one record; returns its Kafka key. Never blocks."""
        topic, key, value = self.encode(type_name, record)
        self.producer.send(topic, value, key=key, headers=headers)
        return key

    def publish_raw(
        self, type_name: str, key: str, value: bytes | None, headers: Iterable[tuple[str, bytes]] = ()
    ) -> None:
        """Queue an already-encoded value (or a tombstone, ``None``) under ``key``."""
        topic = registry.topic(type_name, self.settings.topic_prefix)
        self.producer.send(topic, value, key=key, headers=headers)

    def flush(self, timeout: float = 10.0) -> int:
        """Wait for acknowledgements; returns how many records are still unconfirmed."""
        return self.producer.flush(timeout)

    def confirm(self, timeout: float = 10.0) -> None:
        """Flush and raise :class:`DeliveryError` unless every record so far was acknowledged."""
        left = self.flush(timeout)
        s = self.producer.stats()
        lost = s.failed + s.dropped_overflow + s.dropped_expired
        if left or lost:
            raise DeliveryError(
                f"Kafka at {self.settings.bootstrap} did not confirm {left + lost} record(s) within {timeout:g} s "
                f"(delivered {s.delivered}, failed {s.failed}); is the broker up and the topic created "
                "(plba topics create)?"
            )

    def stats(self) -> ProducerStats:
        return self.producer.stats()

    def close(self, timeout: float = 10.0) -> ProducerStats:
        """Deliver what can be delivered within ``timeout`` and release the producer we own."""
        if self._own:
            return self.producer.close(timeout)
        self.producer.flush(timeout)
        return self.producer.stats()

    def __enter__(self) -> RecordPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class UsagePublisher(RecordPublisher):
    """Publish node and workload usage samples in PLBA's schema (see the module docstring)."""

    def __init__(self, settings: Settings | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("name", "plba-usage-publisher")
        super().__init__(settings, **kwargs)

    def publish_node_usage(self, record: Model | Mapping[str, Any]) -> str:
        """Validate and queue a node-usage sample (key: node_id)."""
        return self.publish("node_usage", record)

    def publish_workload_usage(self, record: Model | Mapping[str, Any]) -> str:
        """Validate and queue a workload-usage sample (key: workload_id)."""
        return self.publish("workload_usage", record)

    def __enter__(self) -> UsagePublisher:
        return self


# Errors of a partition that has no leader yet (just created, leader moving): worth retrying.
_NO_LEADER_YET = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
    }
)


def _headers(raw: Any) -> Headers:
    """Kafka headers as ``[(name, bytes)]`` (confluent-kafka gives a list, None, or a dict)."""
    items = raw.items() if isinstance(raw, Mapping) else (raw or ())
    return [(str(k), v.encode() if isinstance(v, str) else (v or b"")) for k, v in items]


# --- reading a compacted table --------------------------------------------------------------------
Decoder = Callable[[list[tuple[str, bytes]], bytes], dict[str, Any]]


@dataclass
class Table:
    """The current content of a compacted topic: key -> record, plus what could not be read."""

    topic: str
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid: list[tuple[int, int, str]] = field(default_factory=list)  # (partition, offset, reason)
    read: int = 0


def read_table(settings: Settings, type_name: str, *, decoder: Decoder | None = None, timeout: float = 20.0) -> Table:
    """Read the compacted topic of ``type_name`` up to its current end; last record per key wins.

    A null value (tombstone) deletes its key. ``decoder(headers, value)`` turns a record into a
    dict (default: the contract codec); a :class:`ContractError` from it is collected in
    ``Table.invalid`` and, being the key's latest record, leaves the key without a value.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    topic = registry.topic(type_name, settings.topic_prefix)
    table = Table(topic)
    dec: Decoder = decoder or (lambda _h, v: codec(type_name, max_bytes=settings.max_record_bytes).decode(v))
    consumer = Consumer(
        {
            **settings.confluent_config(),
            "group.id": f"plba-table-reader-{uuid.uuid4().hex[:12]}",  # never commits: no group state
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "socket.timeout.ms": int(min(timeout, 30) * 1000),
        },
        logger=LibrdkafkaLog(f"{__name__}.librdkafka"),
    )
    try:
        try:
            meta = consumer.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise TableReadError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            raise TableReadError(f"topic {topic} does not exist (plba topics create)")
        deadline = time.monotonic() + timeout
        ends: dict[int, int] = {}
        for p in tmeta.partitions:
            while True:
                try:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                    break
                except KafkaException as exc:
                    # Just after creation or a leader change the partition has no leader yet: retry.
                    err = exc.args[0]
                    if not (err.retriable() or err.code() in _NO_LEADER_YET) or time.monotonic() > deadline:
                        raise TableReadError(f"cannot read offsets of {topic}[{p}]: {exc}") from exc
                    time.sleep(0.2)
            if high > low:
                ends[p] = high
        if not ends:
            return table
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        todo = set(ends)
        while todo:
            if time.monotonic() > deadline:
                raise TableReadError(f"reading {topic} did not reach its end within {timeout:g} s")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            p = msg.partition()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    todo.discard(p)
                    continue
                raise TableReadError(f"reading {topic}: {err.str()}")
            offset = msg.offset() or 0
            if p not in todo or offset >= ends[p]:
                continue
            if offset + 1 >= ends[p]:
                todo.discard(p)
            table.read += 1
            raw_key = msg.key()
            if raw_key is None:
                table.invalid.append((p, offset, "record without a key"))
                continue
            key = raw_key.decode(errors="replace")
            value = msg.value()
            if value is None:
                table.records.pop(key, None)
                continue
            try:
                table.records[key] = dec(_headers(msg.headers()), value)
            except ContractError as exc:
                # The latest record of the key is what counts; an invalid one leaves no value.
                table.records.pop(key, None)
                table.invalid.append((p, offset, str(exc)))
    finally:
        consumer.close()
    return table
