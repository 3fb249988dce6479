"""`plba node` as a real process: serves, drives workloads through `plba workload`, stops cleanly."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from plba.cli.main import cli


class NodeProcess:
    def __init__(self, state_dir: Path, *extra: str) -> None:
        env = {**os.environ, "PLBA_LOG_LEVEL": "INFO"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "plba.cli.main",
                "node",
                "--node-id",
                "n1",
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                str(state_dir),
                "--no-telemetry",
                "--drivers",
                "sim,process",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.address = self._wait_for("node n1 serving on ").rsplit(" ", 1)[1]

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def _wait_for(self, text: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=60)
            except queue.Empty:
                pytest.fail(f"plba node never printed {text!r}: {self.output}")
            self.output.append(line)
            if line.startswith(text):
                return line

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def nodes() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.kill()


def workload(*args: str) -> dict | list | str:
    out = CliRunner().invoke(cli, ["workload", *args])
    assert out.exit_code == 0, out.output
    return json.loads(out.output) if "--json" in args else out.output


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_serve_drive_and_stop_on_sigterm(tmp_path, nodes):
    node = NodeProcess(tmp_path)
    nodes.append(node)
    started = workload("start", "--node", node.address, "--driver", "process", "--name", "p1", "--json")
    assert isinstance(started, dict) and started["state"] == "running" and started["kind"] == "container"
    trace = tmp_path / "t.csv"
    trace.write_text("step,a\n0,50\n")
    workload(
        "start",
        "--node",
        node.address,
        "--driver",
        "sim",
        "--name",
        "s1",
        "--trace",
        str(trace),
        "--series",
        "a",
        "--cpus",
        "2",
        "--memory",
        "128M",
        "--priority",
        "7",
    )
    listed = workload("list", "--node", node.address, "--json")
    assert isinstance(listed, list)
    assert {(w["workload_id"], w["driver"], w["priority"]) for w in listed} == {("p1", "process", 50), ("s1", "sim", 7)}
    usage = workload("usage", "--node", node.address, "--name", "s1", "--json")
    assert isinstance(usage, list) and usage[0]["cpu_cores_used"] == 1.0 and usage[0]["mem_used_bytes"] == 128 << 20
    table = workload("list", "--node", node.address)
    assert isinstance(table, str) and "s1" in table and "128Mi" in table
    assert node.terminate() == 0
    assert "node n1 stopped" in node.output
    assert gone(started["pid"])  # the node stopped its workloads
    assert list((tmp_path / "n1" / "workloads").iterdir()) == []


def test_kept_workloads_survive_and_are_adopted(tmp_path, nodes):
    first = NodeProcess(tmp_path, "--keep-workloads")
    nodes.append(first)
    started = workload("start", "--node", first.address, "--driver", "process", "--name", "p1", "--json")
    assert isinstance(started, dict)
    pid = started["pid"]
    try:
        assert first.terminate() == 0
        assert not gone(pid)
        second = NodeProcess(tmp_path)
        nodes.append(second)
        listed = workload("list", "--node", second.address, "--json")
        assert isinstance(listed, list)
        assert [(w["workload_id"], w["state"], w["pid"]) for w in listed] == [("p1", "running", pid)]
        workload("stop", "--node", second.address, "--name", "p1")
        assert gone(pid)
        assert second.terminate() == 0
    finally:
        if not gone(pid):
            psutil.Process(pid).kill()


def test_a_second_node_on_the_same_state_directory_is_refused(tmp_path, nodes):
    first = NodeProcess(tmp_path)
    nodes.append(first)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "plba.cli.main",
            "node",
            "--node-id",
            "n1",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            str(tmp_path),
            "--no-telemetry",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "is in use by node n1" in out.stderr
    assert first.terminate() == 0
