"""``plba schemas list|show|validate|bench``: the Kafka record contracts from the command line.

``validate`` exits 0 for a valid record, 1 for an invalid one (each violation printed as
``<json path>: <reason>``), and 2 when it cannot judge: unreadable file, not JSON, unknown type.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

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


def _rate(fn: Callable[[], Any], seconds: float) -> float:
    """Calls per second of ``fn``, run for about ``seconds`` (at least 10 calls)."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10):
            fn()
        count += 10
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def _bench_payloads() -> list[tuple[str, str, bytes]]:
    """(type, label, bytes): the first valid golden example of each type, plus a 100-workload node."""
    out = []
    for name in registry.TYPE_NAMES:
        path = sorted((registry.EXAMPLES_DIR / "valid" / name).glob("*.json"))[0]
        out.append((name, path.stem, orjson.dumps(orjson.loads(path.read_bytes()))))
    node = orjson.loads((registry.EXAMPLES_DIR / "valid/node_usage/qemu_host.json").read_bytes())
    node["workloads"] = [f"wl-{i:04d}" for i in range(100)]
    out.insert(1, ("node_usage", "qemu_host+100_workloads", orjson.dumps(node)))
    return out


@schemas_group.command("bench")
@click.option(
    "--seconds", default=0.5, show_default=True, type=click.FloatRange(0.01, 60), help="Time per measurement."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def bench_cmd(seconds: float, as_json: bool) -> None:
    """Records/s that decode+validate (the codec), per type, on one core; jsonschema alone for reference."""
    results = []
    for name, label, data in _bench_payloads():
        c = Codec(name)
        obj = orjson.loads(data)
        validator = registry.get(name).validator

        def reference(v: Any = validator, d: bytes = data) -> bool:
            return bool(v.is_valid(orjson.loads(d)))

        results.append(
            {
                "type": name,
                "payload": label,
                "bytes": len(data),
                "decode_per_second": round(_rate(partial(c.decode, data), seconds)),
                "decode_model_per_second": round(_rate(partial(c.decode_model, data), seconds)),
                "encode_per_second": round(_rate(partial(c.encode, obj), seconds)),
                "jsonschema_per_second": round(_rate(reference, seconds / 2)),
            }
        )
    if as_json:
        click.echo(
            orjson.dumps({"unit": "records_per_second", "results": results}, option=orjson.OPT_INDENT_2).decode()
        )
        return
    click.echo(
        f"{'TYPE':<18} {'PAYLOAD':<28} {'BYTES':>6} {'DECODE/s':>10} {'MODEL/s':>10} "
        f"{'ENCODE/s':>10} {'JSONSCHEMA/s':>13}"
    )
    for r in results:
        click.echo(
            f"{r['type']:<18} {r['payload']:<28} {r['bytes']:>6} {r['decode_per_second']:>10} "
            f"{r['decode_model_per_second']:>10} {r['encode_per_second']:>10} {r['jsonschema_per_second']:>13}"
        )
