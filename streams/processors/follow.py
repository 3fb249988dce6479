"""Following every partition of a topic outside any consumer group.

A Faust agent sees only the partitions its worker is assigned. Some facts every worker needs
whole: which pool a node belongs to (any router may route a workload of any node), and where a
node's executor listens (any dispatcher may carry out an order for any node). Those are read with
a plain aiokafka consumer on all partitions, never committing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from schemas.settings import Settings
from streams.app import kafka_ssl_context

log = logging.getLogger(__name__)

Handler = Callable[[bytes | None, bytes | None], Awaitable[None]]


async def follow_all(
    settings: Settings, topic: str, partitions: int, handle: Handler, *, tail: int | None = None
) -> None:
    """Hand every record of ``topic`` to ``handle`` and keep following it, until cancelled.

    ``tail=None`` reads from the beginning (a compacted topic: the latest record per key);
    ``tail=n`` starts ``n`` records before each partition's end (a long stream, such as node
    usage, whose recent past is all that matters). A broker that is away is retried; a failure
    never ends the worker.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    while True:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", **aiokafka_security(settings),
        )  # fmt: skip
        try:
            await consumer.start()
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            if tail is not None:
                first = await consumer.beginning_offsets(tps)
                ends = await consumer.end_offsets(tps)
                for tp in tps:
                    consumer.seek(tp, max(first[tp], ends[tp] - tail))
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for msgs in batches.values():
                    for m in msgs:
                        await handle(m.key, m.value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the broker may be away: retry, never kill the worker
            log.warning("reading %s failed (%r); retrying", topic, exc)
            await asyncio.sleep(2.0)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """aiokafka's options for the same security as ``Settings.confluent_config()``."""
    protocol = settings.kafka_security_protocol or "PLAINTEXT"
    out: dict[str, Any] = {"security_protocol": protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        out["ssl_context"] = context
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        out.update(
            sasl_mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return out
