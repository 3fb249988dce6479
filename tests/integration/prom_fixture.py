"""A real Prometheus for tests, and a generator of realistic PLBA metric activity.

``prometheus_server`` (pytest fixture) returns a starter: ``prom = prometheus_server({"plba-worker":
["127.0.0.1:9400"], "plba-node": [...]})`` launches ``/usr/bin/prometheus`` on a free loopback
port with tmp storage and a generated scrape config (1 s interval), waits until it is ready, and
stops it at teardown. The pipeline-level test reuses it with the real worker's and nodes' ports.

Outside CI a missing binary skips the test; with CI=true it fails (CI must not pass by skipping).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """The path of a Debian tool (prometheus, promtool, docker-compose); skip or fail if missing."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        msg = f"{name} is not installed (Debian package: apt-get install prometheus docker-compose)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrometheusServer:
    url: str
    workdir: Path
    process: subprocess.Popen[bytes]

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as resp:
            payload = json.loads(resp.read())
        assert payload["status"] == "success", payload
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("/api/v1/query", query=expr)["result"])

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.workdir / "prometheus.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll ``predicate`` until true; fail with Prometheus' log if the deadline passes."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(
                    f"prometheus exited ({self.process.returncode}) while waiting for {what}:\n{self.log_tail()}"
                )
            try:
                if predicate():
                    return
            except (OSError, urllib.error.URLError, AssertionError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.log_tail()}")
            time.sleep(0.5)

    def wait_targets_up(self, count: int, timeout: float = 60.0) -> None:
        def all_up() -> bool:
            active = self.api("/api/v1/targets", state="active")["activeTargets"]
            return len(active) == count and all(t["health"] == "up" for t in active)

        self.wait_until(f"{count} scrape targets up", all_up, timeout)

    def wait_dashboards_have_data(self, directory: Path | None = None, timeout: float = 90.0) -> Any:
        """Poll ``plba dashboards check`` until no panel is empty; fail listing the empty ones.

        Returns the last :class:`plba.dashboards.CheckReport`. The pipeline test calls this after
        its migration; rates and quantiles need a few scrapes before they have values.
        """
        from plba.dashboards import DEFAULT_DASHBOARD_DIR, check_dashboards

        folder = directory or DEFAULT_DASHBOARD_DIR
        last: list[Any] = []

        def no_empty_panel() -> bool:
            last[:] = [check_dashboards(self.url, folder)]
            return not last[0].empty

        deadline = time.monotonic() + timeout
        while not no_empty_panel():
            if self.process.poll() is not None or time.monotonic() > deadline:
                details = json.dumps(last[0].to_dict()["details"], indent=1) if last else "no report"
                pytest.fail(f"panels without data after {timeout:.0f}s:\n{details}\n{self.log_tail()}")
            time.sleep(1.0)
        return last[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def write_config(
    path: Path, targets: Mapping[str, Sequence[str]], scrape_interval: str, rule_files: Sequence[Path] = ()
) -> None:
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(addrs)}]} for job, addrs in targets.items()
        ],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def start_prometheus(
    workdir: Path,
    targets: Mapping[str, Sequence[str]],
    *,
    scrape_interval: str = "1s",
    rule_files: Sequence[Path] = (),
) -> PrometheusServer:
    binary = require_tool("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    write_config(config, targets, scrape_interval, rule_files)
    for _attempt in range(3):  # the free port can be taken between probing and binding
        port = free_port()
        log = (workdir / "prometheus.log").open("ab")
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        server = PrometheusServer(f"http://127.0.0.1:{port}", workdir, proc)

        def ready(server: PrometheusServer = server) -> bool:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)

        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if ready():
                    return server
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        server.stop()
        if "address already in use" not in server.log_tail().lower():
            break
    pytest.fail(f"prometheus did not become ready:\n{server.log_tail()}")


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """A starter of real Prometheus servers; every one started is stopped at teardown."""
    started: list[PrometheusServer] = []

    def start(targets: Mapping[str, Sequence[str]], **kwargs: Any) -> PrometheusServer:
        server = start_prometheus(tmp_path / f"prometheus-{len(started)}", targets, **kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


# --- metric activity ------------------------------------------------------------------------------
def exercise(stream: Any, fleet: Any, nodes: Sequence[Any], rng: random.Random, now: float) -> None:
    """One round of plausible activity touching every PLBA metric family.

    ``stream`` is a :class:`streams.metrics.StreamMetrics`, ``fleet`` a
    :class:`streams.metrics.FleetMetrics`, ``nodes`` :class:`agents.metrics.NodeMetrics`.
    Calling it repeatedly makes counters and histograms move, so rates and quantiles have data.
    """
    from types import SimpleNamespace

    for role in ("node_usage", "workload_usage", "forecasts", "events"):
        stream.record_consumed(role, rng.randint(1, 20))
    stream.record_rejected("workload_usage", "schema_violation")
    stream.record_dlq("workload_usage", "schema_violation")
    stream.set_lag({"workload_usage": rng.randint(0, 50), "node_usage": rng.randint(0, 5)})
    for processor in ("forecasting", "decisions", "dispatcher"):
        stream.processing_duration.labels(processor).observe(rng.uniform(0.0001, 0.01))
    stream.forecasts_published.labels("workload").inc(rng.randint(1, 10))
    stream.forecasts_published.labels("node").inc()
    stream.forecast_nominal_coverage.set(0.9)
    for kind in ("node", "workload"):
        for resource in ("cpu", "memory", "io"):
            for horizon in (60.0, 300.0):
                actual = rng.uniform(0.2, 0.8)
                stream.observe_forecast(kind, resource, horizon, actual, actual - 0.1, actual + rng.uniform(-0.05, 0.2),
                                        mean=actual + rng.uniform(-0.05, 0.05))  # fmt: skip
    stream.models_resident.set(rng.randint(50, 60))
    stream.models_evicted.inc()
    stream.set_models_in_use({"snarimax": rng.randint(10, 20), "holt_winters": 5, "ewma": 3})
    order = {"mode": "enforce", "method": "simulated", "reason": {"code": "predicted_overload", "message": ""}}
    acted = {"decision": "acted", "reason": "predicted_overload", "mode": "enforce", "candidates": [], "targets": []}
    idle = {"decision": "no_action", "reason": "no_target", "mode": "enforce",
            "candidates": [{"workload_id": "w9", "excluded_by": "cooldown"}], "targets": []}  # fmt: skip
    stream.record_decision(SimpleNamespace(orders=[order], explanations=[acted, idle]))
    stream.hot_nodes.labels("cpu").set(rng.randint(0, 2))
    stream.shadow_score.labels("precision").set(rng.random())
    stream.shadow_score.labels("recall").set(rng.random())
    utilization = {}
    for resource in ("cpu", "memory", "io"):
        actual = rng.uniform(0.3, 0.7)
        for kind, value in (("actual", actual), ("forecast", actual + 0.05), ("upper", actual + 0.15),
                            ("lower", actual - 0.1)):  # fmt: skip
            utilization[(resource, kind)] = value
        for i in range(len(nodes)):
            fleet.set_node(f"node-{i}", resource, actual=actual, forecast=actual + 0.05, upper=actual + 0.15,
                           lower=actual - 0.1)  # fmt: skip
    stream.set_fleet(len(nodes), utilization)
    stream.migrations_in_flight.labels("sim").set(rng.randint(0, 1))
    stream.record_migration(
        "sim", "completed", duration_seconds=rng.uniform(0.5, 30), downtime_seconds=rng.uniform(0.001, 0.5),
        transferred_bytes=rng.randint(1, 1 << 28),
    )  # fmt: skip
    stream.record_migration("sim", "failed")
    fleet.record_migration("w1", now)

    for node in nodes:
        node.samples_taken.labels("node").inc()
        node.samples_taken.labels("workload").inc(rng.randint(1, 8))
        node.record_skipped("overrun")
        node.sample_duration.observe(rng.uniform(0.0002, 0.005))
        node.producer_buffer.set(rng.randint(0, 10))
        node.producer_delivered.labels("workload_usage").inc(rng.randint(1, 8))
        node.record_dropped("buffer_full")
        node.record_delivery_failure(retriable=True)
        node.grpc_handled.labels("plba.executor.v1.Executor", "Migrate", "OK").inc()
        node.grpc_handling.labels("plba.executor.v1.Executor", "Migrate").observe(rng.uniform(0.5, 20))
        with node.driver_operation("sim", "usage"):
            pass
        node.set_hosted({"sim": rng.randint(2, 4)})
        for phase in ("prepare", "transfer", "switch", "commit"):
            node.record_phase("sim", phase, "ok")
        node.record_migration(
            "sim", "source", duration_seconds=rng.uniform(0.5, 30), downtime_seconds=rng.uniform(0.001, 0.5)
        )
        node.record_migration("sim", "target", duration_seconds=rng.uniform(0.5, 30))
        node.recoveries.labels("completed").inc()


class ActivityThread:
    """Calls :func:`exercise` every ``period`` seconds until stopped (a context manager)."""

    def __init__(self, stream: Any, fleet: Any, nodes: Sequence[Any], period: float = 0.25, seed: int = 7) -> None:
        self._args = (stream, fleet, nodes)
        self._period = period
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plba-metric-activity", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            exercise(*self._args, self._rng, time.time())
            self._stop.wait(self._period)

    def __enter__(self) -> ActivityThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
