"""Small builders for decision tests: nodes, workloads, flat or shaped forecasts, a mini replay."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from streams.decisions import POLICIES, ClusterView, Decision, EventWindow, Node, PolicyConfig, PolicyState, Workload
from streams.decisions.cluster import ResourceForecast

HORIZONS = (300.0, 600.0, 900.0, 1800.0, 3600.0)
GIB = 2**30


def node(node_id: str, cpu: float = 10.0, pool: str = "p1", **kw: object) -> Node:
    return Node(node_id, pool, {"cpu": cpu, "memory": 64 * GIB, "io": 1e9}, **kw)  # type: ignore[arg-type]


def workload(wid: str, node_id: str, priority: int = 0, **kw: object) -> Workload:
    kw.setdefault("memory_bytes", 1 * GIB)
    return Workload(wid, node_id, priority=priority, **kw)  # type: ignore[arg-type]


def make_view(
    nodes: list[Node],
    workloads: list[Workload],
    cpu: Mapping[str, float | tuple[float, ...]],
    now: float = 0.0,
    events: tuple[EventWindow, ...] = (),
    band: float = 0.0,
    **kw: object,
) -> ClusterView:
    """``cpu[wid]``: a flat load, or a tuple (load now, then one value per horizon)."""
    usage: dict[tuple[str, str], float] = {}
    forecasts: dict[tuple[str, str], ResourceForecast] = {}
    for w in workloads:
        shape = cpu.get(w.workload_id, 0.0)
        values = (shape,) * (len(HORIZONS) + 1) if isinstance(shape, (int, float)) else tuple(shape)
        usage[(w.workload_id, "cpu")] = float(values[0])
        mean = tuple(float(v) for v in values[1:])
        forecasts[(w.workload_id, "cpu")] = ResourceForecast(now, HORIZONS, mean, tuple(v + band for v in mean))
    return ClusterView(
        nodes={n.node_id: n for n in nodes},
        workloads={w.workload_id: w for w in workloads},
        horizons_seconds=HORIZONS,
        workload_forecasts=forecasts,
        workload_usage=usage,
        events=events,
        **kw,  # type: ignore[arg-type]
    )


def cpu_config(**kw: object) -> PolicyConfig:
    kw.setdefault("resources", ("cpu",))
    return PolicyConfig(**kw)  # type: ignore[arg-type]


def replay(
    policy: str,
    nodes: list[Node],
    workloads: list[Workload],
    cpu_at: Callable[[float], Mapping[str, float | tuple[float, ...]]],
    steps: int,
    config: PolicyConfig,
    events: tuple[EventWindow, ...] = (),
    step_seconds: float = 300.0,
) -> tuple[list[tuple[float, Decision]], dict[str, Workload]]:
    """Decide every step; every order completes before the next step (enforce mode)."""
    state = PolicyState()
    placed = {w.workload_id: w for w in workloads}
    out = []
    for i in range(steps):
        now = i * step_seconds
        view = make_view(nodes, list(placed.values()), cpu_at(now), now, events)
        decision = POLICIES[policy](view, now, config, state)
        out.append((now, decision))
        if not config.dry_run:
            for o in decision.orders:
                w = placed[o.workload_id]
                placed[o.workload_id] = Workload(**{**_fields(w), "node_id": o.target_node})
    return out, placed


def _fields(w: Workload) -> dict[str, object]:
    return {f: getattr(w, f) for f in w.__slots__}  # type: ignore[attr-defined]
