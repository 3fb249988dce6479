"""``plba bench faults``: how scenario counts are merged, and its options."""

from __future__ import annotations

from click.testing import CliRunner

from plba.bench_faults import HEADLINE, merge
from plba.cli.main import cli


def test_shared_counts_add_up_and_trials_is_the_requested_number() -> None:
    per = {
        "worker-kill": {"samples_lost": 0, "duplicate_migrations": 1, "instances_not_exactly_one": 0, "seconds": 50.0},
        "executor": {"trials": 3, "duplicate_migrations": 2, "instances_not_exactly_one": 1, "rollbacks": 3},
        "bad-input": {"bad_records_injected": 10, "bad_records_in_dlq": 10, "dlq_by_reason": {"too_large": 10}},
    }
    out = merge(3, per)
    assert out["trials"] == 3
    assert out["duplicate_migrations"] == 3 and out["instances_not_exactly_one"] == 1
    assert out["rollbacks"] == 3 and out["samples_lost"] == 0 and out["scenario_errors"] == 0
    assert "dlq_by_reason" not in out and "seconds" not in out  # only integer counts are merged
    assert out["scenarios"] is per
    keys = list(out)
    present = [k for k in HEADLINE if k in out]
    assert keys[: len(present)] == present and len(present) == 6


def test_a_failed_scenario_is_counted_and_adds_nothing() -> None:
    out = merge(1, {"broker-restart": {"error": "FaultRunError: node-0 exited early"}, "bad-input": {"x": 1}})
    assert out["scenario_errors"] == 1 and out["x"] == 1
    assert "samples_lost" not in out  # not measured, so not reported
    out = merge(1, {"executor": {"scenario_errors": 2}, "worker-kill": {"error": "boom"}})
    assert out["scenario_errors"] == 3


def test_unknown_scenario_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["bench", "faults", "--scenarios", "bad-input,meteor"])
    assert result.exit_code == 2
    assert "meteor" in result.output


def test_table_shows_every_count_and_each_scenario() -> None:
    from plba.cli.bench_faults import format_table

    out = merge(1, {"bad-input": {"bad_records_injected": 10_000, "seconds": 12.0}, "executor": {"error": "boom"}})
    out["seconds"] = 20.0
    text = format_table(out)
    assert "bad_records_injected" in text and "10,000" in text
    assert "bad-input: 12 s" in text and "executor: ERROR boom" in text and "scenario_errors" in text
