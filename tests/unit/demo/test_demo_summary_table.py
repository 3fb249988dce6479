"""The demo's end summary: the headline rows come first and read the JSON's figures."""

from __future__ import annotations

from rich.console import Console

from plba.cli import demo_cmd


def _render(result: dict[str, object], monkeypatch) -> str:
    console = Console(width=140, record=True)
    monkeypatch.setattr("rich.console.Console", lambda *a, **k: console)
    demo_cmd._print_summary(result)
    return console.export_text()


def test_headline_rows_show_overload_avoided_downtime_and_forecast_error(monkeypatch):
    result = {
        "orders": 3, "migrations_completed": 2, "migrations_failed": 0, "total_downtime_seconds": 0.5,
        "overload_node_seconds": 1.0, "reactive_overload_node_seconds": 5.0, "overload_seconds_avoided": 4.0,
        "predictive_replay_overload_node_seconds": 0.0, "no_action_overload_node_seconds": 33.0,
        "forecast_mae": 0.07, "overload_node_seconds_by_node": {"node-0": 1.0},
        "last_explanations": {"node-0 acted: predicted_overload": "long text"},
        "migrations": [{"workload_id": "vm-1", "from": "node-1", "to": "node-2", "reason": "maintenance_evacuation",
                        "kind": "vm live migration", "state": "completed", "downtime_seconds": 0.25}],
    }  # fmt: skip
    text = _render(result, monkeypatch)
    lines = [line for line in text.splitlines() if "│" in line]
    assert "overload avoided vs. reactive" in lines[0] and lines[0].rstrip(" │").endswith("4")
    assert "downtime, all migrations (s)" in text and "forecast error" in text and "0.07" in text
    assert "node-0: 1" in text and "long text" not in text  # per-node figures shown, explanations --json only
    assert "vm live migration" in text and "250 ms" in text


def test_missing_replay_reads_as_a_dash(monkeypatch):
    text = _render({"overload_seconds_avoided": None, "reactive_overload_node_seconds": None}, monkeypatch)
    (row,) = [line for line in text.splitlines() if "overload avoided vs. reactive" in line]
    assert row.rstrip(" │").endswith("—")
