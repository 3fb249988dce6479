"""Grafana dashboards as code: the source of ``compose/grafana/dashboards/*.json``.

The panels are declared as plain data in :mod:`plba.dashboards_spec` and rendered here with
the Grafana Foundation SDK (``grafana-foundation-sdk``, Grafana 11.6 schema; a dev tool: only
generation needs it, ``plba dashboards check`` reads the JSON). The committed JSON is what
Grafana provisions; regenerate it after editing the spec and commit both::

    python -m plba.dashboards_gen            # or: plba dashboards generate
    python -m plba.dashboards_gen --check    # exit 1 if the committed JSON differs

The drift check also runs as a unit test, so a dashboard edited only in JSON fails CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

from plba.dashboards_spec import DASHBOARDS, Dashboard, Panel, Var
from schemas.settings import REPO_ROOT

DASHBOARD_DIR = REPO_ROOT / "compose" / "grafana" / "dashboards"
DATASOURCE_UID = "plba-prometheus"  # compose/grafana/provisioning/datasources/prometheus.yml
SDK_REQUIREMENT = "grafana-foundation-sdk==1769699379!11.6.0"
_DS = models.DataSourceRef(type_val="prometheus", uid="${datasource}")

PanelBuilder = timeseries.Panel | stat.Panel | bargauge.Panel


def _band_overrides(builder: timeseries.Panel) -> None:
    dv = models.DynamicConfigValue
    builder.override_by_name(
        "upper", [dv("custom.fillBelowTo", "lower"), dv("custom.fillOpacity", 20), dv("custom.lineWidth", 0)]
    )
    builder.override_by_name("lower", [dv("custom.lineWidth", 0)])
    builder.override_by_name("forecast", [dv("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})])
    builder.override_by_name("actual", [dv("custom.lineWidth", 2)])


def _panel(p: Panel, panel_id: int, x: int, y: int) -> PanelBuilder:
    builder: PanelBuilder
    if p.kind == "timeseries":
        builder = timeseries.Panel().fill_opacity(25 if p.stack else 5).line_width(1)
        if p.stack:
            builder.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        if p.band:
            _band_overrides(builder)
    elif p.kind == "stat":
        builder = stat.Panel()
    elif p.kind == "bargauge":
        builder = bargauge.Panel().orientation(common.VizOrientation.HORIZONTAL)
    else:
        raise ValueError(f"panel {p.title!r}: unknown kind {p.kind!r}")
    builder.id(panel_id).title(p.title).unit(p.unit).datasource(_DS)
    builder.grid_pos(models.GridPos(h=p.h, w=p.w, x=x, y=y))
    if p.description:
        builder.description(p.description)
    if p.min is not None:
        builder.min(p.min)
    if p.max is not None:
        builder.max(p.max)
    for i, q in enumerate(p.queries):
        target = prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i))
        if q.legend:
            target.legend_format(q.legend)
        if q.instant:
            target.instant()
        builder.with_target(target)
    if p.repeat:
        builder.repeat(p.repeat).repeat_direction("h").max_per_row(3)
    return builder


def _variable(v: Var) -> dashboard_builders.QueryVariable | dashboard_builders.CustomVariable:
    var: dashboard_builders.QueryVariable | dashboard_builders.CustomVariable
    if v.query:
        var = (
            dashboard_builders.QueryVariable(v.name)
            .label(v.label)
            .query(v.query)
            .datasource(_DS)
            .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(models.VariableSort.ALPHABETICAL_ASC)
        )
    else:
        var = dashboard_builders.CustomVariable(v.name).label(v.label).values(",".join(v.values))
    if v.multi:
        var.multi(True).include_all(True).all_value(".*")
        var.current(models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    elif v.current is not None:
        var.current(models.VariableOption(selected=True, text=v.current, value=v.current))
    return var


def build(d: Dashboard) -> dict[str, Any]:
    """The Grafana JSON model of one dashboard."""
    builder = (
        dashboard_builders.Dashboard(d.title)
        .uid(d.uid)
        .description(d.description)
        .tags(["plba"])
        .editable()
        .time("now-1h", "now")
        .refresh("10s")
        .timezone("browser")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
    )
    builder.with_variable(
        dashboard_builders.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(models.VariableOption(selected=True, text="Prometheus", value=DATASOURCE_UID))
    )
    for v in d.variables:
        builder.with_variable(_variable(v))
    panel_id, y = 1, 0
    for row in d.rows:
        builder.with_row(dashboard_builders.Row(row.title).id(panel_id).grid_pos(models.GridPos(h=1, w=24, x=0, y=y)))
        panel_id, y = panel_id + 1, y + 1
        x, line_h = 0, 0
        for p in row.panels:
            if x + p.w > 24:  # wrap to the next line of the grid
                x, y, line_h = 0, y + line_h, 0
            builder.with_panel(_panel(p, panel_id, x, y))
            panel_id, x, line_h = panel_id + 1, x + p.w, max(line_h, p.h)
        y += line_h
    model: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return model


def render(d: Dashboard) -> str:
    return json.dumps(build(d), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate(out_dir: Path = DASHBOARD_DIR) -> list[Path]:
    """Write every dashboard's JSON; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for d in DASHBOARDS:
        path = out_dir / d.file
        path.write_text(render(d), encoding="utf-8")
        written.append(path)
    return written


def drift(out_dir: Path = DASHBOARD_DIR) -> list[str]:
    """Names of dashboard files that differ from the generated ones: changed, missing, or stray
    JSON files that no dashboard generates."""
    expected = {d.file: render(d) for d in DASHBOARDS}
    stale = [name for name, text in expected.items() if _read(out_dir / name) != text]
    stray = sorted(p.name for p in out_dir.glob("*.json") if p.name not in expected) if out_dir.is_dir() else []
    return stale + stray


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plba.dashboards_gen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON differs from the source")
    parser.add_argument("--dir", type=Path, default=DASHBOARD_DIR, help=f"output folder (default {DASHBOARD_DIR})")
    args = parser.parse_args(argv)
    if args.check:
        stale = drift(args.dir)
        for name in stale:
            print(f"{args.dir / name}: differs from plba/dashboards_spec.py; run python -m plba.dashboards_gen")
        return 1 if stale else 0
    for path in generate(args.dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
