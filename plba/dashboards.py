"""Evaluate every panel query of the provisioned Grafana dashboards against a real Prometheus.

``plba dashboards check`` uses this to say which panels would show "No data": each target's
expression is taken from the dashboard JSON, its variables are substituted the way Grafana
would (built-ins such as ``$__rate_interval`` by fixed durations, template variables by their
default value, or ``.*`` for multi-value/"All" ones) and it is sent to Prometheus' HTTP API —
``/api/v1/query`` at the current instant, or ``/api/v1/query_range`` over a window when asked.
A target has data when at least one returned sample is a number (``NaN`` — e.g. a quantile of
an empty histogram window — is not data). A panel is reported empty when any visible target of
it has no data, so one mistyped series in a multi-query panel is caught too.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.settings import REPO_ROOT

DEFAULT_DASHBOARD_DIR = REPO_ROOT / "compose" / "grafana" / "dashboards"

__all__ = [
    "DEFAULT_DASHBOARD_DIR",
    "CheckReport",
    "DashboardsError",
    "PanelResult",
    "PrometheusUnreachable",
    "check_dashboards",
    "iter_panels",
    "load_dashboards",
    "substitute",
]


class DashboardsError(Exception):
    """Root of this module's errors (unreadable dashboards, Prometheus trouble)."""


class PrometheusUnreachable(DashboardsError):
    """No answer from Prometheus at all (connection refused, DNS, timeout, not an API)."""


@dataclass(frozen=True)
class Target:
    ref_id: str
    expr: str


@dataclass(frozen=True)
class PanelSpec:
    dashboard: str  # uid, or file stem when the dashboard has none
    title: str
    targets: tuple[Target, ...]

    @property
    def name(self) -> str:
        return f"{self.dashboard}/{self.title}"


@dataclass
class PanelResult:
    panel: PanelSpec
    empty_targets: list[str] = field(default_factory=list)  # ref ids without data
    errors: dict[str, str] = field(default_factory=dict)  # ref id -> Prometheus' error

    @property
    def empty(self) -> bool:
        return bool(self.empty_targets or self.errors)


@dataclass
class CheckReport:
    dashboards: int
    results: list[PanelResult]

    @property
    def empty(self) -> list[str]:
        return [r.panel.name for r in self.results if r.empty]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dashboards": self.dashboards,
            "panels": len(self.results),
            "empty": self.empty,
            "details": {
                r.panel.name: {"empty_targets": r.empty_targets, "errors": r.errors} for r in self.results if r.empty
            },
        }


