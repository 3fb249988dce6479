"""``plba bench pipeline``: worker throughput vs its bound, and decision latency, through the real broker.

The rules of each measurement are in :mod:`plba.bench_pipeline`. Progress goes to stderr; the
result is a table, or one JSON object with ``--json``. Every topic and process the benchmark
creates is removed when it ends, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import click
import orjson

from plba.cli.options import kafka_options, setting_option, settings


def _interrupt(_signo: int, _frame: Any) -> None:
    raise KeyboardInterrupt


@click.command("pipeline")
@click.option(
    "--workloads",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Throughput phase: workloads (25 a node, whose node usage is produced too).",
)
@click.option(
    "--samples-per-workload",
    type=click.IntRange(min=2),
    default=30,
    show_default=True,
    help="Throughput phase: samples per workload, 5 s apart.",
)
@click.option(
    "--load-rate",
    type=click.FloatRange(min=1),
    default=5000.0,
    show_default=True,
    help="Latency phase: workload samples/s (as many workloads at 1 sample/s).",
)
@click.option(
    "--load-seconds",
    type=click.FloatRange(min=1),
    default=20.0,
    show_default=True,
    help="Latency phase: how long the load runs.",
)
@click.option(
    "--forecast-interval",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="The worker's PLBA_FORECAST_INTERVAL_SECONDS (forecast cadence decoupled from ingest).",
)
@click.option(
    "--decision-interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Latency phase: the worker's PLBA_DECISION_INTERVAL_SECONDS.",
)
@click.option(
    "--hot-share",
    type=click.FloatRange(0.01, 1.0),
    default=0.3,
    show_default=True,
    help="Latency phase: share of the nodes that turn hot, one after another.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=10),
    default=300.0,
    show_default=True,
    help="Give up when the worker has made no progress for this many seconds.",
)
@click.option(
    "--keep-logs",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep the workers' logs in this folder.  [default: a temporary folder, removed]",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@kafka_options
@setting_option("horizon_seconds")
def bench_pipeline_cmd(
    workloads: int, samples_per_workload: int, load_rate: float, load_seconds: float, forecast_interval: float,
    decision_interval: float, hot_share: float, timeout: float, keep_logs: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Measure the stream worker through Kafka: samples/s vs the bound, and decision latency under load."""
    from pathlib import Path

    from plba.bench_pipeline import PipelineBenchConfig, PipelineBenchError, format_table, run_pipeline_bench
    from plba.topic_admin import TopicAdminError

    try:
        cfg = PipelineBenchConfig(
            workloads=workloads, samples_per_workload=samples_per_workload, load_rate=load_rate,
            load_seconds=load_seconds, forecast_interval_seconds=forecast_interval,
            decision_interval_seconds=decision_interval,
            hot_share=hot_share, timeout_seconds=timeout,
        )  # fmt: skip
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_pipeline_bench(settings(), cfg, progress=report, workdir=Path(keep_logs) if keep_logs else None)
    except (PipelineBenchError, TopicAdminError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        report("interrupted; topics and the worker were removed")
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_table(result))
