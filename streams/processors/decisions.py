"""The decision processors, sharded by pool (ARCHITECTURE §6, §12).

Three parts, one module (see :mod:`streams.decisions.sharding` for the rules):

* ``plba.decisions.route``: consumes node usage, workload usage, forecasts, policies, events,
  migrations and placements (keyed by node, workload, subject…) and re-keys each record to its
  pool on the compacted pool-state topic, partition ``hash(pool)``; events and policies go to
  every partition. It owns the dead letters of forecasts, policies, migrations and placements.
* a node-pools reader on every worker (no consumer group: every partition, from the start), so
  that any router can resolve a workload's node to its pool;
* ``plba.decisions``: consumes the pool-state partitions this worker owns, folds them into the
  live view (:class:`~streams.live.cluster_state.LiveClusterState`) and runs the policy through
  :class:`~streams.live.decision_stage.DecisionStage` at event time, for its own pools only.

The pool-state topic is never committed (``acks=False``): a partition assigned to a worker, after
a restart or a rebalance, is read from its beginning, which rebuilds the view of its pools from
the compacted records; the worker decides for a pool only once its partition has caught up, so
the catch-up (the records before the end offset at assignment) does not replay decisions at old
event times. Revoked partitions' pools are dropped.
The policy's own orders are written to the pool-state topic too, so a new owner knows them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, cast

import faust
import orjson
from aiokafka import TopicPartition
from faust.types import TP

from schemas.codec import codec
from schemas.settings import Settings
from schemas.topics import TOPICS
from streams.decisions.cluster import RESOURCES
from streams.decisions.sharding import BROADCAST, PoolRouter, Routed, parse_key, pool_partition, state_key
from streams.live.cluster_state import STALE_INTERVALS, LiveClusterState
from streams.live.decision_stage import DecisionStage
from streams.processors.follow import follow_all
from streams.processors.intake import intake, publish

log = logging.getLogger(__name__)

REBUILD_WAIT_SECONDS = 300.0  # for the rebalance (table recovery included) to finish
STALL_CHECK_SECONDS = 5.0
STALL_SECONDS = 20.0  # an assigned pool-state partition with records delivers within this, or is sought

# Usage topics' dead letters belong to the forecasting processor; these are the decisions' own.
DLQ_ROLES = frozenset({"forecasts", "policies", "migrations", "placements"})
INPUT_ROLES = ("node_usage", "workload_usage", "forecasts", "policies", "events", "migrations", "placements")
_RECORD_TYPE = {
    "node_usage": "node_usage",
    "workload_usage": "workload_usage",
    "forecasts": "forecast",
    "policies": "policy",
    "events": "event",
    "migrations": "migration_status",
    "placements": "placement",
}


def register(app: faust.App, settings: Settings, stage: DecisionStage, metrics: Any = None, fleet: Any = None) -> None:
    roles = {settings.topic(r): r for r in INPUT_ROLES}
    codecs = {r: codec(_RECORD_TYPE[r], max_bytes=settings.max_record_bytes) for r in INPUT_ROLES}
    partitions = TOPICS["pool_state"].partitions
    inputs = app.topic(*roles, value_type=bytes, key_type=bytes)
    pool_state_name = settings.topic("pool_state")
    # Never committed: an assigned partition is always read from its start (see the docstring).
    pool_state = app.topic(pool_state_name, value_type=bytes, key_type=bytes, acks=False)
    node_pools = app.topic(settings.topic("node_pools"), value_type=bytes, key_type=bytes)
    orders = app.topic(settings.topic("orders"), value_type=bytes, key_type=bytes)
    explanations = app.topic(settings.topic("explanations"), value_type=bytes, key_type=bytes)
    dlq = app.topic(settings.topic("dlq"), value_type=bytes, key_type=bytes)
    order_codec, explanation_codec = codec("order"), codec("explanation")
    state = stage.state
    router = PoolRouter()
    shard = _Shard(partitions)

    async def send(topic: Any, enc: Any, key: str, rec: dict[str, Any]) -> None:
        await publish(topic, enc, key, rec, dlq=dlq, processor="decisions", metrics=metrics)

    async def forward(routed: Iterable[Routed]) -> None:
        for r in routed:
            value = None if r.value is None else orjson.dumps(r.value)
            targets = range(partitions) if r.pool == BROADCAST else (pool_partition(r.pool, partitions),)
            for p in targets:
                await pool_state.send(key=r.key, value=value, partition=p)

    @app.agent(inputs, name="plba.decisions.route")
    async def route(stream: Any) -> None:
        async for rec in intake(
            stream, roles=roles, codecs=codecs, dlq_topic=dlq, processor="decisions",
            metrics=metrics, tombstones=frozenset({"policies"}), owns_dlq=DLQ_ROLES,
        ):  # fmt: skip
            out, announce = router.route(rec.role, rec.value, (rec.key or b"").decode(errors="replace"))
            if announce is not None and rec.value is not None:
                node = rec.value["node_id"]
                await node_pools.send(key=node.encode(), value=orjson.dumps({"node_id": node, "pool": announce}))
            await forward(out)

    @app.task
    async def read_node_pools() -> None:
        await follow_all(settings, settings.topic("node_pools"), TOPICS["node_pools"].partitions, learn)

    async def learn(key: bytes | None, value: bytes | None) -> None:
        try:
            rec = orjson.loads(value) if value else None
            node, pool = (rec["node_id"], rec["pool"]) if isinstance(rec, dict) else (None, None)
        except (orjson.JSONDecodeError, KeyError):
            node = pool = None
        if not isinstance(node, str) or not isinstance(pool, str):
            log.warning("decisions: ignoring a malformed node-pools record %r", key)
            return
        if router.pools.get(node) != pool:
            await forward(router.learn(node, pool))

    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", ())
        gone = {tp.partition for tp in revoked if tp.topic == pool_state_name}
        if gone:
            stage.forget(shard.revoke(gone))
            shard.announce()

    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", ())
        mine = [tp for tp in assigned if tp.topic == pool_state_name]
        log.info("decision shard: assigned pool-state partitions [%s]", ",".join(str(p) for p in _parts(mine)))
        if not mine:
            return
        try:
            ends = await app.consumer.highwaters(*mine)
        except Exception as exc:  # noqa: BLE001 - unknown ends: decide as records come (logged)
            log.warning("decisions: end offsets of %s unknown (%r)", pool_state_name, exc)
            ends = {}
        now = time.monotonic()
        for tp in mine:
            shard.catch_up[tp.partition] = int(ends.get(tp) or 0)
            shard.assigned_at[tp.partition] = now
            shard.received.discard(tp.partition)
        rebuilds.append(asyncio.ensure_future(rebuild_from_start(mine, app.consumer_generation_id)))
        rebuilds[:] = [t for t in rebuilds if not t.done()]

    rebuilds: list[asyncio.Future[None]] = []  # the loop keeps only weak references to tasks

    async def rebuild_from_start(mine: list[Any], generation: int) -> None:
        """Seek the assigned pool-state partitions to their beginning once the records flow again.

        After a rebalance Faust resumes fetching a partition before it resumes the flow to the
        agents, and clears what was fetched in between: for committed topics its seek to the
        committed offset fetches those records again, but pool-state is never committed, so they
        were lost and a worker taking partitions over could rebuild nothing (the sharding test's
        failure). Re-reading from the start is what the rebuild wants anyway; records the agent
        already folded are folded again, harmlessly (the view keeps the latest of each key).
        """
        faust_app, consumer = cast(Any, app), cast(Any, app.consumer)
        deadline = time.monotonic() + REBUILD_WAIT_SECONDS
        # ``rebalancing`` is set when the revocation starts and cleared once the worker is ready
        # (recovery done, flow resumed): only then are fetched records kept.
        while faust_app.rebalancing or not consumer.flow_active:
            if app.consumer_generation_id != generation or time.monotonic() > deadline:
                return  # another rebalance owns the partitions now (or the watchdog will)
            await asyncio.sleep(0.2)
        if app.consumer_generation_id != generation:
            return
        assigned = app.consumer.assignment()
        await reread([tp for tp in mine if tp in assigned])

    async def reread(tps: list[Any]) -> None:
        """Seek pool-state partitions to their beginning; their pools wait for the re-read to catch up."""
        if not tps:
            return
        try:
            ends = await app.consumer.highwaters(*tps)
        except Exception:  # noqa: BLE001 - unknown ends: decide as records come
            ends = {}
        for tp in tps:
            try:
                await app.consumer.seek(tp, 0)
            except Exception as exc:  # noqa: BLE001 - revoked meanwhile: the next assignment starts afresh
                log.warning("decision shard: could not seek pool-state partition %d: %r", tp.partition, exc)
                continue
            p = tp.partition
            shard.received.discard(p)
            shard.assigned_at[p] = time.monotonic()
            # Not decided for until the re-read reaches today's end: no cycle on a half-rebuilt view.
            shard.ready.discard(p)
            shard.catch_up[p] = int(ends.get(tp) or shard.catch_up.get(p, 0))
        shard.announce()

    # Faust's signal typing wants a keyword-only ``signal``; the handlers take it in **kwargs.
    app.on_partitions_revoked.connect(cast(Any, on_revoked))
    app.on_partitions_assigned.connect(cast(Any, on_assigned))
    cycle_time = metrics.processing_duration.labels("decisions") if metrics is not None else None

    # A backstop to rebuild_from_start (and to Faust fetch stalls after rebalances, see
    # faust-streaming issue #629): a partition that has records but delivered none STALL_SECONDS
    # after its assignment is sought to its beginning, where its rebuild starts anyway.
    @app.timer(STALL_CHECK_SECONDS)
    async def unstall() -> None:
        now = time.monotonic()
        for p in shard.stalled(now, STALL_SECONDS):
            tp = TP(pool_state_name, p)
            log.warning(
                "decision shard: pool-state partition %d delivered nothing %.0f s after its assignment "
                "(end offset %d; %s); seeking it to its beginning",
                p, now - shard.assigned_at[p], shard.catch_up.get(p, 0), _fetch_state(app, tp),
            )  # fmt: skip
            await reread([tp])

    @app.agent(pool_state, name="plba.decisions")
    async def decisions(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                pool, role, subject = parse_key(msg.key or b"")
                value = None if event.value is None else orjson.loads(event.value)
                _fold(state, role, subject, value)
            except (ValueError, KeyError, TypeError) as exc:  # our own topic: a bug, not bad input
                log.error("decisions: unusable pool-state record at %s@%s: %r", msg.partition, msg.offset, exc)
                continue
            shard.received.add(msg.partition)
            if role == "node_usage":
                shard.hold(pool)
            if msg.partition not in shard.ready and msg.offset + 1 >= shard.catch_up.get(msg.partition, 0):
                shard.ready.add(msg.partition)
                shard.announce()
            started = time.perf_counter()
            outputs = stage.run_due(pools=shard.deciding)
            if outputs and cycle_time is not None:
                cycle_time.observe(time.perf_counter() - started)
            for out in outputs:
                for order in out.orders:
                    await send(orders, order_codec, order["workload_id"], order)
                    if not order.get("dry_run"):
                        await forward([Routed(out.pool, state_key(out.pool, "orders", order["workload_id"]), order)])
                for expl in out.explanations:
                    await send(explanations, explanation_codec, expl["node_id"], expl)
                if metrics is not None:
                    metrics.record_decision(out)
                    score = stage.shadow_score()
                    if score is not None:
                        for measure in ("precision", "recall"):
                            got = getattr(score, measure)
                            if got is not None:
                                metrics.shadow_score.labels(measure).set(got)
            if outputs and metrics is not None:
                # Once per batch of pool decisions, not per pool: the gauges describe the whole fleet.
                observe_fleet(state, metrics, fleet, stage.config.trigger_ratio)


class _Shard:
    """Which pools this worker holds, and which of them it may decide for (partition caught up)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.held: set[str] = set()
        self.ready: set[int] = set()
        # End offset of each partition when it was assigned: records before it are the rebuild.
        self.catch_up: dict[int, int] = {}
        self.assigned_at: dict[int, float] = {}  # monotonic time of the assignment
        self.received: set[int] = set()  # partitions that delivered a record since their assignment
        self.deciding: frozenset[str] = frozenset()
        self._said: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    def hold(self, pool: str) -> None:
        if pool not in self.held:
            self.held.add(pool)
            self.announce()

    def stalled(self, now: float, after: float) -> list[int]:
        """Assigned partitions with records to read that delivered none within ``after`` seconds."""
        return sorted(
            p for p, at in self.assigned_at.items()
            if p not in self.received and self.catch_up.get(p, 0) > 0 and now - at >= after
        )  # fmt: skip

    def revoke(self, gone: set[int]) -> list[str]:
        self.ready -= gone
        for p in gone:
            self.assigned_at.pop(p, None)
            self.received.discard(p)
        dropped = [p for p in self.held if pool_partition(p, self.partitions) in gone]
        self.held.difference_update(dropped)
        return dropped

    def announce(self) -> None:
        """Recompute the pools decided for; log the holding when it changes (tests read it)."""
        self.deciding = frozenset(p for p in self.held if pool_partition(p, self.partitions) in self.ready)
        said = (tuple(sorted(self.held)), tuple(sorted(self.deciding)))
        if said != self._said:
            self._said = said
            log.info("decision shard: holding pools [%s]; deciding for [%s]", ",".join(said[0]), ",".join(said[1]))


