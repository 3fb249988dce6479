"""Prometheus metrics of the node process (telemetry agent, producer, executor, drivers).

How to use
----------
Build the catalog once per ``plba node`` process on an injected registry, hand it to the agent,
producer, executor and drivers, and serve it::

    from prometheus_client import CollectorRegistry
    from agents.metrics import NodeMetrics, serve_metrics
    from agents.grpc_metrics import MetricsInterceptor

    registry = CollectorRegistry()
    metrics = NodeMetrics(registry, drivers=("sim", "process"))
    server = serve_metrics(registry, port=9410)               # 0: ephemeral; server.port
    grpc_server = grpc.aio.server(interceptors=[MetricsInterceptor(metrics)])
    ...
    metrics.samples_taken.labels("workload").inc(len(workloads))
    metrics.record_skipped("driver_error")
    metrics.producer_buffer.set(len(buffer))
    metrics.record_dropped("buffer_full", n)
    metrics.record_delivery_failure(err.retriable())          # confluent_kafka.KafkaError
    with metrics.driver_operation("qemu", "start"): await driver.start(spec)   # outcome from the exception
    metrics.record_phase("qemu", "transfer", "ok")
    metrics.record_migration("qemu", "source", duration_seconds=2.1, downtime_seconds=0.002)
    server.close()

Tests make a fresh ``CollectorRegistry()`` each; nothing here touches the global registry.

Rules
-----
* ``plba_`` prefix, base units (``_seconds``, ``_bytes``), counters end in ``_total``.
* No node id or workload id label: the scrape target (instance) already names the node.
  Label values come from closed sets; wire-supplied ones (Kafka error names, driver error codes)
  go through a cardinality cap (``"other"`` beyond it) — prefer the ``record_*`` helpers.
* Closed label sets are pre-initialised to 0 so dashboards show zeros rather than no data.

Default ports (``PLBA_METRICS_PORT``): worker 9400, dispatcher 9401, nodes 9410 + index.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from schemas.metrics_http import LabelCap, MetricsServer, serve_metrics

__all__ = ["GRPC_BUCKETS", "LabelCap", "MetricsServer", "NodeMetrics", "serve_metrics"]

DRIVERS = ("qemu", "process", "function", "sim")
SAMPLE_SCOPES = ("node", "workload")
SKIP_REASONS = ("driver_error", "workload_gone", "overrun")
DROP_REASONS = ("buffer_full", "too_old", "too_large", "invalid")
PRODUCER_TOPICS = ("node_usage", "workload_usage", "events", "policies")
OPERATIONS = ("start", "stop", "usage", "migrate_out", "migrate_in")
PHASES = ("prepare", "transfer", "switch", "commit", "abort", "recover")
PHASE_OUTCOMES = ("ok", "failed")
MIGRATION_ROLES = ("source", "target")
RECOVERY_OUTCOMES = ("completed", "rolled_back", "failed")
# The codes of agents.drivers.base.DriverError subclasses (gRPC status names in lower case).
DRIVER_CODES = ("ok", "internal", "invalid_argument", "not_found", "already_exists", "resource_exhausted",
                "failed_precondition")  # fmt: skip

# Agent sampling: 0.1 ms … 1 s (a sample that takes longer than its interval is an overrun).
SAMPLE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# gRPC calls: health checks take a millisecond, a streamed migration up to minutes.
GRPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0, 600.0)
# Driver operations: spawning a process (ms) … booting a VM (tens of seconds).
OPERATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Whole migrations 0.1 s … 10 min; downtime 1 ms … 60 s (same buckets as the dispatcher's).
MIGRATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0, 600.0)
DOWNTIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _version() -> str:
    """The installed distribution's version (no import of ``plba``: it sits above this package)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("plba")
    except PackageNotFoundError:
        return "unknown"