# --- reading dashboards ------------------------------------------------------------------------
def load_dashboards(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """(name, model) of every ``*.json`` dashboard in ``directory``, sorted by file name."""
    if not directory.is_dir():
        raise DashboardsError(f"no dashboard folder at {directory}")
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DashboardsError(f"{path}: not a readable JSON dashboard: {exc}") from exc
        if not isinstance(model, dict) or not isinstance(model.get("panels", []), list):
            raise DashboardsError(f"{path}: not a Grafana dashboard (no panels list)")
        out.append((str(model.get("uid") or path.stem), model))
    if not out:
        raise DashboardsError(f"no *.json dashboards in {directory}")
    return out


def iter_panels(name: str, model: Mapping[str, Any]) -> Iterator[PanelSpec]:
    """Panels with at least one visible Prometheus expression, rows (collapsed or not) flattened."""

    def walk(panels: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
        for p in panels:
            if not isinstance(p, Mapping):
                continue
            yield p
            yield from walk(p.get("panels") or ())  # a collapsed row keeps its panels inside

    for p in walk(model.get("panels") or ()):
        targets = tuple(
            Target(str(t.get("refId") or "A"), str(t["expr"]))
            for t in p.get("targets") or ()
            if isinstance(t, Mapping) and t.get("expr") and not t.get("hide")
        )
        if targets and p.get("type") != "row":
            yield PanelSpec(name, str(p.get("title") or f"panel {p.get('id')}"), targets)


# --- variables -----------------------------------------------------------------------------------
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration such as ``5m`` or ``90s``."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h)")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def template_values(model: Mapping[str, Any], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The value each template variable takes in a check: an override, else its default.

    Multi-value and "All" variables become ``.*`` (dashboards match them with ``=~``);
    a single-valued custom variable without a default takes its first option.
    """
    values: dict[str, str] = {}
    for var in (model.get("templating") or {}).get("list") or ():
        name = str(var.get("name") or "")
        if not name:
            continue
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = current[0] if len(current) == 1 else None
        if var.get("type") == "datasource":
            values[name] = str(current or "")
        elif current in (None, "", "$__all"):
            if var.get("type") == "custom" and not var.get("includeAll"):
                options = [o.strip() for o in str(var.get("query") or "").split(",") if o.strip()]
                values[name] = options[0] if options else ".*"
            else:
                values[name] = str(var.get("allValue") or ".*")
        else:
            values[name] = str(current)
    values.update(overrides or {})
    return values


def builtins(rate_interval: str, interval: str, range_: str) -> dict[str, str]:
    """Grafana's built-in variables, as durations a check substitutes."""
    range_s = duration_seconds(range_)
    interval_s = duration_seconds(interval)
    return {
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__interval_ms": str(int(interval_s * 1000)),
        "__range": range_,
        "__range_s": str(int(range_s)),
        "__range_ms": str(int(range_s * 1000)),
    }


_VAR = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]``; unknown names stay."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in values:
            return values[name]
        # "$__interval_ms" must not be read as "$__interval" + "_ms": \w+ takes the longest name.
        return m.group(0)

    return _VAR.sub(repl, expr)


# --- Prometheus ----------------------------------------------------------------------------------
class PromQL:
    """A tiny Prometheus HTTP API client (stdlib only)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise DashboardsError(f"Prometheus URL must start with http:// or https://, not {base_url!r}")
        self.base = base_url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:  # noqa: S310 - operator-given URL
                body = resp.read()
        except urllib.error.HTTPError as exc:  # 400/422: a bad query; Prometheus explains in the body
            body = exc.read()
            if exc.code not in (400, 422, 503):
                raise PrometheusUnreachable(f"{self.base} answered HTTP {exc.code} to {path}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusUnreachable(f"cannot reach Prometheus at {self.base}: {reason}") from exc
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise PrometheusUnreachable(f"{self.base}{path} did not answer with Prometheus API JSON") from exc
        if not isinstance(payload, dict) or "status" not in payload:
            raise PrometheusUnreachable(f"{self.base}{path} did not answer with Prometheus API JSON")
        return payload

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return dict(self._get("/api/v1/query", params))

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return dict(self._get("/api/v1/query_range", params))

    def ping(self) -> None:
        """Raise :class:`PrometheusUnreachable` unless the API answers a trivial query."""
        payload = self.query("vector(1)")
        if payload.get("status") != "success":
            raise PrometheusUnreachable(f"{self.base} refused a trivial query: {payload.get('error')}")


def has_data(payload: Mapping[str, Any]) -> bool:
    """True when a successful query result holds at least one numeric (non-NaN) sample."""
    data = payload.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(result[1]) if isinstance(result, list) and len(result) == 2 else False
    for series in result or ():
        if "value" in series and _number(series["value"][1]):
            return True
        if any(_number(v[1]) for v in series.get("values") or ()):
            return True
    return False


def _number(text: Any) -> bool:
    try:
        return not math.isnan(float(text))
    except (TypeError, ValueError):
        return False


# --- the check ---------------------------------------------------------------------------------
def check_dashboards(
    prometheus_url: str,
    directory: Path = DEFAULT_DASHBOARD_DIR,
    *,
    rate_interval: str = "5m",
    interval: str = "1m",
    range_: str = "1h",
    over_range: bool = False,
    variables: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    now: float | None = None,
) -> CheckReport:
    """Evaluate every target of every dashboard in ``directory``.

    ``over_range`` evaluates each target over ``[now - range_, now]`` (like the dashboard's
    time picker) instead of at ``now`` only. Raises :class:`PrometheusUnreachable` when
    Prometheus does not answer and :class:`DashboardsError` when the dashboards cannot be read.
    """
    for value in (rate_interval, interval, range_):
        duration_seconds(value)  # ValueError early, before any query
    prom = PromQL(prometheus_url, timeout)
    prom.ping()
    dashboards = load_dashboards(directory)
    at = time.time() if now is None else now
    span = duration_seconds(range_)
    step = max(duration_seconds(interval), span / 500)
    results = []
    for name, model in dashboards:
        values = {**builtins(rate_interval, interval, range_), **template_values(model, variables)}
        for panel in iter_panels(name, model):
            result = PanelResult(panel)
            for target in panel.targets:
                expr = substitute(target.expr, values)
                payload = prom.query_range(expr, at - span, at, step) if over_range else prom.query(expr, at)
                if payload.get("status") != "success":
                    result.errors[target.ref_id] = f"{payload.get('errorType')}: {payload.get('error')} in {expr}"
                elif not has_data(payload):
                    result.empty_targets.append(target.ref_id)
            results.append(result)
    return CheckReport(len(dashboards), results)