def _fetch_state(app: Any, tp: TP) -> str:
    """What Faust and aiokafka hold about ``tp``, for the stall warning (private attributes: best effort)."""
    try:
        consumer = app.consumer
        paused = tp in consumer._paused_partitions
        aio = consumer._thread._ensure_consumer()
        state = aio._fetcher._subscriptions.subscription.assignment.state_value(TopicPartition(tp.topic, tp.partition))
        return (
            f"faust paused={paused} flow_active={consumer.flow_active}, aiokafka paused={state.paused} "
            f"position={state.position if state.has_valid_position else None} "
            f"awaiting_reset={state.awaiting_reset} highwater={state.highwater}"
        )
    except Exception as exc:  # noqa: BLE001 - a diagnostic never breaks the worker
        return f"fetch state unknown: {exc!r}"


def _parts(tps: Iterable[Any]) -> list[int]:
    return sorted(tp.partition for tp in tps)


def _fold(state: LiveClusterState, role: str, subject: str, value: Any) -> None:
    if role == "policies":
        state.on_policy(subject, value)
        return
    if value is None:
        return
    fold = {
        "node_usage": state.on_node_usage,
        "workload_usage": state.on_workload_usage,
        "forecasts": state.on_forecast,
        "events": state.on_event,
        "migrations": state.on_migration,
        "placements": state.on_placement,
        "orders": state.on_order,
    }[role]
    fold(value)


