"""CLI parsing: help texts show defaults and variables; options override the environment."""

from __future__ import annotations

from click.testing import CliRunner

from plba.cli.main import cli


def test_root_help_lists_commands():
    out = CliRunner().invoke(cli, ["--help"])
    assert out.exit_code == 0
    for name in ("kafka", "topics", "bench"):
        assert name in out.output


def test_subcommand_help_shows_default_and_env():
    out = CliRunner().invoke(cli, ["kafka", "up", "--help"])
    assert out.exit_code == 0
    assert "[default: 9092; env: PLBA_KAFKA_PORT]" in " ".join(out.output.split())


def test_bad_option_value_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("PLBA_DATA_DIR", "/nonexistent-plba-test")
    out = CliRunner().invoke(cli, ["kafka", "status", "--kafka-port", "notaport"])
    assert out.exit_code == 2
    assert "--kafka-port: cannot read 'notaport' as int" in out.output


def test_status_of_a_broker_never_started(tmp_path):
    out = CliRunner().invoke(cli, ["kafka", "status", "--data-dir", str(tmp_path), "--kafka-port", "19999"])
    assert out.exit_code == 1
    assert "Kafka is down" in out.output


def test_unknown_command_is_refused():
    out = CliRunner().invoke(cli, ["frobnicate"])
    assert out.exit_code == 2
    assert "No such command" in out.output
