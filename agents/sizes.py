"""Sizes written by people (``256M``, ``1.5Gi``, ``8GB``) as bytes, and back.

Units: ``B``; binary ``K M G T`` (also ``Ki Mi Gi Ti`` and ``KiB MiB GiB TiB``) = powers of 1024,
as QEMU's ``-m 256M`` means; decimal ``KB MB GB TB`` = powers of 1000. Case does not matter
except that a lone ``b`` is bytes. Fractions are allowed (``1.5G``) and rounded to whole bytes.

>>> parse_size("256M")
268435456
>>> parse_size("1.5 KiB")
1536
>>> parse_size("2GB")
2000000000
>>> format_size(268435456)
'256Mi'
"""

from __future__ import annotations

import math
import re

_BINARY = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DECIMAL = {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")
_HINT = (
    "use a number and an optional unit: B, K, M, G, T (powers of 1024; also Ki, MiB…) "
    "or KB, MB, GB, TB (powers of 1000), e.g. 256M"
)


class SizeError(ValueError):
    """A size string that cannot be read; the message says what is accepted."""


def _factor(unit: str) -> int | None:
    low = unit.lower()
    if low in _DECIMAL:
        return _DECIMAL[low]
    for tail in ("ib", "i"):
        if low.endswith(tail) and low[: -len(tail)] in ("k", "m", "g", "t"):
            return _BINARY[low[: -len(tail)]]
    return _BINARY.get(low)


def parse_size(text: str | int) -> int:
    """Bytes in ``text``; raises :class:`SizeError` naming the bad value."""
    if isinstance(text, bool):
        raise SizeError(f"bad size {text!r}: {_HINT}")
    if isinstance(text, int):
        if text < 0:
            raise SizeError(f"bad size {text}: must not be negative")
        return text
    match = _SIZE.match(text)
    if match is None:
        raise SizeError(f"bad size {text!r}: {_HINT}")
    number, unit = match.groups()
    factor = _factor(unit)
    if factor is None:
        raise SizeError(f"bad size {text!r}: unknown unit {unit!r}; {_HINT}")
    value = float(number) * factor
    if not math.isfinite(value) or value >= 2**63:
        raise SizeError(f"bad size {text!r}: too large")
    return round(value)


def format_size(num_bytes: int) -> str:
    """The shortest exact binary form (``256Mi``, ``1536``), or one decimal for inexact values."""
    if num_bytes < 0:
        raise SizeError(f"bad size {num_bytes}: must not be negative")
    for unit, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if num_bytes >= factor and num_bytes % factor == 0:
            return f"{num_bytes // factor}{unit}"
    for unit, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2)):
        if num_bytes >= factor:
            return f"{num_bytes / factor:.1f}{unit}"
    return str(num_bytes)