def observe_fleet(state: LiveClusterState, metrics: Any, fleet: Any, threshold: float) -> None:
    """Export the decision side's view: per-node actual vs forecast, hot nodes, fleet means.

    Reads the nodes straight from the live state, with the staleness rule of its views: building
    a full :meth:`~LiveClusterState.view` would resolve the policy of every workload in the fleet
    (hundreds of milliseconds at a few thousand workloads) for figures that only concern nodes.
    With several workers each exports the nodes of the pools it holds.
    """
    now = state.latest_at
    live = [e for e in state.nodes.values() if now - e.seen_at <= STALE_INTERVALS * e.interval]
    hot = dict.fromkeys(RESOURCES, 0)
    sums: dict[tuple[str, str], float] = {}
    for entry in live:
        nid = entry.node.node_id
        for res in RESOURCES:
            cap = entry.node.capacity.get(res) or 0.0
            if cap <= 0:
                continue
            actual = entry.usage[res] / cap
            fc = state.node_forecasts.get((nid, res))
            mean = max(fc.mean) / cap if fc is not None and fc.mean else None
            upper = max(fc.upper) / cap if fc is not None and fc.upper else None
            if fleet is not None:
                fleet.set_node(nid, res, actual=actual, forecast=mean, upper=upper)
            if (upper if upper is not None else actual) > threshold:
                hot[res] += 1
            sums[(res, "actual")] = sums.get((res, "actual"), 0.0) + actual
            if upper is not None:
                sums[(res, "upper")] = sums.get((res, "upper"), 0.0) + upper
    for res, n in hot.items():
        metrics.hot_nodes.labels(res).set(n)
    if live:
        metrics.set_fleet(len(live), {k: v / len(live) for k, v in sums.items()})
