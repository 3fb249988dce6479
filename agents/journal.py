"""The executor's durable migration journal: one record per order in ``<node-state-dir>/migrations/``.

Every phase of a migration is written here *before* the executor acts on it (write-ahead), so a
node that crashes (kill -9) at any point finds, when it starts again, how far each migration got
and which side of the commit point it is on. Writes are atomic and durable: the record goes to a
temporary file that is fsync'ed, renamed over the old one, and the directory is fsync'ed; a crash
leaves the old record or the new one, never a torn one.

A record is a :class:`JournalEntry`: the order, the workload's spec, this executor's ``role``
(``source`` or ``target``), the ``phase`` and what the recovery needs (peer endpoint, timings,
outcome). Phases:

* source: ``preparing`` → ``transferring`` → ``switching`` → ``committing`` → ``completed``; on a
  failure before ``committing``: ``rolling_back`` → ``rolled_back`` (or ``failed``); orders refused
  up front end ``rejected`` or ``expired``. ``committing`` is the commit point: the source decided
  that the target's instance is the one that stays.
* target: ``prepared`` → ``transferring`` → ``transferred`` → ``switched`` → ``committed``, or
  ``aborted`` at any point before ``committed``. Starting the instance is not journaled ahead
  (it would lengthen the downtime): a target restarting before ``switched`` aborts, which stops
  any instance of the workload it finds. (``switching`` stays a valid phase for older records.)

Terminal records stay (a redelivered order is answered from them) until :meth:`MigrationJournal.prune`
drops the oldest.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ROLES = ("source", "target")
SOURCE_PHASES = ("preparing", "transferring", "switching", "committing", "rolling_back")
SOURCE_TERMINAL = ("completed", "rolled_back", "failed", "rejected", "expired")
TARGET_PHASES = ("prepared", "transferring", "transferred", "switching", "switched")
TARGET_TERMINAL = ("committed", "aborted")
DIR_NAME = "migrations"
SUFFIX = ".json"
_ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,252}$")
DEFAULT_KEEP_TERMINAL = 10_000
DEFAULT_MAX_AGE_SECONDS = 7 * 86400.0


class JournalError(Exception):
    """The journal cannot be read or written (bad order id, unwritable directory)."""


def check_order_id(order_id: str) -> str:
    """``order_id`` if it is a contract id (it names a file); JournalError otherwise."""
    if not isinstance(order_id, str) or not _ORDER_ID.match(order_id):
        raise JournalError(f"order id {order_id!r}: use 1-253 of [A-Za-z0-9._:@+-], starting alphanumeric")
    return order_id


@dataclass
class JournalEntry:
    """One order as this executor knows it. ``extra`` holds driver- and phase-specific facts."""

    order_id: str
    workload_id: str
    role: str
    phase: str
    created_at: float
    updated_at: float
    driver: str = ""
    method: str = ""
    order: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    peer_endpoint: str = ""
    error: dict[str, str] | None = None
    last_progress: dict[str, Any] = field(default_factory=dict)
    history: list[list[Any]] = field(default_factory=list)  # [phase, at] pairs
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_order_id(self.order_id)
        if self.role not in ROLES:
            raise JournalError(f"role {self.role!r}: must be source or target")
        known = SOURCE_PHASES + SOURCE_TERMINAL if self.role == "source" else TARGET_PHASES + TARGET_TERMINAL
        if self.phase not in known:
            raise JournalError(f"phase {self.phase!r} is not a {self.role} phase ({', '.join(known)})")

    @property
    def terminal(self) -> bool:
        return self.phase in (SOURCE_TERMINAL if self.role == "source" else TARGET_TERMINAL)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class MigrationJournal:
    """The journal of one node (see the module docstring). Not thread-safe: one event loop owns it."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self._clock = clock
        self._entries: dict[str, JournalEntry] = {}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"journal directory {self.directory}: {exc.strerror or exc}") from exc
        self._load()

    def _load(self) -> None:
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                entry = JournalEntry.from_dict(json.loads(path.read_bytes()))
            except (OSError, ValueError, TypeError, JournalError) as exc:
                log.warning("ignoring unreadable journal record %s: %s", path, exc)
                continue
            if path.name != entry.order_id + SUFFIX:
                log.warning("ignoring journal record %s: it names order %s", path, entry.order_id)
                continue
            self._entries[entry.order_id] = entry
        for tmp in self.directory.glob(".*.tmp"):  # a crash between write and rename
            tmp.unlink(missing_ok=True)

    # ---- reading ---------------------------------------------------------------------------

    def get(self, order_id: str) -> JournalEntry | None:
        return self._entries.get(order_id)

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def in_flight(self, role: str | None = None) -> list[JournalEntry]:
        """Entries not yet terminal (of ``role``), oldest first."""
        out = [e for e in self._entries.values() if not e.terminal and (role is None or e.role == role)]
        return sorted(out, key=lambda e: e.created_at)

    def active_for(self, workload_id: str, role: str) -> JournalEntry | None:
        """The in-flight entry of ``role`` moving ``workload_id``, if any."""
        for entry in self._entries.values():
            if entry.workload_id == workload_id and entry.role == role and not entry.terminal:
                return entry
        return None

    # ---- writing ---------------------------------------------------------------------------

    def create(self, order_id: str, workload_id: str, role: str, phase: str, **values: Any) -> JournalEntry:
        """A new entry (not written yet: call :meth:`write`)."""
        now = self._clock()
        entry = JournalEntry(order_id, workload_id, role, phase, created_at=now, updated_at=now, **values)
        entry.history.append([phase, now])
        return entry

    def write(self, entry: JournalEntry, phase: str | None = None, **values: Any) -> JournalEntry:
        """Set ``phase`` and attribute ``values`` on ``entry``, then store it durably.

        Returns once the record is on disk (fsync of the file and of the directory). Raises
        JournalError if it cannot be written; the entry in memory is then unchanged.
        """
        updated = JournalEntry.from_dict({**entry.to_dict(), **values})
        now = self._clock()
        if phase is not None and phase != updated.phase:
            updated.phase = phase
            updated.history = [*updated.history, [phase, now]]
            updated.__post_init__()
        updated.updated_at = now
        self._store(updated)
        for f in fields(entry):
            setattr(entry, f.name, getattr(updated, f.name))
        self._entries[entry.order_id] = entry
        return entry

    def _store(self, entry: JournalEntry) -> None:
        path = self.directory / (entry.order_id + SUFFIX)
        tmp = self.directory / f".{entry.order_id}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            data = json.dumps(entry.to_dict(), sort_keys=True, allow_nan=False).encode()
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except (OSError, ValueError) as exc:
            tmp.unlink(missing_ok=True)
            raise JournalError(f"cannot write journal record {path}: {exc}") from exc

    def prune(
        self, *, keep_terminal: int = DEFAULT_KEEP_TERMINAL, max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    ) -> int:
        """Drop terminal entries older than ``max_age_seconds`` or beyond the newest ``keep_terminal``.

        In-flight entries are never dropped. Returns how many were removed.
        """
        now = self._clock()
        terminal = sorted((e for e in self._entries.values() if e.terminal), key=lambda e: e.updated_at, reverse=True)
        doomed = [e for i, e in enumerate(terminal) if i >= keep_terminal or now - e.updated_at > max_age_seconds]
        for entry in doomed:
            (self.directory / (entry.order_id + SUFFIX)).unlink(missing_ok=True)
            del self._entries[entry.order_id]
        return len(doomed)
