"""Decode every record of a Faust stream with the contract codec; route failures to the DLQ.

Processors iterate ``intake(...)`` instead of the raw stream: they only ever see records that
passed their contract, while a bad record is sent to the DLQ (with its coordinates and every
violation), counted, and skipped, so the valid records behind it keep flowing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.cloudevents import event_from_kafka, is_cloudevent
from schemas.codec import Codec, check_clock
from schemas.errors import ContractError
from streams.dlq import encode_envelope

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    role: str  # topic role (schemas.topics.TOPICS key)
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: dict[str, Any] | None  # None: a tombstone on a compacted topic
    timestamp: float | None  # broker/producer timestamp, seconds (Faust converts from ms)


async def intake(
    stream: Any,
    *,
    roles: Mapping[str, str],
    codecs: Mapping[str, Codec],
    dlq_topic: Any,
    processor: str,
    metrics: Any = None,
    tombstones: frozenset[str] = frozenset(),
    owns_dlq: frozenset[str] | None = None,
) -> AsyncIterator[Record]:
    """Yield decoded records of ``stream`` (a Faust stream); ``roles`` maps topic name → role.

    Several processors read some topics (node usage feeds forecasting, decisions and the
    dispatcher); exactly one of them owns each topic's dead letters, so a bad record is written
    to the DLQ and counted once. ``owns_dlq`` names the roles this processor owns (default: all);
    the others skip bad records silently.
    """
    async for event in stream.events():
        rec = await decode_event(event, roles, codecs, dlq_topic, processor, metrics, tombstones, owns_dlq)
        if rec is not None:
            yield rec


async def decode_event(
    event: Any,
    roles: Mapping[str, str],
    codecs: Mapping[str, Codec],
    dlq_topic: Any,
    processor: str,
    metrics: Any = None,
    tombstones: frozenset[str] = frozenset(),
    owns_dlq: frozenset[str] | None = None,
) -> Record | None:
    """One Faust event as a decoded :class:`Record`, or None when it broke its contract (then sent
    to the DLQ if this processor owns its role)."""
    msg = event.message
    role = roles.get(msg.topic, "")
    raw = event.value
    value: dict[str, Any] | None
    try:
        if role == "events" and is_cloudevent(msg.headers):
            # The events topic also takes CloudEvents (Kafka binding), e.g. from CI/CD systems.
            value = event_from_kafka(msg.headers, raw, now=time.time(), max_bytes=codecs[role].max_bytes)
        else:
            value = None if raw is None and role in tombstones else codecs[role].decode(raw)
        if value is not None:
            check_clock(codecs[role].type_name, value, time.time())
    except ContractError as exc:
        if owns_dlq is not None and role not in owns_dlq:
            return None
        if metrics is not None:
            metrics.record_rejected(role, exc.code)
            metrics.record_dlq(role, exc.code)
        log.warning("%s: bad record at %s[%s]@%s: %s", processor, msg.topic, msg.partition, msg.offset, exc)
        await dlq_topic.send(
            key=msg.topic.encode(),
            value=encode_envelope(
                source_topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                key=msg.key,
                value=raw if isinstance(raw, bytes | type(None)) else bytes(raw),
                error=exc,
                processor=processor,
                failed_at=time.time(),
                headers=[(k, v) for k, v in (msg.headers or [])],
            ),
        )
        return None
    if metrics is not None and (owns_dlq is None or role in owns_dlq):
        # Counted by the one processor that owns the topic, so a record counts once per worker.
        metrics.record_consumed(role)
    return Record(role, msg.topic, msg.partition, msg.offset, msg.key, value, msg.timestamp)


async def publish(
    topic: Any, enc: Codec, key: str, rec: dict[str, Any], *, dlq: Any, processor: str, metrics: Any = None
) -> bool:
    """Send one of our own records; if it breaks its contract (a bug), it goes to the DLQ instead.

    A processor never crashes on its own output: the record is kept (as the DLQ's value, with the
    violations), logged at error level and counted; the stream goes on. Returns True when sent.
    """
    try:
        value = enc.encode(rec)
    except ContractError as exc:
        name = topic.get_topic_name()
        log.error("%s: produced an invalid %s record, sent to the DLQ: %s", processor, enc.type_name, exc)
        raw = orjson.dumps(rec, default=str)
        await dlq.send(key=name.encode(), value=encode_envelope(
            source_topic=name, partition=None, offset=None, key=key.encode(), value=raw, error=exc,
            processor=processor, failed_at=time.time(),
        ))  # fmt: skip
        if metrics is not None:
            metrics.record_dlq(enc.type_name, exc.code)
        return False
    await topic.send(key=key.encode(), value=value)
    return True
