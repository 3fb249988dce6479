"""Which assigned pool-state partitions count as stalled (the decisions' fetch watchdog)."""

from __future__ import annotations

from streams.processors.decisions import _Shard


def test_a_partition_with_records_that_delivered_nothing_is_stalled_after_the_period():
    shard = _Shard(6)
    shard.catch_up.update({0: 10, 1: 0, 2: 5})
    shard.assigned_at.update({0: 100.0, 1: 100.0, 2: 100.0})
    assert shard.stalled(110.0, 20.0) == []  # too early
    # Partition 1 has nothing to read: never stalled. Partition 2 delivered a record.
    shard.received.add(2)
    assert shard.stalled(121.0, 20.0) == [0]


def test_a_revoked_partition_is_no_longer_watched():
    shard = _Shard(6)
    shard.catch_up[3] = 7
    shard.assigned_at[3] = 0.0
    assert shard.stalled(30.0, 20.0) == [3]
    shard.revoke({3})
    assert shard.stalled(30.0, 20.0) == []
