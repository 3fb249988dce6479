"""Dead letters: a record that cannot be processed becomes a DLQ record, never a crash.

``envelope`` is pure (the record, its coordinates and the error in, the DLQ payload out);
processors send it to the DLQ topic keyed by the source topic, count it, and go on with the next
record, so a bad record never blocks the valid ones behind it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from schemas.codec import codec
from schemas.errors import ContractError

# Keep DLQ records well under the broker's message size even for oversized originals.
MAX_KEPT_VALUE_BYTES = 256 * 1024


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def envelope(
    *,
    source_topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    value: bytes | None,
    error: Exception,
    processor: str,
    failed_at: float,
    headers: Iterable[tuple[str, bytes | None]] = (),
) -> dict[str, Any]:
    """The DLQ payload for a record that failed with ``error``."""
    size = len(value) if value is not None else 0
    kept = value if value is None or size <= MAX_KEPT_VALUE_BYTES else value[:MAX_KEPT_VALUE_BYTES]
    rec: dict[str, Any] = {
        "schema_version": 1,
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "key_b64": _b64(key),
        "value_b64": _b64(kept),
        "value_size_bytes": size,
        "value_truncated": kept is not value,
        "error": (str(error) or type(error).__name__)[:1000],
        "error_code": error.code if isinstance(error, ContractError) else "processing_failed",
        "failed_at": failed_at,
        "processor": processor,
    }
    hdrs = [{"key": k[:256], "value_b64": _b64(v)} for k, v in list(headers)[:64]]
    if hdrs:
        rec["headers"] = hdrs
    if isinstance(error, ContractError):
        rec["violations"] = [{"path": v.path[:1024], "reason": v.reason[:1000]} for v in error.violations[:100]]
    return rec


def encode_envelope(**kwargs: Any) -> bytes:
    return codec("dlq").encode(envelope(**kwargs))
