"""Policy replay benchmark: none vs. reactive vs. predictive on a real trace (ARCHITECTURE §10).

Cluster construction (documented rule, deterministic):

* **workloads**: ``nodes x workloads_per_node`` series of the trace, taken in the order of
  ``blake2b(series name)``; when the trace has fewer series, copies are added, copy ``k`` of a
  series shifted in time by ``37 x k`` steps (``tiled`` in the output). A workload's CPU demand in
  cores is its CPU % / 100 (one core per VM); gaps are carried forward, clipped to [0, 100] %.
* **priority** ``0..3`` and **memory** (1, 2, 4 or 8 GiB) come from the same hash of the name;
  SLA tier = ``tier<priority>``; the priority weight of a violation is ``priority + 1``.
* **packing**: worst-fit decreasing on the mean of the first day (288 steps at 5 min): workloads
  largest first, each onto the node with the least packed mean among those holding fewer than
  ``workloads_per_node``. All nodes get the capacity ``sum(first-day means) / (nodes x
  target_util)``, so the mean packed utilisation is ``target_util``.
* **replay**: :func:`streams.decisions.replay.run_replay`; every policy sees the same trace,
  starts from the same packing and uses the same forecaster class with a fresh state.

Forecasters: ``ewma`` (vectorised EWMA level + per-horizon residual bias/spread, upper = mean +
z x spread; cheap enough for 20,000 workloads) and ``series`` (the forecasting core's
``SeriesForecaster`` per workload, when importable). ``auto`` picks ``series`` for at most
500,000 workload-steps, else ``ewma``. ``oracle`` is no forecaster: it hands the policy the
trace's true future loads (mean = upper), to measure how much of the gap to a target is the
forecasts' and how much the policy's. The policy's noise filters (``persistence`` and
``act_floor_ratio``) exist for forecast errors, so with the oracle they are off.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from streams.decisions import PolicyConfig, SafetyConfig
from streams.decisions.replay import BatchForecaster, PackedCluster, run_replay
from streams.traces import load_trace

__all__ = ["EwmaBandForecaster", "OracleForecaster", "SeriesBatchForecaster", "pack_trace", "run_bench", "table"]

GIB = 2**30
HORIZON_STEPS = (1, 2, 3, 6, 12)
POLICY_NAMES = ("none", "reactive", "predictive")


class EwmaBandForecaster:
    """Vectorised stand-in: EWMA level; per horizon, EWMA bias and spread of ``x[t] - level[t-h]``."""

    def __init__(
        self,
        n_series: int,
        horizon_steps: tuple[int, ...] = HORIZON_STEPS,
        alpha: float = 0.5,
        beta: float = 0.05,
        z: float = 2.0,
        upper_bound: float | None = None,
    ) -> None:
        if not 0 < alpha <= 1 or not 0 < beta <= 1 or z < 0:
            raise ValueError("alpha, beta in (0, 1], z >= 0 required")
        self.steps, self.alpha, self.beta, self.z, self.cap = horizon_steps, alpha, beta, z, upper_bound
        self.ring = np.zeros((max(horizon_steps) + 1, n_series))
        self.bias = np.zeros((n_series, len(horizon_steps)))
        self.sq = np.zeros((n_series, len(horizon_steps)))
        self.seen = 0

    def update(self, at: float, values: np.ndarray) -> None:
        size = self.ring.shape[0]
        if self.seen == 0:
            self.ring[:] = values
        for j, h in enumerate(self.steps):
            if self.seen >= h:
                r = values - self.ring[(self.seen - h) % size]
                self.bias[:, j] += self.beta * (r - self.bias[:, j])
                self.sq[:, j] += self.beta * (r * r - self.sq[:, j])
        prev = self.ring[(self.seen - 1) % size] if self.seen else values
        self.ring[self.seen % size] = prev + self.alpha * (values - prev)
        self.seen += 1

    def forecast(self, at: float) -> tuple[np.ndarray, np.ndarray]:
        level = self.ring[(self.seen - 1) % self.ring.shape[0]][:, None]
        mean = np.maximum(level + self.bias, 0.0)
        upper = mean + self.z * np.sqrt(np.maximum(self.sq - self.bias**2, 0.0))
        if self.cap is not None:
            mean, upper = np.minimum(mean, self.cap), np.minimum(upper, self.cap)
        return mean, upper


class SeriesBatchForecaster:
    """One ``streams.forecasting.forecaster.SeriesForecaster`` per series (the live core)."""

    def __init__(
        self, n_series: int, step_seconds: float, horizons_seconds: tuple[float, ...], upper_bound: float = 1.0
    ) -> None:
        from streams.forecasting.forecaster import SeriesForecaster

        self.models = [
            SeriesForecaster(
                step_seconds=step_seconds, horizons_seconds=list(horizons_seconds), upper_bound=upper_bound
            )
            for _ in range(n_series)
        ]
        self.h = len(horizons_seconds)

    def update(self, at: float, values: np.ndarray) -> None:
        for m, v in zip(self.models, values.tolist(), strict=True):
            m.update(at, v)

    def forecast(self, at: float) -> tuple[np.ndarray, np.ndarray]:
        mean = np.empty((len(self.models), self.h))
        upper = np.empty_like(mean)
        for i, m in enumerate(self.models):
            fc = m.forecast(at)
            mean[i], upper[i] = fc.mean[: self.h], fc.upper[: self.h]
        return mean, upper


class OracleForecaster:
    """The true future loads of a packed cluster (see the module docstring): at the ``t``-th
    update, the forecast for ``h`` steps ahead is ``loads[t + h]`` (the last step past the end)."""

    def __init__(self, loads: np.ndarray, horizon_steps: tuple[int, ...] = HORIZON_STEPS) -> None:
        self.loads, self.steps, self.seen = loads, np.asarray(horizon_steps), 0

    def update(self, at: float, values: np.ndarray) -> None:
        self.seen += 1

    def forecast(self, at: float) -> tuple[np.ndarray, np.ndarray]:
        rows = np.minimum(self.seen - 1 + self.steps, self.loads.shape[0] - 1)
        mean = self.loads[rows].T.copy()
        return mean, mean.copy()


def _hash(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


def pack_trace(
    trace_name: str | Path,
    nodes: int,
    target_util: float = 0.6,
    workloads_per_node: int = 20,
    max_steps: int | None = None,
    pool_size: int = 0,
    traces_dir: str | Path | None = None,
) -> tuple[PackedCluster, dict[str, Any]]:
    """Build the cluster of the module docstring; returns it and a description for the report."""
    if nodes < 2 or workloads_per_node < 1 or not 0 < target_util < 1:
        raise ValueError("nodes >= 2, workloads_per_node >= 1 and 0 < target_util < 1 required")
    trace = load_trace(trace_name, traces_dir)
    values = trace.values[:max_steps] if max_steps else trace.values
    values = _ffill(np.clip(values, 0.0, 100.0)) / 100.0
    names = sorted(trace.series_names, key=lambda s: (_hash(s), s))
    col = {s: j for j, s in enumerate(trace.series_names)}
    count = nodes * workloads_per_node
    loads = np.empty((values.shape[0], count))
    ids: list[str] = []
    for k in range(count):
        copy, base = divmod(k, len(names))
        loads[:, k] = np.roll(values[:, col[names[base]]], 37 * copy)
        ids.append(names[base] if copy == 0 else f"{names[base]}~{copy}")
    first_day = loads[: min(288, loads.shape[0])].mean(axis=0)
    placement = np.empty(count, dtype=np.int64)
    packed, counts = np.zeros(nodes), np.zeros(nodes, dtype=np.int64)
    for k in sorted(range(count), key=lambda k: (-first_day[k], ids[k])):
        open_nodes = np.flatnonzero(counts < workloads_per_node)
        target = open_nodes[np.argmin(packed[open_nodes])]
        placement[k], packed[target], counts[target] = target, packed[target] + first_day[k], counts[target] + 1
    capacity = float(first_day.sum() / (nodes * target_util))
    h = np.array([_hash(i) for i in ids], dtype=np.uint64)
    cluster = PackedCluster(
        loads=loads,
        placement=placement,
        capacity_cores=capacity,
        n_nodes=nodes,
        workload_ids=ids,
        priorities=(h % np.uint64(4)).astype(np.int64),
        memory_bytes=(GIB * 2 ** ((h >> np.uint64(8)) % np.uint64(4))).astype(float),
        step_seconds=trace.step_seconds,
        start_at=trace.start_at,
        pool_size=pool_size,
    )
    about = {
        "series": trace.n_series,
        "workloads": count,
        "tiled": count > len(names),
        "steps": int(loads.shape[0]),
        "step_seconds": trace.step_seconds,
        "capacity_cores": round(capacity, 4),
    }
    return cluster, about


def _ffill(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    for t in range(1, out.shape[0]):
        gap = np.isnan(out[t])
        out[t, gap] = out[t - 1, gap]
    return np.nan_to_num(out, nan=0.0)


def _forecaster(kind: str, cluster: PackedCluster, horizons: tuple[float, ...]) -> BatchForecaster:
    n = len(cluster.workload_ids)
    if kind == "auto":
        kind = "series" if n * cluster.loads.shape[0] <= 500_000 and _has_series() else "ewma"
    if kind == "series":
        return SeriesBatchForecaster(n, cluster.step_seconds, horizons, upper_bound=1.0)
    if kind == "oracle":
        return OracleForecaster(cluster.loads)
    if kind != "ewma":
        raise ValueError(f"unknown forecaster {kind!r}; known: auto, ewma, series, oracle")
    return EwmaBandForecaster(n, upper_bound=1.0)


def _has_series() -> bool:
    try:
        from streams.forecasting.forecaster import SeriesForecaster  # noqa: F401
    except ImportError:
        return False
    return True


def run_bench(
    trace: str | Path,
    nodes: int,
    target_util: float = 0.6,
    workloads_per_node: int = 20,
    max_steps: int | None = 2016,
    forecaster: str = "auto",
    pool_size: int = 0,
    shadow: bool = True,
    policies: tuple[str, ...] = POLICY_NAMES,
    traces_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Pack ``trace`` onto ``nodes`` and replay it through each policy; the benchmark's JSON."""
    started = time.perf_counter()
    cluster, about = pack_trace(trace, nodes, target_util, workloads_per_node, max_steps, pool_size, traces_dir)
    horizons = tuple(float(h * cluster.step_seconds) for h in HORIZON_STEPS)
    config = bench_config(cluster.step_seconds)
    if forecaster == "oracle":
        config = replace(config, persistence=1, act_floor_ratio=0.0)
    kind = forecaster
    out: dict[str, Any] = {
        "trace": str(trace),
        "nodes": nodes,
        "workloads_per_node": workloads_per_node,
        "target_util": target_util,
        **about,
        "policies": {},
    }
    for name in policies:
        t0 = time.perf_counter()
        fc = _forecaster(kind, cluster, horizons)
        if kind == "auto":
            kind = "series" if isinstance(fc, SeriesBatchForecaster) else "ewma"
        shadow_pair = None
        if shadow and name == "none":
            shadow_pair = (replace(config, mode="shadow"), _forecaster(kind, cluster, horizons))
        metrics = run_replay(cluster, name, config, fc, horizons, shadow=shadow_pair)
        out["policies"][name] = {**metrics.to_dict(), "replay_seconds": round(time.perf_counter() - t0, 2)}
    out["forecaster"] = kind
    out["wall_seconds"] = round(time.perf_counter() - started, 2)
    compared = versus_reactive(out["policies"])
    if compared is not None:
        out["predictive_vs_reactive"] = compared
    return out


