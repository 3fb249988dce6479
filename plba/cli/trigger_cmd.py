"""``plba trigger``: declare maintenance windows, ingestion peaks and custom events.

Every command validates its input completely before it touches Kafka: invalid input exits with
status 2 and a message, and nothing is published. A publication is confirmed by the broker
before the command reports success (status 1 if it is not).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
import orjson

from agents.calendar import CalendarError, load_calendar, materialize, plan_apply
from agents.client import DeliveryError, RecordPublisher, TableReadError
from agents.timeparse import TimeParseError, format_instant, parse_duration, parse_instant, parse_size
from agents.triggers import (
    TriggerError,
    build_event,
    cancel_event,
    find_event,
    is_active,
    parse_ids,
    parse_scope,
    publish_event,
    read_events,
)
from plba.cli.options import kafka_options, settings
from schemas.codec import codec
from schemas.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

CE_SOURCE = "/plba/cli"


def _now() -> float:
    return time.time()


def _publisher(s: Settings) -> RecordPublisher:
    """The publisher of one command (tests replace it to prove nothing is sent)."""
    return RecordPublisher(s, name="plba-trigger")


def _usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def _common(func: F) -> F:
    for decorator in reversed(
        (
            kafka_options,
            click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for Kafka to confirm"),
            click.option("--json", "as_json", is_flag=True, help="Print the published record(s) as JSON"),
        )
    ):
        func = decorator(func)
    return func


def _window(func: F) -> F:
    opts = (
        click.option("--start", required=True, help="Start: RFC 3339 (2025-06-01T22:00:00Z), +10m, +2h, now"),
        click.option("--end", help="End: like --start (or give --duration)"),
        click.option("--duration", help="Length instead of --end: 30m, 2h, 1h30m"),
        click.option("--reason", help="Why (free text)"),
        click.option("--name", help="Short title"),
        click.option("--id", "event_id", help="Event id (default: generated); re-using an id replaces that event"),
        click.option(
            "--cloudevents", is_flag=True, help="Publish as a CloudEvent (Kafka binding, binary mode, ce_* headers)"
        ),
    )
    for decorator in reversed(opts):
        func = decorator(func)
    return func


def _scope_options(func: F) -> F:
    opts = [
        click.option(f"--{kind}", kind, metavar="A,B", help=f"Comma-separated {kind} in scope")
        for kind in ("nodes", "workloads", "users", "apps", "pools")
    ]
    opts.append(
        click.option("--scope", "scopes", multiple=True, metavar="KIND=A,B", help="Scope as KIND=IDS (repeatable)")
    )
    for decorator in reversed(opts):
        func = decorator(func)
    return func


def _impact_options(func: F) -> F:
    opts = (
        click.option("--factor", help="Expected load multiplier inside the window, in (0, 1000] (1.5 = +50 %)"),
        click.option("--cpu-delta", help="Expected extra CPU in cores (negative for less)"),
        click.option("--memory-delta", help="Expected extra memory: 512Mi, 2Gi, -1G"),
        click.option("--io-delta", help="Expected extra I/O per second: 50M, 1Gi"),
    )
    for decorator in reversed(opts):
        func = decorator(func)
    return func


def _times(start: str, end: str | None, duration: str | None, now: float) -> tuple[float, float]:
    if (end is None) == (duration is None):
        _usage("give exactly one of --end and --duration")
    try:
        starts_at = parse_instant(start, now=now)
        if end is not None:
            ends_at = parse_instant(end, now=now)
        else:
            assert duration is not None
            ends_at = starts_at + parse_duration(duration)
    except TimeParseError as exc:
        _usage(str(exc))
    return starts_at, ends_at


def _scope(flags: dict[str, str | None], scopes: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    try:
        for kind, text in flags.items():
            if text is not None:
                out.setdefault(kind, []).extend(parse_ids(text, f"--{kind}"))
        for spec in scopes:
            kind, ids = parse_scope(spec)
            out.setdefault(kind, []).extend(ids)
    except TriggerError as exc:
        _usage(str(exc))
    return out


def _impact(
    factor: str | None, cpu: str | None, mem: str | None, io: str | None
) -> tuple[float | None, dict[str, Any]]:
    deltas: dict[str, Any] = {}
    f: float | None = None
    try:
        if factor is not None:
            try:
                f = float(factor)
            except ValueError:
                _usage(f"bad factor {factor!r}: give a number in (0, 1000], e.g. 1.5 for +50 %")
        if cpu is not None:
            try:
                deltas["cpu_cores"] = float(cpu)
            except ValueError:
                _usage(f"bad --cpu-delta {cpu!r}: give a number of cores, e.g. 2 or -0.5")
        if mem is not None:
            deltas["mem_bytes"] = parse_size(mem)
        if io is not None:
            deltas["io_bytes_per_second"] = float(parse_size(io.removesuffix("/s")))
    except TimeParseError as exc:
        _usage(str(exc))
    return f, deltas


def _publish(events: list[dict[str, Any]], *, cloudevents: bool, timeout: float, keys: list[str] | None = None) -> None:
    s = settings()
    pub = _publisher(s)
    try:
        for i, event in enumerate(events):
            if keys is not None:  # an existing event under its own key (cancel)
                pub.publish_raw("event", keys[i], codec("event").encode(event))
            else:
                publish_event(pub, event, cloudevents=cloudevents, ce_source=CE_SOURCE)
        pub.confirm(timeout)
    except DeliveryError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        pub.close(timeout=0)


def _echo_events(events: list[dict[str, Any]], as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(orjson.dumps(events[0] if len(events) == 1 else events).decode())
        return
    for e in events:
        click.echo(f"{verb} {e['event_type']} {e['event_id']}: {_describe(e)}")


def _describe(e: dict[str, Any]) -> str:
    scope = "; ".join(f"{k}={','.join(v)}" for k, v in e["scope"].items())
    impact = e.get("impact") or {}
    parts = [f"{format_instant(e['starts_at'])} → {format_instant(e['ends_at'])}", scope]
    if "factor" in impact:
        parts.append(f"x{impact['factor']:g}")
    for k, v in (impact.get("deltas") or {}).items():
        parts.append(f"{k}{v:+g}")
    return "  ".join(parts)


def _declare(event_type: str, **kw: Any) -> None:
    now = _now()
    starts_at, ends_at = _times(kw["start"], kw["end"], kw["duration"], now)
    scope = _scope({k: kw.get(k) for k in ("nodes", "workloads", "users", "apps", "pools")}, kw.get("scopes", ()))
    factor, deltas = _impact(kw.get("factor"), kw.get("cpu_delta"), kw.get("memory_delta"), kw.get("io_delta"))
    try:
        event = build_event(
            event_type, starts_at=starts_at, ends_at=ends_at, scope=scope, now=now, factor=factor,
            deltas=deltas, name=kw.get("name"), reason=kw.get("reason"), event_id=kw.get("event_id"),
            source="cli",
        )  # fmt: skip
    except TriggerError as exc:
        _usage(str(exc))
    _publish([event], cloudevents=kw["cloudevents"], timeout=kw["timeout"])
    _echo_events([event], kw["as_json"], "published")


@click.group("trigger")
def trigger_group() -> None:
    """Declare future events (maintenance, ingestion peaks, custom) on the events topic.

    Times are RFC 3339 with a zone (2025-06-01T22:00:00Z), relative (+10m, +2h, +1d) or now.
    """


@trigger_group.command("maintenance")
@click.option("--nodes", metavar="N1,N2", help="Nodes under maintenance")
@click.option("--pools", metavar="P1,P2", help="Whole pools under maintenance")
@_window
@_common
def maintenance_cmd(**kw: Any) -> None:
    """A maintenance window: PLBA evacuates migratable workloads before it starts."""
    if not kw["nodes"] and not kw["pools"]:
        _usage("a maintenance window needs --nodes (or --pools)")
    _declare("maintenance", **kw)


@trigger_group.command("peak")
@_scope_options
@_impact_options
@_window
@_common
def peak_cmd(**kw: Any) -> None:
    """An expected load peak (e.g. data ingestion): PLBA rebalances before it starts."""
    _declare("peak", **kw)


@trigger_group.command("custom")
@_scope_options
@_impact_options
@_window
@_common
def custom_cmd(**kw: Any) -> None:
    """Any other declared event (--name recommended); the impact is optional."""
    _declare("custom", **kw)


@trigger_group.command("cancel")
@click.argument("event_id")
@click.option("--reason", help="Why it is cancelled")
@_common
def cancel_cmd(event_id: str, reason: str | None, timeout: float, as_json: bool) -> None:
    """Cancel an event: publishes it again with cancelled=true under its key."""
    now = _now()
    try:
        table = read_events(settings(), timeout=max(timeout, 5.0), now=now)
    except TableReadError as exc:
        raise click.ClickException(str(exc)) from exc
    found = find_event(table, event_id)
    if found is None:
        raise click.ClickException(f"no event {event_id!r} on {table.topic}")
    key, existing = found
    if existing.get("cancelled"):
        click.echo(f"{event_id} is already cancelled")
        return
    try:
        record = cancel_event(existing, now=now, reason=reason)
    except TriggerError as exc:
        raise click.ClickException(str(exc)) from exc
    _publish([record], cloudevents=False, timeout=timeout, keys=[key])
    _echo_events([record], as_json, "cancelled")


def _state(e: dict[str, Any], now: float) -> str:
    if e.get("cancelled"):
        return "cancelled"
    if e["ends_at"] <= now:
        return "over"
    return "ongoing" if e["starts_at"] <= now else "upcoming"


@trigger_group.command("list")
@kafka_options
@click.option("--active", is_flag=True, help="Only events not cancelled and not over")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one array)")
@click.option("--timeout", default=20.0, show_default=True, help="Seconds to read the topic")
def list_cmd(active: bool, as_json: bool, timeout: float) -> None:
    """The events table: the compacted events topic read from its beginning to its end."""
    now = _now()
    try:
        table = read_events(settings(), timeout=timeout, now=now)
    except TableReadError as exc:
        raise click.ClickException(str(exc)) from exc
    events = sorted(table.records.values(), key=lambda e: (e["starts_at"], e["event_id"]))
    if active:
        events = [e for e in events if is_active(e, now)]
    if table.invalid:
        click.echo(f"warning: {len(table.invalid)} invalid record(s) on {table.topic} skipped", err=True)
    if as_json:
        click.echo(orjson.dumps(events).decode())
        return
    if not events:
        click.echo("no events")
    for e in events:
        click.echo(f"{e['event_id']:<40} {e['event_type']:<15} {_state(e, now):<10} {_describe(e)}")


@trigger_group.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--horizon", default="7d", show_default=True, help="Materialize occurrences starting within this span")
@click.option("--count", default=100, show_default=True, type=click.IntRange(1, 10000), help="At most N per entry")
@click.option("--prune", is_flag=True, help="Cancel future occurrences this calendar no longer produces")
@click.option("--dry-run", is_flag=True, help="Show what would be published, publish nothing")
@_common
def apply_cmd(file: str, horizon: str, count: int, prune: bool, dry_run: bool, timeout: float, as_json: bool) -> None:
    """Publish the next occurrences of a YAML calendar of recurring windows (idempotent).

    Each occurrence has a deterministic id (<calendar>.<entry>@<start>), so applying the same
    calendar again publishes nothing new; see agents/calendar.py for the format.
    """
    now = _now()
    try:
        horizon_seconds = parse_duration(horizon)
        calendar = load_calendar(file)
        desired = materialize(calendar, now=now, horizon_seconds=horizon_seconds, max_count=count)
    except (CalendarError, TimeParseError) as exc:
        _usage(str(exc))
    try:
        table = read_events(settings(), timeout=max(timeout, 5.0), now=now)
    except TableReadError as exc:
        raise click.ClickException(str(exc)) from exc
    plan = plan_apply(calendar, desired, table.records, now=now, prune=prune)
    summary = {
        "created": len(plan.create),
        "updated": len(plan.update),
        "unchanged": len(plan.unchanged),
        "cancelled": len(plan.cancel),
        "dry_run": dry_run,
    }
    if plan.to_publish and not dry_run:
        _publish(plan.to_publish, cloudevents=False, timeout=timeout)
    if as_json:
        click.echo(orjson.dumps({**summary, "events": plan.to_publish}).decode())
        return
    verb = "would publish" if dry_run else "published"
    for e in plan.to_publish:
        state = "cancel" if e.get("cancelled") else "event"
        click.echo(f"{verb} {state} {e['event_id']}: {_describe(e)}")
    click.echo(
        f"{summary['created']} created, {summary['updated']} updated, {summary['unchanged']} unchanged, "
        f"{summary['cancelled']} cancelled" + (" (dry run)" if dry_run else "")
    )
