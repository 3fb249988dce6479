"""The Kafka topics of ARCHITECTURE §4: names, keys, partitions, cleanup and retention.

One table so that ``plba topics create``, producers, Faust processors and tests all agree.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "plba."
_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    role: str
    suffix: str
    key: str
    cleanup: str  # "delete" or "compact"
    partitions: int
    retention_ms: int | None  # None: keep forever (compacted topics)
    record_type: str | None  # schema type name of the value; None for raw records (DLQ holds bytes)

    def name(self, prefix: str = DEFAULT_PREFIX) -> str:
        return f"{prefix}{self.suffix}"

    def configs(self) -> dict[str, str]:
        cfg = {"cleanup.policy": self.cleanup}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        if self.cleanup == "compact":
            # Compacted tables are small and read on every restart: compact promptly.
            cfg["min.cleanable.dirty.ratio"] = "0.1"
            cfg["segment.ms"] = str(3600 * 1000)
        return cfg


TOPICS: dict[str, TopicSpec] = {
    spec.role: spec
    for spec in (
        TopicSpec("node_usage", "node-usage.v1", "node_id", "delete", 6, 7 * _DAY_MS, "node_usage"),
        TopicSpec("workload_usage", "workload-usage.v1", "workload_id", "delete", 12, 7 * _DAY_MS, "workload_usage"),
        TopicSpec("events", "events.v1", "event_id", "compact", 3, None, "event"),
        TopicSpec("policies", "policies.v1", "subject", "compact", 3, None, "policy"),
        TopicSpec("forecasts", "forecasts.v1", "subject", "delete", 6, 3 * _DAY_MS, "forecast"),
        TopicSpec("orders", "orders.v1", "workload_id", "delete", 6, 7 * _DAY_MS, "order"),
        TopicSpec("migrations", "migrations.v1", "order_id", "delete", 6, 30 * _DAY_MS, "migration_status"),
        TopicSpec("placements", "placements.v1", "workload_id", "compact", 6, None, "placement"),
        TopicSpec("explanations", "explanations.v1", "node_id", "delete", 6, 7 * _DAY_MS, "explanation"),
        TopicSpec("dlq", "dlq.v1", "source_topic", "delete", 3, 30 * _DAY_MS, "dlq"),
        # Internal to the decision side (streams.decisions.sharding): its inputs re-keyed by pool,
        # "<pool>|<role>|<id>" on partition hash(pool), compacted so a new owner rebuilds a pool's
        # view; and node -> pool, read in full by every worker to route workload-level records.
        TopicSpec("pool_state", "decision-pool-state.v1", "pool|role|id", "compact", 6, None, None),
        TopicSpec("node_pools", "decision-node-pools.v1", "node_id", "compact", 3, None, None),
    )
}


def topic_name(role: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The full topic name of a role, e.g. ``topic_name("orders") == "plba.orders.v1"``."""
    try:
        return TOPICS[role].name(prefix)
    except KeyError:
        raise KeyError(f"unknown topic role {role!r}; known: {', '.join(TOPICS)}") from None
