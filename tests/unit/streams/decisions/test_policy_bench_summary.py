"""``plba bench policy`` on a small wide CSV: every policy replayed, predictive compared with reactive."""

from __future__ import annotations

import math

from streams.bench.policy_bench import run_bench, table, versus_reactive


def test_versus_reactive_states_the_targets() -> None:
    def pol(over: float, moves: int, pp: int = 0) -> dict:
        return {"overload_node_seconds": over, "migrations": moves, "ping_pongs": pp}

    got = versus_reactive({"reactive": pol(1000.0, 10), "predictive": pol(400.0, 9)})
    assert got == {"overload_ratio": 0.4, "migrations_ratio": 0.9, "meets_targets": True}
    assert versus_reactive({"reactive": pol(1000.0, 10), "predictive": pol(400.0, 11)})["meets_targets"] is False
    assert versus_reactive({"reactive": pol(1000.0, 10), "predictive": pol(600.0, 5)})["meets_targets"] is False
    assert versus_reactive({"reactive": pol(1000.0, 10), "predictive": pol(100.0, 5, pp=1)})["meets_targets"] is False
    assert versus_reactive({"reactive": pol(0.0, 0), "predictive": pol(0.0, 0)})["overload_ratio"] is None
    assert versus_reactive({"none": pol(1.0, 0)}) is None


def test_small_csv_replays_through_every_policy(tmp_path) -> None:
    # 12 series over 120 five-minute steps: a daily-ish wave with a different phase per series.
    rows = ["step," + ",".join(f"s{j}" for j in range(12))]
    for t in range(120):
        rows.append(f"{t}," + ",".join(f"{50 + 45 * math.sin(t / 9 + j):.2f}" for j in range(12)))
    path = tmp_path / "wave.csv"
    path.write_text("\n".join(rows) + "\n")
    out = run_bench(path, nodes=4, workloads_per_node=3, max_steps=120, target_util=0.7, shadow=False)
    assert set(out["policies"]) == {"none", "reactive", "predictive"}
    assert out["policies"]["none"]["migrations"] == 0
    vs = out["predictive_vs_reactive"]
    assert set(vs) == {"overload_ratio", "migrations_ratio", "meets_targets"}
    assert "predictive vs reactive" in table(out)


def test_the_oracle_hands_out_the_true_future_loads() -> None:
    import numpy as np

    from streams.bench.policy_bench import OracleForecaster

    loads = np.arange(20.0).reshape(10, 2)  # step t: (2t, 2t + 1)
    oracle = OracleForecaster(loads, horizon_steps=(1, 3))
    for t in range(9):
        oracle.update(float(t), loads[t])
    mean, upper = oracle.forecast(8.0)
    assert mean.tolist() == [[18.0, 18.0], [19.0, 19.0]], "from step 8: step 9, then the last step past the end"
    assert (upper == mean).all()
    oracle = OracleForecaster(loads, horizon_steps=(1, 3))
    oracle.update(0.0, loads[0])
    assert oracle.forecast(0.0)[0].tolist() == [[2.0, 6.0], [3.0, 7.0]]
