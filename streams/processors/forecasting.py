"""The forecasting processors: workload and node usage in, forecasts out, state in Faust tables.

Forecaster state is saved as explicit JSON (never pickle) in two Faust tables whose changelog
topics are compacted, keyed ``<subject>|<resource>``, written from inside the stream (the record's
own partition) every ``snapshot_interval`` of event time per series. After a restart or a
rebalance Faust restores the tables before the agents run, and the first sample of a series
restores its forecaster from there instead of starting cold.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import orjson

from schemas.codec import codec
from schemas.settings import Settings
from schemas.topics import TOPICS
from streams.live.forecast_stage import RESOURCES, ForecastStage
from streams.processors.intake import Record, intake, intake_batches, publish

log = logging.getLogger(__name__)

EVICT_EVERY_SECONDS = 60.0
# Snapshots are tens of KB; Kafka's default message limit is 1 MB.
MAX_SNAPSHOT_BYTES = 512 * 1024
BATCH_SIZE = 500
# A batch waits at most this long for more records: a small share of the decision latency budget.
BATCH_WITHIN_SECONDS = 0.02


def _state_key(subject: str, resource: str) -> bytes:
    return f"{subject}|{resource}".encode()


def register(app: faust.App, settings: Settings, stage: ForecastStage, metrics: Any = None) -> None:
    wl_topic, node_topic, ev_topic = (settings.topic(r) for r in ("workload_usage", "node_usage", "events"))
    workloads = app.topic(wl_topic, value_type=bytes, key_type=bytes)
    nodes = app.topic(node_topic, value_type=bytes, key_type=bytes)
    events = app.topic(ev_topic, value_type=bytes, key_type=bytes)
    forecasts = app.topic(settings.topic("forecasts"), value_type=bytes, key_type=bytes)
    dlq = app.topic(settings.topic("dlq"), value_type=bytes, key_type=bytes)
    tables = {
        kind: app.Table(
            # bytes key and value types make Faust use the raw codec for the changelog (no JSON
            # re-encoding of our JSON, and never pickle).
            f"forecaster-state-{kind}", partitions=TOPICS[role].partitions, key_type=bytes, value_type=bytes,
            help=f"Forecaster snapshots of {kind} series (JSON)",
        )
        for kind, role in (("workload", "workload_usage"), ("node", "node_usage"))
    }  # fmt: skip
    forecast_codec = codec("forecast")
    max_bytes = settings.max_record_bytes
    codecs = {
        "workload_usage": codec("workload_usage", max_bytes=max_bytes),
        "node_usage": codec("node_usage", max_bytes=max_bytes),
        "events": codec("event", max_bytes=max_bytes),
    }
    latency = {
        kind: metrics.processing_duration.labels(f"forecasting_{kind}") if metrics is not None else None
        for kind in ("workload", "node")
    }

    def restore(kind: str, subject: str) -> None:
        table = tables[kind]
        for res in RESOURCES:
            raw = table.get(_state_key(subject, res))
            if raw is None:
                continue
            try:
                ok = stage.restore((subject, res), orjson.loads(raw))
            except orjson.JSONDecodeError:
                ok = False
            if not ok:
                log.warning("forecaster snapshot of %s/%s is unusable; starting that series afresh", subject, res)

    def save(kind: str, latest: dict[str, tuple[float, int]]) -> None:
        """Write the due snapshots of the series of ``latest`` (subject -> newest sample time, partition).

        A batch is processed outside Faust's per-event context, so the changelog partition is
        given explicitly: the partition of the subject's usage records, as a write from inside
        the stream would use (a rebalance moves the state with the records' partition).
        """
        table = tables[kind]
        for subject, (at, partition) in latest.items():
            for (_subj, res), state in stage.due_snapshots(subject, at):
                blob = orjson.dumps(state)
                if len(blob) > MAX_SNAPSHOT_BYTES:
                    # Never let one oversized state stop the producer: skip it (the series relearns
                    # on restart) and say so.
                    log.error("forecaster state of %s/%s is %d bytes; not saved", subject, res, len(blob))
                    continue
                key = _state_key(subject, res)
                table.send_changelog(partition, key, blob)
                table.data[key] = blob

    async def handle(kind: str, batch: list[Record]) -> None:
        """Learn a batch of usage records, then save due snapshots once per series and publish."""
        learn = stage.on_workload_usage if kind == "workload" else stage.on_node_usage
        field_name = "workload_id" if kind == "workload" else "node_id"
        timer = latency[kind]
        clock = time.perf_counter
        latest: dict[str, tuple[float, int]] = {}
        out: list[dict[str, Any]] = []
        for rec in batch:
            value = rec.value
            if value is None:
                continue
            subject = value[field_name]
            started = clock()
            if stage.needs_restore(subject):
                restore(kind, subject)
            out += learn(value)
            latest[subject] = (value["sampled_at"], rec.partition)
            if timer is not None:
                timer.observe(clock() - started)
        save(kind, latest)
        published = 0
        for fc in out:
            published += await publish(
                forecasts, forecast_codec, fc["subject"], fc, dlq=dlq, processor="forecasting", metrics=metrics
            )
        if metrics is not None:
            if published:
                metrics.forecasts_published.labels(kind).inc(published)
            for subject_kind, res, horizon, actual, lower, upper, mean, scale in stage.scored:
                metrics.observe_forecast(subject_kind, res, horizon, actual, lower, upper, mean=mean, scale=scale)
        stage.scored.clear()

    # Usage records are learned in batches (what arrived within BATCH_WITHIN_SECONDS, at most
    # BATCH_SIZE): the snapshots are then checked and written once per series and batch.
    @app.agent(workloads, name="plba.forecasting.workloads")
    async def forecast_workloads(stream: Any) -> None:
        async for batch in intake_batches(
            stream, size=BATCH_SIZE, within=BATCH_WITHIN_SECONDS, roles={wl_topic: "workload_usage"},
            codecs=codecs, dlq_topic=dlq, processor="forecasting", metrics=metrics,
        ):  # fmt: skip
            await handle("workload", batch)

    @app.agent(nodes, name="plba.forecasting.nodes")
    async def forecast_nodes(stream: Any) -> None:
        async for batch in intake_batches(
            stream, size=BATCH_SIZE, within=BATCH_WITHIN_SECONDS, roles={node_topic: "node_usage"},
            codecs=codecs, dlq_topic=dlq, processor="forecasting", metrics=metrics,
        ):  # fmt: skip
            await handle("node", batch)

    @app.agent(events, name="plba.forecasting.events")
    async def follow_events(stream: Any) -> None:
        async for rec in intake(
            stream, roles={ev_topic: "events"}, codecs=codecs, dlq_topic=dlq, processor="forecasting",
            metrics=metrics, tombstones=frozenset({"events"}),
        ):  # fmt: skip
            if rec.value is not None:
                stage.on_event(rec.value)
            elif rec.key:
                stage.events.pop(rec.key.decode(errors="replace"), None)

    @app.timer(EVICT_EVERY_SECONDS)
    async def evict_idle() -> None:
        evicted = stage.evict_idle(stage.latest_at)  # event time, like everything the stage does
        if metrics is not None:
            metrics.models_evicted.inc(evicted)
            metrics.models_resident.set(len(stage.bank))
            metrics.set_models_in_use(stage.models_in_use())
            metrics.forecast_nominal_coverage.set(stage.nominal_coverage)
