"""Parsing of the times, durations and sizes operators type: ``now``, ``+10m``, RFC 3339, ``2Gi``.

Pure functions: the current time is an argument, never read here. Every error is a
:class:`TimeParseError` whose message says what was wrong and what is accepted, so the CLI can
show it as is.

>>> parse_instant("+10m", now=1_700_000_000.0)
1700000600.0
>>> parse_instant("2024-01-01T00:00:00Z", now=0.0)
1704067200.0
>>> parse_duration("1h30m")
5400.0
>>> parse_size("-512Mi")
-536870912
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

__all__ = [
    "TimeParseError",
    "format_instant",
    "parse_duration",
    "parse_instant",
    "parse_size",
]


class TimeParseError(ValueError):
    """A time, duration or size that cannot be read; the message says what is accepted."""


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+\Z")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?\Z")
_RELATIVE = re.compile(r"(?:now)?\s*([+-])\s*(\S+)\Z")
# RFC 3339: date 'T' time, optional fraction, mandatory Z or offset ('t'/'z'/' ' allowed too).
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z")
_EPOCH = re.compile(r"@(\d+(?:\.\d+)?)\Z")
# Largest instant the contracts accept (common.schema.json#/$defs/timestamp).
MAX_EPOCH = 1e11

_DURATION_HELP = "use a number of seconds or units s, m, h, d, w (e.g. 90s, 10m, 1h30m, 2d)"
_INSTANT_HELP = (
    "use 'now', a relative time such as +10m, +2h, +1d (units s, m, h, d, w), "
    "an RFC 3339 time with a zone such as 2025-06-01T22:00:00Z, or @<epoch seconds>"
)


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``10m``, ``1h30m``, ``2d``, ``1w``; must be finite, >= 0."""
    raw = text.strip().lower()
    if not raw:
        raise TimeParseError(f"empty duration: {_DURATION_HELP}")
    if _PLAIN_NUMBER.match(raw):
        value = float(raw)
    elif _DURATION.match(raw):
        value = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(raw))
    else:
        raise TimeParseError(f"cannot read duration {text!r}: {_DURATION_HELP}")
    if not math.isfinite(value):
        raise TimeParseError(f"duration {text!r} is not finite")
    return value


def parse_instant(text: str, *, now: float) -> float:
    """Unix epoch seconds of ``text``, resolved against ``now`` (epoch seconds).

    Accepted: ``now``; relative ``+10m``/``-5m``/``now+1h30m``; RFC 3339 with ``Z`` or an
    offset (a time without a zone is refused: it would depend on the machine's zone);
    ``@1717279200`` (epoch seconds).
    """
    raw = text.strip()
    if not raw:
        raise TimeParseError(f"empty time: {_INSTANT_HELP}")
    low = raw.lower()
    if low == "now":
        return float(now)
    rel = _RELATIVE.match(low)
    if rel:
        sign, amount = rel.groups()
        try:
            seconds = parse_duration(amount)
        except TimeParseError:
            raise TimeParseError(f"cannot read relative time {text!r}: {_INSTANT_HELP}") from None
        value = now + seconds if sign == "+" else now - seconds
    elif m := _EPOCH.match(raw):
        value = float(m.group(1))
    elif m := _RFC3339.match(raw):
        value = _rfc3339(text, m)
    elif re.match(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\Z", raw):
        raise TimeParseError(f"time {text!r} has no zone: add Z (UTC) or an offset such as +02:00")
    else:
        raise TimeParseError(f"cannot read time {text!r}: {_INSTANT_HELP}")
    if not 0 <= value < MAX_EPOCH:
        raise TimeParseError(f"time {text!r} is out of range (before 1970 or after year 5138)")
    return value


def _rfc3339(text: str, m: re.Match[str]) -> float:
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction = float(m.group(7)) if m.group(7) else 0.0
    zone = m.group(8)
    if second == 60:  # leap second: RFC 3339 allows it, datetime does not
        second = 59
        fraction += 1.0
    try:
        base = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise TimeParseError(f"invalid date or time in {text!r}: {exc}") from None
    offset = 0
    if zone not in ("Z", "z"):
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            raise TimeParseError(f"invalid zone offset {zone!r} in {text!r}")
        offset = (oh * 3600 + om * 60) * (1 if zone[0] == "+" else -1)
    return base.timestamp() + fraction - offset


def format_instant(epoch: float) -> str:
    """RFC 3339 UTC text of an epoch instant, e.g. ``2025-06-01T22:00:00Z`` (milliseconds if any)."""
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


_SIZE = re.compile(r"([+-]?)(\d+(?:\.\d+)?)\s*([kmgtpe]i?)?b?\Z")
_SIZE_FACTORS = {
    None: 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "p": 10**15,
    "e": 10**18,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
    "pi": 2**50,
    "ei": 2**60,
}


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``1024``, ``512Mi``, ``2Gi``, ``1.5G``, ``-256Mi`` (signed, for deltas)."""
    raw = text.strip().lower()
    m = _SIZE.match(raw)
    if not m:
        raise TimeParseError(
            f"cannot read size {text!r}: use bytes or a suffix k, M, G, T (powers of 1000) "
            "or Ki, Mi, Gi, Ti (powers of 1024), e.g. 512Mi or -2Gi"
        )
    sign, number, unit = m.groups()
    value = round(float(number) * _SIZE_FACTORS[unit])
    return -value if sign == "-" else value
