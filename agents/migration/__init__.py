"""Executor-to-executor migrations (issue #6): the source coordinates, the target obeys, both journal.

* :mod:`agents.migration.manager` — :class:`MigrationManager`, one per node: Migrate (idempotent
  by order id), MigrationStatus, recovery at start.
* :mod:`agents.migration.source` — the coordinator of one outgoing order and the commit point.
* :mod:`agents.migration.target` — PrepareIncoming, Transfer, Switch, Commit, Abort.
* :mod:`agents.migration.snapshot` — checksummed chunk streaming of a state directory.
* :mod:`agents.migration.peer` — calls to other executors (deadlines, mTLS, retries).
* :mod:`agents.migration.faults` — the crash-injection test hook (``PLBA_FAULT_CRASH_AT``).
"""

from agents.migration.manager import MigrationManager

__all__ = ["MigrationManager"]
