"""``plba bench forecast``: replay a trace through the forecaster, against naive and MA6.

Rolling origin, one sample at a time through the same :class:`SeriesForecaster` the worker
runs (rules in :mod:`streams.bench.forecast_bench`). Prints median-over-series MAE per horizon
for ``naive``, ``ma6`` and ``plba``, PLBA's interval coverage and its throughput; ``--json``
prints the same as one JSON object. Progress goes to stderr.
"""

from __future__ import annotations

import sys

import click
import orjson

from plba.cli.options import setting_option, settings


def _horizons(_ctx: click.Context, _param: click.Parameter, value: str) -> list[int]:
    try:
        steps = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated step counts, not {value!r}") from None
    if not steps or any(h < 1 for h in steps):
        raise click.BadParameter("horizons must be positive step counts")
    return sorted(set(steps))


@click.command("forecast")
@click.option(
    "--trace",
    "trace",
    required=True,
    metavar="FILE_OR_NAME",
    help="A shared trace (bitbrains, planetlab, azure, azure-max, alibaba, alibaba-mem) or a wide CSV "
    "file (first column a step index or timestamp, every other column one series in CPU %).",
)
@click.option(
    "--horizons",
    default="1,6,12",
    show_default=True,
    callback=_horizons,
    help="Forecast horizons in steps (comma-separated).",
)
@click.option(
    "--max-series", type=click.IntRange(min=1), default=None, help="Replay only the first N series.  [default: all]"
)
@click.option(
    "--coverage", type=click.FloatRange(0.5, 0.99), default=0.9, show_default=True, help="Nominal interval coverage."
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Report progress on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@setting_option("traces_dir")
def bench_forecast_cmd(
    trace: str, horizons: list[int], max_series: int | None, coverage: float, progress: bool, as_json: bool
) -> None:
    """Replay a trace through the forecasting core and compare it with naive and MA6."""
    from streams.bench.forecast_bench import format_table, run_forecast_bench
    from streams.forecasting import ForecasterConfig
    from streams.traces import TraceError, load_trace

    try:
        data = load_trace(trace, settings().traces_dir).head(max_series)
    except TraceError as exc:
        raise click.UsageError(str(exc)) from exc

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_forecast_bench(
        data, horizons, config=ForecasterConfig(coverage=coverage), progress=report if progress else None
    )
    if as_json:
        click.echo(orjson.dumps(result.to_json(), option=orjson.OPT_SERIALIZE_NUMPY).decode())
    else:
        click.echo(format_table(result))
