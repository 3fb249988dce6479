"""``plba sla``: priorities and SLA policies on the compacted policies topic.

One policy per subject (a workload, an app, a user, or the fleet default). ``set`` merges the
given fields into the subject's current policy (``--replace`` starts from nothing); ``delete``
publishes a tombstone. Precedence when PLBA resolves a workload's policy:
workload > app > user > default, field by field (``plba sla resolve`` shows the result).
Invalid input exits with status 2 and publishes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
import orjson

from agents.client import DeliveryError, RecordPublisher, Table, TableReadError, read_table
from agents.sla import UNSET, PolicyError, build_policy, policy_key, resolve_policy
from plba.cli.options import kafka_options, settings
from schemas.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def _now() -> float:
    return time.time()


def _publisher(s: Settings) -> RecordPublisher:
    """The publisher of one command (tests replace it to prove nothing is sent)."""
    return RecordPublisher(s, name="plba-sla")


def _usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def _subject_options(func: F) -> F:
    opts = (
        click.option("--workload", metavar="ID", help="The policy of one workload"),
        click.option("--app", metavar="NAME", help="The policy of every workload of an app"),
        click.option("--user", metavar="NAME", help="The policy of every workload of a user"),
        click.option("--default", "is_default", is_flag=True, help="The fleet-wide default policy"),
    )
    for decorator in reversed(opts):
        func = decorator(func)
    return func


def _common(func: F) -> F:
    for decorator in reversed(
        (
            kafka_options,
            click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for Kafka"),
            click.option("--json", "as_json", is_flag=True, help="Print JSON"),
        )
    ):
        func = decorator(func)
    return func


def _subject(workload: str | None, app: str | None, user: str | None, is_default: bool) -> tuple[str, str]:
    given = [(k, v) for k, v in (("workload", workload), ("app", app), ("user", user)) if v is not None]
    if is_default:
        given.append(("default", "default"))
    if len(given) != 1:
        _usage("give exactly one of --workload, --app, --user, --default")
    return given[0]


def _table(timeout: float) -> Table:
    try:
        return read_table(settings(), "policy", timeout=max(timeout, 5.0))
    except TableReadError as exc:
        raise click.ClickException(str(exc)) from exc


def _send(key: str, record: dict[str, Any] | None, timeout: float) -> None:
    pub = _publisher(settings())
    try:
        if record is None:
            pub.publish_raw("policy", key, None)
        else:
            pub.publish("policy", record)
        pub.confirm(timeout)
    except DeliveryError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        pub.close(timeout=0)


def _line(record: dict[str, Any]) -> str:
    fields = [
        f"{k}={v}" for k, v in record.items() if k not in ("schema_version", "subject_kind", "subject", "updated_at")
    ]
    return f"{policy_key(record['subject_kind'], record['subject']):<40} " + " ".join(fields)


@click.group("sla")
def sla_group() -> None:
    """Priorities and SLA policies (precedence: workload > app > user > default)."""


@sla_group.command("set")
@_subject_options
@click.option("--priority", type=int, help="Priority, 0..1000000; higher = more important (moved last)")
@click.option("--tier", help="SLA tier name (gold, silver, bronze…); disruption budgets are per tier")
@click.option("--max-downtime-ms", type=float, help="Longest acceptable migration downtime in milliseconds")
@click.option("--migratable/--not-migratable", default=None, help="Whether PLBA may move it")
@click.option("--pin", metavar="NODE", help="Keep it on this node (implies not migratable)")
@click.option("--unpin", is_flag=True, help="Remove this subject's pin")
@click.option("--anti-affinity", metavar="GROUP", help="Never place two workloads of this group on one node")
@click.option("--no-anti-affinity", is_flag=True, help="Remove this subject's anti-affinity group")
@click.option("--migrations-per-day", type=int, help="Disruption budget: most migrations per workload per day")
@click.option("--unlimited-migrations", is_flag=True, help="Remove this subject's disruption budget")
@click.option("--note", help="Free text")
@click.option("--replace", is_flag=True, help="Replace the subject's policy instead of merging into it")
@_common
def set_cmd(**kw: Any) -> None:
    """Create or update the policy of one subject."""
    kind, subject = _subject(kw["workload"], kw["app"], kw["user"], kw["is_default"])
    for a, b in (
        ("pin", "unpin"),
        ("anti_affinity", "no_anti_affinity"),
        ("migrations_per_day", "unlimited_migrations"),
    ):
        if kw[a] not in (None, False) and kw[b]:
            _usage(f"--{a.replace('_', '-')} and --{b.replace('_', '-')} contradict each other")
    downtime = kw["max_downtime_ms"]
    changes: dict[str, Any] = {
        "priority": kw["priority"],
        "tier": kw["tier"],
        "max_downtime_seconds": downtime / 1000.0 if downtime is not None else None,
        "migratable": kw["migratable"],
        "pin_node": UNSET if kw["unpin"] else kw["pin"],
        "anti_affinity_group": UNSET if kw["no_anti_affinity"] else kw["anti_affinity"],
        "migrations_per_day": UNSET if kw["unlimited_migrations"] else kw["migrations_per_day"],
        "note": kw["note"],
    }
    if all(v is None for v in changes.values()):
        _usage("nothing to set: give at least one of --priority, --tier, --max-downtime-ms, --migratable, --pin, …")
    now = _now()
    try:
        build_policy(kind, subject, updated_at=now, **changes)  # validate before touching Kafka
    except PolicyError as exc:
        _usage(str(exc))
    existing = None if kw["replace"] else _table(kw["timeout"]).records.get(policy_key(kind, subject))
    record = build_policy(kind, subject, updated_at=now, existing=existing, **changes)
    _send(policy_key(kind, subject), record, kw["timeout"])
    if kw["as_json"]:
        click.echo(orjson.dumps(record).decode())
    else:
        click.echo(("updated " if existing else "set ") + _line(record))


@sla_group.command("get")
@_subject_options
@_common
def get_cmd(
    workload: str | None, app: str | None, user: str | None, is_default: bool, timeout: float, as_json: bool
) -> None:
    """Show the policy of one subject (exit 1 if it has none)."""
    kind, subject = _subject(workload, app, user, is_default)
    record = _table(timeout).records.get(policy_key(kind, subject))
    if record is None:
        raise click.ClickException(f"no policy for {policy_key(kind, subject)}")
    click.echo(orjson.dumps(record).decode() if as_json else _line(record))


@sla_group.command("list")
@_common
def list_cmd(timeout: float, as_json: bool) -> None:
    """Every policy on the policies topic."""
    table = _table(timeout)
    if table.invalid:
        click.echo(f"warning: {len(table.invalid)} invalid record(s) on {table.topic} skipped", err=True)
    records = [table.records[k] for k in sorted(table.records)]
    if as_json:
        click.echo(orjson.dumps(records).decode())
        return
    if not records:
        click.echo("no policies")
    for r in records:
        click.echo(_line(r))


@sla_group.command("delete")
@_subject_options
@_common
def delete_cmd(
    workload: str | None, app: str | None, user: str | None, is_default: bool, timeout: float, as_json: bool
) -> None:
    """Delete the policy of one subject (a tombstone on the compacted topic)."""
    kind, subject = _subject(workload, app, user, is_default)
    key = policy_key(kind, subject)
    if key not in _table(timeout).records:
        raise click.ClickException(f"no policy for {key}")
    _send(key, None, timeout)
    click.echo(orjson.dumps({"deleted": key}).decode() if as_json else f"deleted {key}")


@sla_group.command("resolve")
@click.argument("workload_id")
@click.option("--app", help="The workload's app")
@click.option("--user", help="The workload's user")
@_common
def resolve_cmd(workload_id: str, app: str | None, user: str | None, timeout: float, as_json: bool) -> None:
    """The effective policy of a workload, and which policy set each field."""
    effective = resolve_policy(workload_id, app, user, _table(timeout).records)
    if as_json:
        click.echo(orjson.dumps({"workload_id": workload_id, **effective.to_dict()}).decode())
        return
    for name, value in effective.to_dict().items():
        if name != "sources":
            source = effective.sources.get(name, "")
            click.echo(f"{name:<22} {value!s:<12} {source}")
