"""Duplicate and reordered orders through the real broker and ``plba dispatcher`` processes.

Two ``plba node`` processes publish telemetry (their executor endpoints) under a private topic
prefix; a ``plba dispatcher`` consumes the orders topic. Produced to Kafka: one order twice in a
row and once more after it completed; an older order while a newer one for the same workload
runs (it must not move the workload); a newer and an older order back to back (the dispatcher
keeps one workload's orders in sequence and rejects an order older than one it admitted as
``superseded``, so the older one must never win: ``reorder_races_won_by_older``); an older order after all
that (it must not move the workload). Then the first dispatcher stops and a second one (another
consumer group: a book that never saw any of it) reads every order again, so the executors'
journals alone must keep each order from moving the workload twice.

Counted from the migrations topic (an execution's ``accepted`` step, relayed by every dispatcher
attached to it, see :func:`~plba.faults.executor.executions`) and the
target executors' journals (a ``switched`` per move), and from the instance listings.
``kafka_replays_contradicting`` counts orders whose terminal records disagree between the two
dispatchers (a replayed order must repeat its outcome).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import Consumer

from plba.bench_support import private_topics, producer, send
from plba.faults.executor import (
    OUTCOME_TIMEOUT_SECONDS,
    executions,
    moves,
    order,
    pair,
    start_nodes,
    start_workload,
    workload_spec,
)
from plba.localkafka import broker_ready
from plba.procs import plba_process
from schemas.codec import codec
from schemas.settings import Settings, env_var

if TYPE_CHECKING:
    from plba.faults.executor import Tally

REPO = Path(__file__).resolve().parents[2]
TERMINAL = ("completed", "failed", "rolled_back", "rejected", "expired")
KAFKA_FIELDS = (
    "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password",
    "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile",
)  # fmt: skip
READY_TIMEOUT_SECONDS = 240.0  # a Faust app joins its group slowly on a busy machine


def kafka_env(settings: Settings) -> dict[str, str]:
    env = {env_var(f): str(getattr(settings, f)) for f in KAFKA_FIELDS}
    env.update({env_var("kafka_bootstrap"): settings.bootstrap, env_var("topic_prefix"): settings.topic_prefix})
    return env


@contextlib.contextmanager
def dispatcher_process(settings: Settings, root: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """``plba dispatcher`` in its own consumer group (worker id ``name``), stopped afterwards."""
    env = {**os.environ, **kafka_env(settings), env_var("worker_id"): f"{settings.topic_prefix}{name}",
           env_var("metrics_port"): "0", env_var("log_level"): "INFO"}  # fmt: skip
    with plba_process(["dispatcher"], env, root / f"{name}.log", cwd=root) as proc:
        yield proc


class Migrations:
    """The migrations topic read from its beginning, kept open (records accumulate)."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(
            {
                **settings.confluent_config(),
                "group.id": f"faults-reader-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([settings.topic("migrations")])
        self.records: list[dict[str, Any]] = []

    def of(self, order_id: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("order_id") == order_id]

    def terminal(self, order_id: str) -> list[str]:
        return [str(r["state"]) for r in self.of(order_id) if r.get("state") in TERMINAL]

    def outcomes(self, order_id: str) -> list[str]:
        """``state`` or ``state:error-code`` of each terminal record of the order."""
        out = []
        for r in self.of(order_id):
            if r.get("state") in TERMINAL:
                code = (r.get("error") or {}).get("code")
                out.append(f"{r['state']}:{code}" if code else str(r["state"]))
        return out

    def wait(self, what: str, done: Callable[[], bool], timeout: float, alive: subprocess.Popen[bytes]) -> None:
        """Read until ``done()``; RuntimeError on timeout or if the dispatcher died."""
        deadline = time.monotonic() + timeout
        while not done():
            if alive.poll() is not None:
                raise RuntimeError(f"the dispatcher exited ({alive.returncode}) waiting for {what}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"never happened within {timeout:.0f} s: {what}")
            msg = self.consumer.poll(0.5)
            value = None if msg is None or msg.error() else msg.value()
            if value is None:
                continue  # transient errors (coordinator moves) are retried by polling on
            with contextlib.suppress(ValueError):
                self.records.append(orjson.loads(value))

    def close(self) -> None:
        self.consumer.close()


def produce(settings: Settings, orders: list[dict[str, Any]], key: str = "") -> None:
    """Orders keyed by their workload (as the decision stream keys them), or by ``key``."""
    enc = codec("order")
    p = producer(settings)
    for o in orders:
        send(p, settings.topic("orders"), (key or o["workload_id"]).encode(), enc.encode(o))
    if p.flush(60) != 0:
        raise RuntimeError("orders not delivered to the broker within 60 s")


def ghost(driver: str) -> dict[str, Any]:
    """An order for a workload no node has: the executor refuses it (unknown_workload)."""
    return {**order(driver, "na", "nb"), "workload_id": "ghost"}


async def kafka_orders(settings: Settings, root: Path, tally: Tally) -> None:
    if not await asyncio.to_thread(broker_ready, settings.bootstrap, 5.0):
        tally.add("kafka_orders_skipped")
        tally.say(f"orders through Kafka skipped: no broker answers at {settings.bootstrap}")
        return
    root.mkdir(parents=True, exist_ok=True)
    with private_topics(settings, "faults") as s:
        telemetry = ("--interval", "1", "--labels", "pool=faults")
        async with pair(s, root, "process", env=kafka_env(s), telemetry=telemetry) as (na, nb):
            await start_nodes(na, nb)
            await start_workload(na, workload_spec("process", root))
            reader = Migrations(s)
            try:
                await _scenario(s, root, tally, reader, na, nb)
            finally:
                reader.close()


async def _scenario(s: Settings, root: Path, tally: Tally, reader: Migrations, na: Any, nb: Any) -> None:
    def run(fn: Callable[..., Any], *args: Any) -> Any:
        return asyncio.to_thread(fn, *args)

    def started(order_id: str) -> bool:
        return any(r.get("state") != "accepted" for r in reader.of(order_id))

    first = order("process", "na", "nb", deadline=300.0)
    newer = order("process", "nb", "na", deadline=300.0)
    older = order("process", "nb", "na", issued_ago=30.0, deadline=300.0)
    race_newer = order("process", "na", "nb", deadline=300.0)
    race_older = order("process", "na", "nb", issued_ago=30.0, deadline=300.0)
    late = order("process", "na", "nb", issued_ago=60.0, deadline=300.0)  # the workload is on nb by then
    expected = {first["order_id"]: 1, newer["order_id"]: 1, older["order_id"]: 0, late["order_id"]: 0}
    race = (race_newer["order_id"], race_older["order_id"])
    every = [*expected, *race]
    with dispatcher_process(s, root, "d1") as d1:
        # Ready once an order for a missing workload comes back refused by the executor itself.
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            probe = ghost("process")
            await run(produce, s, [probe])
            with contextlib.suppress(RuntimeError):
                await run(reader.wait, "a probe answered", lambda p=probe: bool(reader.terminal(p["order_id"])), 20, d1)
            codes = [(r.get("error") or {}).get("code") for r in reader.of(probe["order_id"])]
            if "unknown_workload" in codes:
                break
            if time.monotonic() > deadline or d1.poll() is not None:
                raise RuntimeError(f"the dispatcher never got ready: {codes}")
        # The same order twice in a row, then once more after it completed.
        await run(produce, s, [first, first])
        tally.add("duplicate_orders_sent")
        done = first["order_id"]
        await run(reader.wait, "the order completed", lambda: bool(reader.terminal(done)), OUTCOME_TIMEOUT_SECONDS, d1)
        marker = ghost("process")  # keyed like the order: read after the duplicate
        await run(produce, s, [first, marker], first["workload_id"])
        tally.add("duplicate_orders_sent")
        await run(reader.wait, "the marker", lambda: bool(reader.terminal(marker["order_id"])), 120, d1)
        # An older order arriving while the newer one runs (nb -> na).
        await run(produce, s, [newer])
        await run(reader.wait, "the newer order started", lambda: started(newer["order_id"]), 120, d1)
        await run(produce, s, [older])
        both = (newer["order_id"], older["order_id"])
        await run(reader.wait, "newer and older", lambda: all(reader.terminal(o) for o in both),
                  OUTCOME_TIMEOUT_SECONDS, d1)  # fmt: skip
        # A newer and an older order back to back (na -> nb): the dispatcher runs orders
        # concurrently, but one workload's in sequence: the newer must win, the older is superseded.
        await run(produce, s, [race_newer, race_older])
        await run(reader.wait, "the racing pair", lambda: all(reader.terminal(o) for o in race),
                  OUTCOME_TIMEOUT_SECONDS, d1)  # fmt: skip
        # An older order after all that (na -> nb, the workload is on nb).
        await run(produce, s, [late])
        await run(reader.wait, "the late order", lambda: bool(reader.terminal(late["order_id"])), 120, d1)
        tally.add("reordered_orders_sent", 3)
    first_pass = {oid: len(reader.terminal(oid)) for oid in every}
    # A dispatcher that never saw these orders reads them all again.
    with dispatcher_process(s, root, "d2") as d2:
        again = lambda: all(len(reader.terminal(o)) > first_pass[o] for o in every)  # noqa: E731
        await run(reader.wait, "every order answered again", again, READY_TIMEOUT_SECONDS + OUTCOME_TIMEOUT_SECONDS, d2)
    tally.add("orders_redelivered", sum(len(reader.terminal(o)) - first_pass[o] for o in every))
    accepted = executions(reader.records)
    moved = {oid: moves([na, nb], oid) for oid in every}
    for oid in every:
        tally.add("duplicate_migrations", max(0, max(moved[oid], accepted[oid]) - 1))
    for oid, want in expected.items():
        if want == 0 and moved[oid]:
            tally.add("stale_orders_executed")
        if moved[oid] != want:
            tally.add("orders_moved_wrongly")
    tally.add("reorder_races")
    if moved[race[0]] + moved[race[1]] != 1:  # both, or neither, moved it
        tally.add("orders_moved_wrongly")
    if moved[race[1]]:
        tally.add("reorder_races_won_by_older")
    # A replayed order must repeat its outcome; another state for it is a contradiction on the topic.
    tally.add("kafka_replays_contradicting", sum(len(set(reader.terminal(o))) > 1 for o in every))
    count = await tally.one_instance([na, nb], "process", nb)
    names = ("first", "newer", "older", "late", "race_newer", "race_older")
    finals = {name: reader.outcomes(o) for name, o in zip(names, every, strict=True)}
    tally.say(f"orders through Kafka: outcomes {finals}, moves {[moved[o] for o in every]}, "
              f"accepted {[accepted[o] for o in every]}, {count} instance(s)")  # fmt: skip
