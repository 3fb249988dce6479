"""Trace loading on small files made here: wide CSVs of every flavour and the shared layouts."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from streams.traces import TRACE_NAMES, TraceError, load_rows_csv, load_trace, load_wide_csv


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_step_index_csv_with_interval_in_the_header(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "step_5min,vm1,vm2\n0,1.5,2\n1,,3\n2,4,nan\n")
    t = load_wide_csv(f)
    assert t.step_seconds == 300.0 and t.series_names == ("vm1", "vm2") and t.name == "a.csv"
    assert t.values.shape == (3, 2)
    np.testing.assert_array_equal(t.values[:, 0], [1.5, np.nan, 4.0])
    np.testing.assert_array_equal(t.values[:, 1], [2.0, 3.0, np.nan])


def test_step_index_defaults_to_five_minutes_and_can_be_told(tmp_path: Path) -> None:
    f = write(tmp_path / "b.csv", "t,x\n0,1\n1,2\n")
    assert load_wide_csv(f).step_seconds == 300.0
    assert load_wide_csv(f, step_seconds=60.0).step_seconds == 60.0


def test_timestamps_with_gaps_land_on_a_grid(tmp_path: Path) -> None:
    # Epoch seconds, 60-s sampling with jitter, one missing sample, two in one step (averaged).
    rows = ["ts,cpu", "1700000000,10", "1700000061,20", "1700000180,40", "1700000185,50", "1700000240,60"]
    write(tmp_path / "c.csv.gz", "\n".join(rows) + "\n")
    t = load_wide_csv(tmp_path / "c.csv.gz", step_seconds=60.0)  # jitter and duplicates: say the step
    assert t.start_at == 1700000000.0 and t.step_seconds == 60.0
    np.testing.assert_array_equal(t.values[:, 0], [10.0, 20.0, np.nan, 45.0, 60.0])


def test_iso_timestamps_and_no_header(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "2024-01-01T00:00:00Z,1,2\n2024-01-01T00:05:00Z,3,4\n2024-01-01T00:15:00Z,5,6\n")
    t = load_wide_csv(f)
    assert t.series_names == ("1", "2") and t.step_seconds == 300.0
    np.testing.assert_array_equal(t.values, [[1, 2], [3, 4], [np.nan, np.nan], [5, 6]])


def test_clip_and_head(tmp_path: Path) -> None:
    f = write(tmp_path / "e.csv", "step,a,b,c\n0,120,-3,5\n1,50,50,50\n")
    t = load_wide_csv(f, clip=(0.0, 100.0))
    np.testing.assert_array_equal(t.values[0], [100.0, 0.0, 5.0])
    assert t.head(2).series_names == ("a", "b") and t.head(None) is t
    with pytest.raises(TraceError):
        t.head(0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("step,a\n", "no data"),
        ("step\n0\n1\n", "at least one series"),
        ("step,a\n0,x\n", "not a numeric matrix"),
        ("when,a\nyesterday,1\n", "timestamp"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        load_wide_csv(write(tmp_path / "bad.csv", text))


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such"):
        load_wide_csv(tmp_path / "nope.csv")
    with pytest.raises(TraceError, match="neither"):
        load_trace("not-a-trace-or-file")


def test_rows_layout_is_transposed(tmp_path: Path) -> None:
    f = write(tmp_path / "p.csv", 'date,vm,t000,t001,t002\n20110303,"vm a",1,2,3\n20110306,vm-b,4,5\n')
    t = load_rows_csv(f, id_columns=2)
    assert t.series_names == ("20110303/vm a", "20110306/vm-b")
    np.testing.assert_array_equal(t.values, [[1, 4], [2, 5], [3, np.nan]])


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A miniature copy of the shared traces folder, same file names and layouts."""
    (tmp_path / "bitbrains_rnd").mkdir()
    write(
        tmp_path / "bitbrains_rnd" / "rnd_2013-8_cpu_pct_5min_500vms.csv.gz",
        "bin_start_unix_s,1,2\n1375308000,12.5,0\n1375308300,114,\n1375308600,1,2\n",
    )
    (tmp_path / "planetlab").mkdir()
    write(tmp_path / "planetlab" / "planetlab_cpu_wide.csv.gz", "date,vm,t000,t001\n20110303,a,1,2\n20110303,b,3,4\n")
    (tmp_path / "azure_v1_100vms").mkdir()
    for kind in ("avg", "max"):
        write(tmp_path / "azure_v1_100vms" / f"microsoft_{kind}_100.csv.gz", "step_5min,17,42\n0,1.0,2.0\n1,3.0,4.0\n")
    (tmp_path / "alibaba2018_nodes").mkdir()
    write(
        tmp_path / "alibaba2018_nodes" / "machine_usage_5min_mean.csv.gz",
        "machine_id,cpu_util_percent,mem_util_percent,net_in,net_out,disk_io_percent,bin_start_s\n"
        "m_2,40,90,1,1,1,0\nm_1,30,80,1,1,1,300\nm_2,41,91,1,1,1,600\n",
    )
    return tmp_path


def test_shared_traces_by_name(shared: Path) -> None:
    bb = load_trace("bitbrains", shared)
    assert bb.values.shape == (3, 2) and bb.step_seconds == 300.0
    assert bb.values[1, 0] == 100.0 and np.isnan(bb.values[1, 1])  # clipped; empty bin is NaN
    pl = load_trace("planetlab", shared)
    assert pl.series_names == ("20110303/a", "20110303/b")
    np.testing.assert_array_equal(pl.values, [[1, 3], [2, 4]])
    az = load_trace("azure", shared)
    assert az.series_names == ("17", "42") and az.values[1, 1] == 4.0
    assert load_trace("azure-max", shared).name == "azure-max"
    al = load_trace("alibaba", shared)
    assert al.series_names == ("m_1", "m_2")
    assert al.values.shape == (2304, 2)  # the reference's 8-day grid of 5-min bins
    assert np.isnan(al.values[0, 0]) and al.values[1, 0] == 30.0 and al.values[2, 1] == 41.0
    assert load_trace("alibaba-mem", shared).values[0, 1] == 90.0
    assert set(TRACE_NAMES) == {"bitbrains", "planetlab", "azure", "azure-max", "alibaba", "alibaba-mem"}


def test_traces_dir_comes_from_the_settings(shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLBA_TRACES_DIR", str(shared))
    assert load_trace("azure").n_series == 2
