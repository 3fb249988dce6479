"""Consumer lag of the worker, by topic role: highwater - position over the partitions it owns."""

from __future__ import annotations

import logging
from typing import Any

import faust

from schemas.settings import Settings
from schemas.topics import TOPICS

log = logging.getLogger(__name__)

LAG_EVERY_SECONDS = 5.0


def register(app: faust.App, settings: Settings, metrics: Any) -> None:
    roles = {settings.topic(role): role for role in TOPICS}

    @app.timer(LAG_EVERY_SECONDS)
    async def report_lag() -> None:
        consumer = app.consumer
        lags = dict.fromkeys(
            (role for role in ("node_usage", "workload_usage", "events", "policies", "forecasts", "orders")), 0
        )
        for tp in consumer.assignment():
            role = roles.get(tp.topic)
            if role is None:
                continue  # Faust's own changelog topics
            try:
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
            except Exception as exc:  # noqa: BLE001 - lag is best effort; a rebalance may be under way
                log.debug("no lag for %s: %s", tp, exc)
                continue
            if position is not None and highwater is not None:
                lags[role] = lags.get(role, 0) + max(0, highwater - position)
        metrics.set_lag(lags)
