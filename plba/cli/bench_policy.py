"""``plba bench policy``: replay a real trace through the none / reactive / predictive policies.

Packs the trace's series onto N equal nodes (rule in :mod:`streams.bench.policy_bench`), replays
it step by step through each policy with the live decision code, and prints per-policy metrics as
a table, or as JSON with ``--json``.
"""

from __future__ import annotations

import click
import orjson

from plba.cli.options import setting_option, settings


@click.command("policy")
@click.option(
    "--trace",
    "trace",
    required=True,
    metavar="FILE_OR_NAME",
    help="A shared trace (bitbrains, planetlab, azure, azure-max, alibaba, alibaba-mem) or a wide CSV file.",
)
@click.option("--nodes", type=click.IntRange(min=2), required=True, help="Number of equal nodes to pack onto.")
@click.option(
    "--target-util",
    type=click.FloatRange(0.05, 0.95),
    default=0.6,
    show_default=True,
    help="Mean packed CPU utilisation over the first day; sets the node capacity.",
)
@click.option(
    "--workloads-per-node",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Workloads per node; series are tiled (time-shifted copies) when the trace has too few.",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=2),
    default=2016,
    show_default=True,
    help="Replay at most this many trace steps (2016 = one week at 5 min).",
)
@click.option(
    "--forecaster",
    type=click.Choice(["auto", "ewma", "series", "oracle"]),
    default="auto",
    show_default=True,
    help="ewma: vectorised stand-in; series: the forecasting core per workload; auto: series when small; "
    "oracle: the true future loads (what perfect forecasts would buy; persistence and act floor off).",
)
@click.option(
    "--pool-size",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Nodes per pool (decision shard); 0 = one pool.",
)
@click.option(
    "--policies", default="none,reactive,predictive", show_default=True, help="Comma-separated policies to replay."
)
@click.option(
    "--shadow/--no-shadow",
    default=True,
    show_default=True,
    help="Also score predictive recommendations (shadow mode) during the 'none' replay.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@setting_option("traces_dir")
def bench_policy_cmd(
    trace: str,
    nodes: int,
    target_util: float,
    workloads_per_node: int,
    max_steps: int,
    forecaster: str,
    pool_size: int,
    policies: str,
    shadow: bool,
    as_json: bool,
) -> None:
    """Replay a trace through each policy and compare overload, SLA violations and migrations."""
    from streams.bench.policy_bench import POLICY_NAMES, run_bench, table
    from streams.traces import TraceError

    chosen = tuple(p.strip() for p in policies.split(",") if p.strip())
    unknown = [p for p in chosen if p not in POLICY_NAMES]
    if unknown or not chosen:
        raise click.BadParameter(
            f"unknown policies {unknown}; known: {', '.join(POLICY_NAMES)}", param_hint="--policies"
        )
    try:
        result = run_bench(
            trace,
            nodes,
            target_util,
            workloads_per_node,
            max_steps,
            forecaster,
            pool_size,
            shadow and "none" in chosen,
            chosen,
            settings().traces_dir,
        )
    except (TraceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(table(result))
