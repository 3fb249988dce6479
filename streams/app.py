"""Build the Faust application of the stream worker, and nothing else.

Processors register themselves on the app (``streams.processors``); the worker command wires
them up. Records on PLBA topics are raw bytes to Faust: each processor decodes them with the one
validating codec of ``schemas.codec``, so a bad record becomes a DLQ entry instead of a crash in
Faust's deserializer, and Faust never adds its ``__faust`` metadata to our payloads.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.settings import Settings

log = logging.getLogger(__name__)
# librdkafka's own chatter (refused connections while the broker starts) is not logged; failures
# reach ensure_changelogs as exceptions.
_QUIET = logging.getLogger("plba.worker.librdkafka")
_QUIET.setLevel(logging.CRITICAL)

# Collector thresholds of a stream process. With Python's defaults (700, 10, 10) the cyclic
# collector took about 40 % of the forecasting CPU (measured in-process on the pipeline
# benchmark's records): every full collection walks again the hundreds of thousands of
# long-lived containers that the forecasters' state is made of. Rarer collections of the
# young generation and much rarer ones of the old generations keep cycles collected at a
# fraction of that cost (reference counting frees everything else immediately).
GC_THRESHOLDS = (100_000, 50, 1000)


def tune_gc() -> tuple[int, int, int]:
    """Set the stream process's collector thresholds; returns the previous ones."""
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    return previous


@contextmanager
def tuned_gc() -> Iterator[None]:
    """The stream process's collector thresholds for a block (benchmarks time the core with them)."""
    previous = tune_gc()
    try:
        yield
    finally:
        gc.set_threshold(*previous)


class StreamWorker(faust.Worker):
    """``faust.Worker`` for ``plba worker`` and ``plba dispatcher``: no spinner, changelogs made first.

    From log level WARNING up, Faust drives the spinner from a DEBUG handler it adds to the root
    logger, which it sets to DEBUG: every debug call of Faust and aiokafka (several for each
    record produced or fetched) then builds a log record and runs the handlers, about 25 µs
    each (measured), a noticeable share of a busy worker's CPU. Without the spinner the root
    logger keeps the configured level and those calls return at once.

    With ``settings``, the tables' changelog topics are created, and seen with a leader for every
    partition, before Faust starts (:func:`ensure_changelogs`).
    """

    def __init__(self, *args: Any, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None
        self._plba_settings = settings

    async def on_first_start(self) -> None:
        if self._plba_settings is not None:
            try:
                await asyncio.to_thread(ensure_changelogs, self.app, self._plba_settings)
            except ChangelogError as exc:  # Faust still declares them itself, and retries the broker
                log.warning("%s; leaving the changelog topics to Faust", exc)
        await super().on_first_start()


class ChangelogError(RuntimeError):
    """A table's changelog topic could not be created or never became usable."""


def ensure_changelogs(app: Any, settings: Settings, timeout: float = 120.0) -> list[str]:
    """Create the app's table changelog topics that are missing; wait until every partition has a leader.

    Faust declares them itself when it starts, but subscribes right after. When the broker's
    metadata did not list a new changelog yet, Faust's partition assignor left it out ("Ignoring
    missing topic") and the worker stayed in table recovery, never committing (seen in CI-like
    runs, 5 minutes at a time). Made here first, Faust finds them in place. Returns the names
    created.
    """
    wanted = {
        table.changelog_topic.get_topic_name(): int(table.partitions or app.conf.topic_partitions)
        for table in app.tables.values()
    }
    if not wanted:
        return []
    admin = AdminClient({**settings.confluent_config(), "socket.timeout.ms": 10000}, logger=_QUIET)
    try:
        present = admin.list_topics(timeout=min(timeout, 30.0)).topics
    except KafkaException as exc:
        raise ChangelogError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc
    missing = [name for name in wanted if name not in present]
    if missing:
        new = [NewTopic(n, wanted[n], 1, config={"cleanup.policy": "compact"}) for n in missing]
        for name, fut in admin.create_topics(new, request_timeout=timeout).items():
            try:
                fut.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another worker was first
                    raise ChangelogError(f"cannot create changelog {name}: {exc.args[0].str()}") from exc
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        unready = [
            n for n, count in wanted.items()
            if n not in topics or len(topics[n].partitions) < count
            or any(p.leader < 0 for p in topics[n].partitions.values())
        ]  # fmt: skip
        if not unready:
            return missing
        if time.monotonic() > deadline:
            raise ChangelogError(f"changelog topics without a leader after {timeout:g} s: {', '.join(unready)}")
        time.sleep(0.2)


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of ``settings``' Kafka security protocol (None without SSL)."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile or None)
    return context


def broker_credentials(settings: Settings) -> Any:
    """Faust credentials equivalent to ``Settings.confluent_config()`` (SASL and/or SSL)."""
    protocol = settings.kafka_security_protocol
    context = kafka_ssl_context(settings)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return None


class Table(faust.Table):
    """Faust's table, with its co-partitioning check tolerant of metadata it does not have yet.

    On a table's first write from a source topic Faust compares that topic's partition count with
    the changelog's, as its consumer's metadata snapshot reports them, and raises
    ``PartitionsMismatch`` when they differ. Right after Faust declared the changelog, and while a
    broker restarts, the snapshot reports 0 partitions for it, so every write crashed the
    forecasting agent until the metadata caught up (the broker-restart scenario counted 30 such
    crashes). Faust already skips the check, without remembering it, when the count is unknown
    (``None``); 0 means the same here. A real mismatch (both counts known) still raises.
    """

    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        if not self.app.consumer.topic_partitions(self.changelog_topic_name):
            return
        super()._verify_source_topic_partitions(source_topic)


def build_app(settings: Settings, **overrides: Any) -> faust.App:
    """A Faust app for ``settings``; ``overrides`` are Faust settings (tests shorten timers).

    Also sets the process's collector thresholds (:func:`tune_gc`): a Faust app of PLBA is a
    long-running stream process.
    """
    tune_gc()
    brokers = [f"kafka://{hostport.strip()}" for hostport in settings.bootstrap.split(",") if hostport.strip()]
    options: dict[str, Any] = {
        "broker": brokers,
        "broker_credentials": broker_credentials(settings),
        "store": "memory://",  # tables are rebuilt from their changelog topics on start
        # Faust keeps a small folder per app id; under the data dir, not wherever it was started.
        "datadir": str(settings.data_dir / "faust"),
        "value_serializer": "raw",
        "key_serializer": "raw",
        # Tables hold our own JSON bytes (forecaster snapshots): no Faust codec, never pickle.
        "table_key_serializer": "raw",
        "table_value_serializer": "raw",
        "table_cleanup_interval": 30.0,
        "Table": Table,
        "consumer_auto_offset_reset": "earliest",
        "topic_allow_declare": True,  # internal changelog topics only; ours come from `plba topics create`
        "topic_replication_factor": 1,
        "web_enabled": False,  # metrics are served by prometheus_client, not Faust's web server
        # A worker killed with -9 is noticed after this, and its partitions move on.
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 3.0,
        "broker_commit_every": 1000,
        "broker_commit_interval": 1.0,
        "producer_linger": 0.005,
        "stream_buffer_maxsize": 16384,
        "logging_config": None,
    }
    options.update(overrides)
    return faust.App(settings.worker_id, **options)