def versus_reactive(policies: dict[str, Any]) -> dict[str, Any] | None:
    """The targets of issue #5: predictive overload <= 0.5 x reactive, migrations <= reactive, no ping-pong."""
    p, r = policies.get("predictive"), policies.get("reactive")
    if p is None or r is None:
        return None
    over, moves = r["overload_node_seconds"], r["migrations"]
    ratio = round(p["overload_node_seconds"] / over, 3) if over > 0 else None
    return {
        "overload_ratio": ratio,
        "migrations_ratio": round(p["migrations"] / moves, 3) if moves > 0 else None,
        "meets_targets": (ratio is None or ratio <= 0.5) and p["migrations"] <= moves and p["ping_pongs"] == 0,
    }


def bench_config(step_seconds: float) -> PolicyConfig:
    """The policy parameters of the benchmark (CPU only; one decision per trace step).

    With one decision per 5-minute step: three consecutive predicted breaches before a node
    latches (an overload seen now latches at once), and a breach predicted from under 80 % load
    now is not acted on yet (on volatile nodes it is mostly the forecast's spread). Chosen on
    every shared trace side by side at 1,000 nodes (issue #5), predictive/reactive overload and
    migrations with a 70 % floor -> 80 %: azure 0.38/0.88 -> 0.41/0.62, azure-max 0.79/2.24 ->
    0.77/1.17, bitbrains 1.01/0.34 -> 0.99/0.29, planetlab 0.80/1.61 -> 0.81/0.91. (Those were
    measured before the best-estimate pass could choose latched targets; with it, at 1,000 nodes:
    azure 0.42/0.68, azure-max 0.77/1.23, bitbrains 0.56/0.59, planetlab 0.83/1.02.)

    A last-resort move for a node overloaded now must remove three quarters of its excess as the
    mean forecast sees it: small reliefs cost a migration each and left the node overloaded. Swept
    0 / 0.2 / 0.35 / 0.5 / 0.65 / 0.75 / 0.85 / 1.0 at 100 nodes, then 0 -> 0.75 at 1,000 nodes:
    bitbrains 0.56/0.59 -> 0.55/0.39, azure-max 0.77/1.23 -> 0.76/1.22, azure and planetlab
    unchanged (0.42/0.68, 0.83/1.01).
    """
    return PolicyConfig(
        resources=("cpu",),
        decision_interval_seconds=step_seconds,
        persistence=3,
        act_floor_ratio=0.8,
        fallback_min_relief_fraction=0.75,
        safety=SafetyConfig(max_per_pool=10_000, max_global_rate=10_000),
    )


