"""Assemble the stream worker: the Faust app with the forecasting and decision processors.

``build_worker(settings)`` is what ``plba worker``, ``faust -A streams.faust_app worker`` and the
integration tests all run, so the three never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from schemas.settings import Settings
from streams.app import build_app
from streams.decisions.config import PolicyConfig
from streams.live.cluster_state import LiveClusterState
from streams.live.decision_stage import DecisionStage
from streams.live.forecast_stage import ForecastStage
from streams.metrics import FleetMetrics, MetricsServer, StreamMetrics, serve_metrics
from streams.processors import decisions, dispatching, forecasting, lag


def horizons(settings: Settings) -> tuple[float, ...]:
    """Forecast horizons in seconds: the configured list, else six even steps up to the horizon."""
    if settings.forecast_horizons.strip():
        try:
            values = tuple(sorted({float(h) for h in settings.forecast_horizons.split(",") if h.strip()}))
        except ValueError:
            raise ValueError(f"forecast horizons must be numbers of seconds: {settings.forecast_horizons!r}") from None
        if not values or values[0] <= 0:
            raise ValueError("forecast horizons must be positive")
        return values
    step = settings.horizon_seconds / 6
    return tuple(step * k for k in range(1, 7))


def policy_config(settings: Settings, base: PolicyConfig | None = None) -> PolicyConfig:
    return replace(
        base or PolicyConfig(),
        mode=settings.decision_mode,
        decision_interval_seconds=settings.decision_interval_seconds,
    )


@dataclass
class Worker:
    app: faust.App
    settings: Settings
    decisions: DecisionStage
    forecasts: ForecastStage
    metrics: StreamMetrics
    fleet: FleetMetrics
    registries: tuple[CollectorRegistry, ...]

    def changelog_topics(self) -> dict[str, int]:
        """The app's table changelog topics and their partitions (``plba worker`` creates them first)."""
        return {
            table.changelog_topic.get_topic_name(): int(table.partitions or self.app.conf.topic_partitions)
            for table in self.app.tables.values()
        }

    def serve_metrics(self) -> MetricsServer | None:
        """Start /metrics on the configured port (none when the port is 0)."""
        if not self.settings.metrics_port:
            return None
        return serve_metrics(list(self.registries), self.settings.metrics_port, self.settings.metrics_addr)


def build_worker(
    settings: Settings, *, base_policy: PolicyConfig | None = None, faust_overrides: dict[str, Any] | None = None
) -> Worker:
    app = build_app(settings, **(faust_overrides or {}))
    registry, fleet_registry = CollectorRegistry(), CollectorRegistry()
    metrics = StreamMetrics(registry, component="worker")
    fleet = FleetMetrics(fleet_registry)
    hz = horizons(settings)
    forecast_stage = ForecastStage(
        hz,
        forecast_interval_seconds=settings.forecast_interval_seconds,
        snapshot_interval_seconds=settings.forecast_snapshot_seconds,
    )
    forecasting.register(app, settings, forecast_stage, metrics)
    state = LiveClusterState(horizons_seconds=hz)
    stage = DecisionStage(state, policy_config(settings, base_policy), settings.policy)
    decisions.register(app, settings, stage, metrics, fleet)
    if settings.worker_dispatch:
        dispatching.register(app, settings, metrics, fleet)
    lag.register(app, settings, metrics)
    return Worker(app, settings, stage, forecast_stage, metrics, fleet, (registry, fleet_registry))


def build_dispatcher(
    settings: Settings, *, faust_overrides: dict[str, Any] | None = None
) -> tuple[faust.App, MetricsServer | None]:
    """A Faust app running only the dispatcher (``plba dispatcher``), in its own consumer group."""
    app = build_app(replace(settings, worker_id=f"{settings.worker_id}-dispatcher"), **(faust_overrides or {}))
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry, component="dispatcher")
    dispatching.register(app, settings, metrics)
    server = serve_metrics(registry, settings.metrics_port, settings.metrics_addr) if settings.metrics_port else None
    return app, server
