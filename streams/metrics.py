"""Prometheus metrics of the stream worker (forecasting, decisions, dispatcher).

How to use
----------
Build the catalog once per process on an injected registry, pass it to the code that records,
and serve it::

    from prometheus_client import CollectorRegistry
    from streams.metrics import FleetMetrics, StreamMetrics, serve_metrics

    registry, fleet_registry = CollectorRegistry(), CollectorRegistry()
    metrics = StreamMetrics(registry, component="worker")   # or "dispatcher"
    fleet = FleetMetrics(fleet_registry)                     # decision side only
    server = serve_metrics([registry, fleet_registry], port=9400)   # 0: ephemeral port
    ...
    metrics.record_consumed("workload_usage")
    metrics.record_rejected("workload_usage", exc.code)      # ContractError.code
    with metrics.processing_duration.labels("forecasting").time(): ...
    metrics.observe_forecast("node", "cpu", horizon_seconds=300, actual=.7, lower=.5, upper=.8)
    metrics.record_decision(decision_output)                 # .orders / .explanations dicts
    metrics.record_migration("qemu", "completed", duration_seconds=3.2, downtime_seconds=.002)
    server.close()

Tests make a fresh ``CollectorRegistry()`` each; nothing here touches the global registry.

On a per-record hot path, bind the child once and keep it (``.labels()`` costs a lock and a
dict lookup, ~1 us): ``consumed = metrics.records_consumed.labels("workload_usage")`` then
``consumed.inc()`` per record.

Rules
-----
* Names follow Prometheus conventions: ``plba_`` prefix, base units (``_seconds``, ``_bytes``,
  ``_ratio`` in 0..1), counters end in ``_total``.
* Label values come from closed sets (the tuples below). **Never** put a node id, workload id,
  order id or pool on a :class:`StreamMetrics` family: the instance label already says which
  worker; ids go to Kafka, not Prometheus. Values that arrive from the wire (error codes, policy
  reason codes, model names) go through a cardinality cap (unknowns beyond the cap become
  ``"other"``) — use the ``record_*`` helpers for those rather than ``.labels()`` directly.
* The one exception is :class:`FleetMetrics`: the fleet dashboard needs per-node actual vs
  forecast, so that family carries ``node`` (bound: number of nodes x 3 resources x 4 kinds) and
  ``workload`` on the recent-migrations gauge (bound: workloads migrated within the window).
  It lives on its own registry so it can be served, scraped or disabled separately.
* Label sets with closed values are pre-initialised to 0, so a dashboard shows "0 failures"
  rather than "no data"; histograms are not (a quantile of nothing is nothing).

Default ports (``PLBA_METRICS_PORT``): worker 9400, dispatcher 9401, nodes 9410 + index.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, Summary
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from schemas.errors import ERROR_CODES
from schemas.metrics_http import LabelCap, MetricsServer, serve_metrics
from schemas.topics import TOPICS

__all__ = [
    "DOWNTIME_BUCKETS",
    "DRIVERS",
    "HORIZON_BUCKETS",
    "LATENCY_BUCKETS",
    "MIGRATION_BUCKETS",
    "FleetMetrics",
    "LabelCap",
    "MetricsServer",
    "StreamMetrics",
    "horizon_bucket",
    "serve_metrics",
]

# --- closed label sets ------------------------------------------------------------------------
TOPIC_ROLES: tuple[str, ...] = tuple(TOPICS)
REJECT_REASONS: tuple[str, ...] = (*ERROR_CODES, "other")
RESOURCES = ("cpu", "memory", "io")
SUBJECT_KINDS = ("node", "workload")
INTERVAL_OUTCOMES = ("inside", "above", "below")
PROCESSORS = ("forecasting", "decisions", "dispatcher", "events", "policies")
MODES = ("enforce", "recommend", "shadow")
DECISIONS = ("acted", "no_action")
METHODS = ("live", "snapshot", "reroute", "simulated")
ORDER_REASONS = ("predicted_overload", "maintenance", "peak_rebalance", "reactive_threshold", "swap")
NO_ACTION_REASONS = ("no_candidate", "no_target", "no_feasible_move")
DRIVERS = ("qemu", "process", "function", "sim")
MIGRATION_OUTCOMES = ("completed", "failed", "rolled_back", "rejected", "expired")
UTILIZATION_KINDS = ("actual", "forecast", "upper", "lower")
EXCLUSION_SUBJECTS = ("candidate", "target")
# The constraint codes of streams.decisions.explain (a unit test keeps the copies equal).
CANDIDATE_EXCLUSIONS = ("not_migratable", "pinned", "in_flight", "cooldown", "sla_downtime", "tier_budget",
                        "does_not_resolve", "no_target")  # fmt: skip
TARGET_EXCLUSIONS = ("same_node", "incompatible", "maintenance", "hot", "node_limit", "ping_pong", "would_overload")

# Horizon buckets: (upper bound in seconds, label). A horizon goes to the first bucket it fits.
HORIZON_BUCKETS: tuple[tuple[float, str], ...] = ((60.0, "1m"), (300.0, "5m"), (900.0, "15m"), (3600.0, "1h"))
HORIZON_LABELS: tuple[str, ...] = (*(label for _, label in HORIZON_BUCKETS), "long")

# --- histogram buckets that fit what they measure ---------------------------------------------
# Per-record processing: 0.1 ms (a HoltWinters learn) … 1 s (a stalled event loop).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# Whole migrations: 0.1 s (a function re-route) … 10 min (a large VM over a slow link).
MIGRATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0, 600.0)
# Downtime: 1 ms (QEMU's final stop-and-copy) … 60 s (a slow snapshot restore).
DOWNTIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def horizon_bucket(horizon_seconds: float) -> str:
    """The bounded ``horizon`` label of a forecast horizon: ``1m``, ``5m``, ``15m``, ``1h`` or ``long``."""
    for bound, label in HORIZON_BUCKETS:
        if horizon_seconds <= bound:
            return label
    return "long"


def _version() -> str:
    """The installed distribution's version (no import of ``plba``: it sits above this package)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("plba")
    except PackageNotFoundError:
        return "unknown"


