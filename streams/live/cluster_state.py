"""The decision side's live picture of the cluster, folded from decoded Kafka records.

Pure and clock-free: every ``on_*`` method takes one decoded record (a dict that passed the
contract) and ``view(pool)`` returns the :class:`~streams.decisions.cluster.ClusterView` the
policy decides from. Nothing here reads Kafka, so a restart rebuilds the same state by replaying
the compacted topics (policies, events, placements) and the latest usage and forecasts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.sla import policy_key, resolve_policy
from streams.decisions.cluster import RESOURCES, ClusterView, EventWindow, InFlight, Node, ResourceForecast, Workload

TERMINAL_STATES = frozenset({"completed", "failed", "rolled_back", "rejected", "expired"})
# A node (or workload) that has not reported for this many of its intervals is considered gone.
STALE_INTERVALS = 6.0


@dataclass(slots=True)
class _NodeEntry:
    node: Node
    usage: dict[str, float]
    endpoint: str
    seen_at: float
    interval: float
    hosted: list[str]


@dataclass(slots=True)
class _WorkloadEntry:
    workload_id: str
    node_id: str
    kind: str
    driver: str
    app: str
    user: str
    reported_priority: int | None
    started_at: float
    mem_bytes: float
    usage: dict[str, float]
    seen_at: float
    interval: float


@dataclass
class LiveClusterState:
    horizons_seconds: tuple[float, ...]
    nodes: dict[str, _NodeEntry] = field(default_factory=dict)
    workloads: dict[str, _WorkloadEntry] = field(default_factory=dict)
    node_forecasts: dict[tuple[str, str], ResourceForecast] = field(default_factory=dict)
    workload_forecasts: dict[tuple[str, str], ResourceForecast] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # by key "<kind>:<subject>"
    events: dict[str, EventWindow] = field(default_factory=dict)
    in_flight: dict[str, InFlight] = field(default_factory=dict)  # by workload_id
    finished: dict[str, str] = field(default_factory=dict)  # order_id -> terminal state
    placements: dict[str, str] = field(default_factory=dict)  # workload_id -> node_id
    hosting_changed_at: dict[str, float] = field(default_factory=dict)  # node_id -> last move in/out
    latest_at: float = 0.0  # event time: the newest sampled_at seen

    # --- folding records ------------------------------------------------------------------
    def on_node_usage(self, rec: Mapping[str, Any]) -> None:
        cap = rec["capacity"]
        fp = rec["fingerprint"]
        labels = dict(fp.get("labels") or {})
        drivers = dict(fp.get("drivers") or {})
        pool = fp.get("pool") or labels.get("pool") or "default"
        node = Node(
            node_id=rec["node_id"],
            pool=pool,
            capacity={
                "cpu": float(cap["cpu_cores"]),
                "memory": float(cap["mem_bytes"]),
                "io": float(cap["io_bytes_per_second"]),
            },
            arch=fp.get("arch", "x86_64"),
            driver=_main_driver(drivers),
            kinds=frozenset(_kinds(drivers)),
            fingerprint={
                k: str(v) for k, v in fp.items() if k in ("cpu_model", "flags_digest", "memory_class", "zone")
            },
            labels=labels,
        )
        io = sum(
            float(rec[k])
            for k in (
                "disk_read_bytes_per_second",
                "disk_write_bytes_per_second",
                "net_rx_bytes_per_second",
                "net_tx_bytes_per_second",
            )
        )
        usage = {
            "cpu": float(rec["cpu_ratio"]) * node.capacity["cpu"],
            "memory": float(rec["mem_used_bytes"]),
            "io": io,
        }
        self.nodes[node.node_id] = _NodeEntry(
            node,
            usage,
            rec["executor_endpoint"],
            float(rec["sampled_at"]),
            float(rec["interval_seconds"]),
            list(rec["workloads"]),
        )
        self.latest_at = max(self.latest_at, float(rec["sampled_at"]))

    def on_workload_usage(self, rec: Mapping[str, Any]) -> None:
        wid = rec["workload_id"]
        self.workloads[wid] = _WorkloadEntry(
            workload_id=wid,
            node_id=rec["node_id"],
            kind=rec["kind"],
            driver=rec["driver"],
            app=rec.get("app") or "",
            user=rec.get("user") or "",
            reported_priority=rec.get("priority"),
            started_at=float(rec.get("started_at") or rec["sampled_at"]),
            mem_bytes=float(rec["mem_used_bytes"]),
            usage={
                "cpu": float(rec["cpu_cores_used"]),
                "memory": float(rec["mem_used_bytes"]),
                "io": float(rec["io_bytes_per_second"]),
            },
            seen_at=float(rec["sampled_at"]),
            interval=float(rec["interval_seconds"]),
        )
        self.latest_at = max(self.latest_at, float(rec["sampled_at"]))

    def on_forecast(self, rec: Mapping[str, Any]) -> None:
        scale = 1.0
        if rec.get("unit") == "ratio":  # third-party node forecasts may come as ratios of capacity
            entry = self.nodes.get(rec["node_id"])
            if entry is None:
                return
            scale = entry.node.capacity.get(rec["resource"], 0.0)
        fc = ResourceForecast(
            made_at=float(rec["issued_at"]),
            horizons_seconds=tuple(rec["horizons_seconds"]),
            mean=tuple(v * scale for v in rec["mean"]),
            upper=tuple(v * scale for v in rec["upper"]),
            reliable=bool(rec["reliable"]),
        )
        table = self.node_forecasts if rec["subject_kind"] == "node" else self.workload_forecasts
        table[(rec["subject"], rec["resource"])] = fc

    def on_policy(self, key: str, rec: Mapping[str, Any] | None) -> None:
        """A policy record, or a tombstone (``rec is None``) for the subject key ``kind:subject``."""
        if rec is None:
            self.policies.pop(key, None)
        else:
            self.policies[policy_key(rec["subject_kind"], rec["subject"])] = dict(rec)

    def on_event(self, rec: Mapping[str, Any]) -> None:
        scope = rec["scope"]
        impact = rec.get("impact") or {}
        kind = "maintenance" if rec["event_type"] == "maintenance" else "peak"
        self.events[rec["event_id"]] = EventWindow(
            event_id=rec["event_id"],
            kind=kind,
            start_at=float(rec["starts_at"]),
            end_at=float(rec["ends_at"]),
            nodes=frozenset(scope.get("nodes") or ()),
            pools=frozenset(scope.get("pools") or ()),
            workloads=frozenset(scope.get("workloads") or ()),
            factor=float(impact.get("factor", 1.0)),
            # Peaks scoped to workloads/apps/users are applied by the forecasters already.
            in_forecast=kind == "peak" and not (scope.get("nodes") or scope.get("pools")),
            cancelled=bool(rec.get("cancelled", False)),
        )

    def on_order(self, rec: Mapping[str, Any]) -> None:
        if rec.get("dry_run") or rec["order_id"] in self.finished:
            return
        self.in_flight[rec["workload_id"]] = InFlight(
            order_id=rec["order_id"],
            workload_id=rec["workload_id"],
            source_node=rec["source_node"],
            target_node=rec["target_node"],
            issued_at=float(rec["issued_at"]),
            deadline_at=float(rec["deadline_at"]),
        )

    def on_migration(self, rec: Mapping[str, Any]) -> None:
        if rec["state"] not in TERMINAL_STATES:
            return
        self.finished[rec["order_id"]] = rec["state"]
        current = self.in_flight.get(rec["workload_id"])
        if current is not None and current.order_id == rec["order_id"]:
            del self.in_flight[rec["workload_id"]]
        if rec["state"] == "completed":
            at = float(rec["at"])
            for nid in (rec["source_node"], rec["target_node"]):
                self.hosting_changed_at[nid] = max(at, self.hosting_changed_at.get(nid, at))
            self.placements[rec["workload_id"]] = rec["target_node"]
            w = self.workloads.get(rec["workload_id"])
            if w is not None:
                w.node_id = rec["target_node"]

    def on_placement(self, rec: Mapping[str, Any]) -> None:
        self.placements[rec["workload_id"]] = rec["node_id"]

    def drop_pools(self, pools: Collection[str]) -> None:
        """Forget everything about ``pools`` (their shard moved to another worker).

        Events and policies concern every pool and stay.
        """
        gone = {nid for nid, e in self.nodes.items() if e.node.pool in pools}
        if not gone:
            return
        for nid in gone:
            del self.nodes[nid]
        wids = {wid for wid, w in self.workloads.items() if w.node_id in gone}
        for wid in wids:
            del self.workloads[wid]
            self.placements.pop(wid, None)
        self.in_flight = {w: f for w, f in self.in_flight.items() if w not in wids and f.source_node not in gone}
        self.node_forecasts = {k: v for k, v in self.node_forecasts.items() if k[0] not in gone}
        self.hosting_changed_at = {n: t for n, t in self.hosting_changed_at.items() if n not in gone}
        self.workload_forecasts = {k: v for k, v in self.workload_forecasts.items() if k[0] not in wids}

    # --- reading --------------------------------------------------------------------------
    def pools(self) -> list[str]:
        return sorted({e.node.pool for e in self.nodes.values()})

    def complete(self, pool: str) -> bool:
        """True once every workload the pool's nodes report hosting has reported its own usage.

        Right after a (re)start the topics are read in parallel; deciding before the hosted
        workloads are known would pick candidates from a partial list.
        """
        return all(wid in self.workloads for e in self.nodes.values() if e.node.pool == pool for wid in e.hosted)

    def endpoint(self, node_id: str) -> str | None:
        entry = self.nodes.get(node_id)
        return entry.endpoint if entry else None

    def view(self, pool: str | None = None, now: float | None = None) -> ClusterView:
        """The policy's input for one pool (or all), leaving out nodes and workloads gone quiet."""
        now = self.latest_at if now is None else now
        nodes = {
            nid: e.node
            for nid, e in self.nodes.items()
            if (pool is None or e.node.pool == pool) and now - e.seen_at <= STALE_INTERVALS * e.interval
        }
        workloads: dict[str, Workload] = {}
        usage: dict[tuple[str, str], float] = {}
        for wid, w in self.workloads.items():
            if w.node_id not in nodes or now - w.seen_at > STALE_INTERVALS * w.interval:
                continue
            eff = resolve_policy(wid, w.app, w.user, self.policies)
            priority = eff.priority
            # The priority a workload was started with is workload-specific: only a workload
            # policy overrides it.
            if w.reported_priority is not None and not eff.sources["priority"].startswith("workload:"):
                priority = w.reported_priority
            workloads[wid] = Workload(
                workload_id=wid,
                node_id=w.node_id,
                kind=w.kind,
                priority=int(priority),
                sla_tier=eff.tier,
                max_downtime_seconds=eff.max_downtime_seconds,
                migratable=eff.can_migrate,
                pinned=eff.pin_node is not None,
                memory_bytes=w.mem_bytes,
                started_at=w.started_at,
            )
            for res in RESOURCES:
                usage[(wid, res)] = w.usage[res]
        node_usage = {(nid, res): self.nodes[nid].usage[res] for nid in nodes for res in RESOURCES}
        return ClusterView(
            nodes=nodes,
            workloads=workloads,
            horizons_seconds=self.horizons_seconds,
            node_forecasts={k: v for k, v in self.node_forecasts.items() if k[0] in nodes},
            workload_forecasts={k: v for k, v in self.workload_forecasts.items() if k[0] in workloads},
            node_usage=node_usage,
            workload_usage=usage,
            events=tuple(self.events.values()),
            in_flight={w: f for w, f in self.in_flight.items() if w in workloads},
            finished=dict(self.finished),
            hosting_changed_at={n: t for n, t in self.hosting_changed_at.items() if n in nodes},
        )


def _main_driver(drivers: Mapping[str, Any]) -> str:
    """The runtime that decides a node's migration method: a real one wins over ``sim``."""
    real = sorted(d for d in drivers if d != "sim")
    return real[0] if real else "sim"


_DRIVER_KINDS = {"qemu": "vm", "process": "container", "function": "function", "sim": None}


def _kinds(drivers: Mapping[str, Any]) -> set[str]:
    kinds: set[str] = set()
    for name in drivers:
        kind = _DRIVER_KINDS.get(name)
        # A sim node stands in for any runtime: it can host every kind.
        kinds.update((kind,) if kind else ("vm", "container", "function"))
    return kinds or {"vm", "container", "function"}
