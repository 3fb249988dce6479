"""Predicted migration duration and downtime from memory size and bandwidth.

This is the one model shared by the decision policy (lead times, deadlines, SLA checks), the
replay benchmark and the ``sim`` driver (``agents/drivers/sim.py`` models its migrations with
it), so it lives in ``schemas`` (both sides import it) and imports only the standard library.
``streams.decisions.migration_model`` re-exports it under its historical name.

The figures are deliberately simple and documented rather than fitted:

* ``live`` (VMs, pre-copy): memory is copied while the guest runs; each round re-sends the pages
  dirtied during the previous one, a geometric series with ratio ``dirty_rate / bandwidth``.
  Copying stops when the remainder fits ``max_downtime_seconds`` or after ``max_rounds``; the
  remainder is sent with the guest paused (the downtime).
* ``snapshot`` (containers / stateful processes): quiesce, copy the whole state, restore: the
  downtime is the whole transfer plus the restore.
* ``reroute`` (functions): warm the target, switch routing: no downtime.
* ``simulated`` (the ``sim`` driver): the same figures as ``live``.

>>> m = MigrationModel(bandwidth_bytes_per_second=125e6, setup_seconds=2.0)
>>> est = m.estimate("live", 1_000_000_000)
>>> round(est.duration_seconds, 1), est.downtime_seconds < 0.5
(11.5, True)
>>> m.estimate("reroute", 1_000_000_000).downtime_seconds
0.0
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["METHODS", "MigrationEstimate", "MigrationModel", "MigrationModelError", "method_for"]

METHODS = ("live", "snapshot", "reroute", "simulated")


class MigrationModelError(ValueError):
    """Invalid model parameters or an unknown migration method."""


def method_for(kind: str, driver: str | None = None) -> str:
    """The migration method of a workload ``kind`` on a node whose runtime ``driver`` is given."""
    if driver == "sim":
        return "simulated"
    try:
        return {"vm": "live", "container": "snapshot", "function": "reroute"}[kind]
    except KeyError:
        raise MigrationModelError(f"unknown workload kind {kind!r}") from None


@dataclass(frozen=True, slots=True)
class MigrationEstimate:
    duration_seconds: float
    downtime_seconds: float
    transferred_bytes: float


@dataclass(frozen=True, slots=True)
class MigrationModel:
    """Migration cost model; all rates in bytes per second."""

    bandwidth_bytes_per_second: float = 125e6  # 1 Gbit/s
    dirty_rate_bytes_per_second: float = 20e6
    setup_seconds: float = 2.0
    switch_seconds: float = 0.05
    restore_bytes_per_second: float = 500e6
    warmup_seconds: float = 1.0
    max_rounds: int = 30
    target_downtime_seconds: float = 0.3

    def __post_init__(self) -> None:
        if not self.bandwidth_bytes_per_second > 0:
            raise MigrationModelError("bandwidth_bytes_per_second must be positive")
        if self.dirty_rate_bytes_per_second < 0 or self.setup_seconds < 0 or self.switch_seconds < 0:
            raise MigrationModelError("rates and times must not be negative")
        if not self.restore_bytes_per_second > 0 or self.max_rounds < 1:
            raise MigrationModelError("restore rate must be positive and max_rounds >= 1")

    def estimate(self, method: str, memory_bytes: float) -> MigrationEstimate:
        """Predicted duration (order to switch-over done), downtime and bytes sent."""
        if memory_bytes < 0:
            raise MigrationModelError(f"memory_bytes must not be negative, not {memory_bytes}")
        bw = self.bandwidth_bytes_per_second
        if method == "reroute":
            return MigrationEstimate(self.setup_seconds + self.warmup_seconds, 0.0, 0.0)
        if method == "snapshot":
            copy = memory_bytes / bw + memory_bytes / self.restore_bytes_per_second
            down = copy + self.switch_seconds
            return MigrationEstimate(self.setup_seconds + down, down, float(memory_bytes))
        if method not in ("live", "simulated"):
            raise MigrationModelError(f"unknown migration method {method!r}; known: {', '.join(METHODS)}")
        ratio = self.dirty_rate_bytes_per_second / bw
        remaining, sent, elapsed = float(memory_bytes), 0.0, 0.0
        for _ in range(self.max_rounds):
            if remaining / bw <= self.target_downtime_seconds:
                break
            round_seconds = remaining / bw
            sent += remaining
            elapsed += round_seconds
            # Pages dirtied meanwhile, never more than the whole memory.
            remaining = min(float(memory_bytes), round_seconds * bw * ratio)
        down = remaining / bw + self.switch_seconds
        return MigrationEstimate(self.setup_seconds + elapsed + down, down, sent + remaining)
