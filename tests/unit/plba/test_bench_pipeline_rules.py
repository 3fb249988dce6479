"""The pipeline benchmark's pure parts: its records keep the contract, hot nodes are hot, the rules."""

from __future__ import annotations

import pytest

from plba.bench_latency import percentile
from plba.bench_pipeline import sustained_window
from plba.bench_support import Fleet, PipelineBenchConfig, PipelineBenchError
from schemas.codec import codec

T0 = 1_800_000_000.0


def test_fleet_records_keep_the_contract_and_hot_nodes_cross_the_trigger() -> None:
    fleet = Fleet(60)  # 3 nodes, the last one full
    wl, node = codec("workload_usage"), codec("node_usage")
    for w in range(fleet.workloads):
        wl.decode(wl.encode(fleet.workload(w, T0, 1.0, hot=True)))
    for n in range(fleet.nodes):
        cool, hot = node.decode(node.encode(fleet.node(n, T0, 1.0))), fleet.node(n, T0, 1.0, hot=True)
        assert cool["cpu_ratio"] < 0.6 < 0.85 < hot["cpu_ratio"]
        assert cool["workloads"] == [f"wl-{w:06d}" for w in range(25 * n, min(25 * n + 25, 60))]
    # What the policy should move off a hot node: a large low-priority workload frees enough.
    big = fleet.workload(1, T0, 1.0)
    assert big["priority"] < fleet.workload(0, T0, 1.0)["priority"] and big["cpu_cores_used"] >= 1.5


def test_sustained_window_uses_first_sightings_of_commits_inside_the_window() -> None:
    # (time, committed, cpu): commits seen twice are counted at their first sighting.
    points = [(0.0, 0, 0.0), (1.0, 0, 0.5), (2.0, 200, 1.0), (2.5, 200, 1.2), (3.0, 500, 1.5), (9.0, 900, 4.0)]
    lo, hi = sustained_window(points, 1000, window=(0.2, 0.9))
    assert lo == (2.0, 200, 1.0) and hi == (9.0, 900, 4.0)
    with pytest.raises(PipelineBenchError):
        sustained_window([(0.0, 0, 0.0), (1.0, 0, 0.0)], 1000)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile([7.0], 99) == 7.0


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        PipelineBenchConfig(samples_per_workload=1)
    with pytest.raises(ValueError):
        PipelineBenchConfig(hot_share=0.0)
