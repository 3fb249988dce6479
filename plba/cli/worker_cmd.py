"""``plba worker``: the stream worker (forecasting and decision processors) as a Faust worker."""

from __future__ import annotations

import click

from plba.cli.options import kafka_options, setting_option, settings


@click.command("worker")
@kafka_options
@setting_option("worker_id")
@setting_option("policy")
@setting_option("decision_mode")
@setting_option("decision_interval_seconds")
@setting_option("horizon_seconds")
@setting_option("forecast_horizons")
@setting_option("forecast_interval_seconds")
@setting_option("forecast_snapshot_seconds")
@setting_option("metrics_port")
def worker_cmd() -> None:
    """Run the stream worker: forecasts every workload and node, decides and emits orders.

    Start several with the same --worker-id to share the partitions. Equivalent to
    `faust -A streams.faust_app worker`. Stops cleanly on SIGTERM / Ctrl-C.
    """
    from plba.topic_admin import TopicAdminError, create_changelogs
    from streams.app import StreamWorker as FaustWorker
    from streams.worker import build_worker

    s = settings()
    try:
        worker = build_worker(s)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        create_changelogs(s, worker.changelog_topics())
    except TopicAdminError as exc:  # Faust still declares them itself, and retries the broker
        click.echo(f"warning: {exc}; leaving the changelog topics to Faust", err=True)
    try:
        server = worker.serve_metrics()
    except OSError as exc:
        raise click.ClickException(f"cannot serve metrics on port {s.metrics_port}: {exc}") from exc
    try:
        FaustWorker(worker.app, loglevel=s.log_level.lower(), quiet=True).execute_from_commandline()
    finally:
        if server is not None:
            server.close()
