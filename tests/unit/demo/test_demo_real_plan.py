"""The real demo's plan, specs, summary of moves and the state's overload accounting (no processes started)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from agents.drivers.trace_series import load_series
from plba import demo_real
from plba.demo import DemoConfig, DemoError, plan
from plba.demo_burner import target_cores
from plba.demo_view import DemoState
from schemas.settings import Settings


def test_real_mode_is_three_nodes_whatever_nodes_says():
    assert DemoConfig(nodes=8, real=True).nodes == 3
    assert DemoConfig(nodes=8).nodes == 8
    with pytest.raises(DemoError, match="alibaba"):
        DemoConfig(real=True, trace="bitbrains")


def test_the_plan_puts_two_burners_on_node_0_and_vms_on_the_others():
    cfg = DemoConfig(real=True, duration_seconds=80)
    ps = plan(cfg)
    by_node = {n: [p for p in ps if p.node_index == n] for n in range(3)}
    assert [p.driver for p in by_node[0]] == ["process", "process"]
    assert {p.driver for p in by_node[1]} == {"qemu", "process"} and [p.driver for p in by_node[2]] == ["qemu"]
    # The burner that may move is the lower-priority one.
    assert min(by_node[0], key=lambda p: p.priority).workload_id == "burn-0-b"
    # Node 0's series climb within the run (at x300, one 5-minute step per second).
    rise_at = (demo_real.RISE_STEP * 300.0 - by_node[0][0].offset_seconds) / cfg.speed
    assert 0.25 * cfg.duration_seconds < rise_at < 0.6 * cfg.duration_seconds
    # Top of the climb: node 0's two burners together need more than the node offers.
    s = Settings()
    top = sum(
        target_cores(load_series("alibaba", p.series, traces_dir=s.traces_dir), 0.0, anchor=0.0,
                     offset=(demo_real.RISE_STEP + 16) * 300.0, speed=cfg.speed, cores=p.cores)
        for p in by_node[0]
    )  # fmt: skip
    assert top > demo_real.REAL_NODE_CORES


def test_specs_run_the_burner_as_a_process_and_the_vm_under_qemu(tmp_path):
    cfg = DemoConfig(real=True)
    vm, burner = (next(p for p in plan(cfg) if p.driver == d) for d in ("qemu", "process"))
    v = demo_real.real_spec(cfg, vm, 1000.0, tmp_path)
    assert (v.driver, v.kind, v.memory_bytes, v.params["ram_fill"]) == ("qemu", "vm", 64 << 20, "random")
    b = demo_real.real_spec(cfg, burner, 1000.0, tmp_path)
    argv = shlex.split(b.params["command"])
    assert (b.driver, b.kind, b.params["port"], b.params["standby"]) == ("process", "container", "none", "yes")
    assert argv[1:3] == ["-m", "plba.demo_burner"] and argv[argv.index("--anchor-at") + 1] == "1000.000"
    assert argv[argv.index("--traces-dir") + 1] == str(tmp_path)


def test_moves_are_listed_with_how_and_why():
    orders = [{"order_id": "o1", "reason": {"code": "maintenance_evacuation"}}]
    migrations = {
        "o1": {"order_id": "o1", "workload_id": "vm-1", "state": "completed", "at": 2.0, "driver": "qemu",
               "method": "live", "source_node": "node-1", "target_node": "node-2", "downtime_seconds": 0.2,
               "transferred_bytes": 70 << 20},
        "o2": {"order_id": "o2", "workload_id": "burn-0-b", "state": "failed", "at": 1.0, "driver": "process",
               "method": "snapshot", "source_node": "node-0", "target_node": "node-2"},
    }  # fmt: skip
    out = demo_real.migration_kinds(migrations, orders)
    assert [(m["workload_id"], m["kind"], m["reason"], m["state"]) for m in out] == [
        ("burn-0-b", "process snapshot transfer", None, "failed"),
        ("vm-1", "vm live migration", "maintenance_evacuation", "completed"),
    ]


def _usage(node: str, at: float, ratio: float) -> dict[str, object]:
    return {"node_id": node, "cpu_ratio": ratio, "capacity": {"cpu_cores": 0.45}, "workloads": [],
            "interval_seconds": 1.0, "sampled_at": at}  # fmt: skip


def test_overload_counts_seconds_above_the_threshold_until_the_run_ends():
    st = DemoState(threshold=0.85)
    for at, ratio in ((1.0, 0.5), (2.0, 0.9), (3.0, 1.0), (4.0, 0.86)):
        st.fold("node_usage", _usage("n0", at, ratio))
    st.until = 4.5
    st.fold("node_usage", _usage("n0", 5.0, 1.0))  # during shutdown: not counted
    assert st.overload_seconds() == (3.0, 1.0)
    st.fold("workload_usage", {"workload_id": "w", "sampled_at": 2.0, "cpu_cores_used": 0.3})
    assert st.workload_cpu == {"w": [(2.0, 0.3)]}


def test_tidy_drops_the_fill_files_and_keeps_the_logs(tmp_path: Path):
    fill = tmp_path / "nodes" / "node-0" / "qemu" / ".fill"
    fill.mkdir(parents=True)
    (fill / "random-64M.bin").write_bytes(b"x")
    (tmp_path / "node-0.log").write_text("log")
    demo_real.tidy(tmp_path)
    assert not fill.exists() and (tmp_path / "node-0.log").exists()
