"""``plba kafka up|down|status|logs``: the embedded single-node broker for development and CI."""

from __future__ import annotations

import time

import click
import orjson

from plba import localkafka
from plba.cli.options import setting_option, settings


def _broker_options(func):  # type: ignore[no-untyped-def]
    for name in reversed(("kafka_port", "kafka_controller_port", "kafka_version", "data_dir", "cache_dir")):
        func = setting_option(name)(func)
    return func


@click.group("kafka")
def kafka_group() -> None:
    """Run a local single-node Apache Kafka broker (KRaft) on 127.0.0.1.

    The broker's jars come from Maven Central (org.apache.kafka:kafka_2.13) through Maven and
    are cached; data, logs and the pid file live in the data dir.
    """


@kafka_group.command("up")
@_broker_options
@setting_option("kafka_local_security", "--security", type=click.Choice(["none", "sasl_ssl"]))
@setting_option("kafka_sasl_ssl_port")
@setting_option("certs_dir", metavar="DIR")
@click.option(
    "--wait", "wait_seconds", default=90.0, show_default=True, help="Seconds to wait for the broker to answer"
)
def up_cmd(wait_seconds: float) -> None:
    """Fetch the jars if needed, format storage once, start the broker and wait until it answers."""
    try:
        localkafka.up(settings(), wait_seconds=wait_seconds, log=lambda m: click.echo(m, err=True))
    except localkafka.LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from exc


@kafka_group.command("down")
@_broker_options
def down_cmd() -> None:
    """Stop the broker that `plba kafka up` started (by its pid file); other brokers are untouched."""
    localkafka.down(settings(), log=lambda m: click.echo(m, err=True))


@kafka_group.command("status")
@_broker_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def status_cmd(as_json: bool) -> None:
    """Say whether the local broker is up, and where. Exit 1 when it is not running."""
    st = localkafka.status(settings())
    if as_json:
        click.echo(orjson.dumps(st).decode())
    elif st["running"]:
        ready = "ready" if st["ready"] else "not answering yet"
        click.echo(
            f"Kafka {st['version']} is up at {st['bootstrap']} (pid {st['pid']}, {ready}); data in {st['data_dir']}"
        )
    else:
        click.echo(f"Kafka is down (would listen at {st['bootstrap']}; data in {st['data_dir']})")
    if not st["running"]:
        raise SystemExit(1)


@kafka_group.command("logs")
@_broker_options
@click.option("-n", "--lines", default=50, show_default=True, help="How many lines")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C to stop)")
def logs_cmd(lines: int, follow: bool) -> None:
    """Print the end of the local broker's log."""
    s = settings()
    click.echo(localkafka.tail_log(s, lines))
    if follow:
        log = localkafka.paths(s).logs / "server.log"
        with open(log, errors="replace") as fh:
            fh.seek(0, 2)
            try:
                while True:
                    line = fh.readline()
                    if line:
                        click.echo(line, nl=False)
                    else:
                        time.sleep(0.5)
            except KeyboardInterrupt:
                pass
