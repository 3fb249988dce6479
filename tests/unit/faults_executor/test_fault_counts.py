"""How the executor fault scenarios count: moves from the target journals, settled journals, crash points."""

from __future__ import annotations

from agents.journal import MigrationJournal
from plba.faults.executor import CRASH_CASES, crash_points, executions, journals_settled, moves, order
from plba.faults.nodes import NodeProcess
from schemas.settings import Settings


def nodes(tmp_path):
    s = Settings()
    return NodeProcess(s, "na", tmp_path, "process"), NodeProcess(s, "nb", tmp_path, "process")


def test_a_move_is_a_switched_in_a_target_journal_and_a_second_one_would_show(tmp_path):
    na, nb = nodes(tmp_path)
    src, dst = MigrationJournal(na.journal_dir), MigrationJournal(nb.journal_dir)
    out = src.create("o-1", "w1", "source", "preparing")
    src.write(out)
    assert moves([na, nb], "o-1") == 0 and not journals_settled(na, nb, "o-1")
    inc = dst.create("o-1", "w1", "target", "prepared")
    dst.write(inc)
    for phase in ("transferring", "transferred", "switched", "committed"):
        dst.write(inc, phase)
    src.write(out, "completed")
    assert moves([na, nb], "o-1") == 1 and journals_settled(na, nb, "o-1")
    # Were the same order carried out again, the target's history would switch twice.
    for phase in ("prepared", "switched", "committed"):
        dst.write(inc, phase)
    assert moves([na, nb], "o-1") == 2
    assert moves([na, nb], "o-unknown") == 0


def test_a_rolled_back_order_is_settled_once_the_target_aborted_or_never_heard_of_it(tmp_path):
    na, nb = nodes(tmp_path)
    src, dst = MigrationJournal(na.journal_dir), MigrationJournal(nb.journal_dir)
    out = src.create("o-2", "w1", "source", "rolling_back")
    src.write(out)
    src.write(out, "rolled_back")
    assert journals_settled(na, nb, "o-2")  # the target never prepared
    inc = dst.create("o-2", "w1", "target", "switched")
    dst.write(inc)
    assert not journals_settled(na, nb, "o-2")
    dst.write(inc, "aborted")
    assert journals_settled(na, nb, "o-2") and moves([na, nb], "o-2") == 1


def test_a_sim_move_has_no_target_transfer_crash_point():
    assert crash_points("process") == list(CRASH_CASES)
    assert ("target", "transfer") not in crash_points("sim") and len(crash_points("sim")) == 7


def test_orders_name_the_method_of_their_driver_and_older_ones_are_issued_earlier():
    assert (order("process", "na", "nb")["method"], order("qemu", "na", "nb")["method"]) == ("snapshot", "live")
    assert order("sim", "na", "nb")["method"] == "simulated"
    newer, older = order("process", "nb", "na"), order("process", "nb", "na", issued_ago=30.0)
    assert older["issued_at"] < newer["issued_at"] and older["order_id"] != newer["order_id"]


def test_an_execution_relayed_to_several_dispatchers_counts_once():
    step = {"order_id": "o-1", "state": "accepted", "at": 100.0}
    relayed = [dict(step), dict(step), dict(step), {**step, "state": "completed", "at": 101.0}]
    again = [{**step, "at": 200.0}]  # a second execution of the same order: a later accepted step
    assert executions(relayed) == {"o-1": 1}
    assert executions(relayed + again) == {"o-1": 2}
    assert executions([{"order_id": "o-2", "state": "rejected", "at": 5.0}]) == {}
