"""Replay a packed cluster through a policy, step by step, with the code that runs live.

At each step ``t`` (instant ``now = start_at + t * step_seconds``):

1. migrations whose modelled end is ``<= now`` land: the workload now runs on the target;
2. every workload's sample ``loads[t]`` arrives; node load is the sum of its workloads' loads,
   and a workload still migrating counts on **both** source and target (copying costs the
   source as much as the target; conservative for every policy alike);
3. metrics are taken on that *actual* load (see :class:`ReplayMetrics`);
4. the forecaster learns the samples and forecasts every workload (mean, upper per horizon);
5. the policy decides from a :class:`ClusterView` holding only what is known at ``now``;
   each order starts a migration lasting the migration model's predicted duration.

Forecasts reach the view through lazy mappings over arrays, so no per-workload objects are
built unless the policy looks at that workload.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from streams.decisions import POLICIES, ClusterView, Node, PolicyConfig, PolicyState, Workload
from streams.decisions.cluster import ResourceForecast
from streams.decisions.shadow import ShadowScorer

__all__ = ["BatchForecaster", "PackedCluster", "ReplayMetrics", "run_replay"]


class BatchForecaster(Protocol):
    """Forecasts many series at once: learn one sample per series, forecast every horizon."""

    def update(self, at: float, values: np.ndarray) -> None: ...

    def forecast(self, at: float) -> tuple[np.ndarray, np.ndarray]:
        """(mean, upper), each of shape (series, horizons), in the units of the samples."""
        ...


@dataclass(slots=True)
class PackedCluster:
    """A cluster packed from a trace: one CPU resource, loads in cores, equal nodes."""

    loads: np.ndarray  # (steps, workloads), cores
    placement: np.ndarray  # (workloads,) initial node index
    capacity_cores: float
    n_nodes: int
    workload_ids: list[str]
    priorities: np.ndarray
    memory_bytes: np.ndarray
    step_seconds: float
    start_at: float = 0.0
    pool_size: int = 0  # nodes per pool (0: one pool)


@dataclass(slots=True)
class ReplayMetrics:
    """What a policy did to the cluster.

    * ``overload_node_seconds``: sum over steps of step_seconds x (nodes whose actual load exceeds
      ``overload_ratio`` x capacity) — the same ratio the policies use as trigger threshold;
    * ``saturated_node_seconds``: the same above 1.0 x capacity (demand over supply);
    * ``sla_violation_seconds``: sum over steps of step_seconds x the priority weight
      (``priority + 1``) of each workload running on an overloaded node;
    * ``ping_pongs``: moves back to a node the workload left less than the window ago.
    """

    overload_node_seconds: float = 0.0
    saturated_node_seconds: float = 0.0
    sla_violation_seconds: float = 0.0
    migrations: int = 0
    ping_pongs: int = 0
    total_downtime_seconds: float = 0.0
    explanations: int = 0
    expired_orders: int = 0
    decide_seconds: float = 0.0
    shadow: dict[str, float | int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {k: getattr(self, k) for k in self.__slots__ if k != "shadow"}
        for k in (
            "overload_node_seconds",
            "saturated_node_seconds",
            "sla_violation_seconds",
            "total_downtime_seconds",
            "decide_seconds",
        ):
            out[k] = round(float(out[k]), 3)  # type: ignore[arg-type]
        if self.shadow:
            out["shadow"] = self.shadow
        return out


class _Table(Mapping[tuple[str, str], ResourceForecast]):
    """Lazy ``(id, "cpu") -> ResourceForecast`` over row-indexed mean/upper arrays."""

    def __init__(
        self, index: Mapping[str, int], mean: np.ndarray, upper: np.ndarray, at: float, horizons: tuple[float, ...]
    ) -> None:
        self.index, self.mean, self.upper, self.at, self.horizons = index, mean, upper, at, horizons
        self._sq: np.ndarray | None = None

    def _square(self) -> np.ndarray:
        if self._sq is None:
            self._sq = (self.upper - self.mean) ** 2
        return self._sq

    def moments(self, subject: str, resource: str) -> tuple[list[float], list[float]] | None:
        """(mean, squared upper margin) as the projection wants them, without a ResourceForecast.

        Fresh lists on every call (the projection updates node moments in place).
        """
        i = self.index.get(subject) if resource == "cpu" else None
        if i is None:
            return None
        return self.mean[i].tolist(), self._square()[i].tolist()

    def moment_rows(self, subjects: list[str], resource: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The same for several subjects at once, as (subjects, horizons) arrays."""
        if resource != "cpu":
            return None
        try:
            idx = [self.index[s] for s in subjects]
        except KeyError:
            return None
        return self.mean[idx], self._square()[idx]

    def __getitem__(self, key: tuple[str, str]) -> ResourceForecast:
        got = self.get(key)
        if got is None:
            raise KeyError(key)
        return got

    def get(self, key: tuple[str, str], default: ResourceForecast | None = None) -> ResourceForecast | None:  # type: ignore[override]
        i = self.index.get(key[0]) if key[1] == "cpu" else None
        if i is None:
            return default
        return ResourceForecast(self.at, self.horizons, tuple(self.mean[i].tolist()), tuple(self.upper[i].tolist()))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((k, "cpu") for k in self.index)

    def __len__(self) -> int:
        return len(self.index)


