"""``plba bench report`` on a tiny trace written here: report.md, report.json and real PNG figures."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from plba.cli.main import cli
from plba.report import ReportConfig, build_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def tiny_trace(tmp_path: Path) -> Path:
    """Two days of 5-minute CPU % for 4 VMs: a daily wave, noise and short bursts."""
    rng = random.Random(3)
    path = tmp_path / "tiny.csv"
    lines = ["step_5min," + ",".join(f"vm{j}" for j in range(4))]
    for t in range(576):
        cells = []
        for j in range(4):
            v = 45 + 30 * math.sin(2 * math.pi * t / 288 + j) + rng.gauss(0, 5) + (35 if t % 97 < 3 else 0)
            cells.append(f"{min(100.0, max(0.0, v)):.2f}")
        lines.append(f"{t}," + ",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def _figures(report: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)


@pytest.mark.slow
def test_report_command_writes_markdown_and_png_figures(tiny_trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, [
        "bench", "report", "--out", str(out), "--quick", "--sections", "forecast,policy",
        "--forecast-traces", str(tiny_trace), "--policy-traces", str(tiny_trace),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text()
    figures = _figures(text)
    assert {"mae_by_horizon.png", "forecast_tiny.png", "policy_comparison.png"} <= set(figures)
    for name in figures:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    # Every number in the markdown comes from the run: the tables hold the benchmark's own figures.
    payload = orjson.loads((out / "report.json").read_bytes())
    mae = payload["sections"]["forecast"]["data"]["tiny"]["mae_median"]
    row = next(line for line in text.splitlines() if line.startswith("| plba |"))
    shown = [float(cell.replace(",", "")) for cell in row.strip("|").split("|")[1:]]
    assert shown == pytest.approx([mae["plba"][h] for h in ("1", "3", "6", "12")], rel=0.01)
    assert payload["sections"]["policy"]["status"] == "ok"
    assert set(payload["sections"]["policy"]["data"]["tiny"]["policies"]) == {"none", "reactive", "predictive"}
    # Sections not asked for say so; they are never filled in.
    assert payload["sections"]["migrate"]["status"] == "not run"
    assert payload["sections"]["pipeline"]["status"] == "not run"
    assert "## Machine" in text and "cpus:" in text
    assert f"plba bench forecast --trace {tiny_trace}" in text


def test_a_missing_trace_is_reported_not_available(tmp_path: Path) -> None:
    cfg = ReportConfig.quick_config(sections=("forecast",), forecast_traces=(str(tmp_path / "absent.csv"),))
    path = build_report(tmp_path / "out", cfg)
    text = path.read_text()
    assert "**not available**: no trace could be loaded" in text
    assert "absent" in text
    assert not list((tmp_path / "out").glob("*.png"))
    payload = orjson.loads((tmp_path / "out" / "report.json").read_bytes())
    assert payload["sections"]["forecast"]["status"] == "not available"
    assert "data" in payload["sections"]["forecast"] and "mae_median" not in str(payload)


def test_unknown_section_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["bench", "report", "--out", str(tmp_path), "--sections", "forecast,bogus"])
    assert result.exit_code == 2
    assert "bogus" in result.output
