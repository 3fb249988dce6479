"""The decision processor: folds the cluster's topics into the live view and runs the policy.

It consumes node usage, forecasts, policies, events, orders, migrations and placements, and
emits orders and explanations. The policy itself is the pure :mod:`streams.decisions` core,
driven through :class:`~streams.live.decision_stage.DecisionStage` at event time.
"""

from __future__ import annotations

from typing import Any

import faust

from schemas.codec import codec
from schemas.settings import Settings
from streams.live.decision_stage import DecisionStage
from streams.processors.intake import intake

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


def register(app: faust.App, settings: Settings, stage: DecisionStage, metrics: Any = None) -> None:
    roles = {settings.topic(r): r for r in INPUT_ROLES}
    codecs = {r: codec(_RECORD_TYPE[r], max_bytes=settings.max_record_bytes) for r in INPUT_ROLES}
    inputs = app.topic(*roles, value_type=bytes, key_type=bytes)
    orders = app.topic(settings.topic("orders"), value_type=bytes, key_type=bytes)
    explanations = app.topic(settings.topic("explanations"), value_type=bytes, key_type=bytes)
    dlq = app.topic(settings.topic("dlq"), value_type=bytes, key_type=bytes)
    order_codec, explanation_codec = codec("order"), codec("explanation")
    state = stage.state

    def rejected(role: str, code: str) -> None:
        if metrics is not None:
            metrics.record_rejected(role, code)

    @app.agent(inputs, name="plba.decisions")
    async def decisions(stream: Any) -> None:
        async for rec in intake(
            stream, roles=roles, codecs=codecs, dlq_topic=dlq, processor="decisions",
            on_reject=rejected, tombstones=frozenset({"policies"}),
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
            for out in stage.run_due():
                for order in out.orders:
                    await orders.send(key=order["workload_id"].encode(), value=order_codec.encode(order))
                for expl in out.explanations:
                    await explanations.send(key=expl["node_id"].encode(), value=explanation_codec.encode(expl))
                if metrics is not None:
                    metrics.record_decision(out)
