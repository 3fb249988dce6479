"""compose/docker-compose.yml is valid for docker-compose and everything it mounts exists."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from schemas.settings import REPO_ROOT
from tests.integration.prom_fixture import require_tool

COMPOSE = REPO_ROOT / "compose"


def _resolved() -> dict:  # type: ignore[type-arg]
    tool = require_tool("docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLBA_", "COMPOSE_"))}
    out = subprocess.run(
        [tool, "-f", str(COMPOSE / "docker-compose.yml"), "config"],
        capture_output=True, text=True, timeout=120, env=env, cwd=COMPOSE,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)  # type: ignore[no-any-return]


def test_config_is_valid_and_has_every_role():
    services = _resolved()["services"]
    assert {"kafka", "topics", "worker", "dispatcher", "prometheus", "grafana", "workloads"} <= set(services)
    assert len([s for s in services if s.startswith("node-")]) >= 3
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("worker", "dispatcher", "node-1"):
        assert services[name]["environment"]["PLBA_METRICS_ADDR"] == "0.0.0.0"
        assert services[name]["build"]["dockerfile"] == "compose/Dockerfile"
    assert "--drivers" in services["node-1"]["command"] and "sim" in services["node-1"]["command"]


def test_every_mounted_file_exists():
    config = _resolved()
    named = set(config.get("volumes") or {})
    checked = 0
    for name, service in config["services"].items():
        for volume in service.get("volumes") or ():
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source in named:
                continue
            assert Path(source).is_absolute(), f"{name}: {volume}"
            assert Path(source).exists(), f"{name} mounts {source}, which does not exist"
            checked += 1
    assert checked >= 5


def test_the_image_copies_only_what_exists():
    lines = (COMPOSE / "Dockerfile").read_text().splitlines()
    sources = [p for line in lines if line.startswith("COPY ") for p in line.split()[1:-1]]
    assert "pyproject.toml" in sources
    for src in sources:
        assert (REPO_ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"
    packages = {p.split(".")[0] for p in _declared_packages()}
    assert packages <= {Path(s).name for s in sources}, "every declared package must be copied into the image"


def _declared_packages() -> list[str]:
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return list(project["tool"]["setuptools"]["packages"])