class NodeMetrics:
    """The node process's catalog. Attributes are the metric families; ``record_*`` helpers
    cover wire-supplied label values and timing."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        drivers: Sequence[str] = DRIVERS,
        component: str = "node",
        process_metrics: bool = True,
    ) -> None:
        r = registry
        Info("plba_build", "PLBA build of this process", ["component"], registry=r).labels(component).info(
            {"version": _version()}
        )
        if process_metrics:
            ProcessCollector(registry=r)
            GCCollector(registry=r)
            PlatformCollector(registry=r)
        # --- telemetry agent --------------------------------------------------------------------
        self.samples_taken = Counter(
            "plba_agent_samples_taken_total", "Usage samples taken, by scope (node, workload)", ["scope"], registry=r
        )
        self.samples_skipped = Counter(
            "plba_agent_samples_skipped_total",
            "Samples not taken, by reason (driver_error, workload_gone, overrun)",
            ["reason"],
            registry=r,
        )
        self.sample_duration = Histogram(
            "plba_agent_sample_duration_seconds", "Time to take one sampling round (node and all workloads)",
            buckets=SAMPLE_BUCKETS, registry=r,
        )  # fmt: skip
        # --- producer ---------------------------------------------------------------------------
        self.producer_buffer = Gauge(
            "plba_producer_buffer_records", "Records buffered locally, not yet acknowledged by Kafka", registry=r
        )
        self.producer_delivered = Counter(
            "plba_producer_delivered_records_total", "Records acknowledged by Kafka, by topic role", ["topic"],
            registry=r,
        )  # fmt: skip
        self.producer_dropped = Counter(
            "plba_producer_dropped_records_total",
            "Records dropped before delivery, by reason (buffer_full, too_old, too_large, invalid)",
            ["reason"],
            registry=r,
        )
        self.producer_delivery_failures = Counter(
            "plba_producer_delivery_failures_total",
            "Failed delivery reports, by whether Kafka calls the error retriable (the error name goes to the log)",
            ["retriable"],
            registry=r,
        )
        # --- executor gRPC server (see agents.grpc_metrics) -------------------------------------
        self.grpc_handled = Counter(
            "plba_grpc_server_handled_total", "gRPC calls completed by the executor, by service, method and code",
            ["service", "method", "code"], registry=r,
        )  # fmt: skip
        self.grpc_handling = Histogram(
            "plba_grpc_server_handling_seconds", "Duration of gRPC calls served by the executor, by service and method",
            ["service", "method"], buckets=GRPC_BUCKETS, registry=r,
        )  # fmt: skip
        # --- drivers ----------------------------------------------------------------------------
        self.driver_operations = Counter(
            "plba_driver_operations_total", "Driver operations, by driver, operation and outcome (ok or error code)",
            ["driver", "operation", "outcome"], registry=r,
        )  # fmt: skip
        self.driver_operation_duration = Histogram(
            "plba_driver_operation_duration_seconds", "Duration of driver operations, by driver and operation",
            ["driver", "operation"], buckets=OPERATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.workloads_hosted = Gauge(
            "plba_workloads_hosted", "Workloads hosted on this node, by driver", ["driver"], registry=r
        )
        # --- executor migrations ----------------------------------------------------------------
        self.migration_phases = Counter(
            "plba_executor_migration_phases_total", "Migration phases run by this executor, by driver, phase, outcome",
            ["driver", "phase", "outcome"], registry=r,
        )  # fmt: skip
        self.migration_duration = Histogram(
            "plba_executor_migration_duration_seconds",
            "Migration duration as seen by this executor, by driver and role (source, target)",
            ["driver", "role"],
            buckets=MIGRATION_BUCKETS,
            registry=r,
        )
        self.migration_downtime = Histogram(
            "plba_executor_migration_downtime_seconds",
            "Downtime of migrations this executor sourced (the runtime's own figure where it has one), by driver",
            ["driver"],
            buckets=DOWNTIME_BUCKETS,
            registry=r,
        )
        self.recoveries = Counter(
            "plba_executor_recoveries_total", "Interrupted migrations recovered from the journal, by outcome",
            ["outcome"], registry=r,
        )  # fmt: skip

        self._driver = LabelCap(DRIVERS, extra=8)
        self._code = LabelCap(DRIVER_CODES, extra=16)
        self._reason = LabelCap((*SKIP_REASONS, *DROP_REASONS), extra=8)
        self._initialise(drivers)

    def _initialise(self, drivers: Sequence[str]) -> None:
        for scope in SAMPLE_SCOPES:
            self.samples_taken.labels(scope)
        for reason in SKIP_REASONS:
            self.samples_skipped.labels(reason)
        for reason in DROP_REASONS:
            self.producer_dropped.labels(reason)
        for topic in PRODUCER_TOPICS:
            self.producer_delivered.labels(topic)
        for retriable in ("true", "false"):
            self.producer_delivery_failures.labels(retriable)
        for outcome in RECOVERY_OUTCOMES:
            self.recoveries.labels(outcome)
        for driver in drivers:
            driver = self._driver(driver)
            self.workloads_hosted.labels(driver)
            for operation in OPERATIONS:
                self.driver_operations.labels(driver, operation, "ok")
            for phase in PHASES:
                for outcome in PHASE_OUTCOMES:
                    self.migration_phases.labels(driver, phase, outcome)
            # Histograms too: Prometheus' rate() sees a first observation only as a rise from an
            # exported zero; a series born at 1 would never show the node's first migration.
            self.migration_downtime.labels(driver)
            for role in MIGRATION_ROLES:
                self.migration_duration.labels(driver, role)

    # --- agent / producer helpers -----------------------------------------------------------------
    def record_skipped(self, reason: str, n: int = 1) -> None:
        self.samples_skipped.labels(self._reason(reason)).inc(n)

    def record_dropped(self, reason: str, n: int = 1) -> None:
        self.producer_dropped.labels(self._reason(reason)).inc(n)

    def record_delivery_failure(self, retriable: bool) -> None:
        """A delivery report with an error (``retriable``: ``KafkaError.retriable()``)."""
        self.producer_delivery_failures.labels("true" if retriable else "false").inc()

    # --- driver / executor helpers ----------------------------------------------------------------
    @contextmanager
    def driver_operation(self, driver: str, operation: str) -> Iterator[None]:
        """Time and count one driver operation; the outcome is ``ok`` or the raised error's ``code``."""
        driver = self._driver(driver)
        start = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except BaseException as exc:
            outcome = self._code(getattr(exc, "code", "internal") if isinstance(exc, Exception) else "cancelled")
            raise
        finally:
            self.driver_operations.labels(driver, operation, outcome).inc()
            self.driver_operation_duration.labels(driver, operation).observe(time.perf_counter() - start)

    def set_hosted(self, counts: dict[str, int]) -> None:
        """Workloads per driver, e.g. ``{"sim": 4, "qemu": 1}``."""
        for driver, n in counts.items():
            self.workloads_hosted.labels(self._driver(driver)).set(n)

    def record_phase(self, driver: str, phase: str, outcome: str) -> None:
        self.migration_phases.labels(
            self._driver(driver), phase if phase in PHASES else "other", outcome if outcome == "ok" else "failed"
        ).inc()

    def record_migration(
        self, driver: str, role: str, *, duration_seconds: float | None = None, downtime_seconds: float | None = None
    ) -> None:
        """A migration this executor took part in completed (``role``: source or target)."""
        driver = self._driver(driver)
        if duration_seconds is not None:
            self.migration_duration.labels(driver, role if role in MIGRATION_ROLES else "other").observe(
                duration_seconds
            )
        if downtime_seconds is not None and role == "source":
            self.migration_downtime.labels(driver).observe(downtime_seconds)
