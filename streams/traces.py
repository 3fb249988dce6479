"""Utilisation traces as arrays: any wide CSV, and the shared cluster traces by name.

A trace is a matrix ``values[step, series]`` of CPU (or memory) percent on a regular grid of
``step_seconds``; NaN marks a step without a sample. Loading needs only numpy and the standard
library, so the benchmark runs wherever the stream worker runs.

The shared traces (``<traces_dir>/<folder>``, see each folder's README) are prepared exactly as
``_scripts/reference_baselines.py`` prepares them, so baselines computed on these arrays
reproduce ``reference_baselines.csv``:

* ``bitbrains``: Rnd 2013-8, 500 VMs x 8,640 five-minute bins, clipped to [0, 100].
* ``planetlab``: 11,746 one-day series x 288 steps (the file has one series per *row*).
* ``azure``: Azure V1, 100 VMs, 5-min average CPU (``azure-max``: the 5-min maxima).
* ``alibaba``: 16 Alibaba 2018 nodes, CPU % of 5-min means on the bins 0 … 2,303
  (``alibaba-mem``: memory %).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

__all__ = [
    "TRACE_NAMES",
    "Trace",
    "TraceError",
    "default_traces_dir",
    "load_rows_csv",
    "load_trace",
    "load_wide_csv",
]

DEFAULT_STEP_SECONDS = 300.0


class TraceError(ValueError):
    """A trace file is missing or cannot be read as a utilisation matrix."""


@dataclass(frozen=True, slots=True)
class Trace:
    """A utilisation matrix ``values[step, series]`` (NaN = no sample in that step)."""

    name: str
    step_seconds: float
    series_names: tuple[str, ...]
    values: np.ndarray
    start_at: float = 0.0

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.series_names):
            raise TraceError(
                f"{self.name}: values shape {self.values.shape} does not match {len(self.series_names)} series names"
            )
        if not self.step_seconds > 0:
            raise TraceError(f"{self.name}: step_seconds must be positive, not {self.step_seconds}")

    @property
    def n_steps(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_series(self) -> int:
        return int(self.values.shape[1])

    def series(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, values over time) of each series, in column order."""
        for j, name in enumerate(self.series_names):
            yield name, self.values[:, j]

    def head(self, max_series: int | None) -> Trace:
        """The same trace restricted to its first ``max_series`` series (all if None)."""
        if max_series is None or max_series >= self.n_series:
            return self
        if max_series < 1:
            raise TraceError(f"max_series must be at least 1, not {max_series}")
        return Trace(
            self.name,
            self.step_seconds,
            self.series_names[:max_series],
            self.values[:, :max_series],
            self.start_at,
        )


def default_traces_dir() -> Path:
    """The shared traces folder from the settings (``traces_dir``, env ``PLBA_TRACES_DIR``)."""
    from schemas.settings import Settings

    return Path(Settings.from_env().traces_dir)


def _open_text(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise TraceError(f"no such trace file: {path}")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _cell(text: str) -> float:
    text = text.strip()
    if not text or text.lower() in ("nan", "na", "null"):
        return math.nan
    return float(text)


def _is_number(text: str) -> bool:
    try:
        _cell(text)
    except ValueError:
        return False
    return True


_UNIT_SECONDS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}


