"""``plba bench faults``: run the fault scenarios and merge what each one measured.

Scenarios, in order: ``bad-input`` (:mod:`plba.faults.injection`), ``worker-kill`` and
``broker-restart`` (:mod:`plba.faults.pipeline`), then ``executor`` (:mod:`plba.faults.executor`:
link cut mid-transfer, duplicate and reordered orders, executor crash at each phase). Every
integer count a scenario returns is summed into the top level under its own name (two scenarios
that both count ``duplicate_migrations`` add up); each scenario's own counts, its wall time and any
error stay under ``scenarios``. A scenario that fails is reported (``scenario_errors``) and the
others still run. Nothing is assumed: a field is present only if some scenario measured it.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plba.bench_support import machine
from schemas.settings import Settings

Progress = Callable[[str], None]
SCENARIOS = ("bad-input", "worker-kill", "broker-restart", "executor")
# The figures the issue asks for first, always at the top of the output when measured.
HEADLINE = (
    "trials",
    "samples_lost",
    "duplicate_migrations",
    "instances_not_exactly_one",
    "bad_records_injected",
    "bad_records_in_dlq",
    "valid_records_processed",
)


def _scenario(name: str, bad_records: int, phase_seconds: float) -> Callable[..., dict[str, Any]]:
    """The scenario's function, imported when it runs (the executor's lives in its own module)."""
    if name == "bad-input":
        from plba.faults.injection import run_bad_input

        return lambda s, wd, trials, progress: run_bad_input(s, wd, bad_records, progress)
    if name == "worker-kill":
        from plba.faults.pipeline import run_worker_kill

        return lambda s, wd, trials, progress: run_worker_kill(s, wd, trials, progress, phase_seconds=phase_seconds)
    if name == "broker-restart":
        from plba.faults.pipeline import run_broker_restart

        return lambda s, wd, trials, progress: run_broker_restart(s, wd, trials, progress, phase_seconds=phase_seconds)
    if name == "executor":
        fn: Callable[..., dict[str, Any]] = importlib.import_module("plba.faults.executor").run_executor_faults
        return fn
    raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")


def run_faults(
    settings: Settings,
    workdir: Path,
    *,
    trials: int = 1,
    bad_records: int = 10_000,
    phase_seconds: float = 25.0,
    scenarios: tuple[str, ...] = SCENARIOS,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run ``scenarios`` (each ``trials`` times where that applies); the merged counts."""
    say = progress or (lambda _m: None)
    if trials < 1 or bad_records < 1:
        raise ValueError("trials and bad records: at least 1")
    unknown = [n for n in scenarios if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    per: dict[str, Any] = {}
    started = time.perf_counter()
    for name in scenarios:
        t0 = time.perf_counter()
        say(f"== {name}")
        try:
            counts = _scenario(name, bad_records, phase_seconds)(settings, workdir / name, trials, say)
        except ModuleNotFoundError as exc:
            if exc.name != "plba.faults.executor":
                raise
            per[name] = {"error": "not available in this build (plba.faults.executor is missing)"}
            continue
        except Exception as exc:  # noqa: BLE001 (reported in the result; the other scenarios still run)
            say(f"{name}: ERROR {type(exc).__name__}: {exc}")
            per[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
            continue
        per[name] = {**counts, "seconds": round(time.perf_counter() - t0, 1)}
    ordered = merge(trials, per)
    ordered["seconds"] = round(time.perf_counter() - started, 1)
    ordered["machine"] = machine()
    return ordered


def merge(trials: int, per: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Sum every integer count of the scenarios that ran under its own name; headline fields first.

    ``trials`` is the requested number (scenarios report their own under ``scenarios``); a
    scenario that failed (an ``error`` entry) adds one to ``scenario_errors``.
    """
    merged: dict[str, int] = {}
    errors = 0
    for counts in per.values():
        if "error" in counts:
            errors += 1
            continue
        for key, value in counts.items():
            if key in ("trials", "seconds") or isinstance(value, bool) or not isinstance(value, int):
                continue
            merged[key] = merged.get(key, 0) + value
    merged["trials"] = trials
    merged["scenario_errors"] = merged.get("scenario_errors", 0) + errors
    out: dict[str, Any] = {k: merged[k] for k in HEADLINE if k in merged}
    out.update({k: v for k, v in sorted(merged.items()) if k not in out})
    out["scenarios"] = per
    return out
