"""``plba bench migrate``: PLBA's migrations vs. the runtime's own bound (raw QMP, raw copy)."""

from __future__ import annotations

import json
import math
from typing import Any

import click


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from agents.bench_migrate_raw import parse_size

    try:
        size = parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if size <= 0:
        raise click.BadParameter("must be positive")
    return size


@click.command("migrate")
@click.option("--driver", type=click.Choice(["qemu", "process"]), default="qemu", show_default=True,
              help="qemu: live migration vs. raw QMP; process: snapshot transfer vs. raw copy")  # fmt: skip
@click.option("--memory", default="256M", show_default=True, callback=_size, help="Guest memory (qemu)")
@click.option("--state", default="10M", show_default=True, callback=_size, help="State size (process)")
@click.option("--runs", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Migrations through PLBA, and as many raw ones, alternating")  # fmt: skip
@click.option("--ram-fill", type=click.Choice(["random", "zero"]), default="random", show_default=True,
              help="qemu: guest RAM of random bytes (every page moves) or zero pages (an idle guest)")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON")
def bench_migrate_cmd(driver: str, memory: int, state: int, runs: int, ram_fill: str, as_json: bool) -> None:
    """Migrate N times through PLBA (two node executors on loopback, the gRPC protocol) and the same
    size directly as the bound: raw QMP between two QEMUs (qemu) or a raw checksummed copy (process).

    Targets: qemu downtime p50 <= 1.2 x raw and total p50 <= raw + 200 ms; process (10 MB state)
    downtime p50 <= 100 ms. Exit status 0 even when a target is missed (see "targets" in the JSON).
    """
    import shutil

    from agents.bench_migrate import BenchError, bench

    if driver == "qemu" and shutil.which("qemu-system-x86_64") is None:
        raise click.ClickException("qemu-system-x86_64 is not installed (Debian: apt-get install qemu-system-x86)")
    size = memory if driver == "qemu" else state
    try:
        result = bench(driver, size, runs, ram_fill=ram_fill)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result, indent=2, allow_nan=False, default=_finite))
        return
    click.echo(_table(result))


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _table(result: dict[str, Any]) -> str:
    what = f"{result.get('memory_bytes', result.get('state_bytes', 0)) / 2**20:g} MiB"
    lines = [f"plba bench migrate --driver {result['driver']}: {result['runs']} runs of {what}", ""]
    lines.append(f"{'':<16}{'p50 ms':>12}{'p95 ms':>12}")
    for key, label in (
        ("plba_downtime_ms", "PLBA downtime"),
        ("raw_downtime_ms", "raw downtime"),
        ("plba_total_ms", "PLBA total"),
        ("raw_total_ms", "raw total"),
    ):
        p = result[key]
        lines.append(f"{label:<16}{p['p50']:>12.1f}{p['p95']:>12.1f}")
    t = result["targets"]
    lines.append("")
    if result["driver"] == "qemu":
        lines.append(f"downtime p50 ratio {t['downtime_p50_ratio']:.2f} (target <= {t['downtime_p50_ratio_max']}), "
                     f"total p50 overhead {t['total_p50_overhead_ms']:.0f} ms (target <= "
                     f"{t['total_p50_overhead_ms_max']:.0f} ms): {'met' if t['met'] else 'MISSED'}")  # fmt: skip
    else:
        lines.append(f"downtime p50 {t['downtime_p50_ms']:.1f} ms (target <= {t['downtime_p50_ms_max']:.0f} ms): "
                     f"{'met' if t['met'] else 'MISSED'}")  # fmt: skip
    return "\n".join(lines)
