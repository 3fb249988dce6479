"""The dispatcher processor: orders in, executor calls out, lifecycle and placements published."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

import faust

from schemas.codec import codec
from schemas.errors import ContractError
from schemas.settings import Settings
from schemas.topics import TOPICS
from streams.dispatcher import Dispatcher, channel_credentials
from streams.live.dispatch import (
    DRY_RUN,
    DUPLICATE,
    EXPIRED,
    IN_PROGRESS,
    RUN,
    SUPERSEDED,
    TERMINAL,
    DispatchBook,
    status_record,
)
from streams.processors.follow import follow_all
from streams.processors.intake import intake
from streams.processors.intake import publish as send

log = logging.getLogger(__name__)

# Migrations run for seconds to minutes: run several at once, one per workload at most (a lock
# per workload: the agent's concurrent actors share the partitions, so two orders for a workload
# could otherwise race, and an older one could win).
CONCURRENCY = 8
# Node usage records per partition read back at start: each node's latest endpoint is in there
# (nodes report every few seconds), without reading days of telemetry.
ENDPOINT_TAIL = 2000
_DRIVER_OF_METHOD = {"live": "qemu", "snapshot": "process", "reroute": "function", "simulated": "sim"}


def register(app: faust.App, settings: Settings, metrics: Any = None, fleet: Any = None) -> DispatchBook:
    endpoints: dict[str, str] = {}
    book = DispatchBook()
    # Dropped once no actor holds or waits for it.
    workload_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
    dispatcher = Dispatcher(endpoints.get, credentials=channel_credentials(settings.tls_dir))
    orders_topic = settings.topic("orders")
    usage_topic = settings.topic("node_usage")
    orders = app.topic(orders_topic, value_type=bytes, key_type=bytes)
    migrations = app.topic(settings.topic("migrations"), value_type=bytes, key_type=bytes)
    placements = app.topic(settings.topic("placements"), value_type=bytes, key_type=bytes)
    dlq = app.topic(settings.topic("dlq"), value_type=bytes, key_type=bytes)
    status_codec, placement_codec = codec("migration_status"), codec("placement")
    order_codec = codec("order", max_bytes=settings.max_record_bytes)
    usage_codec = codec("node_usage", max_bytes=settings.max_record_bytes)

    async def publish(role: str, rec: dict[str, Any]) -> None:
        if role == "placements":
            await send(placements, placement_codec, rec["workload_id"], rec, dlq=dlq, processor="dispatcher")
        else:
            await send(migrations, status_codec, rec["order_id"], rec, dlq=dlq, processor="dispatcher")
            if rec["state"] in TERMINAL:
                if metrics is not None:
                    metrics.record_migration(
                        rec.get("driver") or "unknown", rec["state"], duration_seconds=rec.get("total_seconds"),
                        downtime_seconds=rec.get("downtime_seconds"), transferred_bytes=rec.get("transferred_bytes"),
                    )  # fmt: skip
                if fleet is not None and rec["state"] == "completed":
                    fleet.record_migration(rec["workload_id"], rec["at"])

    @app.task
    async def track_endpoints() -> None:
        # Every node's endpoint, whichever partitions this worker owns: an order for any node may
        # land here. Node-usage dead letters belong to the forecasting processor: invalid records
        # are skipped here, not reported twice.
        await follow_all(settings, usage_topic, TOPICS["node_usage"].partitions, learn_endpoint, tail=ENDPOINT_TAIL)

    async def learn_endpoint(key: bytes | None, value: bytes | None) -> None:
        try:
            rec = usage_codec.decode(value)
        except ContractError:  # the forecasting processor dead-letters it
            return
        endpoints[rec["node_id"]] = rec["executor_endpoint"]

    @app.agent(orders, name="plba.dispatcher", concurrency=CONCURRENCY)
    async def dispatch(stream: Any) -> None:
        async for rec in intake(
            stream, roles={orders_topic: "orders"}, codecs={"orders": order_codec}, dlq_topic=dlq,
            processor="dispatcher", metrics=metrics,
        ):  # fmt: skip
            order = rec.value
            assert order is not None
            lock = workload_locks.get(order["workload_id"])
            if lock is None:
                lock = workload_locks[order["workload_id"]] = asyncio.Lock()
            async with lock:
                await carry_out(order)

    async def carry_out(order: dict[str, Any]) -> None:
        verdict = book.admit(order, time.time())
        if verdict in (DUPLICATE, IN_PROGRESS, DRY_RUN):
            log.info("order %s: %s, not executed", order["order_id"], verdict)
            return
        if verdict in (EXPIRED, SUPERSEDED):
            state, error = (
                ("expired", ("deadline_passed", "the order reached the dispatcher after its deadline"))
                if verdict == EXPIRED
                else ("rejected", ("superseded", "a newer order for this workload was already admitted"))
            )
            log.info("order %s: %s, not executed", order["order_id"], verdict)
            await publish("migrations", status_record(order, state, time.time(), error=error))
            book.finish(order["order_id"], state)
            return
        assert verdict == RUN
        final = None
        in_flight = (
            metrics.migrations_in_flight.labels(_DRIVER_OF_METHOD.get(order["method"], "other")) if metrics else None
        )
        if in_flight is not None:
            in_flight.inc()
        try:
            async for role, out in dispatcher.execute(order):
                await publish(role, out)
                if role == "migrations" and out["state"] in TERMINAL:
                    final = out["state"]
        finally:
            if in_flight is not None:
                in_flight.dec()
            if final is None:
                book.release(order["order_id"])
            else:
                book.finish(order["order_id"], final)

    return book
