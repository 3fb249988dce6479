"""``plba bench faults``: the fault scenarios with real components, every outcome counted.

Progress goes to stderr; the result is a table, or one JSON object with ``--json``. Every process,
private broker and topic a scenario starts is removed when it ends, also on Ctrl-C or SIGTERM.
The exit status is 1 when a scenario could not run (its error is in the output), else 0: the
counts themselves are the result, judged by whoever reads them.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import orjson

from plba.cli.options import kafka_options, settings

_SCENARIOS = ("bad-input", "worker-kill", "broker-restart", "executor")


def _interrupt(_signo: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _scenarios(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in _SCENARIOS]
    if unknown or not names:
        raise click.BadParameter(f"choose from {', '.join(_SCENARIOS)} (comma-separated), not {value!r}")
    return names


@click.command("faults")
@click.option(
    "--trials", type=click.IntRange(min=1), default=1, show_default=True,
    help="Times each fault is injected (worker kills, broker restarts, executor scenarios).",
)  # fmt: skip
@click.option(
    "--bad-records", type=click.IntRange(min=1), default=10_000, show_default=True,
    help="Bad records injected into each input topic (a quarter as many valid ones interleaved).",
)  # fmt: skip
@click.option(
    "--phase-seconds", type=click.FloatRange(min=5), default=25.0, show_default=True,
    help="Worker kill and broker restart: how long the pipeline runs before and after each fault.",
)  # fmt: skip
@click.option(
    "--scenarios", default=",".join(_SCENARIOS), show_default=True, callback=_scenarios,
    help="Which scenarios to run, comma-separated.",
)  # fmt: skip
@click.option(
    "--keep-logs", type=click.Path(file_okay=False), default=None,
    help="Keep every process's log in this folder.  [default: a temporary folder, removed]",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@kafka_options
def bench_faults_cmd(
    trials: int, bad_records: int, phase_seconds: float, scenarios: tuple[str, ...], keep_logs: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Survive faults and refuse bad input, counted: samples lost, duplicate migrations, DLQ reasons."""
    from plba.bench_faults import run_faults

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    workdir = Path(keep_logs) if keep_logs else Path(tempfile.mkdtemp(prefix="plba-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_faults(
            settings(), workdir, trials=trials, bad_records=bad_records, phase_seconds=phase_seconds,
            scenarios=scenarios, progress=report,
        )  # fmt: skip
    except KeyboardInterrupt:
        report("interrupted; the scenario's processes, broker and topics were removed")
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_table(result))
    if result.get("scenario_errors"):
        sys.exit(1)


def format_table(result: dict[str, Any]) -> str:
    lines = ["fault scenarios", ""]
    width = max((len(k) for k, v in result.items() if isinstance(v, int)), default=10)
    for key, value in result.items():
        if isinstance(value, int) and not isinstance(value, bool):
            lines.append(f"  {key:<{width}}  {value:>10,}")
    lines.append("")
    for name, counts in result.get("scenarios", {}).items():
        if "error" in counts:
            lines.append(f"  {name}: ERROR {counts['error']}")
        else:
            lines.append(f"  {name}: {counts.get('seconds', 0):.0f} s")
    lines.append(f"  total: {result.get('seconds', 0):.0f} s")
    return "\n".join(lines)
