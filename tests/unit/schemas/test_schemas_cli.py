"""``plba schemas``: list, show and validate with their exit codes and messages."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from plba.cli.schemas_cmd import schemas_group
from schemas import registry

VALID = sorted(registry.EXAMPLES_DIR.glob("valid/*/*.json"))
INVALID = sorted(registry.EXAMPLES_DIR.glob("invalid/*/*.json"))


def _run(*args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(schemas_group, list(args), input=input)


def test_list_names_every_type_with_its_topic() -> None:
    out = _run("list")
    assert out.exit_code == 0, out.output
    for name in registry.TYPE_NAMES:
        assert name in out.output
    assert "plba.node-usage.v1" in out.output and "plba.migrations.v1" in out.output


def test_list_json_with_prefix() -> None:
    out = _run("list", "--json", "--topic-prefix", "staging.")
    assert out.exit_code == 0, out.output
    rows = orjson.loads(out.output)
    assert [r["type"] for r in rows] == list(registry.TYPE_NAMES)
    assert {r["topic"] for r in rows if r["type"] == "policy"} == {"staging.policies.v1"}
    assert {r["key"] for r in rows if r["type"] == "policy"} == {"subject_kind:subject"}


def test_show_prints_the_schema() -> None:
    out = _run("show", "forecast")
    assert out.exit_code == 0
    assert orjson.loads(out.output)["$id"].endswith("/forecast.schema.json")


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_validate_accepts_every_valid_example(path: Path) -> None:
    out = _run("validate", str(path), "--type", path.parent.name)
    assert out.exit_code == 0, out.output
    assert f"valid {path.parent.name} record" in out.output


@pytest.mark.parametrize("path", INVALID, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_validate_rejects_every_invalid_example_with_path_and_reason(path: Path) -> None:
    out = _run("validate", str(path), "--type", path.parent.name)
    assert out.exit_code == 1, out.output
    lines = [line for line in out.stdout.splitlines() if line]
    assert lines and all(line.startswith("$") and ": " in line for line in lines), out.stdout


def test_validate_prints_each_violation() -> None:
    path = registry.EXAMPLES_DIR / "invalid/node_usage/cpu_ratio_above_one.json"
    out = _run("validate", str(path), "--type", "node_usage")
    assert out.exit_code == 1
    assert out.stdout == "$.cpu_ratio: 1.5 is greater than the maximum of 1\n"
    assert "invalid node_usage record (schema_violation, 1 violation)" in out.stderr


def test_validate_reads_stdin() -> None:
    out = _run("validate", "-", "--type", "placement", input=b'{"schema_version": 1}')
    assert out.exit_code == 1
    assert "$.node_id: required field is missing" in out.stdout


def test_validate_wrong_type_for_a_valid_payload_is_invalid() -> None:
    out = _run("validate", str(VALID[0]), "--type", "placement")
    assert out.exit_code == 1
    assert "unknown field" in out.stdout


def test_validate_honours_the_size_limit() -> None:
    path = registry.EXAMPLES_DIR / "valid/node_usage/qemu_host.json"
    out = _run("validate", str(path), "--type", "node_usage", "--max-record-bytes", "100")
    assert out.exit_code == 1
    assert "over the limit of 100 bytes" in out.stdout


def test_validate_missing_file_exits_2(tmp_path: Path) -> None:
    out = _run("validate", str(tmp_path / "nope.json"), "--type", "order")
    assert out.exit_code == 2
    assert "cannot read" in out.stderr and "No such file or directory" in out.stderr


def test_validate_directory_exits_2(tmp_path: Path) -> None:
    out = _run("validate", str(tmp_path), "--type", "order")
    assert out.exit_code == 2
    assert "cannot read" in out.stderr


@pytest.mark.parametrize("content", [b'{"schema_version": 1,', b"not json", b"\xff\xfe{}"])
def test_validate_invalid_json_exits_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    out = _run("validate", str(path), "--type", "order")
    assert out.exit_code == 2
    assert "is not valid JSON" in out.stderr


def test_validate_empty_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"  \n")
    out = _run("validate", str(path), "--type", "order")
    assert out.exit_code == 2
    assert "is empty" in out.stderr


def test_validate_unknown_type_exits_2() -> None:
    out = _run("validate", str(VALID[0]), "--type", "orders")
    assert out.exit_code == 2
    assert "Invalid value for '--type'" in out.output and "'orders'" in out.output


def test_validate_requires_a_type() -> None:
    out = _run("validate", str(VALID[0]))
    assert out.exit_code == 2
    assert "Missing option '--type'" in out.output


def test_registered_in_the_plba_command() -> None:
    from plba.cli.main import cli

    out = CliRunner().invoke(cli, ["schemas", "list"])
    assert out.exit_code == 0, out.output
    assert "workload_usage" in out.output


def test_bench_prints_a_rate_per_type_as_json() -> None:
    out = _run("bench", "--seconds", "0.01", "--json")
    assert out.exit_code == 0, out.output
    report = orjson.loads(out.output)
    assert report["unit"] == "records_per_second"
    assert {r["type"] for r in report["results"]} == set(registry.TYPE_NAMES)
    for row in report["results"]:
        assert row["decode_per_second"] > 0 and row["jsonschema_per_second"] > 0
