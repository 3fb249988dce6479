"""The forecasting processor's pure core: usage records in, forecast records out.

One :class:`~streams.forecasting.forecaster.SeriesForecaster` per (workload, resource) and per
(node, resource), in absolute units (cores, bytes, bytes/s) clamped to the node's capacity.
Declared events whose scope covers a series adjust its forecast (and the forecaster learns
their real effect). Time is the records' own ``sampled_at``, so a replay produces the same
forecasts as the live run.

State leaves as explicit JSON snapshots (:meth:`due_snapshots`) and comes back through
:meth:`restore`, so a restart or a rebalance continues a series instead of relearning it; a
workload that moves to another node keeps its forecaster because series are keyed by workload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.forecasting.bank import ForecasterBank, SeriesKey
from streams.forecasting.errors import ForecastingError
from streams.forecasting.events import ActiveEvent
from streams.forecasting.forecaster import Forecast, ForecasterConfig, SeriesForecaster

RESOURCES = ("cpu", "memory", "io")
UNITS = {"cpu": "cores", "memory": "bytes", "io": "bytes_per_second"}
_DELTA_FIELD = {"cpu": "cpu_cores", "memory": "mem_bytes", "io": "io_bytes_per_second"}
# Until a node's capacity is known, clamp to a bound no real node reaches.
_UNKNOWN_BOUND = {"cpu": 4096.0, "memory": 2.0**50, "io": 1e13}
_MODEL_NAME = re.compile(r"[^a-z0-9_.-]")

# CPU is what overloads first and what the traces show: it gets every candidate. Memory and I/O
# get the cheap candidates only, so one usage sample costs about one full forecaster update.
CHEAP = ForecasterConfig(
    holt_winters=False, snarimax=False, seasonal_naive=False, profile_alphas=(), season_seconds=None
)


def sampling_step(interval_seconds: float) -> float:
    """A series' step from the interval its first sample reports, snapped to whole seconds.

    Agents measure their interval (1.0042 s for a 1 s schedule); seasonal candidates divide a
    day into steps, and a step that does not divide it evenly would give them odd bins.
    """
    if interval_seconds >= 0.9:
        return float(max(1, round(interval_seconds)))
    return max(1e-3, round(interval_seconds, 3))


def model_name(name: str) -> str:
    """A forecaster's model description as a contract ``name`` (lower case, no ``+``)."""
    return (_MODEL_NAME.sub("-", name.lower()) or "reactive")[:64]


@dataclass
class _Scoring:
    due_at: float
    horizon_seconds: float
    mean: float
    lower: float
    upper: float


