"""Policy and safety parameters, validated when built (one frozen object per policy instance)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.decisions.cluster import RESOURCES
from streams.decisions.migration_model import MigrationModel
from streams.decisions.orders import MODES

__all__ = ["PolicyConfig", "PolicyConfigError", "SafetyConfig"]


class PolicyConfigError(ValueError):
    """A policy or safety parameter is out of range."""


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    """Rules that bound disruption whatever the policy wants (ARCHITECTURE §6.5).

    * cooldown: after a move (or a failed/expired order) a workload may not move again for
      ``cooldown_seconds x backoff_factor**(n-1)`` (capped), ``n`` = its moves and failures within
      ``backoff_window_seconds``;
    * no A->B->A: a workload never returns to a node it left less than ``ping_pong_window_seconds`` ago;
    * concurrency: in-flight orders touching a node (as source or target) <= ``max_per_node``,
      per pool <= ``max_per_pool``; orders issued within ``rate_window_seconds`` <= ``max_global_rate``;
    * disruption budget: orders per SLA tier within ``budget_window_seconds`` <= ``tier_budgets[tier]``
      (tiers not listed use ``default_tier_budget``; ``None`` = unlimited).
    """

    cooldown_seconds: float = 1800.0
    backoff_factor: float = 2.0
    max_cooldown_seconds: float = 6 * 3600.0
    backoff_window_seconds: float = 6 * 3600.0
    ping_pong_window_seconds: float = 6 * 3600.0
    max_per_node: int = 2
    max_per_pool: int = 16
    max_global_rate: int = 64
    rate_window_seconds: float = 300.0
    tier_budgets: Mapping[str, int] = field(default_factory=dict)
    default_tier_budget: int | None = None
    budget_window_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.cooldown_seconds < 0 or self.backoff_factor < 1 or self.max_cooldown_seconds < 0:
            raise PolicyConfigError("cooldown must be >= 0 and backoff_factor >= 1")
        if min(self.max_per_node, self.max_per_pool, self.max_global_rate) < 1:
            raise PolicyConfigError("concurrency and rate limits must be >= 1")
        if min(self.rate_window_seconds, self.budget_window_seconds, self.backoff_window_seconds) <= 0:
            raise PolicyConfigError("windows must be positive")
        if any(v < 0 for v in self.tier_budgets.values()):
            raise PolicyConfigError("tier budgets must be >= 0")

    def tier_budget(self, tier: str) -> int | None:
        return self.tier_budgets.get(tier, self.default_tier_budget)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Parameters of the predictive policy (the baselines read the thresholds and the mode).

    Thresholds are ratios of capacity. A node becomes hot for a resource when its forecast upper
    bound exceeds ``trigger_ratio`` (or the node's own threshold) in ``persistence`` consecutive
    cycles and stays hot until the predicted peak falls below the release threshold
    (``trigger - hysteresis_ratio``). A move "resolves" a hot node when the node's predicted peak
    after it is <= the release threshold. Targets must stay <= ``target_ratio`` on every resource
    for the whole horizon, counting the incoming workload's upper bound.
    """

    mode: str = "enforce"
    resources: tuple[str, ...] = RESOURCES
    trigger_ratio: float = 0.85
    hysteresis_ratio: float = 0.10
    target_ratio: float = 0.80
    persistence: int = 2
    decision_interval_seconds: float = 300.0
    margin_seconds: float = 60.0
    min_relief_fraction: float = 0.34  # a partial move must remove this share of the excess
    allow_partial: bool = True
    allow_swap: bool = True
    overload_fallback: bool = True  # overloaded *now*: latch at once, and a last-resort pass (below)
    young_age_seconds: float = 3600.0
    max_target_scan: int = 16
    max_target_fits: int = 3
    maintenance_guard_seconds: float = 1800.0
    evacuation_margin_seconds: float = 900.0
    deadline_factor: float = 3.0
    deadline_slack_seconds: float = 120.0
    explain_limit: int = 8
    uncertainty_scale: float = 1.0  # forecast margins (upper - mean) are used times this
    # With overload_fallback: the last resort for a node overloaded now judges moves on margins
    # times this (0: mean forecast); None: the older relaxed pass (targets up to their trigger).
    fallback_uncertainty_scale: float | None = 0.0
    act_floor_ratio: float = 0.0  # a predicted (not current) breach is acted on from this load up
    fallback_min_relief_fraction: float = 0.0  # share of that excess a last-resort move must remove
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    migration: MigrationModel = field(default_factory=MigrationModel)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise PolicyConfigError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        unknown = set(self.resources) - set(RESOURCES)
        if unknown or not self.resources:
            raise PolicyConfigError(f"resources must be a non-empty subset of {RESOURCES}")
        if not 0 < self.trigger_ratio <= 2 or not 0 < self.target_ratio <= 2:
            raise PolicyConfigError("trigger_ratio and target_ratio must be in (0, 2]")
        if not 0 <= self.hysteresis_ratio < self.trigger_ratio:
            raise PolicyConfigError("hysteresis_ratio must be in [0, trigger_ratio)")
        if self.persistence < 1 or self.decision_interval_seconds <= 0 or self.margin_seconds < 0:
            raise PolicyConfigError("persistence >= 1, decision interval > 0 and margin >= 0 required")
        if not 0 <= self.min_relief_fraction <= 1:
            raise PolicyConfigError("min_relief_fraction must be in [0, 1]")
        if self.max_target_scan < 1 or self.max_target_fits < 1 or self.explain_limit < 0:
            raise PolicyConfigError("max_target_scan and max_target_fits must be >= 1")
        if self.deadline_factor < 1 or self.deadline_slack_seconds < 0:
            raise PolicyConfigError("deadline_factor >= 1 and deadline_slack_seconds >= 0 required")

    @property
    def dry_run(self) -> bool:
        return self.mode != "enforce"
