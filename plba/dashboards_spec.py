"""The content of PLBA's Grafana dashboards: panels and queries as plain data.

Rendered to Grafana JSON by :mod:`plba.dashboards_gen`. Conventions every query follows, so that
``plba dashboards check`` can evaluate it: rates use ``$__rate_interval``, totals over the visible
range use ``$__range``; multi-value variables are matched with ``=~`` (their "All" value is
``.*``); series are aggregated with an explicit ``by (...)`` so a legend never depends on the
scrape job's name. Metric names are those of :mod:`streams.metrics` and :mod:`agents.metrics`
(a unit test checks that every name used here exists there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

RI = "$__rate_interval"
RANGE = "$__range"


# --- the declarative layer ---------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    queries: Sequence[Query]
    kind: str = "timeseries"  # timeseries | stat | bargauge
    unit: str = "short"
    description: str = ""
    w: int = 12
    h: int = 8
    band: bool = False  # series "upper" is filled down to series "lower" (an interval band)
    stack: bool = False
    min: float | None = None
    max: float | None = None
    repeat: str | None = None  # repeat the panel for each value of this variable


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class Var:
    name: str
    label: str
    query: str = ""  # label_values(...) for a query variable
    values: Sequence[str] = ()  # a custom variable's options
    current: str | None = None  # the default value (single-valued custom variables)
    multi: bool = False


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    file: str
    rows: Sequence[Row]
    variables: Sequence[Var] = field(default_factory=tuple)


def ts(title: str, *queries: tuple[str, str] | str, **kw: Any) -> Panel:
    """A time series panel; each query is an expression or (expression, legend)."""
    return Panel(title, [Query(*q) if isinstance(q, tuple) else Query(q) for q in queries], **kw)


def stat(title: str, expr: str, **kw: Any) -> Panel:
    return Panel(title, [Query(expr)], kind="stat", **{"w": 6, "h": 4, **kw})


def bars(title: str, expr: str, legend: str, **kw: Any) -> Panel:
    """A horizontal bar gauge of an instant query (totals over the range, top-k lists)."""
    return Panel(title, [Query(expr, legend, instant=True)], kind="bargauge", **kw)


def quantile(q: float, metric: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{selector}[{RI}])))"


def ratio_of_rates(num: str, den: str, by: str) -> str:
    return f"sum by ({by}) (rate({num}[{RI}])) / sum by ({by}) (rate({den}[{RI}]))"


def per_minute(metric: str, by: str, selector: str = "") -> str:
    return f"sum by ({by}) (rate({metric}{selector}[{RI}])) * 60"


def in_range(metric: str, selector: str = "", by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (increase({metric}{selector}[{RANGE}]))"


_WITH_COMPONENT = "* on (instance, job) group_left (component) plba_build_info"
_RESOURCES = ("cpu", "memory", "io")

# --- fleet overview ------------------------------------------------------------------------------
_NODE = 'node=~"$node", resource="$resource"'
FLEET = Dashboard(
    uid="plba-fleet",
    title="PLBA / Fleet overview",
    description="Node utilization, actual vs forecast with its interval, and the nodes predicted hot.",
    file="fleet.json",
    variables=(
        Var("resource", "Resource", values=_RESOURCES, current="cpu"),
        Var("node", "Node", query="label_values(plba_node_utilization_ratio, node)", multi=True),
    ),
    rows=(
        Row("Fleet", (
            stat("Nodes", "sum(plba_fleet_nodes)"),
            stat("Hot nodes", "sum(plba_hot_nodes)",
                 description="(node, resource) pairs whose upper forecast crosses the threshold"),
            stat("Workloads hosted", "sum(plba_workloads_hosted)"),
            stat("Migrations in flight", "sum(plba_migrations_in_flight)"),
            ts("Fleet utilization: actual vs forecast ($resource)",
               ('sum by (kind) (plba_fleet_utilization_ratio{resource="$resource"}'
                " * on (instance, job) group_left () plba_fleet_nodes) / scalar(sum(plba_fleet_nodes))", "{{kind}}"),
               unit="percentunit", band=True, min=0,
               description="Node-weighted mean over every worker's cluster view; forecast, upper and lower are "
               "the peak over the horizon (what the policy compares with the threshold)."),
            ts("Hot nodes by resource", ("sum by (resource) (plba_hot_nodes)", "{{resource}}"), stack=True),
        )),
        Row("Nodes", (
            ts("$node: $resource actual vs forecast",
               (f"max by (kind) (plba_node_utilization_ratio{{{_NODE}}})", "{{kind}}"),
               unit="percentunit", band=True, min=0, w=8, repeat="node"),
            bars("Highest predicted upper bound ($resource)",
                 'topk(10, max by (node) (plba_node_utilization_ratio{resource="$resource", kind="upper"}))',
                 "{{node}}", unit="percentunit", min=0, max=1),
            ts("Actual $resource utilization per node",
               (f'max by (node) (plba_node_utilization_ratio{{{_NODE}, kind="actual"}})', "{{node}}"),
               unit="percentunit", min=0),
        )),
    ),
)  # fmt: skip

# --- forecast quality ----------------------------------------------------------------------------
_F = 'resource="$resource", subject_kind="$subject"'
_CHECKS = "plba_forecast_interval_checks_total"
FORECAST = Dashboard(
    uid="plba-forecast",
    title="PLBA / Forecast quality",
    description="Rolling error and interval coverage of the online forecasters, and the models in use.",
    file="forecast.json",
    variables=(
        Var("resource", "Resource", values=_RESOURCES, current="cpu"),
        Var("subject", "Series", values=("node", "workload"), current="node"),
    ),
    rows=(
        Row("Accuracy", (
            ts("Mean absolute error by horizon ($subject $resource)",
               (ratio_of_rates(f"plba_forecast_abs_error_ratio_sum{{{_F}}}",
                               f"plba_forecast_abs_error_ratio_count{{{_F}}}", "horizon"), "{{horizon}}"),
               unit="percentunit", min=0, description="Absolute error as a fraction of capacity."),
            ts("Interval coverage by horizon ($subject $resource)",
               (ratio_of_rates(f'{_CHECKS}{{{_F}, outcome="inside"}}', f"{_CHECKS}{{{_F}}}", "horizon"), "{{horizon}}"),
               ("max(plba_forecast_nominal_coverage_ratio)", "nominal"),
               unit="percentunit", min=0, max=1,
               description="Share of observations inside the forecast interval; it should track the nominal."),
            ts("Observations above the upper bound ($subject $resource)",
               (ratio_of_rates(f'{_CHECKS}{{{_F}, outcome="above"}}', f"{_CHECKS}{{{_F}}}", "horizon"), "{{horizon}}"),
               unit="percentunit", min=0,
               description="Decisions use the upper bound: this is the share of surprises they miss."),
            ts("Interval coverage by resource (all series, all horizons)",
               (ratio_of_rates(f'{_CHECKS}{{outcome="inside"}}', _CHECKS, "resource"), "{{resource}}"),
               unit="percentunit", min=0, max=1),
        )),
        Row("Models", (
            ts("Series by model in use", ("sum by (model) (plba_forecast_model_in_use)", "{{model}}"),
               stack=True, w=8),
            ts("Forecasts published per second",
               (f"sum by (subject_kind) (rate(plba_forecasts_published_total[{RI}]))", "{{subject_kind}}"),
               unit="ops", w=8),
            stat("Series resident", "sum(plba_forecast_models_resident)", w=4),
            stat("Series evicted per second", f"sum(rate(plba_forecast_models_evicted_total[{RI}]))", unit="ops", w=4),
        )),
    ),
)  # fmt: skip

# --- decisions and explanations ------------------------------------------------------------------
_M = '{mode=~"$mode"}'
_DECIDE = '{processor="decisions"}'
DECISIONS = Dashboard(
    uid="plba-decisions",
    title="PLBA / Decisions and explanations",
    description="What the policy decided about hot nodes, the orders it issued, and what blocked moves.",
    file="decisions.json",
    variables=(Var("mode", "Mode", values=("enforce", "recommend", "shadow"), multi=True),),
    rows=(
        Row("Decisions", (
            stat("Hot nodes", "sum(plba_hot_nodes)"),
            stat("Orders issued in range", in_range("plba_orders_issued_total", _M)),
            stat("Decisions acted in range", in_range("plba_decisions_total", '{mode=~"$mode", decision="acted"}')),
            stat("Hot nodes left alone in range",
                 in_range("plba_decisions_total", '{mode=~"$mode", decision="no_action"}')),
            ts("Decisions per minute by reason",
               (per_minute("plba_decisions_total", "decision, reason", _M), "{{decision}}: {{reason}}"), unit="opm"),
            ts("Orders per minute by mode and method",
               (per_minute("plba_orders_issued_total", "mode, method", _M), "{{mode}} {{method}}"), unit="opm"),
            bars("Decisions by reason in range", in_range("plba_decisions_total", _M, "reason"), "{{reason}}"),
            ts("Decision time per cycle (p50, p95)",
               (quantile(0.5, "plba_processing_duration_seconds", "processor", _DECIDE), "p50"),
               (quantile(0.95, "plba_processing_duration_seconds", "processor", _DECIDE), "p95"), unit="s"),
        )),
        Row("Explanations", (
            ts("Explanations per minute", (per_minute("plba_explanations_total", "decision"), "{{decision}}"),
               unit="opm"),
            bars("What excluded candidates and targets in range",
                 in_range("plba_explanation_exclusions_total", by="subject, excluded_by"),
                 "{{subject}}: {{excluded_by}}"),
        )),
    ),
)  # fmt: skip

# --- migrations ----------------------------------------------------------------------------------
_D = '{driver=~"$driver"}'
MIGRATIONS = Dashboard(
    uid="plba-migrations",
    title="PLBA / Migrations",
    description="Migration outcomes, durations and downtime, from the dispatcher and the executors.",
    file="migrations.json",
    variables=(Var("driver", "Driver", query="label_values(plba_migrations_total, driver)", multi=True),),
    rows=(
        Row("Outcomes", (
            stat("Completed in range", in_range("plba_migrations_total", '{driver=~"$driver", outcome="completed"}')),
            stat("Failed or rolled back in range",
                 in_range("plba_migrations_total", '{driver=~"$driver", outcome=~"failed|rolled_back"}')),
            stat("In flight", f"sum(plba_migrations_in_flight{_D})"),
            stat("Bytes moved in range", in_range("plba_migration_transferred_bytes_total", _D), unit="bytes"),
            ts("Migrations per minute by outcome", (per_minute("plba_migrations_total", "outcome", _D), "{{outcome}}"),
               unit="opm", stack=True),
            bars("Outcomes by driver in range", in_range("plba_migrations_total", _D, "driver, outcome"),
                 "{{driver}} {{outcome}}"),
        )),
        Row("Duration and downtime", (
            ts("Migration duration (p50, p95) by driver",
               (quantile(0.5, "plba_migration_duration_seconds", "driver", _D), "p50 {{driver}}"),
               (quantile(0.95, "plba_migration_duration_seconds", "driver", _D), "p95 {{driver}}"), unit="s"),
            ts("Downtime (p50, p95) by driver",
               (quantile(0.5, "plba_migration_downtime_seconds", "driver", _D), "p50 {{driver}}"),
               (quantile(0.95, "plba_migration_downtime_seconds", "driver", _D), "p95 {{driver}}"), unit="s"),
            bars("Mean downtime in range by driver",
                 f"{in_range('plba_migration_downtime_seconds_sum', _D, 'driver')}"
                 f" / {in_range('plba_migration_downtime_seconds_count', _D, 'driver')}", "{{driver}}", unit="s"),
            ts("Bytes moved per second by driver",
               (f"sum by (driver) (rate(plba_migration_transferred_bytes_total{_D}[{RI}]))", "{{driver}}"),
               unit="Bps"),
        )),
        Row("Executors", (
            bars("Executor phases in range", in_range("plba_executor_migration_phases_total", _D, "phase, outcome"),
                 "{{phase}} {{outcome}}"),
            ts("Downtime measured by the source executor (p95)",
               (quantile(0.95, "plba_executor_migration_downtime_seconds", "driver", _D), "{{driver}}"), unit="s",
               description="The runtime's own figure where it has one (QEMU's downtime statistic)."),
            bars("Journal recoveries in range", in_range("plba_executor_recoveries_total", by="outcome"),
                 "{{outcome}}"),
            bars("Most migrated workloads (recent window)",
                 "topk(10, max by (workload) (plba_workload_recent_migrations))", "{{workload}}",
                 description="Migrations per workload within the dispatcher's window (default 1 h)."),
        )),
    ),
)  # fmt: skip

# --- pipeline health -----------------------------------------------------------------------------
_PROC = "plba_processing_duration_seconds"
PIPELINE = Dashboard(
    uid="plba-pipeline",
    title="PLBA / Pipeline health",
    description="Throughput, consumer lag, rejects and DLQ, node producers, executor gRPC and processes.",
    file="pipeline.json",
    rows=(
        Row("Stream worker", (
            ts("Records consumed per second by topic",
               (f"sum by (topic) (rate(plba_records_consumed_total[{RI}]))", "{{topic}}"), unit="ops"),
            ts("Consumer lag by topic", ("sum by (topic) (plba_consumer_lag_records)", "{{topic}}"),
               description="Records between the committed position and the end of the partitions."),
            ts("Records rejected per second by reason",
               (f"sum by (reason) (rate(plba_records_rejected_total[{RI}]))", "{{reason}}"), unit="ops"),
            ts("DLQ writes per second by source",
               (f"sum by (source) (rate(plba_dlq_writes_total[{RI}]))", "{{source}}"), unit="ops"),
            ts("Processing time per record (p50, p99) by processor",
               (quantile(0.5, _PROC, "processor"), "p50 {{processor}}"),
               (quantile(0.99, _PROC, "processor"), "p99 {{processor}}"), unit="s"),
            bars("DLQ writes in range by source", in_range("plba_dlq_writes_total", by="source"), "{{source}}"),
        )),
        Row("Nodes", (
            ts("Samples per second (taken and skipped)",
               (f"sum by (scope) (rate(plba_agent_samples_taken_total[{RI}]))", "taken {{scope}}"),
               (f"sum by (reason) (rate(plba_agent_samples_skipped_total[{RI}]))", "skipped {{reason}}"), unit="ops"),
            ts("Sampling round time (p95) by node",
               (quantile(0.95, "plba_agent_sample_duration_seconds", "instance"), "{{instance}}"), unit="s"),
            ts("Producer buffer depth by node", ("max by (instance) (plba_producer_buffer_records)", "{{instance}}"),
               description="Records waiting for Kafka; it grows during a broker outage and drains after."),
            ts("Producer drops and delivery failures per second",
               (f"sum by (reason) (rate(plba_producer_dropped_records_total[{RI}]))", "dropped {{reason}}"),
               (f"sum by (retriable) (rate(plba_producer_delivery_failures_total[{RI}]))",
                "failed (retriable={{retriable}})"), unit="ops"),
            ts("Records delivered per second by topic",
               (f"sum by (topic) (rate(plba_producer_delivered_records_total[{RI}]))", "{{topic}}"), unit="ops"),
            ts("Driver operations per second by outcome",
               (f"sum by (driver, operation, outcome) (rate(plba_driver_operations_total[{RI}]))",
                "{{driver}} {{operation}} {{outcome}}"), unit="ops"),
        )),
        Row("Executor gRPC and processes", (
            ts("gRPC calls per second by method and code",
               (f"sum by (method, code) (rate(plba_grpc_server_handled_total[{RI}]))", "{{method}} {{code}}"),
               unit="ops"),
            ts("gRPC call time (p95) by method",
               (quantile(0.95, "plba_grpc_server_handling_seconds", "method"), "{{method}}"), unit="s"),
            ts("CPU by PLBA process",
               (f"sum by (component, instance) (rate(process_cpu_seconds_total[{RI}]) {_WITH_COMPONENT})",
                "{{component}} {{instance}}"), unit="percentunit", description="Cores used (1.0 = one core)."),
            ts("Resident memory by PLBA process",
               (f"sum by (component, instance) (process_resident_memory_bytes {_WITH_COMPONENT})",
                "{{component}} {{instance}}"), unit="bytes"),
        )),
    ),
)  # fmt: skip

DASHBOARDS: tuple[Dashboard, ...] = (FLEET, FORECAST, DECISIONS, MIGRATIONS, PIPELINE)
