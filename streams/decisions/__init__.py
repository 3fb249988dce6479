"""The decision core: pure, deterministic policies over a :class:`ClusterView` (ARCHITECTURE §6).

Every policy has the signature ``decide(view, now, config, state) -> Decision`` and is selected
by name from :data:`POLICIES` (``none``, ``reactive``, ``predictive``). The same functions run in
the Faust decision processor, in the replay benchmark and in tests.
"""

from __future__ import annotations

from typing import Protocol

from streams.decisions import noop, policy, reactive
from streams.decisions.cluster import RESOURCES, ClusterView, EventWindow, InFlight, Node, ResourceForecast, Workload
from streams.decisions.config import PolicyConfig, PolicyConfigError, SafetyConfig
from streams.decisions.explain import Explanation
from streams.decisions.orders import Decision, Order, Reason
from streams.decisions.safety import PolicyState
from streams.decisions.shadow import ShadowScorer

__all__ = [
    "POLICIES",
    "RESOURCES",
    "ClusterView",
    "Decide",
    "Decision",
    "EventWindow",
    "Explanation",
    "InFlight",
    "Node",
    "Order",
    "PolicyConfig",
    "PolicyConfigError",
    "PolicyState",
    "Reason",
    "ResourceForecast",
    "SafetyConfig",
    "ShadowScorer",
    "Workload",
]


class Decide(Protocol):
    def __call__(self, view: ClusterView, now: float, config: PolicyConfig, state: PolicyState) -> Decision: ...


POLICIES: dict[str, Decide] = {"none": noop.decide, "reactive": reactive.decide, "predictive": policy.decide}
