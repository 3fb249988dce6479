"""The demo's replay: its recorded load becomes the replay's matrix, and the replay sees the demo's cluster."""

from __future__ import annotations

import numpy as np
import pytest

from plba.demo_replay import REPLAY_POLICIES, ReplayInput, load_matrix, replay


def test_samples_are_averaged_per_step_and_gaps_hold_the_previous_value():
    samples = {
        "a": [(100.2, 0.2), (100.7, 0.4), (102.5, 0.9)],  # step 0 twice, nothing in step 1, step 2 once
        "b": [(101.5, 0.5)],  # nothing in step 0: it takes its first value
        "c": [(99.0, 1.0), (104.0, 1.0)],  # both outside [100, 103): no sample at all
    }
    m = load_matrix(samples, ["a", "b", "c"], start=100.0, end=103.0, step=1.0)
    assert m.shape == (3, 3)
    assert m[:, 0] == pytest.approx([0.3, 0.3, 0.9])
    assert m[:, 1] == pytest.approx([0.5, 0.5, 0.5])
    assert m[:, 2] == pytest.approx([0.0, 0.0, 0.0])


def _rising(steps: int) -> dict[str, list[tuple[float, float]]]:
    """Node 0's two workloads climb from 0.3 to 0.6 cores each; node 1's one stays at 0.1."""
    ramp = np.clip(0.3 + 0.3 * (np.arange(steps) - 20) / 20, 0.3, 0.6)
    return {
        "hot-a": [(1000.0 + t + 0.5, float(ramp[t])) for t in range(steps)],
        "hot-b": [(1000.0 + t + 0.5, float(ramp[t])) for t in range(steps)],
        "cool": [(1000.0 + t + 0.5, 0.1) for t in range(steps)],
    }


def test_the_replay_runs_every_policy_on_the_demo_cluster():
    steps = 80
    samples = _rising(steps)
    inp = ReplayInput(
        workload_ids=["hot-a", "hot-b", "cool"], node_index=[0, 0, 1], priorities=[800, 10, 500],
        memory_bytes=[128 << 20] * 3, n_nodes=2, capacity_cores=1.0, step_seconds=1.0, start_at=1000.0,
        end_at=1000.0 + steps, horizons_seconds=tuple(20 / 6 * k for k in range(1, 7)), decision_interval_seconds=2.0,
    )  # fmt: skip
    out = replay(inp, samples)
    assert set(REPLAY_POLICIES) <= set(out)
    # Doing nothing: node 0 carries both climbing workloads, so its overload is exactly the steps
    # where their sum exceeds the trigger ratio (0.85 of one core); node 1 never does.
    hot = load_matrix(samples, inp.workload_ids, 1000.0, 1000.0 + steps, 1.0)[:, :2].sum(axis=1)
    assert out["none"]["overload_node_seconds"] == pytest.approx(float((hot > 0.85).sum()))
    assert out["none"]["migrations"] == 0
    # Acting policies move something off node 0 and end up with less overload than doing nothing.
    for policy in ("reactive", "predictive"):
        assert out[policy]["migrations"] >= 1, out
        assert out[policy]["overload_node_seconds"] < out["none"]["overload_node_seconds"], out
