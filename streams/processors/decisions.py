"""The decision processor: folds the cluster's topics into the live view and runs the policy.

It consumes node usage, forecasts, policies, events, orders, migrations and placements, and
emits orders and explanations. The policy itself is the pure :mod:`streams.decisions` core,
driven through :class:`~streams.live.decision_stage.DecisionStage` at event time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from schemas.codec import codec
from schemas.settings import Settings
from streams.decisions.cluster import RESOURCES
from streams.live.cluster_state import STALE_INTERVALS, LiveClusterState
from streams.live.decision_stage import DecisionStage
from streams.processors.intake import intake, publish

log = logging.getLogger(__name__)

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
    inputs = app.topic(*roles, value_type=bytes, key_type=bytes)
    orders = app.topic(settings.topic("orders"), value_type=bytes, key_type=bytes)
    explanations = app.topic(settings.topic("explanations"), value_type=bytes, key_type=bytes)
    dlq = app.topic(settings.topic("dlq"), value_type=bytes, key_type=bytes)
    order_codec, explanation_codec = codec("order"), codec("explanation")
    state = stage.state

    async def send(topic: Any, enc: Any, key: str, rec: dict[str, Any]) -> None:
        await publish(topic, enc, key, rec, dlq=dlq, processor="decisions", metrics=metrics)

    cycle_time = metrics.processing_duration.labels("decisions") if metrics is not None else None

    @app.agent(inputs, name="plba.decisions")
    async def decisions(stream: Any) -> None:
        async for rec in intake(
            stream, roles=roles, codecs=codecs, dlq_topic=dlq, processor="decisions",
            metrics=metrics, tombstones=frozenset({"policies"}), owns_dlq=DLQ_ROLES,
        ):  # fmt: skip
            value = rec.value
            if rec.role == "policies":
                state.on_policy((rec.key or b"").decode(errors="replace"), value)
                continue
            assert value is not None
            if rec.role == "node_usage":
                state.on_node_usage(value)
            elif rec.role == "workload_usage":
                state.on_workload_usage(value)
            elif rec.role == "forecasts":
                state.on_forecast(value)
            elif rec.role == "events":
                state.on_event(value)
            elif rec.role == "migrations":
                state.on_migration(value)
            elif rec.role == "placements":
                state.on_placement(value)
            started = time.perf_counter()
            outputs = stage.run_due()
            if outputs and cycle_time is not None:
                cycle_time.observe(time.perf_counter() - started)
            for out in outputs:
                for order in out.orders:
                    await send(orders, order_codec, order["workload_id"], order)
                for expl in out.explanations:
                    await send(explanations, explanation_codec, expl["node_id"], expl)
                if metrics is not None:
                    metrics.record_decision(out)
                    score = stage.shadow_score()
                    if score is not None:
                        for measure in ("precision", "recall"):
                            value = getattr(score, measure)
                            if value is not None:
                                metrics.shadow_score.labels(measure).set(value)
            if outputs and metrics is not None:
                # Once per batch of pool decisions, not per pool: the gauges describe the whole fleet.
                observe_fleet(state, metrics, fleet, stage.config.trigger_ratio)


def observe_fleet(state: LiveClusterState, metrics: Any, fleet: Any, threshold: float) -> None:
    """Export the decision side's view: per-node actual vs forecast, hot nodes, fleet means.

    Reads the nodes straight from the live state, with the staleness rule of its views: building
    a full :meth:`~LiveClusterState.view` would resolve the policy of every workload in the fleet
    (hundreds of milliseconds at a few thousand workloads) for figures that only concern nodes.
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
