"""``plba demo``: the main job — the whole pipeline on this machine, live, then a summary."""

from __future__ import annotations

import click
import orjson

from plba.cli.options import kafka_options, settings


@click.command("demo")
@kafka_options
@click.option("--nodes", default=4, show_default=True, help="Node processes to start (2..32)")
@click.option("--duration", default=90.0, show_default=True, help="Seconds to run")
@click.option("--trace", default="alibaba", show_default=True, help="Shared trace the sim workloads follow")
@click.option("--speed", default=300.0, show_default=True, help="Trace seconds per wall second")
@click.option(
    "--real",
    is_flag=True,
    help="3 nodes with QEMU VMs and CPU-burning processes following the trace, real migrations (ignores --nodes)",
)
@click.option("--keep-topics", is_flag=True, help="Keep the demo's topics afterwards (for inspection)")
@click.option("--json", "as_json", is_flag=True, help="No live view; print the summary as JSON")
def demo_cmd(
    nodes: int, duration: float, trace: str, speed: float, real: bool, keep_topics: bool, as_json: bool
) -> None:
    """Run PLBA end to end: local Kafka, the stream worker, N nodes with workloads following a
    real trace, a maintenance window and an ingestion peak — and watch it predict and move work.

    Starts the local broker unless --kafka-bootstrap / PLBA_KAFKA_BOOTSTRAP names one, uses topics
    of its own (demo-<run>.*), and stops everything it started at the end or on Ctrl-C.
    """
    from plba.demo import DemoConfig, DemoError, run_demo
    from plba.localkafka import LocalKafkaError

    try:
        cfg = DemoConfig(nodes=nodes, duration_seconds=duration, trace=trace, speed=speed, real=real,
                         keep_topics=keep_topics)  # fmt: skip
    except DemoError as exc:
        raise click.UsageError(str(exc)) from exc

    def log(message: str) -> None:
        click.echo(message, err=True)

    try:
        if as_json:
            result = run_demo(settings(), cfg, log=log)
            click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        else:
            result = _live(cfg, log)
            _print_summary(result)
    except (DemoError, LocalKafkaError) as exc:
        raise click.ClickException(str(exc)) from exc


def _live(cfg, log):  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.live import Live

    from plba.demo import run_demo
    from plba.demo_view import DemoState, render

    console = Console()
    with Live(console=console, refresh_per_second=2, transient=False) as live:

        def tick(state: DemoState, elapsed: float, notes: list[str]) -> None:
            live.update(render(state, elapsed, cfg.duration_seconds, notes))

        return run_demo(settings(), cfg, on_tick=tick, log=log)


# The headline rows of the summary, in order; every other key follows as is. Overload is
# node-seconds above the trigger ratio; the replays run this run's recorded load (plba.demo_replay).
_HEADLINE = (
    ("overload_seconds_avoided", "overload avoided vs. reactive (node·s)"),
    ("overload_node_seconds", "overload, this run (node·s, measured)"),
    ("reactive_overload_node_seconds", "overload, reactive (node·s, replay)"),
    ("predictive_replay_overload_node_seconds", "overload, predictive (node·s, replay)"),
    ("no_action_overload_node_seconds", "overload, no action (node·s, replay)"),
    ("orders", "orders"),
    ("migrations_completed", "migrations completed"),
    ("migrations_failed", "migrations failed"),
    ("total_downtime_seconds", "downtime, all migrations (s)"),
    ("forecast_mae", "forecast error (MAE, node CPU ratio)"),
)


def _print_summary(result: dict) -> None:  # type: ignore[type-arg]
    from rich.console import Console
    from rich.table import Table

    t = Table(title="PLBA demo summary")
    t.add_column("measure")
    t.add_column("value", justify="right")
    shown = {key for key, _ in _HEADLINE} | {"migrations", "last_explanations"}  # the latter: --json only
    for key, label in _HEADLINE:
        t.add_row(label, _cell(result.get(key)), style="bold" if key == "overload_seconds_avoided" else None)
    for key, value in result.items():
        if key not in shown:
            t.add_row(key.replace("_", " "), _cell(value))
    console = Console()
    console.print(t)
    moves = result.get("migrations") or []
    if moves:
        m = Table(title="migrations")
        for col in ("workload", "from → to", "reason", "how", "state", "downtime"):
            m.add_column(col)
        for mv in moves:
            down = mv.get("downtime_seconds")
            m.add_row(
                mv["workload_id"], f"{mv['from']} → {mv['to']}", str(mv.get("reason")), str(mv.get("kind")),
                mv["state"], "—" if down is None else f"{down * 1000:.0f} ms",
            )  # fmt: skip
        console.print(m)


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "—"
    if isinstance(value, dict):
        return "\n".join(f"{k}: {_cell(v)}" for k, v in value.items()) or "—"
    return str(value)
