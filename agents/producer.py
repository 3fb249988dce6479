"""The producer every node-side publisher uses: reliable, bounded, and never blocking its caller.

:class:`BufferedProducer` wraps a confluent-kafka ``Producer`` configured idempotent
(``enable.idempotence``, ``acks=all``), compressed (zstd) and partitioned like the Java client
(murmur2, so keys land where Kafka Streams / Faust expect them), in front of a bounded buffer of
its own.

The guarantee (documented here because callers rely on it)
-----------------------------------------------------------
* :meth:`BufferedProducer.send` never blocks and never raises for Kafka trouble: it appends to
  the buffer and returns. Only a bad argument (not bytes) raises.
* Every record stays accounted for until its delivery report confirms it: it is *buffered*
  (ours, not yet handed to librdkafka), *in flight* (handed to librdkafka, no report yet),
  *delivered*, *failed* (permanent error: message too large, authorization…, logged), or
  *dropped* — and dropping happens only at the bounds below, oldest first, counted.
* Bounds: ``max_records`` and ``max_bytes`` over everything unconfirmed, and ``max_age_seconds``
  per record. Beyond a bound the oldest records *we hold* are dropped (``dropped_overflow`` /
  ``dropped_expired``). Records already handed to librdkafka cannot be taken back selectively;
  there are few of them during an outage (see "flow control") and they are bounded by age
  through ``message.timeout.ms``.
* Order: records are handed to librdkafka in send order; librdkafka's idempotent producer keeps
  order per partition and retries internally without duplicates. A record whose delivery fails
  with a retriable error (typically ``_MSG_TIMED_OUT`` after an outage longer than
  ``delivery_timeout_seconds``) is re-enqueued *in order*: hand-over pauses, the records still
  queued inside librdkafka are purged back to us, and once nothing is in flight the buffer is
  re-sorted by send order and hand-over resumes. Order per key is strict: in the one race where
  a newer record of the same key got through while an older one timed out (the broker came
  back between their deadlines), the older one is dropped and counted (``dropped_overtaken``)
  rather than delivered after it.
* Exactly once: within ``delivery_timeout_seconds`` (120 s by default, more than the 60 s outage
  we must survive) librdkafka alone retries, and idempotence makes each record land exactly once.
  After a longer outage a re-enqueued record that had reached the broker just before the
  connection died (librdkafka's "possibly persisted") may land twice; consumers detect that with
  the record's ``seq``.
* Shutdown: :meth:`close` hands over and flushes what it can within its timeout and returns the
  stats; anything still unconfirmed then is reported as ``lost_at_close``.

Flow control: while healthy, up to ``max_inflight`` records sit in librdkafka. When the oldest
in-flight record is unconfirmed for ``stall_seconds`` (broker down), hand-over stops and new
records accumulate in our buffer, where the bounds and the oldest-first drop apply exactly.
So during an outage librdkafka holds only the first ``stall_seconds`` of records. After a stall
or a requeue, hand-over resumes with one probe record at a time and opens the full window at the
first successful delivery. A partition whose leader is unavailable holds back all partitions
(head-of-line): acceptable for a buffer sized for minutes. A fatal librdkafka error (idempotence
state lost) fails everything in flight; those records are requeued and the client is rebuilt.

Threading: ``send`` is thread-safe. Delivery reports are served by :meth:`pump` (one iteration
of the service loop), which :meth:`start` runs in a daemon thread; tests call ``pump`` directly
with a fake ``KafkaProducerLike``.
"""

from __future__ import annotations

import bisect
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from schemas.settings import KafkaValue, Settings
from schemas.topics import TOPICS

__all__ = [
    "BufferLimits",
    "BufferedProducer",
    "KafkaProducerLike",
    "LibrdkafkaLog",
    "ProducerError",
    "ProducerStats",
    "producer_config",
]

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]

# Errors after which the record is worth sending again (librdkafka gave up on it, or we purged it).
_REQUEUE_CODES = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._FATAL,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
    }
)


# Our counters -> the reason label of plba_producer_dropped_records_total (agents.metrics).
_DROP_REASONS = {"dropped_overflow": "buffer_full", "dropped_expired": "too_old", "dropped_overtaken": "overtaken"}