def table(result: dict[str, Any]) -> str:
    """A plain-text table of the per-policy metrics."""
    cols = (
        "overload_node_seconds",
        "sla_violation_seconds",
        "migrations",
        "ping_pongs",
        "total_downtime_seconds",
        "saturated_node_seconds",
        "replay_seconds",
    )
    head = f"{'policy':<11}" + "".join(f"{c.replace('_seconds', '_s'):>24}" for c in cols)
    lines = [
        f"trace {result['trace']}: {result['nodes']} nodes x {result['workloads_per_node']} workloads, "
        f"{result['steps']} steps of {result['step_seconds']:.0f}s, forecaster {result['forecaster']}",
        head,
    ]
    for name, m in result["policies"].items():
        lines.append(f"{name:<11}" + "".join(f"{m[c]:>24}" for c in cols))
    vs = result.get("predictive_vs_reactive")
    if vs:
        lines.append(
            f"predictive vs reactive: overload x{vs['overload_ratio']}, migrations x{vs['migrations_ratio']}, "
            f"targets {'met' if vs['meets_targets'] else 'NOT met'} (<= 0.5x overload, <= migrations, 0 ping-pongs)"
        )
    shadow = result["policies"].get("none", {}).get("shadow")
    if shadow:
        lines.append(
            f"shadow (predictive recommendations vs. actual overloads, no action): "
            f"precision {shadow['precision']}, recall {shadow['recall']}"
        )
    return "\n".join(lines)
