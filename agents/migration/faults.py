"""Crash injection, a test hook: ``PLBA_FAULT_CRASH_AT=ROLE:PHASE`` makes the node exit there.

Never set it in production. The executor calls :meth:`CrashPoints.reach` at named points of a
migration; when the configured ``ROLE:PHASE`` is reached the process ends at once with
``os._exit(137)`` (what a ``kill -9`` leaves behind: no cleanup, no flush, files as they are), so
tests can prove that recovery converges from every phase. Points:

=================  ===============================================================================
source:prepare     the target prepared (reservation, incoming instance), nothing transferred yet
source:transfer    in the middle of the transfer (the workload still serves on the source)
source:switch      the target runs the workload (Switch answered), the commit point not reached
source:commit      the commit point is journaled; the target not told, the source not removed
target:prepare     the incoming instance prepared and journaled, the answer not sent
target:transfer    the first chunk of a snapshot stored
target:switch      the workload runs on the target and ``switched`` is journaled, the answer not sent
target:commit      Commit received, not journaled
=================  ===============================================================================
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

ROLES = ("source", "target")
PHASES = ("prepare", "transfer", "switch", "commit")
EXIT_CODE = 137


class CrashPoints:
    """Where this process crashes on purpose (``spec`` like ``source:transfer``; empty: never)."""

    def __init__(self, spec: str = "") -> None:
        spec = spec.strip()
        if spec:
            role, _, phase = spec.partition(":")
            if role not in ROLES or phase not in PHASES:
                points = ", ".join(f"{r}:{p}" for r in ROLES for p in PHASES)
                raise ValueError(f"crash point {spec!r}: use one of {points}")
            log.warning("crash injection armed: this node exits %d at %s (a test hook)", EXIT_CODE, spec)
        self.spec = spec

    def reach(self, role: str, phase: str) -> None:
        """End the process now if ``role:phase`` is the armed point."""
        if self.spec and self.spec == f"{role}:{phase}":
            sys.stderr.write(f"PLBA_FAULT_CRASH_AT={self.spec}: exiting {EXIT_CODE} (test hook)\n")
            sys.stderr.flush()
            os._exit(EXIT_CODE)
