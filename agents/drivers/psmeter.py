"""CPU, memory and disk I/O of an OS process tree, from psutil's cumulative counters.

CPU (cores) and I/O (bytes/s) are rates: the change of the tree's counters between two readings
divided by the time between them (the first reading averages over the process's lifetime).
Readings closer together than ``min_window_seconds`` return the previous rates, so two readers
(the telemetry agent and a ``GetUsage`` call) do not shrink each other's windows to noise.
The tree is the root plus its live descendants, plus the CPU time of children it has reaped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil


class ProcessGone(Exception):
    """The root process of a meter no longer runs."""


@dataclass(frozen=True, slots=True)
class Reading:
    cpu_cores: float
    rss_bytes: int
    io_bytes_per_second: float


class ProcessTreeMeter:
    def __init__(self, pid: int, *, min_window_seconds: float = 0.5) -> None:
        try:
            self.process = psutil.Process(pid)
            self.create_time = self.process.create_time()
        except psutil.Error as exc:
            raise ProcessGone(f"process {pid} is gone") from exc
        self.pid = pid
        self._min_window = min_window_seconds
        self._last: tuple[float, float, int] | None = None  # (monotonic, cpu seconds, io bytes)
        self._rates = (0.0, 0.0)

    def alive(self) -> bool:
        try:
            return self.process.is_running() and self.process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def totals(self) -> tuple[float, int, int]:
        """(cpu seconds, rss bytes, io bytes) summed over the tree now."""
        try:
            with self.process.oneshot():
                times = self.process.cpu_times()
                cpu = times.user + times.system + times.children_user + times.children_system
                rss = self.process.memory_info().rss
                io = _io_bytes(self.process)
            children = self.process.children(recursive=True)
        except psutil.Error as exc:
            raise ProcessGone(f"process {self.pid} is gone") from exc
        for child in children:
            try:
                with child.oneshot():
                    t = child.cpu_times()
                    cpu += t.user + t.system
                    rss += child.memory_info().rss
                    io += _io_bytes(child)
            except psutil.Error:
                continue  # exited between the listing and the reading
        return cpu, rss, io

    def read(self) -> Reading:
        cpu, rss, io = self.totals()
        mono = time.monotonic()
        if self._last is None:
            lifetime = max(time.time() - self.create_time, 1e-3)
            self._rates = (cpu / lifetime, io / lifetime)
            self._last = (mono, cpu, io)
        elif mono - self._last[0] >= self._min_window:
            elapsed = mono - self._last[0]
            self._rates = (max(0.0, (cpu - self._last[1]) / elapsed), max(0.0, (io - self._last[2]) / elapsed))
            self._last = (mono, cpu, io)
        return Reading(self._rates[0], rss, self._rates[1])


def _io_bytes(proc: psutil.Process) -> int:
    try:
        counters = proc.io_counters()
    except (psutil.AccessDenied, AttributeError, NotImplementedError):
        return 0
    return int(counters.read_bytes + counters.write_bytes)
