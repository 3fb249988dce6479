"""``plba bench report``: every benchmark on the shared traces, as a markdown report with PNG plots.

What each section measures and how a missing benchmark is shown: :mod:`plba.report`.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from plba.cli.options import kafka_options, setting_option, settings


def _interrupt(_signo: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


@click.command("report")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default="reports/latest",
    show_default=True,
    help="Folder of report.md, report.json and the PNG figures.",
)
@click.option("--quick", is_flag=True, help="Small subsets of every trace and short runs (a few minutes).")
@click.option(
    "--sections",
    default="forecast,policy,migrate,pipeline",
    show_default=True,
    help="Comma-separated sections to run; the others are listed as not run.",
)
@click.option(
    "--forecast-traces",
    default=None,
    metavar="NAMES",
    help="Traces (names or wide CSV files) for the forecast section.  [default: bitbrains,planetlab,azure,alibaba]",
)
@click.option(
    "--policy-traces",
    default=None,
    metavar="NAMES",
    help="Traces for the policy section.  [default: azure,bitbrains,planetlab,azure-max,alibaba; quick: azure,alibaba]",
)
@click.option(
    "--max-series",
    type=click.IntRange(min=1),
    default=None,
    help="Series per trace in the forecast section.  [default: 50; quick: 6]",
)
@kafka_options
@setting_option("traces_dir")
def bench_report_cmd(
    out: str, quick: bool, sections: str, forecast_traces: str | None, policy_traces: str | None,
    max_series: int | None,
) -> None:  # fmt: skip
    """Run the forecast, policy, migrate and pipeline benchmarks and write a report with plots."""
    from plba.report import SECTIONS, ReportConfig, ReportError, build_report

    chosen = _names(sections) or ()
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        raise click.BadParameter(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}", param_hint="--sections")
    changes: dict[str, Any] = {"sections": chosen}
    if (names := _names(forecast_traces)) is not None:
        changes["forecast_traces"] = names
    if (names := _names(policy_traces)) is not None:
        changes["policy_traces"] = names
    if max_series is not None:
        changes["max_series"] = max_series
    cfg = ReportConfig.quick_config(**changes) if quick else ReportConfig(**changes)

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        path = build_report(Path(out), cfg, settings(), progress=report)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        report("interrupted; benchmark topics and processes were removed")
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(str(path))
