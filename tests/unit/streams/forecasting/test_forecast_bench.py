"""The forecast replay bench: baselines computed like the reference script, and the JSON contract."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from plba.cli.bench_forecast import bench_forecast_cmd
from streams.bench.forecast_bench import run_forecast_bench
from streams.traces import Trace


def reference_medians(
    mat: np.ndarray, hs: tuple[int, ...] = (1, 6, 12), warm: int = 12
) -> dict[int, tuple[float, float]]:
    """``evaluate`` of ``traces/_scripts/reference_baselines.py``: (naive, MA6) median MAE per horizon."""
    out = {}
    for h in hs:
        nm, mm = [], []
        for j in range(mat.shape[1]):
            y = mat[:, j]
            t = np.arange(warm, len(y) - h)
            yt, yh = y[t + h], y[t]
            ma = np.array([np.nanmean(y[i - 5 : i + 1]) if np.isfinite(y[i - 5 : i + 1]).any() else np.nan for i in t])
            m = np.isfinite(yt) & np.isfinite(yh) & np.isfinite(ma)
            if m.sum() < 5:
                continue
            nm.append(np.mean(np.abs(yt[m] - yh[m])))
            mm.append(np.mean(np.abs(yt[m] - ma[m])))
        out[h] = (float(np.median(nm)), float(np.median(mm)))
    return out


def synthetic(n_steps: int = 400, n_series: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = 30 + 10 * np.sin(np.arange(n_steps)[:, None] * 2 * np.pi / 96 + rng.uniform(0, 6, n_series))
    values = np.clip(base + rng.normal(0, 4, (n_steps, n_series)), 0, 100)
    values[rng.random((n_steps, n_series)) < 0.05] = np.nan  # gaps
    values[:40, 0] = np.nan  # a late starter
    values[:, -1] = np.nan  # a series with no data at all is skipped
    return values


def test_baselines_reproduce_the_reference_algorithm() -> None:
    values = synthetic()
    trace = Trace("synthetic", 300.0, tuple(f"s{j}" for j in range(values.shape[1])), values)
    result = run_forecast_bench(trace, (1, 6, 12))
    reference = reference_medians(values)
    for h, (naive, ma6) in reference.items():
        assert math.isclose(result.mae_median["naive"][str(h)], naive, rel_tol=1e-12)
        assert math.isclose(result.mae_median["ma6"][str(h)], ma6, rel_tol=1e-12)
    assert result.extra["series_scored"] == {"1": 4, "6": 4, "12": 4}
    assert result.samples_per_second > 0
    assert 0.0 < result.mae_median["plba"]["6"] < 2 * result.mae_median["naive"]["6"]
    assert all(0.6 < c <= 1.0 for c in result.coverage["plba"].values())


def test_cli_json_contract(tmp_path: Path) -> None:
    values = synthetic(n_steps=300, n_series=3, seed=1)
    lines = ["step," + ",".join(f"vm{j}" for j in range(values.shape[1]))]
    lines += [f"{k}," + ",".join("" if math.isnan(v) else f"{v:.3f}" for v in row) for k, row in enumerate(values)]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(bench_forecast_cmd, ["--trace", str(path), "--horizons", "1,6", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["trace"] == "wide.csv" and data["series"] == 3 and data["horizons"] == [1, 6]
    assert data["series_scored"] == {"1": 2, "6": 2}  # the empty series is not scored
    assert set(data["mae_median"]) == {"naive", "ma6", "plba"}
    assert all(set(v) == {"1", "6"} for v in data["mae_median"].values())
    assert set(data["coverage"]) == {"plba"} and set(data["coverage"]["plba"]) == {"1", "6"}
    assert data["nominal_coverage"] == 0.9 and data["samples_per_second"] > 0
    table = CliRunner().invoke(bench_forecast_cmd, ["--trace", str(path), "--max-series", "1", "--no-progress"])
    assert table.exit_code == 0 and "plba" in table.output and "coverage" in table.output
    bad = CliRunner().invoke(bench_forecast_cmd, ["--trace", str(path), "--horizons", "0,x"])
    assert bad.exit_code != 0
