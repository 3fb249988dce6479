"""The sim driver's trace reader: wide CSVs of every supported shape, and the shared traces by name."""

from __future__ import annotations

import gzip
import math
import subprocess
import sys
from pathlib import Path

import pytest

from agents.drivers.base import DriverUnavailable
from agents.drivers.trace_series import TraceError, load_series
from schemas.settings import Settings

TRACES = Settings.from_env().traces_dir


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def same(a, b) -> bool:
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


def test_step_index_with_gaps_filled_from_the_previous_value(tmp_path):
    path = write(tmp_path / "t.csv", "step_5min,a,b\n0,,1\n1,20,2\n2,,3\n3,40.5,4\n")
    s = load_series(str(path), "a")
    assert s.step_seconds == 300.0
    assert same(s.values, (math.nan, 20.0, math.nan, 40.5))
    assert list(s.filled) == [20.0, 20.0, 20.0, 40.5]  # a leading gap takes the first value
    assert list(load_series(str(path), "b").values) == [1.0, 2.0, 3.0, 4.0]


def test_step_from_the_header_name_or_the_param(tmp_path):
    path = write(tmp_path / "t.csv", "step_1min,a\n0,1\n1,2\n")
    assert load_series(str(path), "a").step_seconds == 60.0
    assert load_series(str(path), "a", step_seconds=10).step_seconds == 10.0


def test_timestamps_go_on_the_median_grid(tmp_path):
    text = "time,cpu\n1000,10\n1060,20\n1120,30\n1240,50\n1241,70\n"
    s = load_series(str(write(tmp_path / "t.csv.gz", text)), "cpu")
    assert s.step_seconds == 60.0
    # 1180 has no sample (NaN, held at 30); 1240 and 1241 share a step (averaged).
    assert same(s.values, (10.0, 20.0, 30.0, math.nan, 60.0))
    assert s.filled[3] == 30.0


def test_iso_timestamps(tmp_path):
    text = "at,x\n2024-01-01T00:00:00Z,1\n2024-01-01T00:05:00Z,2\n2024-01-01T00:10:00,3\n"
    s = load_series(str(write(tmp_path / "t.csv", text)), "x")
    assert (s.step_seconds, list(s.values)) == (300.0, [1.0, 2.0, 3.0])


def test_without_header_series_are_numbered(tmp_path):
    path = write(tmp_path / "t.csv", "0,5,6\n1,7,8\n")
    assert list(load_series(str(path), "2").values) == [6.0, 8.0]


def test_value_at_is_a_step_function_that_repeats(tmp_path):
    s = load_series(str(write(tmp_path / "t.csv", "step,a\n0,1\n1,2\n2,3\n")), "a", step_seconds=10)
    assert [s.value_at(t) for t in (0, 9.99, 10, 25, 30, 41, -1)] == [1, 1, 2, 3, 1, 2, 3]


@pytest.mark.parametrize(
    ("text", "series", "message"),
    [
        ("step,a,b\n0,1,2\n", "c", "no series 'c'; it has 2: a, b"),
        ("step,a\n0,1\n1,x\n", "a", "row 3, series 'a': not a number: 'x'"),
        ("step,a\n0,\n1,\n", "a", "series 'a': no samples"),
        ("step,a\n", "a", "header only"),
        ("", "a", "empty file"),
        ("t,a\n1700000000,1\n", "a", "cannot infer the sampling interval"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path, text, series, message):
    path = write(tmp_path / f"bad{abs(hash(text))}.csv", text)
    with pytest.raises(TraceError) as err:
        load_series(str(path), series)
    assert message in str(err.value)


def test_missing_file_or_series_name(tmp_path):
    with pytest.raises(TraceError, match="neither a shared trace"):
        load_series(str(tmp_path / "nope.csv"), "a")
    with pytest.raises(TraceError, match="name the series"):
        load_series("azure", "")


def test_shared_trace_without_the_data_is_a_precondition(tmp_path):
    with pytest.raises(DriverUnavailable, match="PLBA_TRACES_DIR"):
        load_series("azure", "1", traces_dir=tmp_path)


needs_traces = pytest.mark.skipif(not (TRACES / "azure_v1_100vms").is_dir(), reason=f"no shared traces in {TRACES}")


@needs_traces
@pytest.mark.parametrize(
    ("name", "series"),
    [
        ("bitbrains", "250"),
        ("azure", "1633748"),
        ("azure-max", "8201"),
        ("alibaba", "m_1932"),
        ("alibaba-mem", "m_1940"),
        ("planetlab", "20110303/146-179_surfsnel_dsl_internl_net_colostate_557"),
    ],
)
def test_shared_traces_match_the_stream_side_loader(name, series):
    from streams.traces import load_trace  # the reference reader (tests may import both sides)

    ours = load_series(name, series, traces_dir=TRACES)
    ref = load_trace(name, TRACES)
    column = ref.values[:, ref.series_names.index(series)]
    assert ours.step_seconds == ref.step_seconds
    assert same(ours.values, tuple(float(v) for v in column))


@needs_traces
def test_planetlab_by_bare_vm_name_takes_its_first_day():
    full = load_series("planetlab", "20110303/146-179_surfsnel_dsl_internl_net_colostate_557", traces_dir=TRACES)
    bare = load_series("planetlab", "146-179_surfsnel_dsl_internl_net_colostate_557", traces_dir=TRACES)
    assert bare.values == full.values and len(bare) == 288


@needs_traces
def test_unknown_machine_lists_the_known_ones():
    with pytest.raises(TraceError, match="m_1932"):
        load_series("alibaba", "m_9", traces_dir=TRACES)


def test_node_side_modules_never_import_streams_faust_or_river():
    code = (
        "import sys, agents.node, agents.executor, agents.executor_client, agents.drivers.sim, "
        "agents.drivers.process, agents.drivers.function, plba.cli.node_cmd, plba.cli.workload_cmd\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('streams', 'faust', 'river'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
