"""``plba dispatcher``: the dispatcher on its own (when the worker runs with dispatch off)."""

from __future__ import annotations

import click

from plba.cli.options import kafka_options, setting_option, settings


@click.command("dispatcher")
@kafka_options
@setting_option("worker_id")
@setting_option("tls_dir")
@setting_option("metrics_port")
def dispatcher_cmd() -> None:
    """Carry out migration orders: call each order's source executor over gRPC, publish progress.

    Run it when workers are started with PLBA_WORKER_DISPATCH=false; it joins the consumer group
    <worker-id>-dispatcher. Orders are idempotent by order_id: a redelivered order never migrates
    twice.
    """
    from streams.app import StreamWorker as FaustWorker
    from streams.worker import build_dispatcher

    s = settings()
    try:
        app, server = build_dispatcher(s)
    except OSError as exc:
        raise click.ClickException(f"cannot serve metrics on port {s.metrics_port}: {exc}") from exc
    try:
        FaustWorker(app, loglevel=s.log_level.lower(), quiet=True).execute_from_commandline()
    finally:
        if server is not None:
            server.close()
