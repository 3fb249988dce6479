"""Every Grafana panel has data from a real Prometheus scraping a running PLBA pipeline.

The demo's pipeline (real broker, worker, four nodes with sim workloads, a maintenance window that
forces migrations) runs with /metrics on; a real Prometheus scrapes the worker and the nodes, and
`plba dashboards check` must find data in every panel of every provisioned dashboard.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from agents.client import RecordPublisher
from agents.triggers import build_event, publish_event
from plba.demo import DemoConfig, run_demo
from schemas.settings import Settings
from tests.integration.prom_fixture import prometheus_server  # noqa: F401 - pytest fixture

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_dashboards_have_data_from_a_running_pipeline(kafka_bootstrap, prometheus_server):  # noqa: F811
    started = threading.Event()
    box: dict[str, Any] = {}

    def on_start(targets: dict[str, list[str]], settings: Settings) -> None:
        box["settings"] = settings
        # A 2 s scrape interval (and timeout): the loaded CI machine must not turn slow scrapes into gaps.
        box["prom"] = prometheus_server(targets, scrape_interval="2s")
        started.set()

    def run() -> None:
        try:
            box["result"] = run_demo(
                Settings.from_env(), DemoConfig(duration_seconds=200.0, metrics=True), on_start=on_start,
                log=lambda _m: None,
            )  # fmt: skip
        except BaseException as exc:  # reported by the main thread
            box["error"] = exc
            started.set()

    demo = threading.Thread(target=run, name="demo", daemon=True)
    demo.start()
    assert started.wait(120), "the pipeline did not start"
    assert "error" not in box, box.get("error")
    prom = box["prom"]
    prom.wait_targets_up(5, timeout=60)
    # Rates and quantiles only see what happens while Prometheus scrapes: announce a maintenance
    # window now, so that migrations (and their downtime figures) surely fall inside its window.
    now = time.time()
    event = build_event("maintenance", starts_at=now + 40, ends_at=now + 400, scope={"nodes": ["node-2"]}, now=now)
    with RecordPublisher(box["settings"]) as pub:
        publish_event(pub, event)
    report = prom.wait_dashboards_have_data(timeout=170)
    assert report.dashboards == 5 and len(report.results) > 30 and not report.empty
    demo.join(300)
    assert "error" not in box, box.get("error")
    assert box["result"]["migrations_completed"] > 0