@dataclass
class ForecastStage:
    horizons_seconds: tuple[float, ...]
    forecast_interval_seconds: float = 0.0
    snapshot_interval_seconds: float = 30.0
    ttl_seconds: float = 3600.0
    max_series: int = 100_000
    nominal_coverage: float = 0.9
    configs: Mapping[str, ForecasterConfig] = field(
        default_factory=lambda: {"cpu": ForecasterConfig(), "memory": CHEAP, "io": CHEAP}
    )
    bank: ForecasterBank = field(init=False)
    node_capacity: dict[str, dict[str, float]] = field(default_factory=dict)
    node_pool: dict[str, str] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    _new: tuple[float, float, str] = (1.0, 1.0, "cpu")  # (step, upper bound, resource) for the factory
    _last_forecast: dict[SeriesKey, float] = field(default_factory=dict)
    _last_snapshot: dict[SeriesKey, float] = field(default_factory=dict)
    _scoring: dict[SeriesKey, _Scoring] = field(default_factory=dict)
    scored: list[tuple[str, str, float, float, float, float, float, float]] = field(default_factory=list)
    latest_at: float = 0.0  # event time: the newest sample seen

    def __post_init__(self) -> None:
        if not self.horizons_seconds or min(self.horizons_seconds) <= 0:
            raise ForecastingError("horizons must be positive")
        self.bank = ForecasterBank(self._make, ttl_seconds=self.ttl_seconds, max_series=self.max_series)

    def _make(self, key: SeriesKey) -> SeriesForecaster:
        step, bound, resource = self._new
        return SeriesForecaster(
            step_seconds=step, horizons_seconds=self.horizons_seconds, upper_bound=bound, config=self.configs[resource]
        )

    # --- inputs -----------------------------------------------------------------------------
    def on_event(self, rec: Mapping[str, Any]) -> None:
        if rec.get("cancelled"):
            self.events.pop(rec["event_id"], None)
        elif rec.get("impact"):
            self.events[rec["event_id"]] = dict(rec)

    def on_node_usage(self, rec: Mapping[str, Any]) -> list[dict[str, Any]]:
        nid = rec["node_id"]
        cap = rec["capacity"]
        self.node_capacity[nid] = {
            "cpu": cap["cpu_cores"],
            "memory": cap["mem_bytes"],
            "io": cap["io_bytes_per_second"],
        }
        pool = (rec.get("fingerprint") or {}).get("pool")
        if pool:
            self.node_pool[nid] = pool
        io = sum(rec[k] for k in ("disk_read_bytes_per_second", "disk_write_bytes_per_second",
                                  "net_rx_bytes_per_second", "net_tx_bytes_per_second"))  # fmt: skip
        values = {"cpu": rec["cpu_ratio"] * cap["cpu_cores"], "memory": rec["mem_used_bytes"], "io": io}
        scope = {"nodes": nid, "pools": self.node_pool.get(nid, "")}
        return self._learn("node", nid, nid, rec["sampled_at"], rec["interval_seconds"], values, scope)

    def on_workload_usage(self, rec: Mapping[str, Any]) -> list[dict[str, Any]]:
        wid, nid = rec["workload_id"], rec["node_id"]
        if nid not in self.node_capacity and rec["cpu_ratio"] > 0:
            # The node's capacity in cores follows from the workload's share of it.
            self.node_capacity[nid] = {"cpu": rec["cpu_cores_used"] / rec["cpu_ratio"]}
        values = {"cpu": rec["cpu_cores_used"], "memory": rec["mem_used_bytes"], "io": rec["io_bytes_per_second"]}
        scope = {
            "workloads": wid, "apps": rec.get("app") or "", "users": rec.get("user") or "",
            "nodes": nid, "pools": self.node_pool.get(nid, ""),
        }  # fmt: skip
        return self._learn("workload", wid, nid, rec["sampled_at"], rec["interval_seconds"], values, scope)

    # --- core -------------------------------------------------------------------------------
    def _learn(
        self, kind: str, subject: str, node_id: str, at: float, step: float, values: Mapping[str, float],
        scope: Mapping[str, str],
    ) -> list[dict[str, Any]]:  # fmt: skip
        out = []
        self.latest_at = max(self.latest_at, at)
        caps = self.node_capacity.get(node_id, {})
        for res in RESOURCES:
            key = (subject, res)
            value = float(values[res])
            self._score(kind, key, at, value, caps.get(res))
            events = self._active(subject, res, scope)
            if key not in self.bank:
                self._new = (sampling_step(step), float(caps.get(res) or _UNKNOWN_BOUND[res]), res)
            try:
                self.bank.update(key, at, value, events)
            except ForecastingError:
                continue  # out-of-order or non-finite sample for this series: skip it, keep the rest
            last = self._last_forecast.get(key)
            if last is not None and at - last < self.forecast_interval_seconds:
                continue
            fc = self.bank.forecast(key, at, events)
            if fc is None:
                continue
            self._last_forecast[key] = at
            self._remember(key, fc)
            out.append(self._record(kind, subject, node_id, res, fc, value, events))
        return out

    def _active(self, subject: str, resource: str, scope: Mapping[str, str]) -> list[ActiveEvent]:
        active = []
        for ev in self.events.values():
            ev_scope = ev["scope"]
            if not any(value and value in ev_scope.get(name, ()) for name, value in scope.items()):
                continue
            impact = ev.get("impact") or {}
            delta = (impact.get("deltas") or {}).get(_DELTA_FIELD[resource])
            if impact.get("factor") is None and delta is None:
                continue
            active.append(ActiveEvent(ev["event_type"], subject, float(ev["starts_at"]), float(ev["ends_at"]),
                                      factor=impact.get("factor"), delta=delta))  # fmt: skip
        return active

    def _remember(self, key: SeriesKey, fc: Forecast) -> None:
        if key not in self._scoring:
            h = fc.horizons_seconds[0]
            self._scoring[key] = _Scoring(fc.issued_at + h, h, fc.mean[0], fc.lower[0], fc.upper[0])

    def _score(self, kind: str, key: SeriesKey, at: float, value: float, capacity: float | None) -> None:
        """Score the pending forecast of ``key`` once its time has come (for error and coverage metrics)."""
        pending = self._scoring.get(key)
        if pending is None or at < pending.due_at:
            return
        del self._scoring[key]
        scale = capacity or 0.0
        self.scored.append(
            (kind, key[1], pending.horizon_seconds, value, pending.lower, pending.upper, pending.mean, scale)
        )

    def _record(
        self, kind: str, subject: str, node_id: str, res: str, fc: Forecast, last: float, events: list[ActiveEvent],
    ) -> dict[str, Any]:  # fmt: skip
        rec: dict[str, Any] = {
            "schema_version": 1, "subject_kind": kind, "subject": subject, "node_id": node_id, "resource": res,
            "unit": UNITS[res], "issued_at": fc.issued_at, "step_seconds": fc.step_seconds,
            "horizons_seconds": list(fc.horizons_seconds), "mean": list(fc.mean), "lower": list(fc.lower),
            "upper": list(fc.upper), "last_value": max(0.0, last), "model": model_name(fc.model),
            "reliable": fc.reliable, "recent_mae": fc.recent_mae, "coverage": fc.coverage,
            "nominal_coverage": self.nominal_coverage,
        }  # fmt: skip
        forecaster = self.bank.get((subject, res))
        if forecaster is not None:
            rec["observations"] = forecaster.samples
        pool = self.node_pool.get(node_id)
        if pool:
            rec["pool"] = pool
        if fc.event:
            rec["event_adjustments"] = [self._adjustment(fc.event, events)]
        return rec

    def _adjustment(self, event: Mapping[str, Any], events: list[ActiveEvent]) -> dict[str, Any]:
        event_id = next(
            (eid for eid, ev in self.events.items()
             if ev["event_type"] == event["kind"] and float(ev["starts_at"]) == event["start_at"]
             and float(ev["ends_at"]) == event["end_at"]),
            "unknown",
        )  # fmt: skip
        adj: dict[str, Any] = {
            "event_id": event_id, "event_type": event["kind"], "starts_at": event["start_at"],
            "ends_at": event["end_at"], "declared_factor": event.get("declared_factor"),
            "declared_delta": event.get("declared_delta"), "learned_factor": event.get("learned_factor"),
            "learned_observations": int(event.get("learned_count") or 0),
            "applied_factor": event["factor"], "applied_delta": event["delta"],
        }  # fmt: skip
        return adj

    # --- state ------------------------------------------------------------------------------
    def due_snapshots(self, subject: str, at: float) -> list[tuple[SeriesKey, dict[str, Any]]]:
        """Snapshots of ``subject``'s series not saved for ``snapshot_interval_seconds``."""
        out = []
        for res in RESOURCES:
            key = (subject, res)
            last = self._last_snapshot.get(key)
            if last is not None and at - last < self.snapshot_interval_seconds:
                continue
            state = self.bank.snapshot(key)
            if state is not None:
                self._last_snapshot[key] = at
                out.append((key, state))
        return out

    def needs_restore(self, subject: str) -> bool:
        return (subject, "cpu") not in self.bank

    def restore(self, key: SeriesKey, state: dict[str, Any]) -> bool:
        """Continue a series from a snapshot; False (and a fresh start) if the snapshot is unusable."""
        try:
            self.bank.restore(key, state)
        except ForecastingError:
            return False
        return True

    def evict_idle(self, now: float) -> int:
        evicted = self.bank.evict_idle(now)
        if evicted:
            live = set(self.bank.keys())
            for table in (self._last_forecast, self._last_snapshot, self._scoring):
                for key in [k for k in table if k not in live]:
                    del table[key]
        return evicted

    def models_in_use(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        series = self.bank.keys()  # a snapshot of the keys (the bank is not iterable itself)
        for key in series:
            f = self.bank.get(key)
            if f is not None and f.samples:
                name = model_name(f.forecast(f.last_at or 0.0).model).split("-")[0]
                counts[name] = counts.get(name, 0) + 1
        return counts
