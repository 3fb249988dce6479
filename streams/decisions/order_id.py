"""Deterministic order ids: the same decision in a replay or after a restart gets the same id.

The id hashes what the order *is* (workload, source, target, reason) and the decision step
(``floor(now / interval)``), never a clock or a counter, so a redelivered or recomputed order is
recognised by executors as a duplicate.

>>> make_order_id("w1", "n1", "n2", "predicted_overload", 1000.0, 300.0)
'ord-43772cb6d5f9f5fdaa75a7326073f3ec'
>>> make_order_id("w1", "n1", "n2", "predicted_overload", 1199.0, 300.0)  # same cycle, same id
'ord-43772cb6d5f9f5fdaa75a7326073f3ec'
"""

from __future__ import annotations

import hashlib
import math

__all__ = ["decision_step", "make_order_id"]


def decision_step(now: float, interval_seconds: float) -> int:
    """The index of the decision cycle containing ``now``."""
    return math.floor(now / interval_seconds)


def make_order_id(
    workload_id: str, source_node: str, target_node: str, reason_code: str, now: float, interval_seconds: float
) -> str:
    """``ord-`` + 32 hex digits of blake2b over the order's identity and its decision step."""
    step = decision_step(now, interval_seconds)
    key = "\x1f".join((workload_id, source_node, target_node, reason_code, str(step)))
    return "ord-" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
