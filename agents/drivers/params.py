"""Typed reading of a spec's ``params`` (all strings on the wire), with messages naming the param."""

from __future__ import annotations

import math

from agents.drivers.base import InvalidSpec, WorkloadSpec
from agents.sizes import SizeError, parse_size

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def text(spec: WorkloadSpec, name: str, default: str = "") -> str:
    return spec.params.get(name, default).strip()


def number(
    spec: WorkloadSpec,
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    positive: bool = False,
    maximum: float | None = None,
) -> float:
    raw = spec.params.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidSpec(f"param {name}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidSpec(f"param {name}: must be finite, not {raw!r}")
    if positive and value <= 0:
        raise InvalidSpec(f"param {name}: must be positive, not {raw}")
    if minimum is not None and value < minimum:
        raise InvalidSpec(f"param {name}: must be at least {minimum:g}, not {raw}")
    if maximum is not None and value > maximum:
        raise InvalidSpec(f"param {name}: must be at most {maximum:g}, not {raw}")
    return value


def integer(spec: WorkloadSpec, name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = spec.params.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidSpec(f"param {name}: {raw!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise InvalidSpec(f"param {name}: must be in {minimum}..{maximum}, not {value}")
    return value


def flag(spec: WorkloadSpec, name: str, default: bool) -> bool:
    raw = spec.params.get(name)
    if raw is None or not raw.strip():
        return default
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise InvalidSpec(f"param {name}: {raw!r} is not a yes/no value (true, false, 1, 0)")


def size(spec: WorkloadSpec, name: str, default: int) -> int:
    raw = spec.params.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return parse_size(raw)
    except SizeError as exc:
        raise InvalidSpec(f"param {name}: {exc}") from exc


def port(spec: WorkloadSpec, name: str = "port", default: str = "auto") -> int | None:
    """``auto`` → 0 (pick a free port), ``none`` → None (no port), else 1..65535."""
    raw = spec.params.get(name, default).strip().lower() or default
    if raw == "auto":
        return 0
    if raw == "none":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidSpec(f"param {name}: {raw!r}: use auto, none or a port number") from None
    if not 1 <= value <= 65535:
        raise InvalidSpec(f"param {name}: port must be in 1..65535, not {value}")
    return value
