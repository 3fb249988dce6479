"""The cluster view a decision is made from: nodes, workloads, forecasts, events, in-flight orders.

A :class:`ClusterView` is what the decision processor knows at one instant, rebuilt (live) from
the usage, forecasts, policies, events and migrations topics, or (replay) from a trace. The
policy only reads it. Forecast and usage tables are plain ``Mapping``\\ s keyed by
``(subject_id, resource)`` so that a replay can hand in lazy mappings backed by arrays.

Units: usage, capacity and forecasts of one resource share one absolute unit (cores for ``cpu``,
bytes for ``memory``, bytes/s for ``io``); ratios are load / capacity. Instants are epoch seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "RESOURCES",
    "ClusterView",
    "EventWindow",
    "InFlight",
    "Node",
    "ResourceForecast",
    "Workload",
]

RESOURCES = ("cpu", "memory", "io")
_EMPTY: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class Node:
    """A node: capacity per resource, compatibility fingerprint, pool, labels, threshold overrides."""

    node_id: str
    pool: str
    capacity: Mapping[str, float]
    arch: str = "x86_64"
    driver: str = "qemu"  # qemu | process | function | sim
    kinds: frozenset[str] = frozenset({"vm", "container", "function"})
    fingerprint: Mapping[str, str] = field(default_factory=dict)  # cpu_model, runtime_version, mem_class…
    labels: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)  # trigger ratio per resource


@dataclass(frozen=True, slots=True)
class Workload:
    """A workload and its policy: ``priority`` higher = more critical; ``sla_tier`` names a budget."""

    workload_id: str
    node_id: str
    kind: str = "vm"  # vm | container | function
    priority: int = 0
    sla_tier: str = "default"
    max_downtime_seconds: float | None = None
    migratable: bool = True
    pinned: bool = False
    memory_bytes: float = 0.0
    started_at: float = 0.0
    required_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResourceForecast:
    """Forecast of one resource at ``horizons_seconds`` after ``made_at`` (absolute units)."""

    made_at: float
    horizons_seconds: tuple[float, ...]
    mean: tuple[float, ...]
    upper: tuple[float, ...]
    reliable: bool = True


@dataclass(frozen=True, slots=True)
class EventWindow:
    """A declared event: ``maintenance`` (evacuate, keep work off) or a peak (adjusts forecasts).

    Scope is the union of ``nodes``, every node of ``pools`` and the nodes hosting ``workloads``.
    A peak multiplies the scoped forecast by ``factor`` and adds ``delta_ratio`` x capacity inside
    ``[start_at, end_at)``, unless the forecaster already applied it (``in_forecast``).
    """

    event_id: str
    kind: str
    start_at: float
    end_at: float
    nodes: frozenset[str] = frozenset()
    pools: frozenset[str] = frozenset()
    workloads: frozenset[str] = frozenset()
    resource: str | None = None  # None: every resource
    factor: float = 1.0
    delta_ratio: float = 0.0
    in_forecast: bool = False
    cancelled: bool = False

    def covers(self, node: Node, hosted: Sequence[str]) -> bool:
        if node.node_id in self.nodes or node.pool in self.pools:
            return True
        return bool(self.workloads) and any(w in self.workloads for w in hosted)

    def overlaps(self, start_at: float, end_at: float) -> bool:
        return not self.cancelled and self.start_at < end_at and self.end_at > start_at


@dataclass(frozen=True, slots=True)
class InFlight:
    """An order being carried out, as known from the orders and migrations topics."""

    order_id: str
    workload_id: str
    source_node: str
    target_node: str
    issued_at: float
    deadline_at: float
    sla_tier: str = "default"


@dataclass(slots=True)
class ClusterView:
    """Everything a decision may read at one instant. Treat it as read-only."""

    nodes: Mapping[str, Node]
    workloads: Mapping[str, Workload]
    horizons_seconds: tuple[float, ...]
    node_forecasts: Mapping[tuple[str, str], ResourceForecast] = field(default_factory=dict)
    workload_forecasts: Mapping[tuple[str, str], ResourceForecast] = field(default_factory=dict)
    node_usage: Mapping[tuple[str, str], float] = field(default_factory=dict)
    workload_usage: Mapping[tuple[str, str], float] = field(default_factory=dict)
    events: Sequence[EventWindow] = ()
    in_flight: Mapping[str, InFlight] = field(default_factory=dict)  # by workload_id
    finished: Mapping[str, str] = field(default_factory=dict)  # order_id -> terminal status
    # node_id -> when a workload last moved onto or off it (a completed migration)
    hosting_changed_at: Mapping[str, float] = field(default_factory=dict)
    hosted: Mapping[str, Sequence[str]] | None = None
    _pools: dict[str, list[str]] | None = None

    def __post_init__(self) -> None:
        if self.hosted is None:
            hosted: dict[str, list[str]] = {n: [] for n in self.nodes}
            for w in sorted(self.workloads):
                hosted.setdefault(self.workloads[w].node_id, []).append(w)
            self.hosted = hosted

    def hosted_on(self, node_id: str) -> Sequence[str]:
        assert self.hosted is not None
        return self.hosted.get(node_id, ())

    def pool_nodes(self, pool: str) -> list[str]:
        if self._pools is None:
            pools: dict[str, list[str]] = {}
            for n in sorted(self.nodes):
                pools.setdefault(self.nodes[n].pool, []).append(n)
            self._pools = pools
        return self._pools.get(pool, [])

    def usage_of_node(self, node_id: str, resource: str) -> float:
        got = self.node_usage.get((node_id, resource))
        if got is not None:
            return got
        return sum(self.workload_usage.get((w, resource), 0.0) for w in self.hosted_on(node_id))

    def workload_curve(self, workload_id: str, resource: str) -> tuple[list[float], list[float]]:
        """(mean, upper) of a workload on the view's horizons; flat current usage if no forecast."""
        n = len(self.horizons_seconds)
        fc = self.workload_forecasts.get((workload_id, resource))
        if fc is not None and len(fc.upper) >= n and fc.reliable:
            return list(fc.mean[:n]), list(fc.upper[:n])
        now = self.workload_usage.get((workload_id, resource), 0.0)
        if fc is not None and len(fc.upper) >= n:  # unreliable: never below what is seen now
            return [max(now, m) for m in fc.mean[:n]], [max(now, u) for u in fc.upper[:n]]
        return [now] * n, [now] * n

    def node_curve(self, node_id: str, resource: str) -> list[float]:
        """Upper bound of the node's load on the view's horizons (see :meth:`node_moments`)."""
        mean, var = self.node_moments(node_id, resource)
        return [m + math.sqrt(v) for m, v in zip(mean, var, strict=True)]

    def node_moments(self, node_id: str, resource: str) -> tuple[list[float], list[float]]:
        """(mean, margin²) of the node's load on the view's horizons; upper = mean + sqrt(margin²).

        A node-level forecast wins; else the hosted workloads' forecasts are aggregated as
        independent errors (means add, squared upper margins add), far less pessimistic than a
        sum of upper bounds. An unreliable forecast is never below the load seen now (the reactive
        fallback of ARCHITECTURE §5).

        After a workload moved onto or off the node, its node-level forecast still follows the
        old set of workloads (it learned from their sum) until the longest horizon has passed:
        meanwhile the aggregate of the workloads it hosts now is the truth, otherwise a node just
        relieved would look as hot as before and lose another workload in the next cycle.
        """
        n = len(self.horizons_seconds)
        fc = self.node_forecasts.get((node_id, resource))
        changed = self.hosting_changed_at.get(node_id)
        settle = max(self.horizons_seconds, default=0.0)
        if fc is not None and changed is not None and fc.made_at - changed < settle:
            fc = None
        if fc is not None and len(fc.upper) >= n:
            mean = list(fc.mean[:n])
            if not fc.reliable:
                now = self.usage_of_node(node_id, resource)
                mean = [max(now, m) for m in mean]
            return mean, [max(u - m, 0.0) ** 2 for u, m in zip(fc.upper[:n], fc.mean[:n], strict=True)]
        means = [0.0] * n
        var = [0.0] * n
        for w in self.hosted_on(node_id):
            mean, upper = self.workload_curve(w, resource)
            for i in range(n):
                means[i] += mean[i]
                var[i] += (upper[i] - mean[i]) ** 2
        return means, var
