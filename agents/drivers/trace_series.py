"""One utilisation series (percent per step) from a trace file, for the ``sim`` driver.

A light reader: the standard library only, one column kept, results cached. It reads the same
layouts as the stream side's trace loader (``streams/traces.py``, which agents must not import),
so a series here has the same steps and values as there:

* any **wide CSV** (``.csv`` or ``.csv.gz``): a first column holding a step index (0, 1, 2, …;
  the step comes from ``step_seconds``, else the column name such as ``step_5min``, else 300 s)
  or timestamps (epoch/relative seconds or ISO 8601; rows are placed on the grid of the median
  spacing); every other column is a series named by its header (``"1"``, ``"2"``, … without
  a header row);
* the shared traces by name, in ``traces_dir`` (see each folder's README):
  ``bitbrains`` (series = VM id ``1``…``500``; values clipped to 0..100 as the README asks),
  ``azure`` / ``azure-max`` (series = the VM's column name), ``alibaba`` / ``alibaba-mem``
  (series = machine id ``m_1932``…; bins 0…2303 of 300 s), ``planetlab`` (series =
  ``<date>/<vm>`` or just ``<vm>``, its first day).

NaN marks a step without a sample; :attr:`TraceSeries.filled` holds each gap at the previous
value (a leading gap at the first value), so a simulated workload always has a usage.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import itertools
import math
import re
import statistics
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agents.drivers.base import DriverUnavailable, InvalidSpec

DEFAULT_STEP_SECONDS = 300.0
SHARED_TRACES = ("bitbrains", "azure", "azure-max", "alibaba", "alibaba-mem", "planetlab")
_SHARED_FILES = {
    "bitbrains": "bitbrains_rnd/rnd_2013-8_cpu_pct_5min_500vms.csv.gz",
    "azure": "azure_v1_100vms/microsoft_avg_100.csv.gz",
    "azure-max": "azure_v1_100vms/microsoft_max_100.csv.gz",
    "alibaba": "alibaba2018_nodes/machine_usage_5min_mean.csv.gz",
    "alibaba-mem": "alibaba2018_nodes/machine_usage_5min_mean.csv.gz",
    "planetlab": "planetlab/planetlab_cpu_wide.csv.gz",
}
_ALIBABA_BINS = 2304  # 8 days of 300-s bins, as the reference baselines pivot them
_UNIT_SECONDS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}


class TraceError(InvalidSpec):
    """A trace or series that cannot be read; the message names the file and the column."""


@dataclass(frozen=True, slots=True)
class TraceSeries:
    """Percent values of one series on a regular grid of ``step_seconds``."""

    source: str
    series: str
    step_seconds: float
    # Compact float arrays: a node may simulate hundreds of workloads on month-long series.
    values: array[float]  # as in the trace, NaN where it has no sample
    filled: array[float]  # gaps held at the previous value

    def __len__(self) -> int:
        return len(self.values)

    @property
    def duration_seconds(self) -> float:
        return len(self.values) * self.step_seconds

    def step_at(self, trace_seconds: float) -> int:
        """The step that covers ``trace_seconds``; the series repeats after its end."""
        return math.floor(trace_seconds / self.step_seconds) % len(self.filled)

    def value_at(self, trace_seconds: float) -> float:
        return self.filled[self.step_at(trace_seconds)]


def load_series(
    trace: str,
    series: str,
    *,
    traces_dir: Path | str = "",
    step_seconds: float | None = None,
) -> TraceSeries:
    """A series of a shared trace (by name) or of a wide CSV file (by path). Cached."""
    if not series:
        raise TraceError(f"trace {trace!r}: name the series (column) to follow")
    if step_seconds is not None and not (math.isfinite(step_seconds) and step_seconds > 0):
        raise TraceError(f"step_seconds must be positive, not {step_seconds}")
    if trace in SHARED_TRACES:
        path = Path(traces_dir) / _SHARED_FILES[trace]
        if not path.is_file():
            raise DriverUnavailable(
                f"shared trace {trace!r} not found at {path}: set the traces folder (PLBA_TRACES_DIR)"
            )
    else:
        path = Path(trace).expanduser()
        if not path.is_file():
            raise TraceError(
                f"trace {trace!r} is neither a shared trace ({', '.join(SHARED_TRACES)}) nor a readable file"
            )
    stat = path.stat()
    return _load_cached(trace, str(path.resolve()), stat.st_mtime_ns, stat.st_size, series, step_seconds)


@functools.lru_cache(maxsize=512)
def _load_cached(
    trace: str, path: str, _mtime_ns: int, _size: int, series: str, step_seconds: float | None
) -> TraceSeries:
    file = Path(path)
    try:
        if trace in ("alibaba", "alibaba-mem"):
            metric = "mem_util_percent" if trace == "alibaba-mem" else "cpu_util_percent"
            step, values = _alibaba(file, series, metric)
        elif trace == "planetlab":
            step, values = _planetlab(file, series)
        elif trace in ("azure", "azure-max"):
            step, values = _wide(file, series, step_seconds or DEFAULT_STEP_SECONDS, index="step")
        elif trace == "bitbrains":
            step, values = _wide(file, series, DEFAULT_STEP_SECONDS, index="seconds")
            values = [min(max(v, 0.0), 100.0) if not math.isnan(v) else v for v in values]
        else:
            step, values = _wide(file, series, step_seconds, index="auto")
    except (OSError, EOFError, csv.Error, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read trace {trace!r} ({file}): {exc}") from exc
    if not any(math.isfinite(v) for v in values):
        raise TraceError(f"trace {trace!r}, series {series!r}: no samples")
    return TraceSeries(trace, series, step, array("d", values), _fill(values))


def _fill(values: list[float]) -> array[float]:
    first = next(v for v in values if math.isfinite(v))
    out = array("d")
    last = first
    for v in values:
        if math.isfinite(v):
            last = v
        out.append(last)
    return out


def _lines(path: Path) -> Iterator[list[str]]:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115 - closed below
    with raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        for row in csv.reader(text):
            if row and any(cell.strip() for cell in row):
                yield row


def _number(text: str) -> float:
    text = text.strip()
    if not text or text.lower() in ("nan", "na", "null"):
        return math.nan
    return float(text)


def _instant(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))  # ValueError if not a time either
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _is_instant(text: str) -> bool:
    try:
        _instant(text)
    except ValueError:
        return False
    return True


def _is_number(text: str) -> bool:
    try:
        _number(text)
    except ValueError:
        return False
    return True


def _step_from_header(name: str) -> float | None:
    match = re.search(r"(\d+(?:\.\d+)?)\s*(min|sec|s|m|h)\b", name.lower().replace("_", " "))
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else None


@dataclass(frozen=True, slots=True)
class _WideFile:
    step_seconds: float
    names: tuple[str, ...]
    columns: tuple[array[float], ...]  # as read, one per series
    grid: tuple[int, ...] | None  # step of each row when the rows are not one per step


@functools.lru_cache(maxsize=2)
def _wide_file(path: str, _mtime_ns: int, _size: int, step_seconds: float | None, index: str) -> _WideFile:
    """Every column of a wide CSV, parsed in one pass (sims usually follow many series of one file)."""
    file = Path(path)
    rows = _lines(file)
    first = next(rows, None)
    if first is None:
        raise TraceError(f"{file.name}: empty file")
    header: list[str] | None = None
    if not _is_instant(first[0]) or not all(_is_number(c) for c in first[1:]):
        header = [c.strip() for c in first]
    names = tuple(header[1:] if header else [str(j) for j in range(1, len(first))])
    width = len(names)
    columns = tuple(array("d") for _ in names)
    stamps: list[float] = []
    nan = math.nan
    for lineno, row in enumerate(rows if header else _chain(first, rows), start=2 if header else 1):
        try:
            stamps.append(_instant(row[0]))
        except ValueError as exc:
            raise TraceError(f"{file.name} row {lineno}: the first column is not a step or a time: {exc}") from exc
        cells = row[1 : width + 1]
        for j, cell in enumerate(cells):
            try:
                columns[j].append(float(cell) if cell.strip() else nan)
            except ValueError:
                try:
                    columns[j].append(_number(cell))
                except ValueError:
                    raise TraceError(f"{file.name} row {lineno}, series {names[j]!r}: not a number: {cell!r}") from None
        for j in range(len(cells), width):
            columns[j].append(nan)
    if not stamps:
        raise TraceError(f"{file.name}: header only, no data rows")
    if index == "auto":
        consecutive = all(b - a == 1.0 for a, b in itertools.pairwise(stamps))
        index = "step" if consecutive and stamps[0] < 1e6 and float(stamps[0]).is_integer() else "seconds"
    if index == "step":
        step = step_seconds or (header and _step_from_header(header[0])) or DEFAULT_STEP_SECONDS
        grid = [round(t - stamps[0]) for t in stamps]
    else:
        spacing = [b - a for a, b in itertools.pairwise(stamps) if b > a]
        if step_seconds is None and not spacing:
            raise TraceError(f"{file.name}: cannot infer the sampling interval from one timestamp; give step_seconds")
        step = float(step_seconds or statistics.median(spacing))
        t0 = min(stamps)
        grid = [round((t - t0) / step) for t in stamps]
    regular = grid == list(range(grid[0], grid[0] + len(grid)))
    return _WideFile(float(step), names, columns, None if regular else tuple(grid))


def _wide(path: Path, series: str, step_seconds: float | None, index: str) -> tuple[float, list[float]]:
    stat = path.stat()
    wide = _wide_file(str(path), stat.st_mtime_ns, stat.st_size, step_seconds, index)
    if series not in wide.names:
        shown = ", ".join(wide.names[:8]) + (", …" if len(wide.names) > 8 else "")
        raise TraceError(f"{path.name}: no series {series!r}; it has {len(wide.names)}: {shown}")
    column = wide.columns[wide.names.index(series)]
    if wide.grid is None:
        return wide.step_seconds, list(column)
    return wide.step_seconds, _on_grid(list(wide.grid), list(column))


def _chain(first: list[str], rest: Iterator[list[str]]) -> Iterator[list[str]]:
    yield first
    yield from rest


def _on_grid(grid: list[int], values: list[float]) -> list[float]:
    """Values placed at their grid steps; missing steps NaN, steps hit twice averaged."""
    low = min(grid)
    if grid == list(range(low, low + len(grid))):
        return values
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    for g, v in zip(grid, values, strict=True):
        if math.isfinite(v):
            sums[g - low] = sums.get(g - low, 0.0) + v
            counts[g - low] = counts.get(g - low, 0) + 1
    n = max(grid) - low + 1
    return [sums[i] / counts[i] if i in counts else math.nan for i in range(n)]


def _alibaba(path: Path, machine: str, metric: str) -> tuple[float, list[float]]:
    rows = _lines(path)
    header = next(rows, None) or []
    try:
        id_col, metric_col, bin_col = header.index("machine_id"), header.index(metric), header.index("bin_start_s")
    except ValueError as exc:
        raise TraceError(f"{path.name}: not the Alibaba 5-min layout (header {header[:7]})") from exc
    found: dict[int, float] = {}
    machines: set[str] = set()
    for row in rows:
        machines.add(row[id_col])
        if row[id_col] == machine:
            found[int(float(row[bin_col])) // 300] = _number(row[metric_col])
    if not found:
        raise TraceError(f"alibaba: no machine {machine!r}; it has {', '.join(sorted(machines))}")
    n = max(_ALIBABA_BINS, max(found) + 1)
    return 300.0, [found.get(b, math.nan) for b in range(n)]


def _planetlab(path: Path, series: str) -> tuple[float, list[float]]:
    date, _, vm = series.partition("/") if re.match(r"^\d{8}/", series) else ("", "", series)
    rows = _lines(path)
    next(rows, None)
    for row in rows:
        if row[1] == vm and (not date or row[0] == date):
            return 300.0, [_number(c) for c in row[2:]]
    raise TraceError(f"planetlab: no series {series!r}; name one as <date>/<vm> (e.g. 20110303/<vm>) or <vm>")
