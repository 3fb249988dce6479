"""BufferedProducer against a fake librdkafka: order, exactly-once, bounds, drop counting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka_fake import FakeClock, FakeKafka

from agents.producer import BufferedProducer, BufferLimits, ProducerError, producer_config
from schemas.settings import Settings


def make(limits: BufferLimits | None = None, capacity: int | None = None):
    fake, clock = FakeKafka(capacity), FakeClock()
    return BufferedProducer(limits=limits, client=fake, clock=clock), fake, clock


def values(fake: FakeKafka) -> list[int]:
    return [int(m.value) for m in fake.log]


def send_n(p: BufferedProducer, start: int, n: int, clock: FakeClock | None = None, step: float = 0.0) -> None:
    for i in range(start, start + n):
        p.send("t", str(i).encode(), key=b"node-1")
        if clock is not None:
            clock.advance(step)
            p.pump()


def test_healthy_delivery_in_order():
    p, fake, _ = make()
    send_n(p, 0, 10)
    p.pump()
    assert values(fake) == list(range(10))
    s = p.stats()
    assert (s.sent, s.delivered, s.buffered, s.inflight, s.buffered_bytes) == (10, 10, 0, 0, 0)


def test_outage_keeps_every_record_in_order_and_once():
    p, fake, clock = make(BufferLimits(stall_seconds=5, delivery_timeout_seconds=120))
    fake.up = False
    send_n(p, 0, 60, clock, step=1.0)  # one record per second for a 60 s outage
    s = p.stats()
    # librdkafka holds only the first stall_seconds of the outage; the rest waits with us.
    assert len(fake.queue) == 5
    assert (s.inflight, s.buffered) == (5, 55)
    fake.up = True
    for _ in range(5):
        p.pump()
    assert values(fake) == list(range(60))
    s = p.stats()
    assert (s.delivered, s.dropped_overflow, s.dropped_expired, s.requeued) == (60, 0, 0, 0)


def test_timeout_requeues_in_order_including_records_queued_behind():
    p, fake, clock = make(BufferLimits(stall_seconds=5, delivery_timeout_seconds=30))
    fake.up = False
    send_n(p, 0, 8, clock, step=1.0)  # 0..4 handed over, 5..7 held by us
    fake.expire(2)  # librdkafka times out 0 and 1; 2..4 are still queued inside it
    p.pump()  # reports: 0,1 timed out -> pause, purge 2..4 back
    assert fake.purges == 1
    p.pump()
    assert p.stats().requeued == 5
    assert fake.log == []
    fake.up = True
    for _ in range(4):
        p.pump()
    assert values(fake) == list(range(8))
    assert p.stats().delivered == 8


def test_a_timed_out_record_overtaken_by_a_newer_one_of_its_key_is_dropped_not_reordered():
    p, fake, _ = make()
    fake.up = False
    for i in range(3):
        p.send("t", str(i).encode(), key=b"node-1")
    p.send("t", b"9", key=b"node-2")
    fake.expire(1)  # 0 times out ...
    fake.up = True  # ... and the broker is back before 1 and 2 time out: they get through
    for _ in range(4):
        p.pump()
    assert values(fake) == [1, 2, 9]  # 0 never lands after 1 and 2
    s = p.stats()
    assert (s.delivered, s.dropped_overtaken, s.buffered, s.inflight) == (3, 1, 0, 0)


def test_a_timed_out_record_not_overtaken_is_resent_in_order():
    p, fake, _ = make()
    fake.up = False
    for i in range(3):
        p.send("t", str(i).encode(), key=str(i).encode())  # three keys
    fake.expire(1)
    fake.up = True
    for _ in range(4):
        p.pump()
    assert sorted(values(fake)) == [0, 1, 2] and p.stats().dropped_overtaken == 0


def test_probe_after_requeue_hands_over_one_record_until_a_delivery():
    p, fake, clock = make(BufferLimits(stall_seconds=5, delivery_timeout_seconds=30))
    fake.up = False
    send_n(p, 0, 20, clock, step=1.0)
    fake.expire()
    p.pump()
    p.pump()
    assert len(fake.queue) == 1  # still down: only a probe goes to librdkafka
    fake.up = True
    p.pump()  # probe delivered -> healthy -> full window
    p.pump()
    assert values(fake) == list(range(20))


def test_overflow_drops_the_oldest_held_records_and_counts_them():
    p, fake, clock = make(BufferLimits(max_records=10, stall_seconds=2, delivery_timeout_seconds=120))
    fake.up = False
    send_n(p, 0, 25, clock, step=1.0)
    s = p.stats()
    assert s.dropped_overflow == 15
    assert s.inflight + s.buffered == 10
    fake.up = True
    for _ in range(4):
        p.pump()
    # 0,1 were in librdkafka's hands; of the records we held, the oldest (2..16) were dropped.
    assert values(fake) == [0, 1, *range(17, 25)]


def test_byte_bound_drops_oldest():
    p, fake, clock = make(BufferLimits(max_bytes=100, stall_seconds=1, delivery_timeout_seconds=120))
    fake.up = False
    for i in range(10):
        p.send("t", bytes([65 + i]) * 30)  # 30 bytes each
        clock.advance(2)
        p.pump()
    s = p.stats()
    assert s.buffered_bytes <= 100
    assert s.dropped_overflow == 7
    fake.up = True
    p.pump()
    p.pump()
    assert [m.value[:1] for m in fake.log] == [b"A", b"I", b"J"]


def test_age_bound_drops_expired_records():
    p, fake, clock = make(BufferLimits(max_age_seconds=10, stall_seconds=1, delivery_timeout_seconds=5))
    fake.up = False
    for i in range(30):
        p.send("t", str(i).encode())
        clock.advance(1.0)
        if (i + 1) % 5 == 0:
            fake.expire()  # librdkafka's message.timeout.ms (5 s) fires for what it holds
        p.pump()
    fake.up = True
    p.pump()
    p.pump()
    s = p.stats()
    # Only records at most 10 s old survive; nothing older is delivered.
    assert values(fake) == list(range(20, 30))
    assert s.dropped_expired == 20
    assert s.delivered + s.dropped_expired == 30


def test_librdkafka_queue_full_keeps_records_with_us_and_in_order():
    p, fake, _ = make(capacity=3)
    send_n(p, 0, 10)  # produce() raises BufferError after 3: no exception reaches the caller
    assert p.stats().buffered == 7
    for _ in range(5):
        p.pump()
    assert values(fake) == list(range(10))


def test_permanent_failure_is_counted_not_retried():
    p, fake, _ = make()
    fake.reject.add(b"1")
    send_n(p, 0, 3)
    p.pump()
    p.pump()
    s = p.stats()
    assert (s.delivered, s.failed, s.requeued) == (2, 1, 0)
    assert values(fake) == [0, 2]


def test_close_reports_records_it_could_not_deliver():
    p, fake, _ = make()
    fake.up = False
    send_n(p, 0, 4)
    s = p.close(timeout=0.0)
    assert s.lost_at_close == 4
    with pytest.raises(ProducerError, match="after close"):
        p.send("t", b"x")


def test_close_flushes_when_the_broker_is_up():
    p, fake, _ = make()
    send_n(p, 0, 4)
    assert p.close(timeout=1.0).lost_at_close == 0
    assert values(fake) == [0, 1, 2, 3]


def test_send_rejects_non_bytes_value():
    p, _, _ = make()
    with pytest.raises(TypeError, match="bytes"):
        p.send("t", "text")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_records": 0}, "must be positive"),
        ({"stall_seconds": 200, "delivery_timeout_seconds": 100}, "stall_seconds"),
        ({"max_age_seconds": 0}, "max_age_seconds"),
    ],
)
def test_bad_limits_are_rejected(kwargs, message):
    with pytest.raises(ProducerError, match=message):
        BufferLimits(**kwargs)


def test_producer_config_is_idempotent_acks_all_compressed_and_passes_security():
    s = Settings(
        kafka_bootstrap="b1:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
        kafka_ssl_cafile="/ca.pem",
    )
    cfg = producer_config(s, BufferLimits(delivery_timeout_seconds=90))
    assert cfg["enable.idempotence"] is True
    assert cfg["acks"] == "all"
    assert cfg["compression.type"] in ("zstd", "lz4")
    assert cfg["message.timeout.ms"] == 90_000
    assert cfg["bootstrap.servers"] == "b1:9093"
    assert cfg["sasl.mechanism"] == "SCRAM-SHA-512"
    assert cfg["ssl.ca.location"] == "/ca.pem"


def test_real_client_builds_with_that_config():
    # librdkafka validates the configuration at construction (no broker needed).
    p = BufferedProducer(Settings(kafka_bootstrap="127.0.0.1:1"))
    assert p.stats().sent == 0
    p.close(timeout=0.0)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 5)),
        st.tuples(st.just("tick"), st.floats(0.1, 8.0)),
        st.tuples(st.just("down"), st.none()),
        st.tuples(st.just("up"), st.none()),
        st.tuples(st.just("expire"), st.integers(0, 5)),
        st.tuples(st.just("pump"), st.none()),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(ops=ops, max_records=st.integers(3, 40))
def test_invariants_under_any_schedule_of_outages(ops, max_records):
    limits = BufferLimits(max_records=max_records, max_age_seconds=1e6, stall_seconds=3, delivery_timeout_seconds=10)
    p, fake, clock = make(limits)
    n = 0
    for op, arg in ops:
        if op == "send":
            for _ in range(arg):
                p.send("t", str(n).encode(), key=str(n % 3).encode())
                n += 1
        elif op == "tick":
            clock.advance(arg)
        elif op == "down":
            fake.up = False
        elif op == "up":
            fake.up = True
        elif op == "expire":
            fake.expire(min(arg, len(fake.queue)))
        p.pump()
    fake.up = True
    for _ in range(10):
        p.pump()
    got = values(fake)
    s = p.stats()
    assert len(got) == len(set(got)), "a record was delivered twice"
    for key in range(3):
        per_key = [v for v in got if v % 3 == key]
        assert per_key == sorted(per_key), "records of one key were delivered out of order"
    assert s.delivered == len(got)
    assert s.delivered + s.dropped_overflow + s.dropped_expired + s.dropped_overtaken + s.failed == n == s.sent
    assert s.buffered == s.inflight == 0
