"""The ``plba`` command: one entry point, a subcommand per role.

Subcommands live in their own modules and are imported only when used, so ``plba --help`` and
light commands (``plba trigger``) start fast and never import Faust or River.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import click

from plba import __version__
from plba.cli.options import setting_option, settings

# name -> (module, attribute). Modules that are not present are simply not offered.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("plba.cli.demo_cmd", "demo_cmd"),
    "kafka": ("plba.cli.kafka_cmd", "kafka_group"),
    "topics": ("plba.cli.topics_cmd", "topics_group"),
    "schemas": ("plba.cli.schemas_cmd", "schemas_group"),
    "node": ("plba.cli.node_cmd", "node_cmd"),
    "workload": ("plba.cli.workload_cmd", "workload_group"),
    "trigger": ("plba.cli.trigger_cmd", "trigger_group"),
    "sla": ("plba.cli.sla_cmd", "sla_group"),
    "worker": ("plba.cli.worker_cmd", "worker_cmd"),
    "dispatcher": ("plba.cli.dispatcher_cmd", "dispatcher_cmd"),
    "dashboards": ("plba.cli.dashboards_cmd", "dashboards_group"),
    "certs": ("plba.cli.certs_cmd", "certs_group"),
    "bench": ("plba.cli.main", "bench_group"),
}

BENCH_COMMANDS: dict[str, tuple[str, str]] = {
    "forecast": ("plba.cli.bench_forecast", "bench_forecast_cmd"),
    "policy": ("plba.cli.bench_policy", "bench_policy_cmd"),
    "agent": ("plba.cli.bench_agent", "bench_agent_cmd"),
    "migrate": ("plba.cli.bench_migrate", "bench_migrate_cmd"),
    "pipeline": ("plba.cli.bench_pipeline", "bench_pipeline_cmd"),
    "faults": ("plba.cli.bench_faults", "bench_faults_cmd"),
    "report": ("plba.cli.bench_report", "bench_report_cmd"),
}


class LazyGroup(click.Group):
    def __init__(self, *args, lazy: dict[str, tuple[str, str]], **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        present = [n for n, (mod, _) in self._lazy.items() if importlib.util.find_spec(mod) is not None]
        return sorted(set(super().list_commands(ctx)) | set(present))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            mod, attr = self._lazy[cmd_name]
            if importlib.util.find_spec(mod) is None:
                return None
            cmd = getattr(importlib.import_module(mod), attr)
            if not isinstance(cmd, click.Command):
                raise TypeError(f"{mod}.{attr} is not a click command")
            return cmd
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, prog_name="plba")
@setting_option("log_level")
def cli() -> None:
    """PLBA — predictive load balancing for fleets of VMs, containers and functions.

    Node agents stream telemetry and event triggers to Kafka; stream workers forecast every
    workload and node and order migrations before an overload arrives; node executors carry
    them out over gRPC. Every option can also be set through the environment variable shown.
    """
    logging.basicConfig(
        level=getattr(logging, settings().log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group("bench", cls=LazyGroup, lazy=BENCH_COMMANDS)
def bench_group() -> None:
    """Benchmarks: each prints a table, or JSON with --json."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
