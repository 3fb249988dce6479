"""``plba node``: one node process — the executor's gRPC server and the telemetry agent."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from pathlib import Path
from typing import Any

import click

from plba.cli.options import kafka_options, setting_option, settings

log = logging.getLogger(__name__)


@click.command("node")
@setting_option("node_id")
@setting_option("node_listen", "--listen", metavar="HOST:PORT")
@setting_option("node_interval_seconds", "--interval", metavar="SECONDS")
@setting_option("node_labels", "--labels", metavar="K=V,…")
@setting_option("node_drivers", "--drivers", metavar="NAME,…")
@setting_option("node_state_dir", "--state-dir", metavar="DIR")
@setting_option("node_capacity_cores", "--capacity-cores", metavar="CORES")
@setting_option("node_capacity_memory", "--capacity-memory", metavar="SIZE")
@setting_option("node_capacity_io", "--capacity-io", metavar="SIZE/S")
@setting_option("tls_dir", metavar="DIR")
@setting_option("traces_dir", metavar="DIR")
@setting_option("metrics_port", metavar="PORT")
@kafka_options
@click.option("--no-telemetry", is_flag=True, help="Run the executor only; publish no telemetry")
@click.option("--keep-workloads", is_flag=True, help="Leave workloads running at shutdown (the next start adopts them)")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds the calls in flight get at shutdown",
)
def node_cmd(no_telemetry: bool, keep_workloads: bool, grace: float) -> None:
    """Run a node: the executor (gRPC, with the standard health service) and the telemetry agent.

    The executor starts, stops, lists and migrates workloads on this node's runtime drivers
    (migrations are journaled in the state directory and recovered at start); the agent
    publishes node and workload usage to Kafka every --interval seconds. With --tls-dir the
    executor requires mTLS and calls other executors with the node's certificate. The node keeps its
    state in <state-dir>/<node-id> (one directory per node, locked while the node runs).
    SIGTERM or Ctrl-C shut it down cleanly: in-flight calls finish, telemetry is flushed and
    the node's workloads are stopped (unless --keep-workloads).
    """
    from agents.node import Capacity, NodeConfigError, parse_driver_list, parse_labels, virtual_capacity
    from agents.sizes import SizeError, parse_size

    s = settings()
    if not s.node_id:
        raise click.UsageError("--node-id is required (or set PLBA_NODE_ID)")
    try:
        drivers = parse_driver_list(s.node_drivers)
        capacity = Capacity.configure(
            cpu_cores=s.node_capacity_cores or None,
            mem_bytes=parse_size(s.node_capacity_memory) if s.node_capacity_memory else None,
            io_bytes_per_second=float(parse_size(s.node_capacity_io)) if s.node_capacity_io else None,
            virtual=virtual_capacity(drivers),
        )
        labels = parse_labels(s.node_labels)
    except (SizeError, NodeConfigError) as exc:
        raise click.UsageError(str(exc)) from exc
    telemetry = not no_telemetry and importlib.util.find_spec("agents.telemetry") is not None
    if not no_telemetry and not telemetry:
        log.warning("agents.telemetry is not available in this build: running the executor only")
    try:
        asyncio.run(_run(capacity, labels, drivers, telemetry, keep_workloads, grace))
    except NodeConfigError as exc:
        raise click.ClickException(str(exc)) from exc


async def _run(
    capacity: Any, labels: dict[str, str], drivers: list[str], telemetry: bool, keep_workloads: bool, grace: float
) -> None:
    from agents.node import Node, run_node

    s = settings()
    metrics: Any = None
    metrics_server: Any = None
    interceptors: list[Any] = []
    producer: Any = None
    try:
        if s.metrics_port:
            from prometheus_client import CollectorRegistry

            from agents.grpc_metrics import MetricsInterceptor
            from agents.metrics import NodeMetrics, serve_metrics

            registry = CollectorRegistry()
            metrics = NodeMetrics(registry, drivers=tuple(drivers))
            metrics_server = serve_metrics(registry, s.metrics_port)
            interceptors.append(MetricsInterceptor(metrics))
        if telemetry:
            from agents.producer import BufferedProducer

            producer = BufferedProducer(s, metrics=metrics).start()
        node = await Node.open(
            s.node_id,
            drivers,
            Path(s.node_state_dir) / s.node_id,
            capacity=capacity,
            labels=labels,
            traces_dir=s.traces_dir,
            metrics=metrics,
            tls_dir=s.tls_dir,
            fault_crash_at=s.fault_crash_at,
        )
        services = []
        if producer is not None:
            try:
                from agents.telemetry import TelemetryAgent

                services.append(TelemetryAgent(node, s, producer, metrics=metrics).run)
            except BaseException:
                await node.close(stop_workloads=False)
                raise
        await run_node(
            node,
            s.node_listen,
            tls_dir=s.tls_dir,
            services=services,
            keep_workloads=keep_workloads,
            grace_seconds=grace,
            interceptors=interceptors,
            on_ready=lambda endpoint: click.echo(f"node {s.node_id} serving on {endpoint}"),
        )
    finally:
        if producer is not None:
            stats = await asyncio.to_thread(producer.close)
            log.info("telemetry producer closed: %s", stats)
        if metrics_server is not None:
            metrics_server.close()
    click.echo(f"node {s.node_id} stopped")
