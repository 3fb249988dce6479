"""Build the Faust application of the stream worker, and nothing else.

Processors register themselves on the app (``streams.processors``); the worker command wires
them up. Records on PLBA topics are raw bytes to Faust: each processor decodes them with the one
validating codec of ``schemas.codec``, so a bad record becomes a DLQ entry instead of a crash in
Faust's deserializer, and Faust never adds its ``__faust`` metadata to our payloads.
"""

from __future__ import annotations

import gc
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust

from schemas.settings import Settings

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
    """``faust.Worker`` without its terminal progress spinner (``plba worker``, ``plba dispatcher``).

    From log level WARNING up, Faust drives the spinner from a DEBUG handler it adds to the root
    logger, which it sets to DEBUG: every debug call of Faust and aiokafka (several for each
    record produced or fetched) then builds a log record and runs the handlers, about 25 µs
    each (measured), a noticeable share of a busy worker's CPU. Without the spinner the root
    logger keeps the configured level and those calls return at once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None


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
