"""``plba topics create|list``: the contract's topics with partitions, cleanup and retention."""

from __future__ import annotations

import click
import orjson

from plba.cli.options import kafka_options, settings
from plba.topic_admin import TopicAdminError, create_topics, describe_topics


@click.group("topics")
def topics_group() -> None:
    """Create and inspect PLBA's Kafka topics (ARCHITECTURE §4)."""


def _print(infos, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        click.echo(orjson.dumps([i.__dict__ for i in infos]).decode())
        return
    for i in infos:
        cfg = " ".join(f"{k}={v}" for k, v in i.configs.items())
        mark = " (created)" if i.created else ""
        click.echo(f"{i.name:<28} partitions={i.partitions:<3} {cfg}{mark}")


@topics_group.command("create")
@kafka_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def create_cmd(as_json: bool) -> None:
    """Create every missing topic; running it again changes nothing (idempotent)."""
    try:
        _print(create_topics(settings()), as_json)
    except TopicAdminError as exc:
        raise click.ClickException(str(exc)) from exc


@topics_group.command("list")
@kafka_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def list_cmd(as_json: bool) -> None:
    """List PLBA's topics with their partitions and configs."""
    try:
        infos = describe_topics(settings())
    except TopicAdminError as exc:
        raise click.ClickException(str(exc)) from exc
    if not infos and not as_json:
        click.echo("no PLBA topics yet: run `plba topics create`")
    _print(infos, as_json)
