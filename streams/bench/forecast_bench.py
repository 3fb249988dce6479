"""Rolling-origin replay of a trace through :class:`SeriesForecaster`, against naive and MA6.

Every series is replayed one sample at a time through the same forecaster code the stream
worker runs: at each step with a value, ``update(at, value)`` then ``forecast(at)``. The
baselines are computed exactly as ``_scripts/reference_baselines.py`` does (origins
``t = 12 … n-h-1``; naive ``y[t]``; MA6 the mean of the finite values in ``y[t-5 … t]``; an
origin counts when ``y[t+h]``, ``y[t]`` and MA6 are all finite; a series counts at a horizon
with at least 5 origins) and PLBA's ``mean`` is scored on the same origins, so the naive
figures reproduce ``reference_baselines.csv``. Coverage is the fraction of those origins whose
value fell inside PLBA's ``[lower, upper]``, pooled over series.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.forecasting import ForecasterConfig, SeriesForecaster
from streams.traces import Trace

__all__ = ["BenchResult", "baseline_forecasts", "format_table", "run_forecast_bench"]

WARM_STEPS = 12  # first origin, as in the reference script
MIN_ORIGINS = 5


@dataclass(slots=True)
class BenchResult:
    trace: str
    series: int
    horizons: list[int]
    mae_median: dict[str, dict[str, float]]
    coverage: dict[str, dict[str, float]]
    nominal_coverage: float
    samples_per_second: float
    extra: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        out = {
            "trace": self.trace,
            "series": self.series,
            "horizons": self.horizons,
            "mae_median": self.mae_median,
            "coverage": self.coverage,
            "nominal_coverage": self.nominal_coverage,
            "samples_per_second": self.samples_per_second,
        }
        out.update(self.extra)
        return out


def baseline_forecasts(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(naive, ma6) forecasts issued at each step: ``y[t]`` and the nan-mean of ``y[t-5 … t]``."""
    n = len(y)
    ma6 = np.full(n, np.nan)
    if n >= 6:
        windows = np.lib.stride_tricks.sliding_window_view(y, 6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows stay NaN
            ma6[5:] = np.nanmean(windows, axis=1)
    return y.copy(), ma6


def replay_series(
    y: np.ndarray, step_seconds: float, horizons: Sequence[int], *, upper_bound: float, config: ForecasterConfig | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, float]:
    """PLBA's mean/lower/upper issued at each step ([horizon, step]), samples, CPU seconds."""
    n = len(y)
    k = len(horizons)
    mean = np.full((k, n), np.nan)
    lower = np.full((k, n), np.nan)
    upper = np.full((k, n), np.nan)
    forecaster = SeriesForecaster(
        step_seconds=step_seconds,
        horizons_seconds=[h * step_seconds for h in horizons],
        upper_bound=upper_bound,
        config=config,
    )
    values = y.tolist()
    out_mean: list[tuple[float, ...] | None] = [None] * n
    out_lower: list[tuple[float, ...] | None] = [None] * n
    out_upper: list[tuple[float, ...] | None] = [None] * n
    update, forecast = forecaster.update, forecaster.forecast
    samples = 0
    started = time.process_time()
    for t, value in enumerate(values):
        if value != value:
            continue
        at = t * step_seconds
        update(at, value)
        fc = forecast(at)
        out_mean[t], out_lower[t], out_upper[t] = fc.mean, fc.lower, fc.upper
        samples += 1
    cpu = time.process_time() - started
    for t in range(n):
        if out_mean[t] is not None:
            mean[:, t] = out_mean[t]
            lower[:, t] = out_lower[t]
            upper[:, t] = out_upper[t]
    return mean, lower, upper, samples, cpu


def run_forecast_bench(
    trace: Trace,
    horizons: Sequence[int] = (1, 6, 12),
    *,
    config: ForecasterConfig | None = None,
    upper_bound: float = 100.0,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Replay every series of ``trace`` and score PLBA, naive and MA6 per horizon (in steps)."""
    horizons = [int(h) for h in horizons]
    if not horizons or any(h < 1 for h in horizons):
        raise ValueError(f"horizons must be steps ≥ 1, not {horizons!r}")
    config = config or ForecasterConfig()
    maes: dict[str, dict[int, list[float]]] = {m: {h: [] for h in horizons} for m in ("naive", "ma6", "plba")}
    hits = {h: 0 for h in horizons}
    origins = {h: 0 for h in horizons}
    series_coverage: dict[int, list[float]] = {h: [] for h in horizons}
    total_samples, total_cpu = 0, 0.0
    wall_start = time.perf_counter()
    last_report = wall_start
    for j, (_name, column) in enumerate(trace.series()):
        y = np.asarray(column, dtype=float)
        n = len(y)
        naive, ma6 = baseline_forecasts(y)
        mean, lower, upper, samples, cpu = replay_series(
            y, trace.step_seconds, horizons, upper_bound=upper_bound, config=config
        )
        total_samples += samples
        total_cpu += cpu
        for i, h in enumerate(horizons):
            t = np.arange(WARM_STEPS, n - h)
            if t.size == 0:
                continue
            target = y[t + h]
            m = np.isfinite(target) & np.isfinite(naive[t]) & np.isfinite(ma6[t])
            if m.sum() < MIN_ORIGINS:
                continue
            tt, yt = t[m], target[m]
            maes["naive"][h].append(float(np.mean(np.abs(yt - naive[tt]))))
            maes["ma6"][h].append(float(np.mean(np.abs(yt - ma6[tt]))))
            maes["plba"][h].append(float(np.mean(np.abs(yt - mean[i, tt]))))
            inside = (lower[i, tt] <= yt) & (yt <= upper[i, tt])
            hits[h] += int(inside.sum())
            origins[h] += int(inside.size)
            series_coverage[h].append(float(inside.mean()))
        now = time.perf_counter()
        if progress is not None and (now - last_report > 2.0 or j + 1 == trace.n_series):
            rate = total_samples / total_cpu if total_cpu else 0.0
            progress(f"{trace.name}: {j + 1}/{trace.n_series} series, {total_samples} samples, {rate:,.0f} samples/s")
            last_report = now

    def median(values: list[float]) -> float:
        return float(np.median(values)) if values else math.nan

    mae_median = {m: {str(h): median(maes[m][h]) for h in horizons} for m in maes}
    ratio = {
        m: {
            str(h): mae_median[m][str(h)] / mae_median["naive"][str(h)] if mae_median["naive"][str(h)] else math.nan
            for h in horizons
        }
        for m in ("ma6", "plba")
    }
    extra = {
        "step_seconds": trace.step_seconds,
        "samples": total_samples,
        "cpu_seconds": round(total_cpu, 3),
        "wall_seconds": round(time.perf_counter() - wall_start, 3),
        "series_scored": {str(h): len(maes["plba"][h]) for h in horizons},
        "ratio_vs_naive": ratio,
        "coverage_median_series": {"plba": {str(h): median(series_coverage[h]) for h in horizons}},
    }
    return BenchResult(
        trace=trace.name,
        series=trace.n_series,
        horizons=horizons,
        mae_median=mae_median,
        coverage={"plba": {str(h): hits[h] / origins[h] if origins[h] else math.nan for h in horizons}},
        nominal_coverage=config.coverage,
        samples_per_second=total_samples / total_cpu if total_cpu > 0 else math.nan,
        extra=extra,
    )


def format_table(result: BenchResult) -> str:
    """A human-readable table of a result."""
    hs = [str(h) for h in result.horizons]
    lines = [
        f"trace {result.trace}: {result.series} series, step {result.extra.get('step_seconds', '?')} s, "
        f"{result.extra.get('samples', '?')} samples",
        "median per-series MAE by horizon (steps); ratio to naive in brackets",
        f"{'model':<8}" + "".join(f"{'h=' + h:>18}" for h in hs),
    ]
    for model in ("naive", "ma6", "plba"):
        cells = []
        for h in hs:
            mae = result.mae_median[model][h]
            base = result.mae_median["naive"][h]
            cells.append(f"{mae:>9.4f} ({mae / base if base else math.nan:5.3f})")
        lines.append(f"{model:<8}" + "".join(f"{c:>18}" for c in cells))
    cov = result.coverage["plba"]
    lines.append(
        f"{'coverage':<8}" + "".join(f"{cov[h]:>18.3f}" for h in hs) + f"   (nominal {result.nominal_coverage:.2f})"
    )
    lines.append(f"PLBA update+forecast: {result.samples_per_second:,.0f} samples/s (one core, CPU time)")
    return "\n".join(lines)
