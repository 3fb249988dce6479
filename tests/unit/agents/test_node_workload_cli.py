"""`plba node` and `plba workload`: argument checks and clear errors (no node needed)."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from plba.cli.main import cli


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def flat(text: str) -> str:
    return " ".join(text.split())


def test_both_commands_are_offered():
    out = run("--help")
    assert "node" in out.output and "workload" in out.output


def test_help_shows_defaults_and_variables():
    assert "[default: 127.0.0.1:50051; env: PLBA_NODE_LISTEN]" in flat(run("workload", "start", "--help").output)
    text = flat(run("node", "--help").output)
    for fragment in ("env: PLBA_NODE_ID]", "env: PLBA_NODE_CAPACITY_MEMORY]", "[default: sim,process,function;"):
        assert fragment in text


def test_bad_memory_size_is_a_usage_error():
    out = run("workload", "start", "--driver", "sim", "--name", "w", "--memory", "12X")
    assert out.exit_code == 2
    assert "Invalid value for '--memory': bad size '12X': unknown unit 'X'" in out.output


def test_zero_memory_is_refused():
    out = run("workload", "start", "--driver", "sim", "--name", "w", "--memory", "0")
    assert out.exit_code == 2 and "memory must be more than 0 bytes" in out.output


def test_bad_param_syntax():
    out = run("workload", "start", "--driver", "sim", "--name", "w", "--param", "trace")
    assert out.exit_code == 2 and "'trace': write KEY=VALUE" in out.output


def test_bad_node_address():
    out = run("workload", "list", "--node", "nohost")
    assert out.exit_code == 2 and "'nohost' is not HOST:PORT" in out.output


@pytest.mark.parametrize("command", [["list"], ["stop", "--name", "w"], ["start", "--driver", "sim", "--name", "w"]])
def test_unreachable_node_is_a_clear_error(command):
    port = closed_port()
    out = run("workload", *command, "--node", f"127.0.0.1:{port}", "--timeout", "5")
    assert out.exit_code == 1
    assert f"Error: node at 127.0.0.1:{port} is unreachable" in out.output


def test_node_needs_an_id(tmp_path):
    out = run("node", "--state-dir", str(tmp_path), env={"PLBA_NODE_ID": ""})
    assert out.exit_code == 2 and "--node-id is required" in out.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--capacity-memory", "lots"], "bad size 'lots'"),
        (["--capacity-cores", "100000"], "capacity cores must be in (0,"),
        (["--labels", "zone"], "label 'zone': write key=value"),
        (["--drivers", "docker"], "unknown driver 'docker'"),
        (["--capacity-cores", "-1"], "PLBA_NODE_CAPACITY_CORES: must not be negative"),
    ],
)
def test_node_configuration_errors(tmp_path, args, message):
    out = run("node", "--node-id", "n1", "--state-dir", str(tmp_path), "--no-telemetry", *args)
    assert out.exit_code == 2
    assert message in out.output


def test_node_refuses_a_busy_port(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = run(
            "node", "--node-id", "n1", "--state-dir", str(tmp_path), "--no-telemetry", "--listen", f"127.0.0.1:{port}"
        )
    assert out.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out.output
