"""The no-op baseline: never moves anything (the "none" policy of the replay benchmark)."""

from __future__ import annotations

from streams.decisions.cluster import ClusterView
from streams.decisions.config import PolicyConfig
from streams.decisions.orders import Decision
from streams.decisions.safety import PolicyState

__all__ = ["decide"]


def decide(view: ClusterView, now: float, config: PolicyConfig, state: PolicyState) -> Decision:
    """An empty decision, whatever the view."""
    return Decision()
