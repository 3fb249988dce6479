"""``plba workload start|stop|list|usage``: drive a node's workloads over gRPC."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import orjson

from plba.cli.options import setting_option, settings

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})$")


def _node_options(func: F) -> F:
    func = click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=30.0,
        show_default=True,
        help="Deadline of the call, seconds",
    )(func)
    func = setting_option("tls_dir", metavar="DIR")(func)
    return setting_option("node_listen", "--node", metavar="HOST:PORT")(func)


def _address() -> str:
    node = settings().node_listen
    match = _ADDRESS.match(node)
    if match is None or int(match.group(2)) > 65535:
        raise click.BadParameter(f"{node!r} is not HOST:PORT", param_hint="--node")
    return node


def _call(work: Callable[[Any], Awaitable[T]], timeout: float) -> T:
    """Run ``work(client)`` against the node; failures become clear one-line errors."""
    from agents.executor_client import ExecutorCallError, ExecutorClient

    target = _address()
    tls_dir = settings().tls_dir

    async def main() -> T:
        async with ExecutorClient(target, tls_dir=tls_dir, timeout_seconds=timeout) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except ExecutorCallError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # TLS files missing
        raise click.ClickException(str(exc)) from exc


def _parse_memory(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    from agents.sizes import SizeError, parse_size

    if value is None:
        return None
    try:
        size = parse_size(value)
    except SizeError as exc:
        raise click.BadParameter(str(exc)) from exc
    if size <= 0:
        raise click.BadParameter(f"{value!r}: memory must be more than 0 bytes")
    return size


def _parse_params(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: write KEY=VALUE")
        params[key.strip()] = value
    return params


def _workload_dict(info: Any) -> dict[str, Any]:
    return {
        **info.spec.to_dict(),
        "state": info.state,
        "started_at": info.started_at,
        "endpoint": info.endpoint,
        "pid": info.pid,
    }


@click.group("workload")
def workload_group() -> None:
    """Start, stop and list workloads on a node (over the node's gRPC executor)."""


@workload_group.command("start")
@_node_options
@click.option("--driver", required=True, help="Runtime driver: sim, process, function or qemu")
@click.option("--name", "workload_id", required=True, help="Workload id (unique on the node)")
@click.option(
    "--kind", type=click.Choice(["vm", "container", "function"]), help="Workload kind  [default: the driver's]"
)
@click.option("--memory", callback=_parse_memory, help="Memory, e.g. 256M or 2G  [default: 256M]")
@click.option("--cpus", type=click.FloatRange(min=0, min_open=True), help="CPU cores  [default: 1]")
@click.option(
    "--priority", type=click.IntRange(0, 1000), help="Priority 0..1000, higher is more important  [default: 50]"
)
@click.option("--app", default="", help="Application the workload belongs to")
@click.option("--user", default="", help="User the workload belongs to")
@click.option("--trace", help="sim: shared trace (bitbrains, azure, alibaba, planetlab…) or a CSV file")
@click.option("--series", help="sim: the trace's column to follow (VM or machine id)")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), help="sim: trace seconds per wall second")
@click.option("--offset", type=click.FloatRange(min=0), help="sim: trace seconds to start at")
@click.option("--command", help="process: the command line  [default: the counter demo app]")
@click.option("--handler", help="function: MODULE:FUNCTION  [default: the built-in demo]")
@click.option("--workers", type=click.IntRange(1, 64), help="function: warm workers  [default: 2]")
@click.option("--param", "params", multiple=True, callback=_parse_params, help="Driver param KEY=VALUE (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def start_cmd(
    timeout: float,
    driver: str,
    workload_id: str,
    kind: str | None,
    memory: int | None,
    cpus: float | None,
    priority: int | None,
    app: str,
    user: str,
    trace: str | None,
    series: str | None,
    speed: float | None,
    offset: float | None,
    command: str | None,
    handler: str | None,
    workers: int | None,
    params: dict[str, str],
    as_json: bool,
) -> None:
    """Start a workload on the node. Params not covered by an option go in --param KEY=VALUE."""
    from schemas import executor_pb2 as pb

    shortcuts = {
        "trace": trace,
        "series": series,
        "speed": speed,
        "offset_seconds": offset,
        "command": command,
        "handler": handler,
        "workers": workers,
    }
    merged = {k: str(v) for k, v in shortcuts.items() if v is not None}
    merged.update(params)
    spec = pb.WorkloadSpec(workload_id=workload_id, kind=kind or "", driver=driver, app=app, user=user, params=merged)
    if memory is not None:
        spec.memory_bytes = memory
    if cpus is not None:
        spec.cpu_cores = cpus
    if priority is not None:
        spec.priority = priority
    info = _call(lambda client: client.start_workload_proto(spec), timeout)
    if as_json:
        click.echo(orjson.dumps(_workload_dict(info)).decode())
        return
    where = f", endpoint {info.endpoint}" if info.endpoint else ""
    pid = f", pid {info.pid}" if info.pid else ""
    click.echo(f"started {info.spec.workload_id} ({info.spec.driver}, {info.spec.kind}): {info.state}{where}{pid}")


