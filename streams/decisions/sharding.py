"""Decision shards by pool (ARCHITECTURE §6, §12): which partition a pool lives on, and the router.

The decision side's inputs are keyed by node, workload, order or subject; a decision needs all of
one pool together. A router re-keys each record to its node's pool and sends it to the pool-state
topic on partition ``pool_partition(pool)``, key ``<pool>|<role>|<id>``: one pool always lands on
one partition, so the worker owning that partition holds the whole pool and nothing else; the
topic is compacted (latest record per key), so a new owner rebuilds the pool's view from it.

Records that concern every pool (events, policies) are broadcast to every partition (pool ``*``).
Workload-level records only name their node: the router resolves node → pool from the node usage
it routes itself and from the node-pools topic every worker reads in full; a record whose node's
pool is not known yet waits (latest per subject, bounded) until it is.

Pure: no Kafka here, the processor does the sending.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BROADCAST", "PoolRouter", "Routed", "node_pool", "parse_key", "pool_partition", "state_key"]

BROADCAST = "*"
# Roles the router forwards, and how each names its subject (the compaction key's last part).
_SUBJECT = {
    "node_usage": lambda r: r["node_id"],
    "workload_usage": lambda r: r["workload_id"],
    "forecasts": lambda r: f"{r['subject_kind']}:{r['subject']}:{r['resource']}",
    "migrations": lambda r: r["order_id"],
    "placements": lambda r: r["workload_id"],
    "orders": lambda r: r["workload_id"],
    "events": lambda r: r["event_id"],
}
# The node whose pool a record belongs to.
_NODE_OF = {
    "node_usage": lambda r: r["node_id"],
    "workload_usage": lambda r: r["node_id"],
    "forecasts": lambda r: r["node_id"],
    "migrations": lambda r: r["source_node"],
    "placements": lambda r: r["node_id"],
    "orders": lambda r: r["source_node"],
}


def pool_partition(pool: str, partitions: int) -> int:
    """The pool-state partition of ``pool``: a stable hash (not Python's salted ``hash``)."""
    digest = hashlib.blake2b(pool.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def state_key(pool: str, role: str, subject: str) -> bytes:
    return f"{pool}|{role}|{subject}".encode()


def parse_key(key: bytes) -> tuple[str, str, str]:
    """``(pool, role, subject)`` of a pool-state key; subjects may contain ``|``."""
    pool, role, subject = key.decode().split("|", 2)
    return pool, role, subject


def node_pool(rec: Mapping[str, Any]) -> str:
    """The pool of a node usage record (the same rule as the live cluster state)."""
    fp = rec.get("fingerprint") or {}
    return str(fp.get("pool") or (fp.get("labels") or {}).get("pool") or "default")


@dataclass(frozen=True, slots=True)
class Routed:
    """One record for the pool-state topic; ``pool == BROADCAST`` goes to every partition."""

    pool: str
    key: bytes
    value: dict[str, Any] | None  # None: a tombstone


@dataclass
class PoolRouter:
    """Re-keys decision inputs by pool; see the module docstring."""

    max_pending: int = 100_000
    pools: dict[str, str] = field(default_factory=dict)  # node_id -> pool
    _pending: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    _n_pending: int = 0
    dropped: int = 0  # pending records given up because the bound was reached

    def learn(self, node_id: str, pool: str) -> list[Routed]:
        """Record ``node_id``'s pool; returns the records that were waiting for it."""
        self.pools[node_id] = pool
        waiting = self._pending.pop(node_id, None)
        if not waiting:
            return []
        self._n_pending -= len(waiting)
        return [Routed(pool, state_key(pool, role, subject), rec) for (role, subject), rec in waiting.items()]

    def route(self, role: str, rec: Mapping[str, Any] | None, key: str = "") -> tuple[list[Routed], str | None]:
        """Where ``rec`` of ``role`` goes, and the pool to announce for a node newly seen (else None).

        ``key`` is the record's Kafka key, used for policies (whose tombstones carry no value).
        """
        if role == "policies":
            return [Routed(BROADCAST, state_key(BROADCAST, role, key), None if rec is None else dict(rec))], None
        assert rec is not None
        subject = _SUBJECT[role](rec)
        if role == "events":
            return [Routed(BROADCAST, state_key(BROADCAST, role, subject), dict(rec))], None
        if role == "node_usage":
            pool = node_pool(rec)
            announce = pool if self.pools.get(subject) != pool else None
            out = self.learn(subject, pool)
            out.append(Routed(pool, state_key(pool, role, subject), dict(rec)))
            return out, announce
        node = _NODE_OF[role](rec)
        got = rec.get("pool") if role == "forecasts" else None
        known = str(got) if got else self.pools.get(node)
        if known is None:
            self._wait(node, role, subject, dict(rec))
            return [], None
        return [Routed(known, state_key(known, role, subject), dict(rec))], None

    def _wait(self, node: str, role: str, subject: str, rec: dict[str, Any]) -> None:
        bucket = self._pending.setdefault(node, {})
        if (role, subject) not in bucket:
            if self._n_pending >= self.max_pending:
                self.dropped += 1
                return
            self._n_pending += 1
        bucket[(role, subject)] = rec

    @property
    def pending(self) -> int:
        return self._n_pending
