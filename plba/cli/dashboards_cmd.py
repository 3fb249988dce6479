"""``plba dashboards check|generate``: the provisioned Grafana dashboards, proven against Prometheus."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from plba.dashboards import DEFAULT_DASHBOARD_DIR, DashboardsError, PrometheusUnreachable, check_dashboards

_DIR_HELP = "Folder of the dashboard JSON files  [default: compose/grafana/dashboards]"


@click.group("dashboards")
def dashboards_group() -> None:
    """Grafana dashboards: check every panel against a Prometheus, regenerate the JSON."""


def _parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="--var")
        out[name.strip()] = value
    return out


@dashboards_group.command("check")
@click.option(
    "--prometheus",
    "prometheus_url",
    required=True,
    metavar="URL",
    help="Prometheus base URL, e.g. http://127.0.0.1:9090",
)
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False), default=None, help=_DIR_HELP)
@click.option("--rate-interval", default="5m", show_default=True, help="Duration substituted for $__rate_interval")
@click.option("--interval", default="1m", show_default=True, help="Duration substituted for $__interval")
@click.option(
    "--range",
    "range_",
    default="1h",
    show_default=True,
    help="Duration substituted for $__range (and the --over-range window)",
)
@click.option(
    "--over-range",
    is_flag=True,
    help="A panel has data if any point in the last --range has (query_range); default: at the current instant",
)
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a template variable (default: its default value, or .* for All)",
)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for each query")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print JSON: {"dashboards": n, "panels": m, "empty": ["dashboard/panel", ...]}',
)
def check_cmd(
    prometheus_url: str,
    directory: Path | None,
    rate_interval: str,
    interval: str,
    range_: str,
    over_range: bool,
    variables: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Evaluate every panel query of every dashboard and report the panels without data.

    Exit status: 0 when every panel has data, 1 when some panel is empty (or its query fails),
    2 when Prometheus cannot be reached or the dashboards cannot be read.
    """
    try:
        report = check_dashboards(
            prometheus_url,
            directory or DEFAULT_DASHBOARD_DIR,
            rate_interval=rate_interval,
            interval=interval,
            range_=range_,
            over_range=over_range,
            variables=_parse_vars(variables),
            timeout=timeout,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    except PrometheusUnreachable as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    except DashboardsError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    if as_json:
        click.echo(orjson.dumps(report.to_dict()).decode())
    else:
        for result in report.results:
            if result.empty:
                what = ", ".join(
                    [f"{ref}: no data" for ref in result.empty_targets]
                    + [f"{ref}: {err}" for ref, err in result.errors.items()]
                )
                click.echo(f"EMPTY  {result.panel.name}  ({what})")
        n_empty = len(report.empty)
        click.echo(f"{report.dashboards} dashboards, {len(report.results)} panels, {n_empty} without data")
    if report.empty:
        raise SystemExit(1)


@dashboards_group.command("generate")
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if the JSON differs from the source")
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False), default=None, help=_DIR_HELP)
def generate_cmd(check_only: bool, directory: Path | None) -> None:
    """Write the dashboard JSON from plba/dashboards_spec.py (needs grafana-foundation-sdk)."""
    try:
        from plba import dashboards_gen
    except ImportError as exc:
        raise click.ClickException(
            f"generating dashboards needs the Grafana Foundation SDK ({exc}); "
            "pip install 'grafana-foundation-sdk==1769699379!11.6.0'"
        ) from exc
    out = directory or dashboards_gen.DASHBOARD_DIR
    if check_only:
        stale = dashboards_gen.drift(out)
        for name in stale:
            click.echo(f"{out / name}: differs from plba/dashboards_spec.py; run `plba dashboards generate`")
        if stale:
            raise SystemExit(1)
        click.echo(f"{len(dashboards_gen.DASHBOARDS)} dashboards up to date in {out}")
        return
    for path in dashboards_gen.generate(out):
        click.echo(str(path))