class ProducerError(RuntimeError):
    """The producer cannot be built or used (bad configuration, closed producer)."""


class KafkaProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` this module uses (tests pass a small fake)."""

    def produce(
        self,
        topic: str,
        *,
        value: bytes | None = ...,
        key: bytes | None = ...,
        headers: Any = ...,
        on_delivery: Callable[[Any, Any], None] | None = ...,
    ) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...

    def purge(self, in_queue: bool = ..., in_flight: bool = ..., blocking: bool = ...) -> None: ...


@dataclass(frozen=True, slots=True)
class BufferLimits:
    """Bounds of the local buffer and of librdkafka's part of it.

    Defaults hold a 60 s outage of a node with 100+ workloads sampled every second with ample
    margin: ~6,000 records of ~0.3-1 KiB, against 100,000 records / 128 MiB / 300 s.
    """

    max_records: int = 100_000
    max_bytes: int = 128 * 1024 * 1024
    max_age_seconds: float = 300.0
    max_inflight: int = 10_000
    stall_seconds: float = 5.0
    delivery_timeout_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_bytes < 1 or self.max_inflight < 1:
            raise ProducerError("buffer limits must be positive")
        if not 0 < self.stall_seconds < self.delivery_timeout_seconds:
            raise ProducerError("stall_seconds must be positive and below delivery_timeout_seconds")
        if self.max_age_seconds <= 0:
            raise ProducerError("max_age_seconds must be positive")


@dataclass(frozen=True, slots=True)
class ProducerStats:
    """Counters since the producer was built (monotonic) and the current buffer state."""

    sent: int  # accepted by send()
    delivered: int
    failed: int  # permanent delivery errors
    dropped_overflow: int  # oldest dropped because max_records / max_bytes was exceeded
    dropped_expired: int  # older than max_age_seconds before delivery
    dropped_overtaken: int  # timed out while a newer record of its key got through: resending would reorder
    requeued: int  # came back from librdkafka with a retriable error and were queued again
    buffered: int  # held by us, not yet handed over
    inflight: int  # handed to librdkafka, no delivery report yet
    buffered_bytes: int
    oldest_age_seconds: float
    lost_at_close: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Record:
    seq: int
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None
    created: float  # monotonic
    size: int
    handed: float = 0.0  # monotonic time of the last hand-over to librdkafka


class LibrdkafkaLog:
    """A logger for librdkafka's own log lines, at DEBUG.

    librdkafka logs every failed connection attempt at error level; what matters reaches us as
    ``error_cb`` calls and delivery reports, which are logged once, at the right level.
    """

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(name)

    def log(self, _level: int, msg: str, *args: Any) -> None:
        self._log.debug(msg, *args)


def _seq_of(rec: _Record) -> int:
    return rec.seq


def producer_config(settings: Settings, limits: BufferLimits, **overrides: KafkaValue) -> dict[str, KafkaValue]:
    """librdkafka settings of a node-side producer (connection settings from ``Settings``)."""
    cfg: dict[str, KafkaValue] = {
        **settings.confluent_config(),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "zstd",
        "linger.ms": 20,
        "partitioner": "murmur2_random",  # the Java client's partitioner: same key -> same partition
        "message.timeout.ms": int(limits.delivery_timeout_seconds * 1000),
        # librdkafka's queue must hold our whole in-flight window without refusing produce().
        "queue.buffering.max.messages": max(limits.max_inflight * 2, 1000),
        "queue.buffering.max.kbytes": max(limits.max_bytes // 1024, 16 * 1024),
        # Reconnect quickly after an outage so the backlog starts flowing soon after the broker.
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 2000,
        "socket.keepalive.enable": True,
    }
    cfg.update(overrides)
    return cfg


class BufferedProducer:
    """Idempotent producer with a bounded, order-keeping local buffer (see the module docstring).

    ``client`` is a ready ``KafkaProducerLike`` (tests); without it a confluent-kafka producer is
    built from ``settings``. ``clock`` is a monotonic clock (injected in tests).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        limits: BufferLimits | None = None,
        client: KafkaProducerLike | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "plba-producer",
        metrics: Any = None,
        topic_roles: Mapping[str, str] | None = None,
        **overrides: KafkaValue,
    ) -> None:
        self.limits = limits or BufferLimits()
        self.name = name
        self._clock = clock
        # Optional agents.metrics.NodeMetrics; topic name -> role for its per-topic counter.
        self._metrics = metrics
        if topic_roles is None and settings is not None:
            topic_roles = {spec.name(settings.topic_prefix): role for role, spec in TOPICS.items()}
        self._roles = dict(topic_roles or {})
        self._factory: Callable[[], KafkaProducerLike] | None = None
        if client is None:
            if settings is None:
                raise ProducerError("BufferedProducer needs settings or a client")
            conf = settings
            self._factory = lambda: self._build_client(conf, overrides)
            client = self._factory()
        self._client: KafkaProducerLike = client
        self._lock = threading.Lock()
        self._queue: deque[_Record] = deque()
        self._inflight: dict[int, _Record] = {}
        self._retry: list[_Record] = []
        self._recovering = False
        self._purge_pending = False
        self._healthy = True  # False after a stall or a requeue: hand over one probe record at a time
        self._rebuild = False  # a fatal error: replace the librdkafka client once nothing is in flight
        self._next_seq = 0
        self._bytes = 0  # of queue + inflight + retry
        self._closed = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._c = dict.fromkeys(
            ("sent", "delivered", "failed", "dropped_overflow", "dropped_expired", "dropped_overtaken", "requeued",
             "lost_at_close"),
            0,
        )  # fmt: skip
        self._broker_down_logged = False
        self._error_logged: dict[int, float] = {}
        # (topic, key) -> seq of the newest delivered record of that key (pruned as it ages).
        self._acked: dict[tuple[str, bytes], int] = {}
        self._acked_prune_at = 4096

    def _build_client(self, settings: Settings, overrides: dict[str, KafkaValue]) -> KafkaProducerLike:
        from confluent_kafka import Producer

        cfg = producer_config(settings, self.limits, **overrides)
        cfg["error_cb"] = self._on_error  # type: ignore[assignment]
        try:
            # librdkafka logs go through Python logging: we never print to the app's stderr.
            return Producer(cfg, logger=LibrdkafkaLog(f"{__name__}.librdkafka"))  # type: ignore[no-any-return]
        except KafkaException as exc:
            raise ProducerError(f"cannot build the Kafka producer: {exc}") from exc

    # -- public API -----------------------------------------------------------------------------
    def send(
        self, topic: str, value: bytes | None, key: bytes | str | None = None, headers: Iterable[tuple[str, bytes]] = ()
    ) -> None:
        """Queue one record for delivery. Never blocks; never raises for Kafka trouble."""
        if isinstance(key, str):
            key = key.encode()
        if value is not None and not isinstance(value, bytes | bytearray):
            raise TypeError(f"value must be bytes or None, not {type(value).__name__}")
        hdrs = list(headers) or None
        size = len(value or b"") + len(key or b"") + sum(len(k) + len(v) for k, v in hdrs or ())
        with self._lock:
            if self._closed:
                raise ProducerError("send() after close()")
            data = bytes(value) if value is not None else None
            rec = _Record(self._next_seq, topic, key, data, hdrs, self._clock(), size)
            self._next_seq += 1
            self._queue.append(rec)
            self._bytes += size
            self._c["sent"] += 1
            self._enforce_bounds_locked()
        if self._thread is None:
            self._feed()

    def pump(self, timeout: float = 0.0) -> None:
        """One service iteration: serve delivery reports, apply bounds, hand records over."""
        self._client.poll(timeout)
        purge = False
        with self._lock:
            if self._purge_pending:
                self._purge_pending = False
                purge = True
        if purge:
            # Records queued behind a failed one must come back too, or they would overtake it.
            self._client.purge(in_queue=True, in_flight=False, blocking=False)
            self._client.poll(0)
        rebuild = False
        with self._lock:
            if self._recovering and not self._inflight:
                # Every report is in. A requeued record that a newer record of the same key has
                # overtaken (delivered) cannot be sent without breaking the key's order: drop it.
                keep = []
                for r in self._retry:
                    if r.key is not None and self._acked.get((r.topic, r.key), -1) > r.seq:
                        self._forget_locked(r, "dropped_overtaken")
                    else:
                        keep.append(r)
                merged = sorted([*keep, *self._queue], key=lambda r: r.seq)
                self._queue = deque(merged)
                self._retry = []
                self._recovering = False
                rebuild, self._rebuild = self._rebuild, False
            self._enforce_bounds_locked()
            held = len(self._queue) + len(self._inflight) + len(self._retry)
            if len(self._acked) > self._acked_prune_at:
                self._prune_acked_locked()
        if self._metrics is not None:
            self._metrics.producer_buffer.set(held)
        if rebuild and self._factory is not None:
            log.warning("%s: rebuilding the Kafka client after a fatal error", self.name)
            self._client = self._factory()
        self._feed()

    def start(self, interval: float = 0.05) -> BufferedProducer:
        """Serve delivery reports in a daemon thread (the normal mode in a node process)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, args=(interval,), name=self.name, daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> ProducerStats:
        """Stop the service thread, deliver what can be delivered within ``timeout``, report."""
        self._stop_thread()
        deadline = self._clock() + timeout
        while self._clock() < deadline:
            self.pump(0.05)
            with self._lock:
                if not self._queue and not self._inflight and not self._retry:
                    break
        self._client.flush(max(0.0, deadline - self._clock()))
        with self._lock:
            self._closed = True
            lost = len(self._queue) + len(self._retry) + len(self._inflight)
            self._c["lost_at_close"] += lost
        if lost:
            log.warning("%s closed with %d record(s) undelivered", self.name, lost)
        return self.stats()

    def flush(self, timeout: float = 10.0) -> int:
        """Hand everything over and wait for reports; returns how many are still unconfirmed."""
        deadline = self._clock() + timeout
        while True:
            if self._thread is None:
                self.pump(0.05)
            else:
                time.sleep(0.02)
            with self._lock:
                left = len(self._queue) + len(self._inflight) + len(self._retry)
            if not left or self._clock() >= deadline:
                return left

    def stats(self) -> ProducerStats:
        with self._lock:
            now = self._clock()
            # Each collection is in send order: its first record is its oldest.
            heads = [next(iter(self._inflight.values()), None), self._retry[0] if self._retry else None,
                     self._queue[0] if self._queue else None]  # fmt: skip
            oldest = min((r.created for r in heads if r is not None), default=now)
            return ProducerStats(
                **self._c,
                buffered=len(self._queue) + len(self._retry),
                inflight=len(self._inflight),
                buffered_bytes=self._bytes,
                oldest_age_seconds=max(0.0, now - oldest),
            )

    def __enter__(self) -> BufferedProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------
    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.pump(interval)
            except Exception:  # a bug here must not silently stop delivery: log and go on
                log.exception("%s: service loop error", self.name)
                time.sleep(interval)

    def _stop_thread(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=5.0)

    def _stalled_locked(self, now: float) -> bool:
        if not self._inflight:
            return False
        oldest = next(iter(self._inflight.values()))  # dicts keep hand-over order
        return now - oldest.handed >= self.limits.stall_seconds

    def _feed(self) -> None:
        """Hand queued records to librdkafka, in order, within the window (never blocks)."""
        with self._lock:
            now = self._clock()
            if self._recovering or self._closed:
                return
            if self._stalled_locked(now):
                self._healthy = False
                return
            window = self.limits.max_inflight if self._healthy else 1
            produce = self._client.produce
            while self._queue and len(self._inflight) < window:
                rec = self._queue[0]
                if now - rec.created > self.limits.max_age_seconds:
                    self._queue.popleft()
                    self._forget_locked(rec, "dropped_expired")
                    continue
                try:
                    produce(
                        rec.topic,
                        value=rec.value,
                        key=rec.key,
                        headers=rec.headers,
                        on_delivery=functools.partial(self._on_delivery, rec),
                    )
                except BufferError:  # librdkafka's queue is full: keep it, try on the next pump
                    return
                except (KafkaException, TypeError, ValueError) as exc:  # bad topic name, headers…: permanent
                    self._queue.popleft()
                    self._forget_locked(rec, "failed")
                    log.error("%s: cannot produce to %s: %s", self.name, rec.topic, exc)
                    continue
                self._queue.popleft()
                rec.handed = now
                self._inflight[rec.seq] = rec

    def _on_delivery(self, rec: _Record, err: Any, _msg: Any) -> None:
        with self._lock:
            if self._inflight.pop(rec.seq, None) is None:
                return  # already accounted (cannot happen with librdkafka; defensive for fakes)
            if err is None:
                self._forget_locked(rec, "delivered")
                self._healthy = True
                if rec.key is not None:
                    k = (rec.topic, rec.key)
                    if rec.seq > self._acked.get(k, -1):
                        self._acked[k] = rec.seq
                if self._broker_down_logged:
                    log.info("%s: deliveries resumed", self.name)
                    self._broker_down_logged = False
                return
            code = err.code()
            if self._metrics is not None:
                self._metrics.record_delivery_failure(err.name())
            if code in _REQUEUE_CODES or err.retriable():
                if self._clock() - rec.created > self.limits.max_age_seconds:
                    self._forget_locked(rec, "dropped_expired")
                elif self._closed:
                    self._forget_locked(rec, "failed")
                else:
                    bisect.insort(self._retry, rec, key=_seq_of)
                    self._c["requeued"] += 1
                    self._healthy = False
                    if code == KafkaError._FATAL:
                        self._rebuild = True
                    if not self._recovering:
                        self._recovering = True
                        self._purge_pending = True
                return
            self._forget_locked(rec, "failed")
            if self._metrics is not None and code == KafkaError.MSG_SIZE_TOO_LARGE:
                self._metrics.record_dropped("too_large")
            log.error("%s: delivery to %s failed permanently: %s", self.name, rec.topic, err)

    def _on_error(self, err: Any) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            if not self._broker_down_logged:
                log.warning("%s: broker unreachable (%s); buffering", self.name, err.str())
                self._broker_down_logged = True
        elif err.fatal():
            log.error("%s: fatal producer error: %s", self.name, err)
            with self._lock:
                self._rebuild = True
                self._recovering = True
        else:  # authentication, SSL, resolution…: worth a warning, once a minute per kind
            now = self._clock()
            if now - self._error_logged.get(err.code(), -1e9) >= 60.0:
                self._error_logged[err.code()] = now
                log.warning("%s: %s", self.name, err.str())

    def _prune_acked_locked(self) -> None:
        # Only acks newer than the oldest unconfirmed record can overtake anything.
        heads = [next(iter(self._inflight.values()), None), self._retry[0] if self._retry else None,
                 self._queue[0] if self._queue else None]  # fmt: skip
        oldest = min((r.seq for r in heads if r is not None), default=self._next_seq)
        self._acked = {k: v for k, v in self._acked.items() if v > oldest}
        self._acked_prune_at = max(4096, 2 * len(self._acked))

    def _forget_locked(self, rec: _Record, counter: str) -> None:
        self._bytes -= rec.size
        self._c[counter] += 1
        m = self._metrics
        if m is not None:
            if counter == "delivered":
                role = self._roles.get(rec.topic)
                if role is not None:
                    m.producer_delivered.labels(role).inc()
            elif counter in _DROP_REASONS:
                m.record_dropped(_DROP_REASONS[counter])

    def _enforce_bounds_locked(self) -> None:
        lim = self.limits
        now = self._clock()
        # Age: both lists are in send order, so expired records are at their fronts.
        while self._queue and now - self._queue[0].created > lim.max_age_seconds:
            self._forget_locked(self._queue.popleft(), "dropped_expired")
        while self._retry and now - self._retry[0].created > lim.max_age_seconds:
            self._forget_locked(self._retry.pop(0), "dropped_expired")
        # Size: drop the oldest we hold (retried records are older than queued ones: hand-over
        # goes strictly in send order).
        total = len(self._queue) + len(self._inflight) + len(self._retry)
        while (total > lim.max_records or self._bytes > lim.max_bytes) and (self._retry or self._queue):
            rec = self._retry.pop(0) if self._retry else self._queue.popleft()
            self._forget_locked(rec, "dropped_overflow")
            total -= 1
