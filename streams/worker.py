"""Assemble the stream worker: the Faust app with the forecasting and decision processors.

``build_worker(settings)`` is what ``plba worker``, ``faust -A streams.faust_app worker`` and the
integration tests all run, so the three never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import faust

from schemas.settings import Settings
from streams.app import build_app
from streams.decisions.config import PolicyConfig
from streams.live.cluster_state import LiveClusterState
from streams.live.decision_stage import DecisionStage
from streams.processors import decisions, dispatching


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
    metrics: Any = None


def build_worker(
    settings: Settings, *, base_policy: PolicyConfig | None = None, faust_overrides: dict[str, Any] | None = None
) -> Worker:
    app = build_app(settings, **(faust_overrides or {}))
    state = LiveClusterState(horizons_seconds=horizons(settings))
    stage = DecisionStage(state, policy_config(settings, base_policy), settings.policy)
    decisions.register(app, settings, stage)
    if settings.worker_dispatch:
        dispatching.register(app, settings)
    return Worker(app=app, settings=settings, decisions=stage)


def build_dispatcher(settings: Settings, *, faust_overrides: dict[str, Any] | None = None) -> faust.App:
    """A Faust app running only the dispatcher (``plba dispatcher``), in its own consumer group."""
    app = build_app(replace(settings, worker_id=f"{settings.worker_id}-dispatcher"), **(faust_overrides or {}))
    dispatching.register(app, settings)
    return app