class _Values(Mapping[tuple[str, str], float]):
    def __init__(self, index: Mapping[str, int], values: np.ndarray) -> None:
        self.index, self.array = index, values

    def __getitem__(self, key: tuple[str, str]) -> float:
        got = self.get(key)
        if got is None:
            raise KeyError(key)
        return got

    def get(self, key: tuple[str, str], default: float | None = None) -> float | None:  # type: ignore[override]
        i = self.index.get(key[0]) if key[1] == "cpu" else None
        return default if i is None else float(self.array[i])

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((k, "cpu") for k in self.index)

    def __len__(self) -> int:
        return len(self.index)


def run_replay(
    cluster: PackedCluster,
    policy: str,
    config: PolicyConfig,
    forecaster: BatchForecaster,
    horizons_seconds: tuple[float, ...],
    max_steps: int | None = None,
    shadow: tuple[PolicyConfig, BatchForecaster] | None = None,
) -> ReplayMetrics:
    """Replay ``cluster`` through ``POLICIES[policy]``; ``shadow`` also scores a shadow policy."""
    import time

    decide = POLICIES[policy]
    n = cluster.n_nodes
    node_ids = [f"n{i:04d}" for i in range(n)]
    node_index = {nid: i for i, nid in enumerate(node_ids)}
    w_index = {wid: i for i, wid in enumerate(cluster.workload_ids)}
    pool_size = cluster.pool_size or n
    nodes = {
        nid: Node(
            nid,
            f"pool{i // pool_size}",
            {"cpu": cluster.capacity_cores},
            driver="sim",
            fingerprint={"cpu_model": "trace", "mem_class": "std"},
        )
        for i, nid in enumerate(node_ids)
    }
    place = cluster.placement.astype(np.int64).copy()
    workloads = {
        wid: Workload(
            wid,
            node_ids[place[i]],
            "vm",
            int(cluster.priorities[i]),
            f"tier{int(cluster.priorities[i])}",
            memory_bytes=float(cluster.memory_bytes[i]),
            started_at=cluster.start_at - 86400.0,
        )
        for i, wid in enumerate(cluster.workload_ids)
    }
    hosted: dict[str, list[str]] = {nid: [] for nid in node_ids}
    for wid, w in workloads.items():
        hosted[w.node_id].append(wid)
    weight = cluster.priorities.astype(float) + 1.0
    state, metrics = PolicyState(), ReplayMetrics()
    moving: dict[int, tuple[float, int]] = {}  # workload index -> (end_at, target node index)
    left: dict[int, list[tuple[float, int]]] = {}  # workload -> (at, node it left)
    window = config.safety.ping_pong_window_seconds
    shadow_state, scorer = PolicyState(), ShadowScorer(tolerance_seconds=cluster.step_seconds * 2)
    steps = cluster.loads.shape[0] if max_steps is None else min(max_steps, cluster.loads.shape[0])
    dt, cap, thr = cluster.step_seconds, cluster.capacity_cores, config.trigger_ratio
    for t in range(steps):
        now = cluster.start_at + t * dt
        for wi, (end, dst) in list(moving.items()):
            if end <= now:
                wid = cluster.workload_ids[wi]
                src = place[wi]
                hosted[node_ids[src]].remove(wid)
                hosted[node_ids[dst]].append(wid)
                place[wi] = dst
                w = workloads[wid]
                workloads[wid] = Workload(
                    wid,
                    node_ids[dst],
                    w.kind,
                    w.priority,
                    w.sla_tier,
                    memory_bytes=w.memory_bytes,
                    started_at=w.started_at,
                )
                del moving[wi]
        x = cluster.loads[t]
        load = np.bincount(place, weights=x, minlength=n)
        if moving:
            idx = np.fromiter(moving, dtype=np.int64)
            dsts = np.fromiter((v[1] for v in moving.values()), dtype=np.int64)
            np.add.at(load, dsts, x[idx])
        util = load / cap
        over = util > thr
        metrics.overload_node_seconds += dt * int(over.sum())
        metrics.saturated_node_seconds += dt * int((util > 1.0).sum())
        over_by = over[place]
        if moving:
            over_by[idx] |= over[dsts]
        metrics.sla_violation_seconds += dt * float(weight[over_by].sum())
        forecaster.update(now, x)
        mean, upper = forecaster.forecast(now)
        view = _view(nodes, workloads, hosted, node_ids, place, load, mean, upper, x, w_index, now, horizons_seconds)
        started = time.perf_counter()
        decision = decide(view, now, config, state)
        metrics.decide_seconds += time.perf_counter() - started
        metrics.explanations += len(decision.explanations)
        metrics.expired_orders += len(decision.expired)
        for o in decision.orders:
            if o.dry_run:
                continue
            wi, src, dst_i = w_index[o.workload_id], node_index[o.source_node], node_index[o.target_node]
            moving[wi] = (now + o.predicted_duration_seconds, dst_i)
            metrics.migrations += 1
            metrics.total_downtime_seconds += o.predicted_downtime_seconds
            trail = [(at, nd) for at, nd in left.get(wi, []) if now - at < window]
            metrics.ping_pongs += any(nd == dst_i for _, nd in trail)
            trail.append((now, src))
            left[wi] = trail
        if shadow is not None:
            s_config, s_forecaster = shadow
            s_forecaster.update(now, x)
            s_mean, s_upper = s_forecaster.forecast(now)
            s_view = _view(
                nodes, workloads, hosted, node_ids, place, load, s_mean, s_upper, x, w_index, now, horizons_seconds
            )
            scorer.record(POLICIES["predictive"](s_view, now, s_config, shadow_state))
            for i in range(n):
                scorer.observe(node_ids[i], "cpu", now, float(util[i]), thr)
    if shadow is not None:
        metrics.shadow = scorer.score(cluster.start_at + steps * dt + 3600.0).to_dict()
    return metrics


