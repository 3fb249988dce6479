"""The real demo's CPU burner: it burns, keeps its CPU seconds in its state, and goes on from them after a move."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.drivers.trace_series import load_series
from plba.demo_burner import STATE_FILE, target_cores


def _trace(tmp_path: Path, pct: float = 100.0) -> Path:
    path = tmp_path / "flat.csv"
    path.write_text("step,x\n" + "".join(f"{i},{pct}\n" for i in range(10)))
    return path


def _start(trace: Path, state: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "plba.demo_burner", "--trace", str(trace), "--series", "x", "--cores", "0.3"],
        env={**os.environ, "PLBA_STATE_DIR": str(state), **env}, stderr=subprocess.PIPE,
        pass_fds=tuple(int(v) for k, v in env.items() if k.endswith("_FD")),
    )  # fmt: skip


def _burned(state: Path) -> float:
    try:
        return float(json.loads((state / STATE_FILE).read_text())["cpu_seconds"])
    except (OSError, ValueError, KeyError):
        return 0.0


def _wait_burned_over(state: Path, floor: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120  # a loaded CI machine may hardly schedule it
    while _burned(state) <= floor:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        if time.monotonic() > deadline:
            pytest.fail(f"the burner did not burn past {floor} CPU s")
        time.sleep(0.2)


def test_target_follows_the_series_like_a_sim_workload(tmp_path):
    series = load_series(str(_trace(tmp_path, 40.0)), "x")
    assert target_cores(series, 1000.0, anchor=900.0, offset=0.0, speed=3.0, cores=0.5) == pytest.approx(0.2)


def test_the_burner_burns_and_carries_its_cpu_seconds_over_a_restart(tmp_path):
    trace, state = _trace(tmp_path), tmp_path / "state"
    first = _start(trace, state)
    try:
        _wait_burned_over(state, 0.3, first)
        first.send_signal(signal.SIGTERM)  # the quiesce of a snapshot transfer
        assert first.wait(60) == 0
    finally:
        first.kill()
    carried = _burned(state)
    assert carried > 0.3
    second = _start(trace, state)  # the target, on the transferred state directory
    try:
        _wait_burned_over(state, carried, second)
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    finally:
        second.kill()
    assert b"CPU s carried over" in (second.stderr.read() if second.stderr else b"")


def test_a_standby_burner_says_ready_and_leaves_the_state_alone_when_called_off(tmp_path):
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    state = tmp_path / "state"
    proc = _start(_trace(tmp_path), state, PLBA_READY_FD=str(ready_w), PLBA_GO_FD=str(go_r))
    os.close(ready_w)
    os.close(go_r)
    try:
        assert os.read(ready_r, 1) == b"r"
        os.close(go_w)  # EOF: the move was aborted
        assert proc.wait(60) == 0
    finally:
        proc.kill()
        os.close(ready_r)
    assert not state.exists()
