"""Executor fault scenarios with real `plba node` processes (issue #9, item 1): every count measured.

One trial of :func:`plba.faults.executor.run_executor_faults`: kill -9 at each crash point of a
process move (8) and a sim move (7); a link cut in the middle of a snapshot transfer and, with
QEMU, in the middle of a live migration's pre-copy stream; duplicate and reordered orders over
gRPC and through the broker and `plba dispatcher`. The faults must really have happened (15
crashes, cuts that severed live connections, the duplicates sent) and the executors must have
coped (the promised outcomes, one instance everywhere, no order moving a workload twice, no
stale order executed).
"""

from __future__ import annotations

import pytest

from plba.faults.executor import CRASH_CASES, CRASH_DRIVERS, crash_points, run_executor_faults
from plba.faults.qemu_cut import qemu_cut_possible

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_executor_faults_one_trial(base_settings, kafka_bootstrap, tmp_path):
    lines: list[str] = []
    counts = run_executor_faults(base_settings, tmp_path, 1, lines.append)
    why = "\n".join(lines)

    # The faults happened.
    assert counts["trials"] == 1
    points = [(role, phase) for driver in CRASH_DRIVERS for role, phase in crash_points(driver)]
    assert counts["phase_crashes"] == len(points) == 15 and counts["crash_points_not_reached"] == 0, why
    # The snapshot link cut always; the QEMU live-migration stream cut where QEMU and ss -K work.
    assert counts["qemu_link_cuts"] + counts["qemu_link_cuts_skipped"] == 1, why
    assert counts["qemu_link_cuts"] == (1 if qemu_cut_possible() is None else 0), why
    assert counts["link_cuts"] == 1 + counts["qemu_link_cuts"], why
    # Over gRPC: 4 duplicates, 2 stale orders; through Kafka: 2 duplicates, 3 stale ones (one racing
    # a newer order), and the 6 orders read again by a second dispatcher.
    assert counts["kafka_orders_skipped"] == 0, why
    assert counts["duplicate_orders_sent"] == 6 and counts["reordered_orders_sent"] == 5, why
    assert counts["orders_redelivered"] == 6 and counts["reorder_races"] == 1, why
    # The executors coped.
    assert counts["scenario_errors"] == 0, why
    assert counts["phase_crash_unexpected_outcomes"] == 0, why
    expected_completed = sum(CRASH_CASES[point] == "completed" for point in points)
    assert counts["phase_crash_completed"] == expected_completed, why
    assert counts["phase_crash_rolled_back"] == len(points) - expected_completed, why
    assert counts["rollbacks"] == counts["link_cuts"], why
    assert counts["target_aborts_after_cut"] == counts["moves_after_heal"] == counts["link_cuts"], why
    assert counts["duplicate_migrations"] == 0, why
    assert counts["stale_orders_executed"] == 0 and counts["orders_moved_wrongly"] == 0, why
    # The dispatcher keeps one workload's orders in sequence and supersedes older ones; the
    # second dispatcher, which never saw the orders, repeats every outcome.
    assert counts["reorder_races_won_by_older"] == 0 and counts["kafka_replays_contradicting"] == 0, why
    # 15 crash scenarios, each cut and the move after it, the duplicates: one instance each time.
    assert counts["instances_checked"] == len(points) + 2 * counts["link_cuts"] + 2, why
    assert counts["instances_not_exactly_one"] == 0 and counts["instances_on_wrong_node"] == 0, why
    # The counter workload's state went on through every process scenario (8 crashes, cut and move, duplicates).
    assert counts["workload_states_checked"] == len(crash_points("process")) + 3, why
    assert counts["workload_state_lost"] == 0, why


def test_trials_must_be_positive(base_settings, tmp_path):
    with pytest.raises(ValueError, match="trials"):
        run_executor_faults(base_settings, tmp_path, 0)