def _step_from_header(name: str) -> float | None:
    """``step_5min`` → 300.0: a sampling interval written in the index column's name."""
    match = re.search(r"(\d+(?:\.\d+)?)\s*(min|sec|s|m|h)\b", name.lower().replace("_", " "))
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _instant(text: str) -> float:
    """A first-column cell as seconds: a number, or an ISO 8601 date-time (naive = UTC)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise TraceError(f"first column must be a step index or a timestamp, not {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def load_wide_csv(
    path: str | Path,
    *,
    name: str | None = None,
    step_seconds: float | None = None,
    index: str = "auto",
    clip: tuple[float, float] | None = None,
) -> Trace:
    """Read a CSV whose first column is a step index or a timestamp and every other column a series.

    ``index`` says what the first column holds: ``"step"`` (0, 1, 2, …), ``"seconds"`` (epoch
    or relative seconds, ISO 8601 accepted) or ``"auto"``: consecutive integers below 10⁶ are a
    step index, anything else is time. With a step index the interval comes from
    ``step_seconds``, else from the column name (``step_5min``), else 300 s. With timestamps
    rows are placed on the grid ``round((t - t0) / step)`` (step: ``step_seconds`` or the typical
    spacing with gaps ignored; give it for jittery data); missing grid steps are NaN and rows
    falling into the same step are averaged.
    A file without a header row gets series names ``"1"``, ``"2"``, ….
    """
    path = Path(path)
    if index not in ("auto", "step", "seconds"):
        raise TraceError(f"index must be 'auto', 'step' or 'seconds', not {index!r}")
    with _open_text(path) as fh:
        rows = list(csv.reader(fh))
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        raise TraceError(f"{path}: empty file")
    header: list[str] | None = None
    if not all(_is_number(c) for c in rows[0][1:]) or _header_like(rows[0][0]):
        header, rows = rows[0], rows[1:]
    if not rows:
        raise TraceError(f"{path}: header only, no data rows")
    width = len(header) if header is not None else len(rows[0])
    if width < 2:
        raise TraceError(f"{path}: need an index column and at least one series column")
    names = tuple(c.strip() for c in header[1:]) if header else tuple(str(j) for j in range(1, width))
    try:
        first = np.array([_instant(r[0]) for r in rows], dtype=float)
        data = np.array([[_cell(c) for c in r[1:width]] + [math.nan] * (width - len(r)) for r in rows], dtype=float)
    except ValueError as exc:
        raise TraceError(f"{path}: not a numeric matrix: {exc}") from exc
    label = name or path.name
    diffs = np.diff(first)
    if index == "auto":
        consecutive = len(first) < 2 or bool(np.all(diffs == 1.0))
        index = "step" if consecutive and first[0] < 1e6 and float(first[0]).is_integer() else "seconds"
    if index == "step":
        step = step_seconds or (header and _step_from_header(header[0])) or DEFAULT_STEP_SECONDS
        grid = np.rint(first - first[0]).astype(np.int64)
        start_at = float(first[0]) * step
    else:
        positive = diffs[diffs > 0]
        if step_seconds is None and positive.size == 0:
            raise TraceError(f"{path}: cannot infer the sampling interval; pass step_seconds")
        if step_seconds is None:
            # The typical spacing, ignoring gaps (multiples of it): the median of the spacings
            # not much longer than the lower quartile.
            usual = positive[positive <= 1.5 * np.percentile(positive, 25)]
            step_seconds = float(np.median(usual))
        step = float(step_seconds)
        grid = np.rint((first - first.min()) / step).astype(np.int64)
        start_at = float(first.min())
    grid -= grid.min()
    values = _to_grid(grid, data)
    if clip is not None:
        values = np.clip(values, clip[0], clip[1])
    return Trace(label, float(step), names, values, start_at)


def _header_like(cell: str) -> bool:
    try:
        _instant(cell)
    except TraceError:
        return True
    return False


def _to_grid(grid: np.ndarray, data: np.ndarray) -> np.ndarray:
    n = int(grid.max()) + 1 if grid.size else 0
    if n == len(grid) and np.array_equal(grid, np.arange(n)):
        return data
    sums = np.zeros((n, data.shape[1]))
    counts = np.zeros((n, data.shape[1]))
    finite = np.isfinite(data)
    np.add.at(sums, grid, np.where(finite, data, 0.0))
    np.add.at(counts, grid, finite)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def load_rows_csv(
    path: str | Path,
    *,
    id_columns: int = 1,
    step_seconds: float = DEFAULT_STEP_SECONDS,
    name: str | None = None,
) -> Trace:
    """Read a CSV with one series per *row*: ``id_columns`` key cells, then the values in time order.

    Series names join the key cells with ``/`` (PlanetLab: ``20110303/<vm>``). The result is
    transposed to the usual ``values[step, series]`` layout; short rows are NaN-padded.
    """
    path = Path(path)
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise TraceError(f"{path}: empty file")
        names: list[str] = []
        series: list[list[float]] = []
        try:
            for row in reader:
                if not row:
                    continue
                names.append("/".join(c.strip() for c in row[:id_columns]))
                series.append([_cell(c) for c in row[id_columns:]])
        except ValueError as exc:
            raise TraceError(f"{path}: not numeric after {id_columns} key columns: {exc}") from exc
    if not series:
        raise TraceError(f"{path}: header only, no series")
    width = max(len(s) for s in series)
    values = np.full((width, len(series)), np.nan)
    for j, s in enumerate(series):
        values[: len(s), j] = s
    return Trace(name or path.name, float(step_seconds), tuple(names), values)


def _load_alibaba(folder: Path, metric: str, name: str) -> Trace:
    path = folder / "alibaba2018_nodes" / "machine_usage_5min_mean.csv.gz"
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        rows = [(r["machine_id"], int(float(r["bin_start_s"])) // 300, _cell(r[metric])) for r in reader]
    machines = sorted({m for m, _, _ in rows})
    column = {m: j for j, m in enumerate(machines)}
    # The reference pivots onto bins 0 … 2303 (8 days); bins past the data stay NaN.
    n = max(2304, max(b for _, b, _ in rows) + 1)
    values = np.full((n, len(machines)), np.nan)
    for machine, b, v in rows:
        values[b, column[machine]] = v
    return Trace(name, 300.0, tuple(machines), values)


def _shared(folder: Path, name: str) -> Trace:
    if name == "bitbrains":
        path = folder / "bitbrains_rnd" / "rnd_2013-8_cpu_pct_5min_500vms.csv.gz"
        return load_wide_csv(path, name=name, index="seconds", step_seconds=300.0, clip=(0.0, 100.0))
    if name == "planetlab":
        return load_rows_csv(folder / "planetlab" / "planetlab_cpu_wide.csv.gz", id_columns=2, name=name)
    if name in ("azure", "azure-max"):
        kind = "max" if name == "azure-max" else "avg"
        path = folder / "azure_v1_100vms" / f"microsoft_{kind}_100.csv.gz"
        return load_wide_csv(path, name=name, index="step", step_seconds=300.0)
    if name == "alibaba":
        return _load_alibaba(folder, "cpu_util_percent", name)
    if name == "alibaba-mem":
        return _load_alibaba(folder, "mem_util_percent", name)
    raise TraceError(f"unknown trace {name!r}; known: {', '.join(TRACE_NAMES)}")


TRACE_NAMES: Sequence[str] = ("bitbrains", "planetlab", "azure", "azure-max", "alibaba", "alibaba-mem")


def load_trace(name_or_path: str | Path, traces_dir: str | Path | None = None) -> Trace:
    """A shared trace by name (see :data:`TRACE_NAMES`), else a wide CSV file by path."""
    if str(name_or_path) in TRACE_NAMES:
        folder = Path(traces_dir) if traces_dir is not None else default_traces_dir()
        return _shared(folder, str(name_or_path))
    path = Path(name_or_path)
    if not path.exists():
        raise TraceError(f"{name_or_path!r} is neither a trace name ({', '.join(TRACE_NAMES)}) nor a file")
    return load_wide_csv(path)