def _view(
    nodes: dict[str, Node],
    workloads: dict[str, Workload],
    hosted: dict[str, list[str]],
    node_ids: list[str],
    place: np.ndarray,
    load: np.ndarray,
    mean: np.ndarray,
    upper: np.ndarray,
    x: np.ndarray,
    w_index: dict[str, int],
    now: float,
    horizons: tuple[float, ...],
) -> ClusterView:
    n, h = len(node_ids), mean.shape[1]
    node_mean = np.stack([np.bincount(place, weights=mean[:, j], minlength=n) for j in range(h)], axis=1)
    spread = (upper - mean) ** 2
    node_var = np.stack([np.bincount(place, weights=spread[:, j], minlength=n) for j in range(h)], axis=1)
    node_upper = node_mean + np.sqrt(node_var)  # the aggregation ClusterView.node_curve documents
    n_index = {nid: i for i, nid in enumerate(node_ids)}
    return ClusterView(
        nodes=nodes,
        workloads=workloads,
        horizons_seconds=horizons,
        node_forecasts=_Table(n_index, node_mean, node_upper, now, horizons),
        workload_forecasts=_Table(w_index, mean, upper, now, horizons),
        node_usage=_Values(n_index, load),
        workload_usage=_Values(w_index, x),
        hosted=hosted,
    )
