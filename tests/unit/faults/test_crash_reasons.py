"""Worker crashes counted from a Faust log, and the reasons a failed fault run reports."""

from __future__ import annotations

from plba.faults.injection import crash_reasons, worker_crashes

LOG = """\
[2026-11-28 13:14:00,270] [1] [ERROR] [^----Agent*: forecast_nodes]: Crashed reason=PartitionsMismatch('x')
Traceback (most recent call last):
  File "/site-packages/faust/agents/agent.py", line 698, in _execute_actor
    await coro
  File "/work/streams/processors/forecasting.py", line 90, in handle
    tables[kind][key] = blob
faust.exceptions.PartitionsMismatch: x
[2026-11-28 13:14:01,000] [1] [INFO] restarting
[2026-11-28 13:14:05,351] [1] [ERROR] [^----Agent*: forecast_nodes]: Crashed reason=PartitionsMismatch('x')
Traceback (most recent call last):
  File "/work/streams/processors/forecasting.py", line 90, in handle
faust.exceptions.PartitionsMismatch: x
[2026-11-28 13:14:06,000] [1] [ERROR] [^----Agent*: route]: Crashed reason=CancelledError()
"""


def test_a_rebalance_cancel_is_no_crash_and_repeated_reasons_are_listed_once(tmp_path):
    log = tmp_path / "worker.log"
    log.write_text(LOG)
    assert worker_crashes(log, exited=False) == 2
    assert worker_crashes(log, exited=True) == 3
    assert crash_reasons(log) == [
        "Crashed reason=PartitionsMismatch('x') at File \"/work/streams/processors/forecasting.py\", line 90, in handle"
    ]


def test_no_log_no_reasons(tmp_path):
    assert crash_reasons(tmp_path / "missing.log") == [] and worker_crashes(tmp_path / "missing.log", False) == 0
