"""``plba schemas list|show|validate``: the Kafka record contracts from the command line.

``validate`` exits 0 for a valid record, 1 for an invalid one (each violation printed as
``<json path>: <reason>``), and 2 when it cannot judge: unreadable file, not JSON, unknown type.
"""

from __future__ import annotations

import sys

import click
import orjson

from plba.cli.options import setting_option, settings
from schemas import registry
from schemas.codec import Codec
from schemas.errors import INVALID_JSON, ContractError

EXIT_INVALID = 1
EXIT_CANNOT_JUDGE = 2


@click.group("schemas")
def schemas_group() -> None:
    """The record contracts of PLBA's Kafka topics (JSON Schemas in schemas/json)."""


@schemas_group.command("list")
@setting_option("topic_prefix")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(as_json: bool) -> None:
    """Name every record type with its topic, key and schema file."""
    prefix = settings().topic_prefix
    rows = []
    for name in registry.TYPE_NAMES:
        contract = registry.get(name)
        rows.append(
            {
                "type": name,
                "topic": contract.topic_name(prefix),
                "key": ":".join(contract.key_fields),
                "cleanup": contract.topic.cleanup,
                "schema": f"schemas/json/{name}.schema.json",
            }
        )
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"{'TYPE':<18} {'TOPIC':<28} {'KEY':<22} {'CLEANUP':<8} SCHEMA")
    for r in rows:
        click.echo(f"{r['type']:<18} {r['topic']:<28} {r['key']:<22} {r['cleanup']:<8} {r['schema']}")


@schemas_group.command("show")
@click.argument("type_name", metavar="TYPE", type=click.Choice(registry.TYPE_NAMES))
def show_cmd(type_name: str) -> None:
    """Print the JSON Schema of TYPE (its shared pieces are in common.schema.json)."""
    click.echo(orjson.dumps(registry.schema(type_name), option=orjson.OPT_INDENT_2).decode())


@schemas_group.command("validate")
@click.argument("file", type=click.Path(allow_dash=True))
@click.option(
    "--type", "type_name", required=True, type=click.Choice(registry.TYPE_NAMES), help="Record type of the payload."
)
@setting_option("max_record_bytes")
@click.pass_context
def validate_cmd(ctx: click.Context, file: str, type_name: str) -> None:
    """Check one JSON payload FILE ('-' for stdin) against the contract of TYPE.

    Exit status: 0 valid; 1 invalid (one '<json path>: <reason>' line per violation);
    2 cannot judge (unreadable file, not JSON).
    """
    try:
        data = sys.stdin.buffer.read() if file == "-" else _read(file)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        click.echo(f"Error: cannot read {file}: {reason}", err=True)
        ctx.exit(EXIT_CANNOT_JUDGE)
    if not data.strip():
        click.echo(f"Error: {file} is empty: expected one JSON object", err=True)
        ctx.exit(EXIT_CANNOT_JUDGE)
    codec = Codec(type_name, max_bytes=settings().max_record_bytes)
    try:
        codec.decode(data)
    except ContractError as exc:
        if exc.code == INVALID_JSON:
            click.echo(f"Error: {file} is not valid JSON: {exc.reason.removeprefix('not valid JSON: ')}", err=True)
            ctx.exit(EXIT_CANNOT_JUDGE)
        for violation in exc.violations:
            click.echo(f"{violation.path}: {violation.reason}")
        count = len(exc.violations)
        click.echo(f"{file}: invalid {type_name} record ({exc.code}, {count} violation{'s' * (count != 1)})", err=True)
        ctx.exit(EXIT_INVALID)
    click.echo(f"{file}: valid {type_name} record")


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()
