"""What the demo shows: a fold of the pipeline's topics, and its rendering with rich.

``DemoState`` is fed by a consumer thread (every record of the demo's topics) and read by the
live view and the final summary; it only keeps what they show.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

TERMINAL = ("completed", "failed", "rolled_back", "rejected", "expired")


@dataclass
class NodeRow:
    node_id: str
    cpu_ratio: float = 0.0
    capacity_cores: float = 0.0
    workloads: int = 0
    forecast_upper: float | None = None  # ratio, max over the horizon
    forecast_mean: float | None = None
    forecast_lower: float | None = None
    model: str = ""
    samples: int = 0
    # Actual utilization above the trigger threshold: the replay's "overload" (streams.decisions.replay).
    over_seconds: float = 0.0
    # Actual utilization at capacity (the agent clips the ratio at 1.0: demand may have been higher).
    saturated_seconds: float = 0.0


@dataclass
class DemoState:
    threshold: float = 0.85
    nodes: dict[str, NodeRow] = field(default_factory=dict)
    orders: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    migrations: dict[str, dict[str, Any]] = field(default_factory=dict)  # order_id -> last status
    explanations: int = 0
    explained: dict[str, int] = field(default_factory=dict)  # "node decision: reason" -> count
    last_explanation: dict[str, str] = field(default_factory=dict)  # same key -> the last one, in a line
    dlq: int = 0
    forecast_errors: list[float] = field(default_factory=list)  # |forecast(1 step) - actual|, ratio
    # workload -> [(sampled_at, cpu cores)]: the load the run actually had, for the reactive replay.
    workload_cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    _pending: dict[str, tuple[float, float]] = field(default_factory=dict)  # node -> (due_at, predicted ratio)
    since: float = 0.0  # the run's start (workloads placed)
    until: float = math.inf  # the run's end: node samples after it (the shutdown) are not counted
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fold(self, role: str, rec: dict[str, Any]) -> None:
        with self.lock:
            if role == "node_usage":
                self._node_usage(rec)
            elif role == "forecasts" and rec.get("subject_kind") == "node" and rec.get("resource") == "cpu":
                self._node_forecast(rec)
            elif role == "workload_usage":
                self.workload_cpu.setdefault(rec["workload_id"], []).append(
                    (float(rec["sampled_at"]), float(rec["cpu_cores_used"]))
                )
            elif role == "orders":
                self.orders.append(rec)
            elif role == "migrations":
                self.migrations[rec["order_id"]] = rec
            elif role == "explanations":
                self.explanations += 1
                key = f"{rec.get('node_id')} {rec.get('decision')}: {rec.get('reason')}"
                self.explained[key] = self.explained.get(key, 0) + 1
                self.last_explanation[key] = _why(rec)
            elif role == "dlq":
                self.dlq += 1

    def _node_usage(self, rec: dict[str, Any]) -> None:
        row = self.nodes.setdefault(rec["node_id"], NodeRow(rec["node_id"]))
        row.cpu_ratio = float(rec["cpu_ratio"])
        row.capacity_cores = float(rec["capacity"]["cpu_cores"])
        row.workloads = len(rec["workloads"])
        row.samples += 1
        dt = float(rec["interval_seconds"]) if rec["sampled_at"] <= self.until else 0.0
        if row.cpu_ratio > self.threshold:
            row.over_seconds += dt
        if row.cpu_ratio >= 1.0:
            row.saturated_seconds += dt
        due = self._pending.get(row.node_id)
        if due is not None and rec["sampled_at"] >= due[0]:
            self.forecast_errors.append(abs(due[1] - row.cpu_ratio))
            del self._pending[row.node_id]

    def _node_forecast(self, rec: dict[str, Any]) -> None:
        row = self.nodes.setdefault(rec["node_id"], NodeRow(rec["node_id"]))
        cap = row.capacity_cores or 1.0
        scale = 1.0 if rec.get("unit") == "ratio" else 1.0 / cap
        row.forecast_upper = max(rec["upper"]) * scale
        row.forecast_mean = max(rec["mean"]) * scale
        row.forecast_lower = max(rec["lower"]) * scale
        row.model = rec.get("model", "")
        if rec["node_id"] not in self._pending:
            self._pending[rec["node_id"]] = (rec["issued_at"] + rec["horizons_seconds"][0], rec["mean"][0] * scale)

    # --- summaries ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self.lock:
            states = [m["state"] for m in self.migrations.values()]
        return {
            "orders": len(self.orders),
            "migrations_completed": states.count("completed"),
            "migrations_failed": sum(states.count(s) for s in ("failed", "rolled_back", "rejected", "expired")),
            "migrations_in_flight": sum(1 for s in states if s not in TERMINAL),
        }

    def overload_seconds(self) -> tuple[float, float]:
        """(node-seconds above the threshold, node-seconds at capacity), measured."""
        with self.lock:
            rows = list(self.nodes.values())
        return sum(r.over_seconds for r in rows), sum(r.saturated_seconds for r in rows)

    def downtime_seconds(self) -> float:
        with self.lock:
            return sum(
                float(m.get("downtime_seconds") or 0.0) for m in self.migrations.values() if m["state"] == "completed"
            )

    def forecast_mae(self) -> float | None:
        with self.lock:
            errs = list(self.forecast_errors)
        return sum(errs) / len(errs) if errs else None


def _why(rec: dict[str, Any]) -> str:
    """One line from an explanation: its decision and reason, and why candidates and targets were excluded."""
    parts = [f"{rec.get('decision')}: {rec.get('reason')}", str(rec.get("message") or "")]
    for key, ident in (("candidates", "workload_id"), ("targets", "node_id")):
        notes = [
            f"{n.get(ident)} {n.get('excluded_by') or 'ok'} {n.get('detail') or ''}".strip() for n in rec.get(key) or ()
        ]
        if notes:
            parts.append(f"{key}: " + "; ".join(notes))
    return " | ".join(p for p in parts if p)


def _bar(ratio: float, width: int = 20) -> Text:
    filled = max(0, min(width, round(ratio * width)))
    style = "red" if ratio > 1.0 else "yellow" if ratio > 0.85 else "green"
    return Text("█" * filled + "·" * (width - filled), style=style)


def render(state: DemoState, elapsed: float, duration: float, notes: list[str]) -> Group:
    nodes = Table(title=f"PLBA demo — {elapsed:5.0f} / {duration:.0f} s", expand=True)
    for col in ("node", "workloads", "cpu now", "", "forecast (mean / upper)", "interval", "model"):
        nodes.add_column(col)
    with state.lock:
        for row in sorted(state.nodes.values(), key=lambda r: r.node_id):
            fc = "—" if row.forecast_upper is None else f"{row.forecast_mean:5.0%} / {row.forecast_upper:5.0%}"
            band = "—" if row.forecast_lower is None else f"[{row.forecast_lower:4.0%}, {row.forecast_upper:4.0%}]"
            nodes.add_row(
                row.node_id, str(row.workloads), f"{row.cpu_ratio:5.0%}", _bar(row.cpu_ratio), fc, band, row.model
            )
        orders = list(state.orders)[-6:]
        migrations = dict(state.migrations)
    orders_t = Table(title="orders (newest last)", expand=True)
    for col in ("workload", "from → to", "reason", "how", "state"):
        orders_t.add_column(col)
    for o in orders:
        m = migrations.get(o["order_id"], {})
        reason = o["reason"].get("code", "")
        if o["reason"].get("resource"):
            reason += f" ({o['reason']['resource']})"
        state_txt = m.get("state", "issued")
        if m.get("state") == "completed" and m.get("downtime_seconds") is not None:
            state_txt += f" ({m['downtime_seconds'] * 1000:.0f} ms down)"
        how = m.get("method") or o.get("method", "")
        orders_t.add_row(o["workload_id"], f"{o['source_node']} → {o['target_node']}", reason, how, state_txt)
    c = state.counts()
    over, _ = state.overload_seconds()
    footer = Text(
        f"orders {c['orders']}  migrations: {c['migrations_completed']} done, {c['migrations_in_flight']} in flight, "
        f"{c['migrations_failed']} failed   overload {over:.0f} node·s (> {state.threshold:.0%})   "
        f"explanations {state.explanations}   DLQ {state.dlq}"
    )
    return Group(nodes, orders_t, footer, *(Text(n, style="dim") for n in notes[-4:]))