@workload_group.command("stop")
@_node_options
@click.option("--name", "workload_id", required=True, help="Workload id")
def stop_cmd(timeout: float, workload_id: str) -> None:
    """Stop a workload and remove it (and its state) from the node."""
    _call(lambda client: client.stop_workload(workload_id), timeout)
    click.echo(f"stopped {workload_id}")


@workload_group.command("list")
@_node_options
@click.option("--driver", default="", help="Only this driver's workloads")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def list_cmd(timeout: float, driver: str, as_json: bool) -> None:
    """List the node's workloads."""
    from agents.sizes import format_size

    infos = _call(lambda client: client.list_workloads(driver), timeout)
    if as_json:
        click.echo(orjson.dumps([_workload_dict(i) for i in infos]).decode())
        return
    if not infos:
        click.echo("no workloads")
        return
    click.echo(f"{'NAME':<24} {'DRIVER':<9} {'KIND':<10} {'STATE':<9} {'MEMORY':>8} {'CPUS':>5} {'PRIO':>4}  ENDPOINT")
    for i in infos:
        s = i.spec
        click.echo(
            f"{s.workload_id:<24} {s.driver:<9} {s.kind:<10} {i.state:<9} {format_size(s.memory_bytes):>8} "
            f"{s.cpu_cores:>5g} {s.priority:>4}  {i.endpoint}"
        )


@workload_group.command("usage")
@_node_options
@click.option("--name", "workload_ids", multiple=True, help="Workload id (repeatable; default: all)")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def usage_cmd(timeout: float, workload_ids: tuple[str, ...], as_json: bool) -> None:
    """Show the current usage of the node's workloads (what the telemetry agent reads)."""
    from agents.sizes import format_size

    usages = _call(lambda client: client.get_usage(workload_ids), timeout)
    if as_json:
        rows = [
            {
                "workload_id": u.workload_id,
                "at": u.at,
                "cpu_cores_used": u.cpu_cores_used,
                "mem_used_bytes": u.mem_used_bytes,
                "io_bytes_per_second": u.io_bytes_per_second,
                "extra": dict(u.extra),
            }
            for u in usages
        ]
        click.echo(orjson.dumps(rows).decode())
        return
    if not usages:
        click.echo("no workloads")
        return
    click.echo(f"{'NAME':<24} {'CPU CORES':>9} {'MEMORY':>9} {'IO B/S':>10}  EXTRA")
    for u in usages:
        extra = " ".join(f"{k}={v:g}" for k, v in sorted(u.extra.items()))
        click.echo(
            f"{u.workload_id:<24} {u.cpu_cores_used:>9.3f} {format_size(u.mem_used_bytes):>9} "
            f"{u.io_bytes_per_second:>10.0f}  {extra}"
        )
