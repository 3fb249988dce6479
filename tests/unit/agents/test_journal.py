"""The migration journal: durable, atomic, validated; what a restarted node reads back."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.journal import SOURCE_PHASES, SOURCE_TERMINAL, JournalError, MigrationJournal, check_order_id


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def test_entries_survive_a_restart(tmp_path):
    journal = MigrationJournal(tmp_path, Clock())
    entry = journal.create("o-1", "w1", "source", "preparing", driver="process", order={"order_id": "o-1"})
    journal.write(entry)
    journal.write(entry, "transferring", extra={"reserved_until_at": 5.0})
    journal.write(entry, "switching")
    again = MigrationJournal(tmp_path)
    got = again.get("o-1")
    assert got is not None and got.phase == "switching" and got.extra == {"reserved_until_at": 5.0}
    assert [phase for phase, _at in got.history] == ["preparing", "transferring", "switching"]
    assert got.order == {"order_id": "o-1"} and got.driver == "process" and not got.terminal
    assert [e.order_id for e in again.in_flight("source")] == ["o-1"] and again.in_flight("target") == []
    assert again.active_for("w1", "source") is got and again.active_for("w1", "target") is None


def test_terminal_entries_are_not_in_flight(tmp_path):
    journal = MigrationJournal(tmp_path, Clock())
    for i, phase in enumerate(("completed", "committed")):
        role = "source" if phase == "completed" else "target"
        journal.write(journal.create(f"o-{i}", "w", role, phase))
    assert journal.in_flight() == [] and all(e.terminal for e in journal)


@pytest.mark.parametrize(
    ("role", "phase"), [("source", "prepared"), ("target", "completed"), ("target", "nope"), ("both", "prepared")]
)
def test_phases_belong_to_their_role(tmp_path, role, phase):
    journal = MigrationJournal(tmp_path)
    with pytest.raises(JournalError):
        journal.create("o-1", "w", role, phase)


@pytest.mark.parametrize("order_id", ["", "../etc", "a/b", " x", "x" * 254, ".hidden"])
def test_order_ids_that_cannot_be_file_names_are_refused(order_id):
    with pytest.raises(JournalError):
        check_order_id(order_id)


def test_a_failed_write_changes_nothing(tmp_path):
    journal = MigrationJournal(tmp_path, Clock())
    entry = journal.create("o-1", "w", "source", "preparing")
    journal.write(entry)
    with pytest.raises(JournalError):
        journal.write(entry, "transferring", extra={"bad": math.nan})  # not JSON: never half-written
    assert entry.phase == "preparing" and entry.extra == {}
    assert MigrationJournal(tmp_path).get("o-1").phase == "preparing"  # type: ignore[union-attr]
    assert not list(tmp_path.glob(".*.tmp"))


def test_torn_and_foreign_files_are_ignored(tmp_path):
    journal = MigrationJournal(tmp_path, Clock())
    journal.write(journal.create("o-1", "w", "target", "prepared"))
    (tmp_path / ".o-2.abcd1234.tmp").write_text('{"order_id": "o-2", "wor')  # a crash before the rename
    (tmp_path / "o-3.json").write_text("{not json")
    (tmp_path / "o-4.json").write_text(json.dumps({**journal.get("o-1").to_dict(), "order_id": "o-5"}))  # type: ignore[union-attr]
    again = MigrationJournal(tmp_path)
    assert [e.order_id for e in again] == ["o-1"]
    assert not (tmp_path / ".o-2.abcd1234.tmp").exists()


def test_prune_drops_old_terminal_entries_only(tmp_path):
    clock = Clock()
    journal = MigrationJournal(tmp_path, clock)
    for i in range(5):
        journal.write(journal.create(f"done-{i}", "w", "source", "completed"))
    journal.write(journal.create("running", "w", "source", "switching"))
    clock.t += 10_000
    journal.write(journal.create("recent", "w", "target", "aborted"))
    assert journal.prune(keep_terminal=10, max_age_seconds=5_000) == 5
    assert sorted(e.order_id for e in journal) == ["recent", "running"]
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == ["recent", "running"]
    assert journal.prune(keep_terminal=0) == 1 and [e.order_id for e in journal] == ["running"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(SOURCE_PHASES + SOURCE_TERMINAL), min_size=1, max_size=8))
def test_a_reload_sees_the_last_write(tmp_path_factory, phases):
    directory = tmp_path_factory.mktemp("j")
    journal = MigrationJournal(directory, Clock())
    entry = journal.create("o-1", "w", "source", phases[0])
    for phase in phases:
        journal.write(entry, phase)
    got = MigrationJournal(directory).get("o-1")
    assert got is not None and got.phase == phases[-1] and got.to_dict() == entry.to_dict()