def _common(registry: CollectorRegistry, component: str, process_metrics: bool) -> None:
    Info("plba_build", "PLBA build of this process", ["component"], registry=registry).labels(component).info(
        {"version": _version()}
    )
    if process_metrics:
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        PlatformCollector(registry=registry)


class StreamMetrics:
    """The worker's catalog. Attributes are the metric families (documented inline with their
    labels); ``record_*`` helpers cover the cases with derived or wire-supplied label values."""

    def __init__(self, registry: CollectorRegistry, *, component: str = "worker", process_metrics: bool = True) -> None:
        r = registry
        _common(r, component, process_metrics)
        # --- pipeline ---------------------------------------------------------------------------
        self.records_consumed = Counter(
            "plba_records_consumed_total", "Records consumed, by topic role", ["topic"], registry=r
        )
        self.records_rejected = Counter(
            "plba_records_rejected_total",
            "Records rejected by contract checks (and sent to the DLQ), by topic role and error code",
            ["topic", "reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "plba_consumer_lag_records", "Records behind the partition end, summed by topic role", ["topic"], registry=r
        )
        self.processing_duration = Histogram(
            "plba_processing_duration_seconds",
            "Time to process one record, by processor (forecasting, decisions, dispatcher, events, policies)",
            ["processor"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dlq_writes = Counter(
            "plba_dlq_writes_total", "Records written to the DLQ, by source topic role and error code",
            ["source", "code"], registry=r,
        )  # fmt: skip
        # --- forecasting ------------------------------------------------------------------------
        self.forecasts_published = Counter(
            "plba_forecasts_published_total", "Forecast records published, by subject kind", ["subject_kind"],
            registry=r,
        )  # fmt: skip
        self.forecast_abs_error = Summary(
            "plba_forecast_abs_error_ratio",
            "Absolute forecast error as a fraction of capacity, by subject kind, resource and horizon bucket",
            ["subject_kind", "resource", "horizon"],
            registry=r,
        )
        self.forecast_interval_checks = Counter(
            "plba_forecast_interval_checks_total",
            "Observations compared with the interval forecast for them: inside, above the upper or below the lower",
            ["subject_kind", "resource", "horizon", "outcome"],
            registry=r,
        )
        self.forecast_nominal_coverage = Gauge(
            "plba_forecast_nominal_coverage_ratio", "The coverage the prediction intervals aim at", registry=r
        )
        self.models_resident = Gauge(
            "plba_forecast_models_resident", "Forecasting series (model sets) held in memory", registry=r
        )
        self.models_evicted = Counter(
            "plba_forecast_models_evicted_total", "Forecasting series evicted from memory (snapshotted)", registry=r
        )
        self.model_in_use = Gauge(
            "plba_forecast_model_in_use", "Series whose selected model is this one, by model name", ["model"],
            registry=r,
        )  # fmt: skip
        # --- decisions --------------------------------------------------------------------------
        self.decisions = Counter(
            "plba_decisions_total",
            "Decisions about hot nodes, by mode, decision (acted, no_action) and reason code",
            ["mode", "decision", "reason"],
            registry=r,
        )
        self.orders_issued = Counter(
            "plba_orders_issued_total", "Migration orders issued, by mode, method and reason code",
            ["mode", "method", "reason"], registry=r,
        )  # fmt: skip
        self.explanations = Counter(
            "plba_explanations_total", "Explanation records published, by decision", ["decision"], registry=r
        )
        self.explanation_exclusions = Counter(
            "plba_explanation_exclusions_total",
            "Candidates and targets excluded in explanations, by subject (candidate, target) and constraint",
            ["subject", "excluded_by"],
            registry=r,
        )
        self.hot_nodes = Gauge(
            "plba_hot_nodes", "Nodes whose upper forecast crosses their threshold, by resource", ["resource"],
            registry=r,
        )  # fmt: skip
        self.shadow_score = Gauge(
            "plba_shadow_score_ratio",
            "Recommendations (recommend/shadow mode) scored against actual overloads: precision and recall",
            ["measure"], registry=r,
        )  # fmt: skip
        self.fleet_nodes = Gauge("plba_fleet_nodes", "Nodes in this process's cluster view", registry=r)
        self.fleet_utilization = Gauge(
            "plba_fleet_utilization_ratio",
            "Mean node utilization over this process's nodes, by resource and kind (actual, forecast, upper, lower)",
            ["resource", "kind"],
            registry=r,
        )
        # --- dispatcher -------------------------------------------------------------------------
        self.migrations = Counter(
            "plba_migrations_total", "Finished migrations, by driver and outcome", ["driver", "outcome"], registry=r
        )
        self.migrations_in_flight = Gauge(
            "plba_migrations_in_flight", "Migrations dispatched and not finished, by driver", ["driver"], registry=r
        )
        self.migration_duration = Histogram(
            "plba_migration_duration_seconds", "Migration duration from accepted to completed, by driver",
            ["driver"], buckets=MIGRATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.migration_downtime = Histogram(
            "plba_migration_downtime_seconds", "Downtime of completed migrations, by driver",
            ["driver"], buckets=DOWNTIME_BUCKETS, registry=r,
        )  # fmt: skip
        self.migration_transferred = Counter(
            "plba_migration_transferred_bytes_total", "Bytes moved by completed migrations, by driver", ["driver"],
            registry=r,
        )  # fmt: skip

        self._reason = LabelCap((*REJECT_REASONS,), extra=16)
        self._policy_reason = LabelCap((*ORDER_REASONS, *NO_ACTION_REASONS), extra=32)
        self._exclusion = LabelCap((*CANDIDATE_EXCLUSIONS, *TARGET_EXCLUSIONS), extra=32)
        self._model = LabelCap(extra=24)
        self._driver = LabelCap(DRIVERS, extra=8)
        self._role = LabelCap(TOPIC_ROLES, extra=0)
        self._models_shown: set[str] = set()
        self._initialise()

    def _initialise(self) -> None:
        for topic in TOPIC_ROLES:
            self.records_consumed.labels(topic)
            for reason in ERROR_CODES:
                self.records_rejected.labels(topic, reason)
                self.dlq_writes.labels(topic, reason)
        for kind in SUBJECT_KINDS:
            self.forecasts_published.labels(kind)
        for resource in RESOURCES:
            self.hot_nodes.labels(resource)
        for mode in MODES:
            for reason in ORDER_REASONS:
                self.decisions.labels(mode, "acted", reason)
            for reason in NO_ACTION_REASONS:
                self.decisions.labels(mode, "no_action", reason)
        for decision in DECISIONS:
            self.explanations.labels(decision)
        for subject, codes in (("candidate", CANDIDATE_EXCLUSIONS), ("target", TARGET_EXCLUSIONS)):
            for code in codes:
                self.explanation_exclusions.labels(subject, code)
        for driver in DRIVERS:
            self.migrations_in_flight.labels(driver)
            self.migration_transferred.labels(driver)
            # Histograms start at zero too, so that rate() sees the first migration of a driver.
            self.migration_duration.labels(driver)
            self.migration_downtime.labels(driver)
            for outcome in MIGRATION_OUTCOMES:
                self.migrations.labels(driver, outcome)

    # --- pipeline helpers -------------------------------------------------------------------------
    def record_consumed(self, topic: str, n: int = 1) -> None:
        self.records_consumed.labels(self._role(topic)).inc(n)

    def record_rejected(self, topic: str, reason: str) -> None:
        """A record that broke its contract (``reason``: the ContractError code)."""
        self.records_rejected.labels(self._role(topic), self._reason(reason)).inc()

    def record_dlq(self, source: str, code: str) -> None:
        self.dlq_writes.labels(self._role(source), self._reason(code)).inc()

    def set_lag(self, lags: Mapping[str, int]) -> None:
        """Consumer lag by topic role (sum over the partitions this worker owns)."""
        for topic, lag in lags.items():
            self.consumer_lag.labels(self._role(topic)).set(max(0, lag))

    # --- forecasting helpers ----------------------------------------------------------------------
    def observe_forecast(
        self,
        subject_kind: str,
        resource: str,
        horizon_seconds: float,
        actual: float,
        lower: float,
        upper: float,
        mean: float | None = None,
        scale: float = 1.0,
    ) -> None:
        """Score one matured forecast against the observation it was made for.

        ``scale`` turns the error into a fraction of capacity: 1 for node series (already in
        ratio); for workload series the capacity of their node for ``resource`` (cores, bytes,
        bytes/s). Pass ``mean=None`` to record only interval coverage (scale-free).
        """
        horizon = horizon_bucket(horizon_seconds)
        outcome = "above" if actual > upper else "below" if actual < lower else "inside"
        self.forecast_interval_checks.labels(subject_kind, resource, horizon, outcome).inc()
        if mean is not None and scale > 0:
            self.forecast_abs_error.labels(subject_kind, resource, horizon).observe(abs(actual - mean) / scale)

    def set_models_in_use(self, counts: Mapping[str, int]) -> None:
        """Series count per selected model name; models no longer present drop to 0."""
        shown = {self._model(name) for name in counts}
        totals: dict[str, int] = dict.fromkeys(shown | self._models_shown, 0)
        for name, n in counts.items():
            totals[self._model(name)] += n
        for name, n in totals.items():
            self.model_in_use.labels(name).set(n)
        self._models_shown |= shown

    # --- decision helpers -------------------------------------------------------------------------
    def record_decision(self, output: Any, mode: str | None = None) -> None:
        """Count one decision cycle's output: anything with ``orders`` and ``explanations``
        lists of topic records (dicts), e.g. ``streams.live.decision_stage.DecisionOutput``."""
        for order in getattr(output, "orders", ()):
            reason = (order.get("reason") or {}).get("code", "other")
            self.orders_issued.labels(
                order.get("mode", mode or "enforce"), order.get("method", "other"), self._policy_reason(reason)
            ).inc()
        for expl in getattr(output, "explanations", ()):
            decision = "acted" if expl.get("decision") == "acted" else "no_action"
            expl_mode = expl.get("mode") or mode or "enforce"
            self.decisions.labels(expl_mode, decision, self._policy_reason(expl.get("reason"))).inc()
            self.explanations.labels(decision).inc()
            for subject, key in (("candidate", "candidates"), ("target", "targets")):
                for note in expl.get(key) or ():
                    if note.get("excluded_by"):
                        self.explanation_exclusions.labels(subject, self._exclusion(note["excluded_by"])).inc()

    def set_fleet(self, nodes: int, utilization: Mapping[tuple[str, str], float]) -> None:
        """Fleet size and mean utilization by (resource, kind)."""
        self.fleet_nodes.set(nodes)
        for (resource, kind), value in utilization.items():
            self.fleet_utilization.labels(resource, kind).set(value)

    # --- dispatcher helpers -----------------------------------------------------------------------
    def record_migration(
        self,
        driver: str,
        outcome: str,
        *,
        duration_seconds: float | None = None,
        downtime_seconds: float | None = None,
        transferred_bytes: int | None = None,
    ) -> None:
        """A migration reached a terminal state (completed, failed, rolled_back, rejected, expired)."""
        driver = self._driver(driver)
        self.migrations.labels(driver, outcome if outcome in MIGRATION_OUTCOMES else "other").inc()
        if outcome != "completed":
            return
        if duration_seconds is not None:
            self.migration_duration.labels(driver).observe(duration_seconds)
        if downtime_seconds is not None:
            self.migration_downtime.labels(driver).observe(downtime_seconds)
        if transferred_bytes:
            self.migration_transferred.labels(driver).inc(transferred_bytes)


class FleetMetrics:
    """Per-node fleet view for the dashboards; the only families that carry ids (see module doc).

    ``node_utilization``: ``plba_node_utilization_ratio{node,resource,kind}`` — kind ``actual``
    is the latest measured utilization; ``forecast``/``upper``/``lower`` are the peak of the
    latest forecast's mean/upper/lower over the horizon (what the policy compares with the
    threshold). Call :meth:`forget_node` when a node leaves, so its series go away.

    ``recent_migrations``: ``plba_workload_recent_migrations{workload}`` — migrations of the
    workload that finished within the last ``window_seconds``; only workloads with at least one
    are exported, so the bound is (migration rate limit x window). Time is an input.
    """

    def __init__(self, registry: CollectorRegistry, *, window_seconds: float = 3600.0) -> None:
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, not {window_seconds}")
        self.window_seconds = window_seconds
        self.node_utilization = Gauge(
            "plba_node_utilization_ratio",
            "Node utilization by node, resource and kind (actual, forecast, upper, lower)",
            ["node", "resource", "kind"],
            registry=registry,
        )
        self.recent_migrations = Gauge(
            "plba_workload_recent_migrations",
            f"Migrations of a workload finished in the last {window_seconds:g} s (workloads with none omitted)",
            ["workload"],
            registry=registry,
        )
        self._nodes: dict[str, set[tuple[str, str]]] = {}
        self._migrations: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @property
    def nodes(self) -> int:
        return len(self._nodes)

    def set_node(
        self,
        node: str,
        resource: str,
        *,
        actual: float | None = None,
        forecast: float | None = None,
        upper: float | None = None,
        lower: float | None = None,
    ) -> None:
        keys = self._nodes.setdefault(node, set())
        for kind, value in (("actual", actual), ("forecast", forecast), ("upper", upper), ("lower", lower)):
            if value is not None:
                self.node_utilization.labels(node, resource, kind).set(value)
                keys.add((resource, kind))

    def forget_node(self, node: str) -> None:
        for resource, kind in self._nodes.pop(node, set()):
            self.node_utilization.remove(node, resource, kind)

    def record_migration(self, workload: str, at: float) -> None:
        """A migration of ``workload`` finished at ``at`` (epoch seconds)."""
        with self._lock:
            self._migrations.setdefault(workload, deque()).append(at)
        self.expire(at)

    def expire(self, now: float) -> None:
        """Drop migrations older than the window; call it periodically with the current time."""
        horizon = now - self.window_seconds
        with self._lock:
            for workload in list(self._migrations):
                times = self._migrations[workload]
                while times and times[0] <= horizon:
                    times.popleft()
                if times:
                    self.recent_migrations.labels(workload).set(len(times))
                else:
                    del self._migrations[workload]
                    try:
                        self.recent_migrations.remove(workload)
                    except KeyError:
                        pass
