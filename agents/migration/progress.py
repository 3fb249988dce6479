"""Progress of one order, as the dispatcher reads it through ``Migrate``.

A :class:`MigrationRun` is the list of lifecycle steps (``MigrationProgress`` messages) of one
order in this process, with a wake-up for readers. A Migrate call for a new order reads every
step from the first; a call that re-attaches reads from the latest step on, so a redelivered
order replays where the migration is (or how it ended), not its whole history.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import json_format

from schemas import executor_pb2 as pb

TERMINAL = frozenset({"completed", "failed", "rolled_back", "rejected", "expired"})


def progress_to_dict(progress: pb.MigrationProgress) -> dict[str, Any]:
    """A progress message as JSON-able data (for the journal)."""
    return json_format.MessageToDict(progress, preserving_proto_field_name=True)


def progress_from_dict(data: dict[str, Any]) -> pb.MigrationProgress:
    msg = pb.MigrationProgress()
    if data:
        json_format.ParseDict(data, msg, ignore_unknown_fields=True)
    return msg


class MigrationRun:
    """The steps of one order; :meth:`follow` streams them to any number of readers."""

    def __init__(self, order_id: str, workload_id: str) -> None:
        self.order_id = order_id
        self.workload_id = workload_id
        self.steps: list[pb.MigrationProgress] = []
        self._changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return bool(self.steps) and self.steps[-1].state in TERMINAL

    @property
    def last(self) -> pb.MigrationProgress | None:
        return self.steps[-1] if self.steps else None

    def publish(self, step: pb.MigrationProgress) -> None:
        if self.done:
            return
        self.steps.append(step)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self, *, from_start: bool) -> AsyncIterator[pb.MigrationProgress]:
        """Steps until the terminal one: all of them, or from the latest when re-attaching."""
        index = 0 if from_start else max(len(self.steps) - 1, 0)
        while True:
            while index < len(self.steps):
                step = self.steps[index]
                index += 1
                yield step
                if step.state in TERMINAL:
                    return
            await self._changed.wait()
