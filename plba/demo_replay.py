"""What the demo's run would have cost without prediction: the same load replayed offline.

The demo records every workload's measured CPU (``workload-usage`` records: the sim driver's
trace figures, or the burners' and VMs' real psutil figures). Binned on the telemetry interval,
that is the trace the demo actually ran; with the demo's initial placement, node capacity,
horizons and decision interval it is replayed through the pure replay code
(:func:`streams.decisions.replay.run_replay`, the policies that run live) for the ``none``,
``reactive`` and ``predictive`` policies. ``overload_node_seconds`` there counts node-seconds
above the trigger ratio, the same definition as the live figure of :class:`plba.demo_view.DemoState`.

A workload's load does not depend on where it runs (the replay's assumption too), so the
replayed baselines see the same demand the live run saw. What the replay leaves out: the node
agents' own CPU (the live figure includes it, so the comparison leans against PLBA), declared
events (the maintenance window and the peak), and real migration times (the replay uses the
policy's migration model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.bench.policy_bench import SeriesBatchForecaster
from streams.decisions import PolicyConfig
from streams.decisions.replay import PackedCluster, run_replay

REPLAY_POLICIES = ("none", "reactive", "predictive")


@dataclass(frozen=True, slots=True)
class ReplayInput:
    workload_ids: list[str]
    node_index: list[int]  # initial placement
    priorities: list[int]
    memory_bytes: list[int]
    n_nodes: int
    capacity_cores: float
    step_seconds: float
    start_at: float
    end_at: float
    horizons_seconds: tuple[float, ...]
    decision_interval_seconds: float


def load_matrix(
    samples: Mapping[str, Sequence[tuple[float, float]]],
    workload_ids: Sequence[str],
    start: float,
    end: float,
    step: float,
) -> np.ndarray:
    """(steps, workloads) cores: the mean of each workload's samples per step, gaps held at the
    previous value (a workload being moved reports nothing for a moment), leading gaps at the first."""
    steps = max(1, math.floor((end - start) / step))
    out = np.full((steps, len(workload_ids)), np.nan)
    for k, wid in enumerate(workload_ids):
        sums, counts = np.zeros(steps), np.zeros(steps)
        for at, cores in samples.get(wid, ()):
            t = math.floor((at - start) / step)
            if 0 <= t < steps:
                sums[t] += cores
                counts[t] += 1
        seen = counts > 0
        out[seen, k] = sums[seen] / counts[seen]
    for t in range(1, steps):
        gap = np.isnan(out[t])
        out[t, gap] = out[t - 1, gap]
    for k in range(out.shape[1]):
        col = out[:, k]
        finite = col[np.isfinite(col)]
        col[np.isnan(col)] = finite[0] if finite.size else 0.0
    return out


def replay(inp: ReplayInput, samples: Mapping[str, Sequence[tuple[float, float]]]) -> dict[str, dict[str, Any]]:
    """Each policy's replay metrics (``ReplayMetrics.to_dict``) on the recorded load."""
    loads = load_matrix(samples, inp.workload_ids, inp.start_at, inp.end_at, inp.step_seconds)
    cluster = PackedCluster(
        loads=loads,
        placement=np.asarray(inp.node_index, dtype=np.int64),
        capacity_cores=inp.capacity_cores,
        n_nodes=inp.n_nodes,
        workload_ids=list(inp.workload_ids),
        priorities=np.asarray(inp.priorities, dtype=np.int64),
        memory_bytes=np.asarray(inp.memory_bytes, dtype=float),
        step_seconds=inp.step_seconds,
        start_at=inp.start_at,
    )
    # The live worker's policy: defaults, with the demo's decision interval; CPU is what the
    # recorded load holds.
    config = PolicyConfig(resources=("cpu",), decision_interval_seconds=inp.decision_interval_seconds)
    out: dict[str, dict[str, Any]] = {}
    for name in REPLAY_POLICIES:
        forecaster = SeriesBatchForecaster(len(inp.workload_ids), inp.step_seconds, inp.horizons_seconds, 1.0)
        out[name] = run_replay(cluster, name, config, forecaster, inp.horizons_seconds).to_dict()
    out["_about"] = {"steps": int(loads.shape[0]), "step_seconds": inp.step_seconds}
    return out
