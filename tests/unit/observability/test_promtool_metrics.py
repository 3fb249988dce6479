"""Every PLBA metric, exposed with samples, passes `promtool check metrics` (lint of names,
units, suffixes, help texts)."""

from __future__ import annotations

import random
import subprocess

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import NodeMetrics
from streams.metrics import FleetMetrics, StreamMetrics
from tests.integration.prom_fixture import exercise, require_tool


def _registries() -> list[CollectorRegistry]:
    """Worker, fleet and node registries with one round of activity on every family."""
    regs = [CollectorRegistry() for _ in range(3)]
    stream, fleet = StreamMetrics(regs[0]), FleetMetrics(regs[1])
    node = NodeMetrics(regs[2], drivers=("sim",))
    exercise(stream, fleet, [node], random.Random(1), now=1_000_000.0)
    return regs


def test_every_plba_family_has_samples():
    regs = _registries()
    for reg in regs:
        text = generate_latest(reg).decode()
        for family in text_string_to_metric_families(text):
            if family.name.startswith("plba_"):
                assert family.samples, f"{family.name} has no sample: exercise() must touch it"


def test_promtool_check_metrics_is_clean():
    promtool = require_tool("promtool")
    regs = _registries()
    # One text per process, as Prometheus scrapes them (the worker serves its fleet registry too).
    worker = generate_latest(regs[0]).decode() + generate_latest(regs[1]).decode()
    node = generate_latest(regs[2]).decode()
    for name, text in (("worker", worker), ("node", node)):
        out = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
        problems = (out.stdout + out.stderr).decode().strip()
        assert out.returncode == 0 and not problems, f"{name} exposition:\n{problems}"


def test_promtool_would_catch_a_bad_name():
    promtool = require_tool("promtool")
    name = "plba_bad_milliseconds_count"  # a counter without _total, a non-base unit
    bad = f"# HELP {name} x\n# TYPE {name} counter\n{name} 1\n"
    out = subprocess.run([promtool, "check", "metrics"], input=bad.encode(), capture_output=True, timeout=60)
    assert out.returncode != 0
