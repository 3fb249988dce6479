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
from streams.processors.intake import intake, publish

log = logging.getLogger(__name__)

EVICT_EVERY_SECONDS = 60.0
# Snapshots are tens of KB; Kafka's default message limit is 1 MB.
MAX_SNAPSHOT_BYTES = 512 * 1024


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

    async def handle(kind: str, value: dict[str, Any]) -> None:
        subject = value["workload_id"] if kind == "workload" else value["node_id"]
        started = time.perf_counter()
        if stage.needs_restore(subject):
            restore(kind, subject)
        out = stage.on_workload_usage(value) if kind == "workload" else stage.on_node_usage(value)
        for (_subj, res), state in stage.due_snapshots(subject, value["sampled_at"]):
            blob = orjson.dumps(state)
            if len(blob) > MAX_SNAPSHOT_BYTES:
                # Never let one oversized state stop the producer: skip it (the series relearns
                # on restart) and say so.
                log.error("forecaster state of %s/%s is %d bytes; not saved", subject, res, len(blob))
                continue
            tables[kind][_state_key(subject, res)] = blob
        timer = latency[kind]
        if timer is not None:
            timer.observe(time.perf_counter() - started)
        published = 0
        for rec in out:
            published += await publish(
                forecasts, forecast_codec, rec["subject"], rec, dlq=dlq, processor="forecasting", metrics=metrics
            )
        if metrics is not None:
            if published:
                metrics.forecasts_published.labels(kind).inc(published)
            for subject_kind, res, horizon, actual, lower, upper, mean, scale in stage.scored:
                metrics.observe_forecast(subject_kind, res, horizon, actual, lower, upper, mean=mean, scale=scale)
        stage.scored.clear()

    # Record by record: a batched path (Faust's take_events) measured no clear gain and was the
    # one new mechanism in the ack/commit path when workers were seen stuck at their first commit.
    @app.agent(workloads, name="plba.forecasting.workloads")
    async def forecast_workloads(stream: Any) -> None:
        async for rec in intake(
            stream, roles={wl_topic: "workload_usage"}, codecs=codecs, dlq_topic=dlq, processor="forecasting",
            metrics=metrics,
        ):  # fmt: skip
            assert rec.value is not None
            await handle("workload", rec.value)

    @app.agent(nodes, name="plba.forecasting.nodes")
    async def forecast_nodes(stream: Any) -> None:
        async for rec in intake(
            stream, roles={node_topic: "node_usage"}, codecs=codecs, dlq_topic=dlq, processor="forecasting",
            metrics=metrics,
        ):  # fmt: skip
            assert rec.value is not None
            await handle("node", rec.value)

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
